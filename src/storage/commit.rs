//! The commit thread (group commit): every write of the typed stores goes through it.
//!
//! Writers queue a job and wait for its answer. The thread takes what is queued (up to
//! [`MAX_BATCH_WRITES`] writes, or until the queue is empty), runs each job against the writes
//! gathered so far, applies them all in one backend transaction and only then answers every
//! writer. Jobs run one after another on this thread, so a check-then-write job (a quota) needs
//! no lock, and no lock is held across a commit. While one commit runs, the next batch queues.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::storage::archive_ids::ArchiveIds;
use crate::storage::backend::{Backend, WriteOp};
use crate::storage::trees::Tree;
use crate::storage::StorageError;

/// Jobs waiting for the commit thread; a full queue makes writers wait (backpressure).
const QUEUE_CAPACITY: usize = 1024;

/// A batch stops taking jobs once it holds this many writes, so one commit stays short.
const MAX_BATCH_WRITES: usize = 4096;

/// Writes keyed by (tree index, key); `None` deletes the key.
type Overlay = BTreeMap<(usize, Vec<u8>), Option<Vec<u8>>>;

/// The writer side of the commit thread, shared by every typed store of a `Storage`.
pub(crate) struct CommitQueue {
    jobs: mpsc::Sender<Box<dyn Job>>,
    /// Only here to be joined on drop. Declared after `jobs`: fields drop in order, so the
    /// queue is closed (and the thread's loop ends) before the join.
    _thread: CommitThread,
}

impl CommitQueue {
    /// Starts the commit thread over `backend`, handing out archive ids from `ids`.
    pub(crate) fn start(backend: Arc<dyn Backend>, ids: ArchiveIds) -> Result<Self, StorageError> {
        let (jobs, queue) = mpsc::channel(QUEUE_CAPACITY);
        let handle = std::thread::Builder::new()
            .name("storage-commit".into())
            .spawn(move || run(backend.as_ref(), queue, ids))?;
        Ok(CommitQueue {
            jobs,
            _thread: CommitThread(Some(handle)),
        })
    }

    /// Runs `work` on the commit thread and returns its result once its writes are durable.
    ///
    /// `work` sees the writes of the jobs before it, committed or not. If it fails (or
    /// panics), its own writes are dropped and only its caller gets the error; if the commit
    /// fails, every job of the batch gets it. A caller that stops waiting does not cancel
    /// the job.
    pub(crate) async fn submit<R, F>(&self, work: F) -> Result<R, StorageError>
    where
        F: FnOnce(&mut WriteTxn<'_>) -> Result<R, StorageError> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Request {
            work: Some(work),
            outcome: None,
            reply,
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| StorageError::TaskFailed)?;
        answer.await.map_err(|_| StorageError::TaskFailed)?
    }
}

/// The commit thread's handle, joined when the last store lets go of the queue, so that the
/// backend is closed (and can be reopened) when the `Storage` is gone.
struct CommitThread(Option<JoinHandle<()>>);

impl Drop for CommitThread {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            // An error means the thread panicked; there is nothing left to clean up.
            let _ = handle.join();
        }
    }
}

/// The commit thread: one batch per loop, until every queue handle is dropped.
fn run(backend: &dyn Backend, mut queue: mpsc::Receiver<Box<dyn Job>>, mut ids: ArchiveIds) {
    while let Some(first) = queue.blocking_recv() {
        let mut writes = Overlay::new();
        let mut batch: Vec<Box<dyn Job>> = Vec::new();
        let mut next = Some(first);
        while let Some(mut job) = next.take() {
            let mut txn = WriteTxn {
                backend,
                batch: &writes,
                own: Overlay::new(),
                ids: &mut ids,
            };
            if job.run(&mut txn) {
                let own = txn.own;
                writes.extend(own);
            }
            batch.push(job);
            // Take what arrived meanwhile, without waiting for more: an idle server commits
            // each write at once, a busy one gathers what queued during the last commit.
            if writes.len() < MAX_BATCH_WRITES {
                next = queue.try_recv().ok();
            }
        }
        let committed = commit(backend, writes, &mut ids);
        for job in batch {
            job.answer(committed.as_ref().map(|_| ()));
        }
    }
}

/// Applies the gathered writes and the highest archive id in one transaction.
fn commit(
    backend: &dyn Backend,
    writes: Overlay,
    ids: &mut ArchiveIds,
) -> Result<(), StorageError> {
    let mut ops: Vec<WriteOp> = writes
        .into_iter()
        .map(|((tree, key), value)| {
            let tree = Tree::ALL[tree];
            match value {
                Some(value) => WriteOp::Put { tree, key, value },
                None => WriteOp::Delete { tree, key },
            }
        })
        .collect();
    ops.extend(ids.record());
    if ops.is_empty() {
        return Ok(());
    }
    backend.apply(&ops)
}

/// What a job sees while it runs on the commit thread: the backend with the writes gathered
/// so far laid over it, and its own writes on top.
pub(crate) struct WriteTxn<'a> {
    backend: &'a dyn Backend,
    batch: &'a Overlay,
    own: Overlay,
    ids: &'a mut ArchiveIds,
}

impl WriteTxn<'_> {
    /// Reads one key as it will be once the batch is committed.
    pub(crate) fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let slot = (tree.index(), key.to_vec());
        match self.own.get(&slot).or_else(|| self.batch.get(&slot)) {
            Some(pending) => Ok(pending.clone()),
            None => self.backend.get(tree, key),
        }
    }

    /// Every key under `prefix` as it will be once the batch is committed, in key order.
    pub(crate) fn keys_with_prefix(
        &self,
        tree: Tree,
        prefix: &[u8],
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let mut keys: BTreeSet<Vec<u8>> = self
            .backend
            .scan_prefix(tree, prefix, None, None)?
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        for layer in [self.batch, &self.own] {
            let pending = layer
                .range((tree.index(), prefix.to_vec())..)
                .take_while(|((index, key), _)| *index == tree.index() && key.starts_with(prefix));
            for ((_, key), value) in pending {
                match value {
                    Some(_) => keys.insert(key.clone()),
                    None => keys.remove(key),
                };
            }
        }
        Ok(keys.into_iter().collect())
    }

    /// Stores `value` under `key` when the batch commits.
    pub(crate) fn put(&mut self, tree: Tree, key: Vec<u8>, value: Vec<u8>) {
        self.own.insert((tree.index(), key), Some(value));
    }

    /// Removes `key` when the batch commits.
    pub(crate) fn delete(&mut self, tree: Tree, key: Vec<u8>) {
        self.own.insert((tree.index(), key), None);
    }

    /// A fresh archive id, above every id handed out before.
    pub(crate) fn next_archive_id(&mut self) -> Result<u64, StorageError> {
        self.ids.next()
    }
}

/// A queued job with its result type erased, so one queue carries every kind of write.
trait Job: Send {
    /// Runs the job's work; true when its writes join the batch.
    fn run(&mut self, txn: &mut WriteTxn<'_>) -> bool;

    /// Answers the writer once the batch is committed (or failed to be).
    fn answer(self: Box<Self>, committed: Result<(), &StorageError>);
}

/// A job and the channel its writer waits on.
struct Request<R, F> {
    work: Option<F>,
    outcome: Option<Result<R, StorageError>>,
    reply: oneshot::Sender<Result<R, StorageError>>,
}

impl<R, F> Job for Request<R, F>
where
    F: FnOnce(&mut WriteTxn<'_>) -> Result<R, StorageError> + Send,
    R: Send,
{
    fn run(&mut self, txn: &mut WriteTxn<'_>) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        // A panicking job must not take the commit thread, and every later write, with it.
        let outcome = catch_unwind(AssertUnwindSafe(|| work(txn)))
            .unwrap_or_else(|_| Err(StorageError::TaskFailed));
        let accepted = outcome.is_ok();
        self.outcome = Some(outcome);
        accepted
    }

    fn answer(self: Box<Self>, committed: Result<(), &StorageError>) {
        let outcome = match (self.outcome, committed) {
            (Some(Ok(_)), Err(error)) => Err(error.duplicate()),
            (Some(outcome), _) => outcome,
            (None, _) => Err(StorageError::TaskFailed),
        };
        // The writer may have stopped waiting; its write stands either way.
        let _ = self.reply.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Bound;

    use super::*;
    use crate::storage::backend::{KeyValue, ScanDirection};
    use crate::storage::memory::MemoryBackend;

    /// A backend whose every commit fails, as a full disk would.
    struct FullDisk;

    impl Backend for FullDisk {
        fn get(&self, _: Tree, _: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
            Ok(None)
        }

        fn scan_range(
            &self,
            _: Tree,
            _: Bound<&[u8]>,
            _: Bound<&[u8]>,
            _: ScanDirection,
            _: Option<usize>,
        ) -> Result<Vec<KeyValue>, StorageError> {
            Ok(Vec::new())
        }

        fn apply(&self, _: &[WriteOp]) -> Result<(), StorageError> {
            Err(StorageError::Backend("disk full".into()))
        }

        fn flush(&self) -> Result<(), StorageError> {
            Ok(())
        }
    }

    fn put_job(key: &'static [u8]) -> impl FnOnce(&mut WriteTxn<'_>) -> Result<(), StorageError> {
        move |txn| {
            txn.put(Tree::Kv, key.to_vec(), b"v".to_vec());
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_failing_commit_answers_every_writer_of_the_batch_with_its_error() {
        let queue = Arc::new(CommitQueue::start(Arc::new(FullDisk), ArchiveIds::after(0)).unwrap());
        let writers: Vec<_> = [&b"a"[..], b"b", b"c", b"d"]
            .into_iter()
            .map(|key| {
                let queue = Arc::clone(&queue);
                tokio::spawn(async move { queue.submit(put_job(key)).await })
            })
            .collect();
        for writer in writers {
            let answer = writer.await.unwrap();
            assert!(
                matches!(&answer, Err(StorageError::Backend(message)) if message == "disk full"),
                "{answer:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_failing_job_loses_its_own_writes_only() {
        let backend = Arc::new(MemoryBackend::new(&[]));
        let queue = CommitQueue::start(backend.clone(), ArchiveIds::after(0)).unwrap();
        let failed = queue.submit(|txn| {
            txn.put(Tree::Kv, b"refused".to_vec(), b"v".to_vec());
            Err::<(), _>(StorageError::Codec("bad value".into()))
        });
        let (failed, kept) = tokio::join!(failed, queue.submit(put_job(b"kept")));
        assert!(matches!(failed, Err(StorageError::Codec(_))), "{failed:?}");
        kept.unwrap();
        assert_eq!(backend.get(Tree::Kv, b"refused").unwrap(), None);
        assert_eq!(backend.get(Tree::Kv, b"kept").unwrap(), Some(b"v".to_vec()));
    }

    #[tokio::test]
    async fn a_job_reads_the_writes_of_the_jobs_before_it_committed_or_not() {
        let backend = Arc::new(MemoryBackend::new(&[WriteOp::Put {
            tree: Tree::Map,
            key: b"p/b".to_vec(),
            value: b"2".to_vec(),
        }]));
        let queue = CommitQueue::start(backend, ArchiveIds::after(0)).unwrap();
        let first = queue.submit(|txn| {
            txn.put(Tree::Map, b"p/a".to_vec(), b"1".to_vec());
            txn.delete(Tree::Map, b"p/b".to_vec());
            Ok(())
        });
        let second = queue.submit(|txn| {
            txn.put(Tree::Map, b"p/c".to_vec(), b"3".to_vec());
            Ok((
                txn.get(Tree::Map, b"p/a")?,
                txn.keys_with_prefix(Tree::Map, b"p/")?,
            ))
        });
        let (first, second) = tokio::join!(first, second);
        first.unwrap();
        let (read, keys) = second.unwrap();
        assert_eq!(read, Some(b"1".to_vec()));
        assert_eq!(keys, [b"p/a".to_vec(), b"p/c".to_vec()]);
    }
}
