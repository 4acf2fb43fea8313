//! Notification fan-out outside the publisher's session: a publish hands its notifications to
//! a worker and returns its result at once, however many subscribers there are. A fixed pool
//! of workers with bounded queues; one service always goes to the same worker, so its
//! notifications leave in the order they were published (an OMEMO device list must never be
//! overtaken by an older one).

use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::OnceLock;

use tokio::sync::mpsc;

/// One batch of notifications, ready to run.
pub type Delivery = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The workers that send notifications.
pub struct Fanout {
    workers: usize,
    queue: usize,
    senders: OnceLock<Vec<mpsc::Sender<Delivery>>>,
}

impl Fanout {
    /// A pool of `workers` tasks, each with a queue of `queue` deliveries; started on first
    /// use, inside the runtime.
    pub fn new(workers: usize, queue: usize) -> Fanout {
        Fanout {
            workers: workers.max(1),
            queue: queue.max(1),
            senders: OnceLock::new(),
        }
    }

    fn senders(&self) -> &[mpsc::Sender<Delivery>] {
        self.senders.get_or_init(|| {
            (0..self.workers)
                .map(|_| {
                    let (tx, mut rx) = mpsc::channel::<Delivery>(self.queue);
                    tokio::spawn(async move {
                        while let Some(delivery) = rx.recv().await {
                            delivery.await;
                        }
                    });
                    tx
                })
                .collect()
        })
    }

    /// Queues `delivery` on the worker of `key` (the service), waiting while its queue is
    /// full: a publisher outpacing its fan-out is slowed down, memory is not.
    pub async fn submit(&self, key: impl Hash, delivery: Delivery) {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let senders = self.senders();
        let index = usize::try_from(hasher.finish() % senders.len() as u64).unwrap_or_default();
        if let Some(sender) = senders.get(index) {
            // A closed worker means the server is shutting down: nothing left to notify.
            let _ = sender.send(delivery).await;
        }
    }
}
