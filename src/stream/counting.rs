//! A reader that counts the bytes of the stanza being read and refuses to read past the
//! stanza size limit, so that no peer can make the parser's buffers grow without bound.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// Marker error carried inside `io::Error` when the limit is hit.
#[derive(Debug, thiserror::Error)]
#[error("stanza exceeds the size limit")]
pub struct StanzaTooLarge;

/// Counts bytes read since the last [`CountingReader::reset`].
pub struct CountingReader<R> {
    inner: R,
    consumed: usize,
    limit: usize,
}

impl<R> CountingReader<R> {
    /// Wraps `inner`, allowing `limit` bytes between resets.
    pub fn new(inner: R, limit: usize) -> Self {
        CountingReader {
            inner,
            consumed: 0,
            limit,
        }
    }

    /// Starts counting anew (called when a stanza is complete).
    pub fn reset(&mut self) {
        self.consumed = 0;
    }

    /// Starts counting anew against another limit (the stream header has its own).
    pub fn reset_with_limit(&mut self, limit: usize) {
        self.consumed = 0;
        self.limit = limit;
    }

    /// The wrapped reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for CountingReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.consumed > this.limit {
            return Poll::Ready(Err(io::Error::other(StanzaTooLarge)));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            this.consumed += buf.filled().len() - before;
        }
        result
    }
}

/// True when an I/O error is the size limit.
pub fn is_too_large(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<StanzaTooLarge>().is_some())
}
