//! Reads an XMPP stream as owned elements, with quick-xml and the `rempart-xep` tree builder.
//!
//! Like the server's reader, it is only ever awaited sequentially (quick-xml's async read is
//! not cancel-safe): by the login code, then inside one reader task per session.

use anyhow::{anyhow, bail, Result};
use quick_xml::events::Event;
use quick_xml::Reader;
use rempart_xep::parse::{resolve_start, Built, Limits, TreeBuilder};
use rempart_xep::{ns, Element};
use tokio::io::{AsyncRead, BufReader};

/// Read buffer per connection: small, since thousands of idle sessions share one process.
const READ_BUFFER: usize = 4096;

/// What the stream produced next.
pub enum Incoming {
    /// A complete top-level element.
    Element(Element),
    /// The server closed the stream (`</stream:stream>` or end of input).
    End,
}

/// One inbound XML stream over `R`.
pub struct XmlIn<R> {
    reader: Reader<BufReader<R>>,
    builder: Option<TreeBuilder>,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> XmlIn<R> {
    /// A reader at the start of a stream.
    pub fn new(io: R) -> Self {
        Self::over(BufReader::with_capacity(READ_BUFFER, io))
    }

    fn over(buffered: BufReader<R>) -> Self {
        XmlIn {
            reader: Reader::from_reader(buffered),
            builder: None,
            buf: Vec::with_capacity(512),
        }
    }

    /// Starts over for a restarted stream (after SASL), keeping bytes already buffered.
    pub fn restart(self) -> Self {
        Self::over(self.reader.into_inner())
    }

    /// The transport, for writing during negotiation.
    pub fn get_mut(&mut self) -> &mut R {
        self.reader.get_mut().get_mut()
    }

    /// Gives the transport back; fails if the server sent bytes that would be lost (STARTTLS).
    pub fn into_inner(self) -> Result<R> {
        let buffered = self.reader.into_inner();
        if !buffered.buffer().is_empty() {
            bail!("server sent data after <proceed/>");
        }
        Ok(buffered.into_inner())
    }

    /// Reads up to and including the server's stream header; returns the header element.
    pub async fn header(&mut self) -> Result<Element> {
        loop {
            self.buf.clear();
            let event = self
                .reader
                .read_event_into_async(&mut self.buf)
                .await
                .map_err(|e| anyhow!("reading stream header: {e}"))?;
            match event {
                Event::Decl(_) => continue,
                Event::Text(text) if text.chars().all(|c| c.is_ascii_whitespace()) => continue,
                Event::Start(start) => {
                    let resolved = resolve_start(&start, Limits::default(), |_| None)
                        .map_err(|e| anyhow!("stream header: {e}"))?;
                    if !resolved.element.is("stream", ns::STREAM) {
                        bail!(
                            "expected a stream header, got <{}>",
                            resolved.element.name()
                        );
                    }
                    self.builder = Some(TreeBuilder::new(Limits::default(), resolved.declarations));
                    return Ok(resolved.element);
                }
                Event::Eof => bail!("connection closed before the stream header"),
                _ => bail!("unexpected XML before the stream header"),
            }
        }
    }

    /// Reads the next top-level element of the stream.
    pub async fn next(&mut self) -> Result<Incoming> {
        let XmlIn {
            reader,
            builder,
            buf,
        } = self;
        let builder = builder
            .as_mut()
            .ok_or_else(|| anyhow!("stream header not read yet"))?;
        loop {
            buf.clear();
            let event = reader
                .read_event_into_async(buf)
                .await
                .map_err(|e| anyhow!("reading stream: {e}"))?;
            if matches!(event, Event::Eof) {
                return Ok(Incoming::End);
            }
            match builder.feed(event).map_err(|e| anyhow!("{e}"))? {
                Built::Pending => continue,
                Built::Element(element) => {
                    if element.is("error", ns::STREAM) {
                        let condition = element
                            .children()
                            .map(|c| c.name().to_owned())
                            .find(|n| n != "text")
                            .unwrap_or_default();
                        bail!("stream error: {condition}");
                    }
                    return Ok(Incoming::Element(element));
                }
                Built::StreamEnd => return Ok(Incoming::End),
            }
        }
    }

    /// Reads the next element, failing on the end of the stream.
    pub async fn expect_element(&mut self) -> Result<Element> {
        match self.next().await? {
            Incoming::Element(element) => Ok(element),
            Incoming::End => bail!("server closed the stream"),
        }
    }
}
