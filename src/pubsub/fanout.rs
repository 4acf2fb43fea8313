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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn submit_returns_before_the_delivery_has_run() {
        let fanout = Fanout::new(1, 4);
        let (release, gate) = oneshot::channel::<()>();
        let (done_tx, done) = oneshot::channel::<()>();
        fanout
            .submit(
                "alice",
                Box::pin(async move {
                    let _ = gate.await;
                    let _ = done_tx.send(());
                }),
            )
            .await;
        // Reaching this line with the delivery still held at its gate is the point.
        release.send(()).expect("the delivery is waiting");
        tokio::time::timeout(std::time::Duration::from_secs(20), done)
            .await
            .expect("the delivery runs")
            .expect("the delivery completes");
    }

    #[tokio::test]
    async fn deliveries_of_one_service_run_in_submission_order() {
        let fanout = Fanout::new(4, 2);
        let (tx, mut rx) = mpsc::channel(100);
        for n in 0..50 {
            let tx = tx.clone();
            fanout
                .submit(
                    "alice",
                    Box::pin(async move {
                        tokio::task::yield_now().await;
                        let _ = tx.send(n).await;
                    }),
                )
                .await;
        }
        drop(tx);
        let mut seen = Vec::new();
        while let Some(n) = rx.recv().await {
            seen.push(n);
        }
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
    }
}
