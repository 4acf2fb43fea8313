//! Archive storage figures on redb in a temporary directory: appends per second with 1, 16
//! and 200 concurrent writers (each answered only once its entry is durable), and the latency
//! of a 50-entry page of a 100,000-entry archive, newest first and filtered by partner.
//!
//! Run with `cargo bench --bench archive`; it prints figures and asserts nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rempart::storage::{ArchiveRange, ArchiveStore, BackendKind, Storage};
use serde::{Deserialize, Serialize};
use tempfile::TempDir;

/// Entries in the archive the page latencies are measured on.
const ARCHIVE_SIZE: usize = 100_000;
/// Conversation partners the archive's entries are spread over.
const PARTNERS: usize = 20;
/// Entries per page, as a MAM client asks for.
const PAGE: usize = 50;
/// Pages read per latency figure.
const PAGES_READ: usize = 1_000;

/// A message as an archive holds it: about the size of a short chat message with its XML.
#[derive(Serialize, Deserialize)]
struct Archived {
    xml: String,
    stamp: i64,
}

fn message(n: usize) -> Archived {
    Archived {
        xml: format!(
            "<message xmlns='jabber:client' type='chat' id='m{n}' from='alice@example.org/phone' \
             to='bob@example.org'><body>message number {n}, about as long as a chat line</body>\
             <origin-id xmlns='urn:xmpp:sid:0' id='o{n}'/></message>"
        ),
        stamp: 1_700_000_000,
    }
}

fn partner(n: usize) -> String {
    format!("contact{}@example.net", n % PARTNERS)
}

/// `total` appends to one user's archive from `writers` tasks at once; returns the time taken
/// and every id handed out.
async fn append_all(
    store: &ArchiveStore<Archived>,
    writers: usize,
    total: usize,
) -> (Duration, Vec<u64>) {
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(writers);
    for writer in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in (writer..total).step_by(writers) {
                let id = store
                    .append("alice", &message(n), Some(&partner(n)))
                    .await
                    .expect("append");
                ids.push(id);
            }
            ids
        }));
    }
    let mut ids = Vec::with_capacity(total);
    for task in tasks {
        ids.extend(task.await.expect("writer task"));
    }
    (started.elapsed(), ids)
}

fn open_redb() -> (TempDir, Storage) {
    let dir = TempDir::new().expect("temp dir");
    let storage = Storage::open(BackendKind::Redb, dir.path()).expect("open redb");
    (dir, storage)
}

/// The p50 and p99 of `samples`.
fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    let at = |share: usize| samples[(samples.len() * share / 100).min(samples.len() - 1)];
    (at(50), at(99))
}

async fn appends_per_second() {
    for (writers, total) in [(1, 2_000), (16, 20_000), (200, 40_000)] {
        let (_dir, storage) = open_redb();
        let store = storage.archive::<Archived>("example.org", "mam");
        let (elapsed, ids) = append_all(&store, writers, total).await;
        assert_eq!(ids.len(), total);
        println!(
            "append, {writers:>3} writers: {:>8.0} appends/s ({total} durable appends in {elapsed:.2?})",
            total as f64 / elapsed.as_secs_f64()
        );
    }
}

async fn page_latencies() {
    let (_dir, storage) = open_redb();
    let store = storage.archive::<Archived>("example.org", "mam");
    let (elapsed, mut ids) = append_all(&store, 200, ARCHIVE_SIZE).await;
    ids.sort_unstable();
    println!("filled a {ARCHIVE_SIZE}-entry archive in {elapsed:.2?}");
    let ids = Arc::new(ids);
    for with in [None, Some(partner(7))] {
        let mut samples = Vec::with_capacity(PAGES_READ);
        for read in 0..PAGES_READ {
            // Pages end at ids spread over the whole archive, the first at its newest entry.
            let before = (read > 0).then(|| ids[(read * 7_919) % ids.len()]);
            let range = ArchiveRange {
                before,
                with: with.clone(),
                newest_first: true,
                limit: PAGE,
                ..ArchiveRange::default()
            };
            let started = Instant::now();
            let page = store.query("alice", &range).await.expect("query");
            samples.push(started.elapsed());
            assert!(page.entries.len() <= PAGE);
        }
        let (p50, p99) = percentiles(samples);
        let label = if with.is_some() {
            "with a partner"
        } else {
            "all partners"
        };
        println!("page of {PAGE}, newest first, {label:>14}: p50 {p50:.2?}, p99 {p99:.2?}");
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        appends_per_second().await;
        page_latencies().await;
    });
}
