//! The sled backend: one `sled::Tree` per [`Tree`], a multi-tree transaction per batch,
//! flushed before returning.
//!
//! sled reads outside a transaction can see a transaction half applied, and sled transactions
//! cannot scan, so a read-write lock makes each batch visible all at once: readers share it,
//! a batch takes it exclusively while it is applied in memory (not while it is flushed).

use std::convert::Infallible;
use std::fs::File;
use std::io;
use std::ops::Bound;
use std::path::Path;
use std::sync::{mpsc, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use fs2::FileExt;

use sled::transaction::{TransactionError, Transactional};

use crate::storage::backend::{is_empty_range, Backend, KeyValue, ScanDirection, WriteOp};
use crate::storage::trees::Tree;
use crate::storage::StorageError;

/// A sled database directory holding every tree.
pub(crate) struct SledBackend {
    db: sled::Db,
    /// The sled trees, indexed by [`Tree::index`].
    trees: Vec<sled::Tree>,
    /// Shared by reads, held exclusively while a batch is applied.
    visibility: RwLock<()>,
}

impl SledBackend {
    /// Opens or creates the database directory at `path` and its trees.
    pub(crate) fn open(path: &Path) -> Result<Self, StorageError> {
        wait_for_lock(path)?;
        let db = sled::open(path).map_err(StorageError::backend)?;
        let trees = Tree::ALL
            .iter()
            .map(|tree| db.open_tree(tree.name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(StorageError::backend)?;
        Ok(SledBackend {
            db,
            trees,
            visibility: RwLock::new(()),
        })
    }

    /// Keeps batches from being applied while a read runs. The lock guards no data, so a
    /// poisoned lock is still usable.
    fn read_lock(&self) -> RwLockReadGuard<'_, ()> {
        self.visibility
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// How long opening waits for an earlier handle to release the store: ample for the
/// background threads of a handle just dropped, short enough to report a store that another
/// process holds.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Waits until no earlier handle holds sled's lock on the store at `path`.
///
/// sled only tries its lock once, and a dropped handle's background threads release it a
/// little later, so an immediate reopen could fail. A blocking lock on the same file wakes
/// exactly when it is released; it is taken on a thread of its own so that a store held by
/// another process is reported after [`LOCK_WAIT`] instead of waiting forever.
fn wait_for_lock(path: &Path) -> Result<(), StorageError> {
    let file = match File::options().read(true).write(true).open(path.join("db")) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    let (locked_tx, locked_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("sled-lock-wait".into())
        .spawn(move || {
            let locked = file.lock_exclusive();
            // Closing the file releases the lock before sled takes it.
            drop(file);
            let _ = locked_tx.send(locked);
        })?;
    match locked_rx.recv_timeout(LOCK_WAIT) {
        Ok(locked) => Ok(locked?),
        Err(_) => Err(StorageError::Backend(format!(
            "the sled store {} is held by another process",
            path.display()
        ))),
    }
}

impl Backend for SledBackend {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let _visibility = self.read_lock();
        let value = self.trees[tree.index()]
            .get(key)
            .map_err(StorageError::backend)?;
        Ok(value.map(|value| value.to_vec()))
    }

    fn scan_range(
        &self,
        tree: Tree,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        direction: ScanDirection,
        limit: Option<usize>,
    ) -> Result<Vec<KeyValue>, StorageError> {
        if is_empty_range(start, end) {
            return Ok(Vec::new());
        }
        let limit = limit.unwrap_or(usize::MAX);
        let copy = |entry: sled::Result<(sled::IVec, sled::IVec)>| {
            entry
                .map(|(key, value)| (key.to_vec(), value.to_vec()))
                .map_err(StorageError::backend)
        };
        let _visibility = self.read_lock();
        let range = self.trees[tree.index()].range::<&[u8], _>((start, end));
        match direction {
            ScanDirection::Ascending => range.take(limit).map(copy).collect(),
            ScanDirection::Descending => range.rev().take(limit).map(copy).collect(),
        }
    }

    fn apply(&self, batch: &[WriteOp]) -> Result<(), StorageError> {
        let visibility = self
            .visibility
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let result = self.trees.as_slice().transaction(|views| {
            for op in batch {
                match op {
                    WriteOp::Put { tree, key, value } => {
                        views[tree.index()].insert(key.as_slice(), value.as_slice())?;
                    }
                    WriteOp::Delete { tree, key } => {
                        views[tree.index()].remove(key.as_slice())?;
                    }
                }
            }
            Ok::<(), sled::transaction::ConflictableTransactionError<Infallible>>(())
        });
        drop(visibility);
        match result {
            Ok(()) => {}
            Err(TransactionError::Storage(error)) => return Err(StorageError::backend(error)),
            Err(TransactionError::Abort(never)) => match never {},
        }
        self.db.flush().map_err(StorageError::backend)?;
        Ok(())
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.db.flush().map_err(StorageError::backend)?;
        Ok(())
    }
}
