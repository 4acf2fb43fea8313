//! The queue of one outbound link, bounded in stanzas by its channel and in bytes by a shared
//! counter, so that a link that is still connecting cannot hold unbounded memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rempart_xep::element::Element;
use tokio::sync::mpsc;

/// A stanza waiting in the queue, with the bytes it was counted for.
struct Queued {
    stanza: Element,
    bytes: usize,
}

/// Why a stanza was not queued; the stanza comes back to be bounced or retried.
pub enum Refused {
    /// The queue holds its limit of stanzas or bytes.
    Full(Element),
    /// The link ended.
    Closed(Element),
}

/// The pool's end of a link's queue.
#[derive(Clone)]
pub struct QueueSender {
    stanzas: mpsc::Sender<Queued>,
    bytes: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// The link's end of its queue.
pub struct QueueReceiver {
    stanzas: mpsc::Receiver<Queued>,
    bytes: Arc<AtomicUsize>,
}

/// A queue holding at most `max_stanzas` stanzas and `max_bytes` bytes of serialised XML
/// (a single stanza larger than `max_bytes` is taken when the queue is empty, so that it
/// can still be sent).
pub fn channel(max_stanzas: usize, max_bytes: usize) -> (QueueSender, QueueReceiver) {
    let (tx, rx) = mpsc::channel(max_stanzas.max(1));
    let bytes = Arc::new(AtomicUsize::new(0));
    (
        QueueSender {
            stanzas: tx,
            bytes: bytes.clone(),
            max_bytes,
        },
        QueueReceiver { stanzas: rx, bytes },
    )
}

impl QueueSender {
    /// Queues `stanza` without waiting.
    pub fn push(&self, stanza: Element) -> Result<(), Refused> {
        let bytes = stanza.to_xml().len();
        let before = self.bytes.fetch_add(bytes, Ordering::AcqRel);
        if before > 0 && before + bytes > self.max_bytes {
            self.bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(Refused::Full(stanza));
        }
        match self.stanzas.try_send(Queued { stanza, bytes }) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.bytes.fetch_sub(bytes, Ordering::AcqRel);
                Err(match error {
                    mpsc::error::TrySendError::Full(queued) => Refused::Full(queued.stanza),
                    mpsc::error::TrySendError::Closed(queued) => Refused::Closed(queued.stanza),
                })
            }
        }
    }
}

impl QueueReceiver {
    /// The next stanza; `None` once the queue is closed and empty.
    pub async fn recv(&mut self) -> Option<Element> {
        let queued = self.stanzas.recv().await?;
        Some(self.release(queued))
    }

    /// The next stanza if one is waiting.
    pub fn try_recv(&mut self) -> Option<Element> {
        let queued = self.stanzas.try_recv().ok()?;
        Some(self.release(queued))
    }

    /// Refuses further stanzas; those already queued can still be taken.
    pub fn close(&mut self) {
        self.stanzas.close();
    }

    fn release(&self, queued: Queued) -> Element {
        self.bytes.fetch_sub(queued.bytes, Ordering::AcqRel);
        queued.stanza
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> Element {
        Element::new("message", "jabber:client")
            .child(Element::new("body", "jabber:client").text(body))
    }

    #[test]
    fn the_byte_limit_refuses_stanzas_until_the_queue_drains() {
        let (sender, mut receiver) = channel(100, 200);
        assert!(sender.push(message(&"a".repeat(100))).is_ok());
        assert!(matches!(
            sender.push(message(&"b".repeat(100))),
            Err(Refused::Full(_))
        ));
        assert!(receiver.try_recv().is_some());
        assert!(sender.push(message(&"b".repeat(100))).is_ok());
    }

    #[test]
    fn one_stanza_larger_than_the_limit_passes_an_empty_queue() {
        let (sender, _receiver) = channel(100, 10);
        assert!(sender.push(message(&"a".repeat(100))).is_ok());
        assert!(matches!(sender.push(message("b")), Err(Refused::Full(_))));
    }

    #[test]
    fn the_stanza_limit_still_applies() {
        let (sender, _receiver) = channel(1, 1 << 20);
        assert!(sender.push(message("a")).is_ok());
        assert!(matches!(sender.push(message("b")), Err(Refused::Full(_))));
    }
}
