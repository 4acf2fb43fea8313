//! What the fuzz targets share: an in-memory transport that delivers bytes in chosen chunks,
//! and helpers that run the server's stream reader and writer over it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use rempart::config::Config;
use rempart::stream::reader::{Incoming, ReadError, ReaderLimits, XmlReader};
use rempart::stream::writer::XmlWriter;
use rempart_xep::element::Element;
use rempart_xep::stream::{StreamErrorCondition, StreamHeader};
use tokio::io::{AsyncRead, ReadBuf};

/// Most elements read from one input, so that a run stays short.
const MAX_ELEMENTS: usize = 256;

/// How a transport cuts its bytes: chunk lengths and whether a read first answers `Pending`,
/// drawn from a small deterministic generator so that a seed replays the same split.
#[derive(Debug, Clone, Copy)]
pub enum Split {
    /// Everything in one read.
    Whole,
    /// One byte per read.
    Bytewise,
    /// Random chunk lengths and pauses derived from the seed.
    Seeded(u64),
}

/// An `AsyncRead` over a byte slice that hands out the bytes as `Split` says.
pub struct ChunkedInput<'a> {
    data: &'a [u8],
    split: Split,
    state: u64,
    paused: bool,
}

impl<'a> ChunkedInput<'a> {
    /// A transport delivering `data` cut as `split` says.
    pub fn new(data: &'a [u8], split: Split) -> Self {
        let state = match split {
            Split::Seeded(seed) => seed | 1,
            _ => 1,
        };
        ChunkedInput {
            data,
            split,
            state,
            paused: false,
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: deterministic, no dependency, good enough to vary the cuts.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }
}

impl AsyncRead for ChunkedInput<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let chunk = match this.split {
            Split::Whole => this.data.len(),
            Split::Bytewise => 1,
            Split::Seeded(_) => {
                let random = this.next_random();
                // One read in four first says "not yet", as a socket does between segments.
                if !this.paused && random % 4 == 0 {
                    this.paused = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                this.paused = false;
                1 + (random >> 8) as usize % 64
            }
        };
        let length = chunk.min(this.data.len()).min(buf.remaining());
        buf.put_slice(&this.data[..length]);
        this.data = &this.data[length..];
        Poll::Ready(Ok(()))
    }
}

/// The server's default reader limits, with a stanza size far above any fuzz input, so that
/// the byte counting (which depends on read sizes by design) never decides the outcome.
pub fn reader_limits() -> ReaderLimits {
    let mut config = Config::default();
    config.limits.max_stanza_size = 1 << 24;
    rempart::reader_limits(&config)
}

/// One thing the reader produced, in a form that can be compared between runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// The stream header.
    Header(StreamHeader),
    /// A top-level element.
    Element(Element),
    /// Whitespace between stanzas.
    Whitespace,
    /// The closing tag of the stream.
    StreamEnd,
    /// The stream error that ended the read. Only the condition is kept: the text is
    /// quick-xml's message, which names offsets into its buffer and so depends on the cuts.
    StreamError(StreamErrorCondition),
    /// The input ended before the stream did.
    Closed,
}

/// Runs the server's stream reader over `data` cut as `split` says: the header, then every
/// top-level element until the stream ends or fails.
pub fn read_stream(data: &[u8], split: Split) -> Vec<Read> {
    futures::executor::block_on(async {
        let mut reader = XmlReader::new(ChunkedInput::new(data, split), reader_limits());
        let mut transcript = Vec::new();
        match reader.read_header().await {
            Ok(header) => transcript.push(Read::Header(header)),
            Err(error) => {
                transcript.push(failed(&error));
                return transcript;
            }
        }
        while transcript.len() < MAX_ELEMENTS {
            match reader.next().await {
                Ok(Incoming::Element(element)) => transcript.push(Read::Element(element)),
                Ok(Incoming::Whitespace) => transcript.push(Read::Whitespace),
                Ok(Incoming::StreamEnd) => {
                    transcript.push(Read::StreamEnd);
                    break;
                }
                Err(error) => {
                    transcript.push(failed(&error));
                    break;
                }
            }
        }
        transcript
    })
}

fn failed(error: &ReadError) -> Read {
    match error {
        ReadError::Stream(error) => Read::StreamError(error.condition),
        ReadError::Closed(_) => Read::Closed,
    }
}

/// Serialises `element` as the server's stream writer does on a stream of `content_ns`.
pub fn write_element(element: &Element, content_ns: &'static str) -> Vec<u8> {
    let mut out = Vec::new();
    futures::executor::block_on(async {
        let mut writer = XmlWriter::new(&mut out, content_ns);
        writer
            .write_element(element)
            .await
            .expect("writing to memory cannot fail");
    });
    out
}

/// The header a client or server opens its stream with, declaring `stream:` and, on server
/// streams, `db:`.
pub fn opening_header(content_ns: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream to='example.org' version='1.0' xmlns='{content_ns}' \
         xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'>"
    )
}

/// True for an XML 1.0 `NCName` (a name without a colon, Namespaces in XML §3).
pub fn is_ncname(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(is_name_start) && chars.all(is_name_char)
}

/// True for a `QName`: an `NCName`, or two joined by one colon.
pub fn is_qname(name: &str) -> bool {
    match name.split_once(':') {
        Some((prefix, local)) => is_ncname(prefix) && is_ncname(local),
        None => is_ncname(name),
    }
}

/// The first element or attribute name in the tree that is not an XML name, described.
pub fn invalid_names(element: &Element) -> Option<String> {
    if !is_ncname(element.name()) {
        return Some(format!("element name {:?}", element.name()));
    }
    if let Some((name, _)) = element.attrs().find(|(name, _)| !is_qname(name)) {
        return Some(format!("attribute name {name:?} on <{}>", element.name()));
    }
    element.children().find_map(invalid_names)
}

fn is_name_start(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}
