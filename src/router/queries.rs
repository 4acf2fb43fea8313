//! IQ requests the server itself sends (capability discovery), matched to their answers by id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rempart_xep::element::Element;
use tokio::sync::oneshot;

/// How long the server waits for a client to answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Outstanding server-originated requests.
#[derive(Default)]
pub struct PendingQueries {
    next: AtomicU64,
    waiting: Mutex<HashMap<String, oneshot::Sender<Element>>>,
}

impl PendingQueries {
    /// A fresh id and the receiver of its answer.
    pub fn register(&self) -> (String, oneshot::Receiver<Element>) {
        let id = format!("rempart-q{}", self.next.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), tx);
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
    /// results nobody asked for.
    pub fn complete(&self, answer: Element) {
        let Some(id) = answer.get_attr("id") else {
            return;
        };
        let waiter = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if let Some(waiter) = waiter {
            let _ = waiter.send(answer);
        }
    }
}
