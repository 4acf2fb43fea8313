//! The XML stream reader: bytes in, one owned element per top-level child of the stream out.
//!
//! quick-xml's async read is not cancel-safe, so this reader is only ever awaited
//! sequentially: by the negotiation code, then inside its own task (never in a `select!`).

use std::io;

use quick_xml::events::Event;
use quick_xml::Reader;
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::parse::{resolve_start, Built, Limits, ParseError, TreeBuilder};
use rempart_xep::stream::{StreamError, StreamErrorCondition, StreamHeader};
use thiserror::Error;
use tokio::io::{AsyncRead, BufReader};

use crate::stream::counting::{is_too_large, CountingReader};

/// Read buffer per connection; small, because idle sessions dominate memory.
const READ_BUFFER: usize = 4096;
/// Event buffers larger than this are released after a stanza instead of kept.
const KEEP_EVENT_BUFFER: usize = 16 * 1024;

/// Limits enforced while reading.
#[derive(Debug, Clone, Copy)]
pub struct ReaderLimits {
    /// Largest stanza in bytes.
    pub max_stanza_size: usize,
    /// Largest stream header in bytes.
    pub max_header_size: usize,
    /// Most namespace declarations on a stream header: each one applies to every stanza.
    pub max_header_declarations: usize,
    /// Structural limits.
    pub structure: Limits,
}

/// What the stream produced.
#[derive(Debug)]
pub enum Incoming {
    /// A complete top-level element.
    Element(Element),
    /// Whitespace between stanzas (a keepalive).
    Whitespace,
    /// `</stream:stream>`.
    StreamEnd,
}

/// Why reading stopped.
#[derive(Debug, Error)]
pub enum ReadError {
    /// The peer broke a rule; answer with this stream error.
    #[error("{0}")]
    Stream(StreamError),
    /// The connection closed or failed.
    #[error("connection closed: {0}")]
    Closed(String),
}

impl From<ParseError> for ReadError {
    fn from(error: ParseError) -> Self {
        let condition = match &error {
            ParseError::NotWellFormed(_) | ParseError::UnboundPrefix(_) => {
                StreamErrorCondition::NotWellFormed
            }
            ParseError::RestrictedXml(_) => StreamErrorCondition::RestrictedXml,
            ParseError::LimitExceeded(_) => StreamErrorCondition::PolicyViolation,
        };
        ReadError::Stream(StreamError::with_text(condition, error.to_string()))
    }
}

/// Reads one XML stream from `R`.
pub struct XmlReader<R> {
    reader: Reader<BufReader<CountingReader<R>>>,
    buf: Vec<u8>,
    builder: TreeBuilder,
    limits: ReaderLimits,
}

impl<R: AsyncRead + Unpin> XmlReader<R> {
    /// A reader at the start of a stream.
    pub fn new(io: R, limits: ReaderLimits) -> Self {
        let counting = CountingReader::new(io, limits.max_stanza_size);
        Self::over(BufReader::with_capacity(READ_BUFFER, counting), limits)
    }

    fn over(input: BufReader<CountingReader<R>>, limits: ReaderLimits) -> Self {
        let mut reader = Reader::from_reader(input);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.check_comments = true;
        config.expand_empty_elements = false;
        config.trim_text(false);
        XmlReader {
            reader,
            buf: Vec::new(),
            builder: TreeBuilder::new(limits.structure, Vec::new()),
            limits,
        }
    }

    /// A fresh parser on the same input, for the stream restart after SASL success
    /// (bytes the client already pipelined are kept).
    pub fn restart(self) -> Self {
        Self::over(self.reader.into_inner(), self.limits)
    }

    /// The underlying transport, for STARTTLS. Data pipelined after `<starttls/>` is refused.
    pub fn into_inner(self) -> Result<R, ReadError> {
        let buffered = self.reader.into_inner();
        if !buffered.buffer().is_empty() {
            return Err(ReadError::Stream(StreamError::with_text(
                StreamErrorCondition::PolicyViolation,
                "data sent before the TLS handshake",
            )));
        }
        Ok(buffered.into_inner().into_inner())
    }

    /// Reads up to and including the `<stream:stream>` start tag.
    pub async fn read_header(&mut self) -> Result<StreamHeader, ReadError> {
        self.reader
            .get_mut()
            .get_mut()
            .reset_with_limit(self.limits.max_header_size);
        let header = self.read_header_start().await;
        self.reader
            .get_mut()
            .get_mut()
            .reset_with_limit(self.limits.max_stanza_size);
        header
    }

    async fn read_header_start(&mut self) -> Result<StreamHeader, ReadError> {
        loop {
            self.buf.clear();
            let event = self
                .reader
                .read_event_into_async(&mut self.buf)
                .await
                .map_err(map_xml_error)?;
            match event {
                Event::Decl(_) => continue,
                Event::Text(text) if text.xml10_content().trim().is_empty() => continue,
                Event::Start(start) => {
                    let resolved = resolve_start(&start, self.limits.structure, |_| None)
                        .map_err(ReadError::from)?;
                    if resolved.declarations.len() > self.limits.max_header_declarations {
                        return Err(stream_error(
                            StreamErrorCondition::PolicyViolation,
                            "too many namespace declarations on the stream header",
                        ));
                    }
                    let element = &resolved.element;
                    if element.name() != "stream" {
                        return Err(stream_error(
                            StreamErrorCondition::BadFormat,
                            "the stream must open with <stream:stream>",
                        ));
                    }
                    if element.ns() != ns::STREAM {
                        return Err(stream_error(
                            StreamErrorCondition::InvalidNamespace,
                            "wrong stream namespace",
                        ));
                    }
                    let content_ns = resolved
                        .declarations
                        .iter()
                        .find(|(prefix, _)| prefix.is_empty())
                        .map(|(_, uri)| &**uri);
                    let header = StreamHeader::from_element(element, content_ns);
                    self.builder = TreeBuilder::new(self.limits.structure, resolved.declarations);
                    return Ok(header);
                }
                Event::Eof => return Err(ReadError::Closed("before the stream header".into())),
                Event::DocType(_) => {
                    return Err(stream_error(
                        StreamErrorCondition::RestrictedXml,
                        "document type declarations are not allowed",
                    ))
                }
                Event::Comment(_) | Event::PI(_) => {
                    return Err(stream_error(
                        StreamErrorCondition::RestrictedXml,
                        "comments and processing instructions are not allowed",
                    ))
                }
                _ => {
                    return Err(stream_error(
                        StreamErrorCondition::NotWellFormed,
                        "expected a stream header",
                    ))
                }
            }
        }
    }

    /// Reads the next top-level element of the stream.
    pub async fn next(&mut self) -> Result<Incoming, ReadError> {
        loop {
            self.buf.clear();
            let event = self
                .reader
                .read_event_into_async(&mut self.buf)
                .await
                .map_err(map_xml_error)?;
            if let Event::Eof = event {
                return Err(ReadError::Closed("without closing the stream".into()));
            }
            if let Event::Text(text) = &event {
                if self.builder.is_idle() && text.xml10_content().trim().is_empty() {
                    self.reset_counter();
                    return Ok(Incoming::Whitespace);
                }
            }
            match self.builder.feed(event)? {
                Built::Pending => continue,
                Built::Element(element) => {
                    self.reset_counter();
                    if self.buf.capacity() > KEEP_EVENT_BUFFER {
                        self.buf = Vec::new();
                    }
                    return Ok(Incoming::Element(element));
                }
                Built::StreamEnd => return Ok(Incoming::StreamEnd),
            }
        }
    }

    fn reset_counter(&mut self) {
        self.reader.get_mut().get_mut().reset();
    }
}

fn stream_error(condition: StreamErrorCondition, text: &str) -> ReadError {
    ReadError::Stream(StreamError::with_text(condition, text))
}

fn map_xml_error(error: quick_xml::Error) -> ReadError {
    match error {
        quick_xml::Error::Io(io_error) => {
            if is_too_large(&io_error) {
                stream_error(StreamErrorCondition::PolicyViolation, "stanza too large")
            } else if io_error.kind() == io::ErrorKind::UnexpectedEof {
                ReadError::Closed("end of input".into())
            } else {
                ReadError::Closed(io_error.to_string())
            }
        }
        other => ReadError::Stream(StreamError::with_text(
            StreamErrorCondition::NotWellFormed,
            other.to_string(),
        )),
    }
}
