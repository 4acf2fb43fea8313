//! IQ requests the server itself sends (capability discovery), matched to their answers by id
//! and sender.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use jid::{FullJid, Jid};
use rempart_xep::element::Element;
use tokio::sync::oneshot;

/// How long the server waits for a client to answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// A request waiting for its answer, and who may give it.
struct Waiter {
    asked: Jid,
    answer: oneshot::Sender<Element>,
}

/// Outstanding server-originated requests.
#[derive(Default)]
pub struct PendingQueries {
    next: AtomicU64,
    waiting: Mutex<HashMap<String, Waiter>>,
}

impl PendingQueries {
    /// A fresh id for a request to `asked`, and the receiver of its answer.
    pub fn register(&self, asked: &FullJid) -> (String, oneshot::Receiver<Element>) {
        let id = format!("rempart-q{}", self.next.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id.clone(),
                Waiter {
                    asked: Jid::from(asked.clone()),
                    answer: tx,
                },
            );
        (id, rx)
    }

    /// Drops a request that will not be answered.
    pub fn forget(&self, id: &str) {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Hands an answer to its waiter; unknown ids are dropped, as RFC 6120 wants for
    /// results nobody asked for, and so are answers from anyone but the one asked: other
    /// servers answer too, and must not answer for their neighbours.
    pub fn complete(&self, answer: Element) {
        let (Some(id), Some(from)) = (
            answer.get_attr("id"),
            answer.get_attr("from").and_then(|f| Jid::new(f).ok()),
        ) else {
            return;
        };
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.get(id).is_some_and(|w| w.asked == from) {
            if let Some(waiter) = waiting.remove(id) {
                let _ = waiter.answer.send(answer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: &str, from: &str) -> Element {
        Element::new("iq", rempart_xep::ns::CLIENT)
            .attr("type", "result")
            .attr("id", id)
            .attr("from", from)
    }

    #[test]
    fn only_the_one_asked_answers() {
        let queries = PendingQueries::default();
        let asked = FullJid::new("bob@b.test/phone").expect("full jid");
        let (id, mut received) = queries.register(&asked);
        queries.complete(answer(&id, "mallory@c.test/x"));
        assert!(received.try_recv().is_err());
        queries.complete(answer(&id, "bob@b.test/phone"));
        assert!(received.try_recv().is_ok());
    }
}
