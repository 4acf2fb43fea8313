//! The XML stream writer: serializes headers, stanzas and stream errors onto the transport.

use std::io;
use std::time::Duration;

use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stream::{StreamError, StreamHeader, STREAM_CLOSE};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Writes one XML stream to `W`.
pub struct XmlWriter<W> {
    io: W,
    content_ns: &'static str,
    /// How long one write (or the closing shutdown) may block before it fails, so that a
    /// peer that stops reading cannot hold its connection's slot forever.
    write_timeout: Option<Duration>,
}

impl<W: AsyncWrite + Unpin> XmlWriter<W> {
    /// A writer whose top-level stanzas are in `content_ns`.
    pub fn new(io: W, content_ns: &'static str) -> Self {
        XmlWriter {
            io,
            content_ns,
            write_timeout: None,
        }
    }

    /// A writer whose every write fails with `TimedOut` after blocking for `write_timeout`.
    pub fn with_timeout(io: W, content_ns: &'static str, write_timeout: Duration) -> Self {
        XmlWriter {
            io,
            content_ns,
            write_timeout: Some(write_timeout),
        }
    }

    /// Writes the opening stream header.
    pub async fn write_header(&mut self, header: &StreamHeader) -> io::Result<()> {
        self.write_raw(&header.to_xml()).await
    }

    /// Writes a top-level element (stanza, feature negotiation element).
    pub async fn write_element(&mut self, element: &Element) -> io::Result<()> {
        let xml = if element.ns() == ns::STREAM {
            element.to_prefixed_xml("stream", self.content_ns)
        } else if element.ns() == ns::DIALBACK {
            element.to_prefixed_xml("db", self.content_ns)
        } else {
            element.to_stream_xml(self.content_ns)
        };
        self.write_raw(&xml).await
    }

    /// Writes a stream error and closes the stream.
    pub async fn write_stream_error(&mut self, error: &StreamError) -> io::Result<()> {
        let xml = format!("{}{}", error.to_xml(), STREAM_CLOSE);
        self.write_raw(&xml).await?;
        self.shutdown().await
    }

    /// Closes the stream cleanly.
    pub async fn close(&mut self) -> io::Result<()> {
        self.write_raw(STREAM_CLOSE).await?;
        self.shutdown().await
    }

    /// Writes pre-serialized XML.
    pub async fn write_raw(&mut self, xml: &str) -> io::Result<()> {
        let io = &mut self.io;
        within(self.write_timeout, async move {
            io.write_all(xml.as_bytes()).await?;
            io.flush().await
        })
        .await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        within(self.write_timeout, self.io.shutdown()).await
    }

    /// The transport, for STARTTLS.
    pub fn into_inner(self) -> W {
        self.io
    }
}

/// Runs `write`, failing with `TimedOut` when it blocks longer than `limit`.
async fn within(
    limit: Option<Duration>,
    write: impl std::future::Future<Output = io::Result<()>>,
) -> io::Result<()> {
    match limit {
        None => write.await,
        Some(limit) => tokio::time::timeout(limit, write)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"))),
    }
}
