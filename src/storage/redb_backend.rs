//! The default backend: redb, one table per [`Tree`], one durable write transaction per batch.

use std::ops::Bound;
use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, TableDefinition};

use crate::storage::backend::{is_empty_range, Backend, KeyValue, ScanDirection, WriteOp};
use crate::storage::trees::Tree;
use crate::storage::StorageError;

/// The redb table of `tree`, named by [`Tree::name`].
fn table(tree: Tree) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    TableDefinition::new(tree.name())
}

/// A redb database file holding every tree.
pub(crate) struct RedbBackend {
    db: Database,
}

impl RedbBackend {
    /// Opens or creates the database file at `path` and creates any missing table.
    pub(crate) fn open(path: &Path) -> Result<Self, StorageError> {
        let db = Database::create(path).map_err(StorageError::backend)?;
        let mut txn = db.begin_write().map_err(StorageError::backend)?;
        txn.set_durability(Durability::Immediate)
            .map_err(StorageError::backend)?;
        for tree in Tree::ALL {
            txn.open_table(table(tree)).map_err(StorageError::backend)?;
        }
        txn.commit().map_err(StorageError::backend)?;
        Ok(RedbBackend { db })
    }
}

impl Backend for RedbBackend {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let txn = self.db.begin_read().map_err(StorageError::backend)?;
        let table = txn.open_table(table(tree)).map_err(StorageError::backend)?;
        let value = table.get(key).map_err(StorageError::backend)?;
        Ok(value.map(|value| value.value().to_vec()))
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
        let txn = self.db.begin_read().map_err(StorageError::backend)?;
        let table = txn.open_table(table(tree)).map_err(StorageError::backend)?;
        let range = table
            .range::<&[u8]>((start, end))
            .map_err(StorageError::backend)?;
        let limit = limit.unwrap_or(usize::MAX);
        let entries: Box<dyn Iterator<Item = _>> = match direction {
            ScanDirection::Ascending => Box::new(range),
            ScanDirection::Descending => Box::new(range.rev()),
        };
        entries
            .take(limit)
            .map(|entry| {
                let (key, value) = entry.map_err(StorageError::backend)?;
                Ok((key.value().to_vec(), value.value().to_vec()))
            })
            .collect()
    }

    fn apply(&self, batch: &[WriteOp]) -> Result<(), StorageError> {
        let mut txn = self.db.begin_write().map_err(StorageError::backend)?;
        txn.set_durability(Durability::Immediate)
            .map_err(StorageError::backend)?;
        {
            let mut tables = Vec::with_capacity(Tree::ALL.len());
            for tree in Tree::ALL {
                tables.push(txn.open_table(table(tree)).map_err(StorageError::backend)?);
            }
            for op in batch {
                match op {
                    WriteOp::Put { tree, key, value } => {
                        tables[tree.index()]
                            .insert(key.as_slice(), value.as_slice())
                            .map_err(StorageError::backend)?;
                    }
                    WriteOp::Delete { tree, key } => {
                        tables[tree.index()]
                            .remove(key.as_slice())
                            .map_err(StorageError::backend)?;
                    }
                }
            }
        }
        txn.commit().map_err(StorageError::backend)
    }

    fn flush(&self) -> Result<(), StorageError> {
        // Every commit is already durable.
        Ok(())
    }
}
