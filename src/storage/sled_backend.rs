//! The sled backend: one `sled::Tree` per [`Tree`], a multi-tree transaction per batch,
//! flushed before returning.
//!
//! sled reads outside a transaction can see a transaction half applied, and sled transactions
//! cannot scan, so a read-write lock makes each batch visible all at once: readers share it,
//! a batch takes it exclusively while it is applied in memory (not while it is flushed).

use std::convert::Infallible;
use std::ops::Bound;
use std::path::Path;
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use sled::transaction::{TransactionError, Transactional};

use crate::storage::backend::{scan_start, Backend, KeyValue, WriteOp};
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

impl Backend for SledBackend {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let _visibility = self.read_lock();
        let value = self.trees[tree.index()]
            .get(key)
            .map_err(StorageError::backend)?;
        Ok(value.map(|value| value.to_vec()))
    }

    fn scan_prefix(
        &self,
        tree: Tree,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: Option<usize>,
    ) -> Result<Vec<KeyValue>, StorageError> {
        let range: (Bound<&[u8]>, Bound<&[u8]>) = (scan_start(prefix, after), Bound::Unbounded);
        let limit = limit.unwrap_or(usize::MAX);
        let mut entries = Vec::new();
        let _visibility = self.read_lock();
        for entry in self.trees[tree.index()].range::<&[u8], _>(range) {
            if entries.len() >= limit {
                break;
            }
            let (key, value) = entry.map_err(StorageError::backend)?;
            if !key.starts_with(prefix) {
                break;
            }
            entries.push((key.to_vec(), value.to_vec()));
        }
        Ok(entries)
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
