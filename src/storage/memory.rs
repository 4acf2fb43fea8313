//! An in-memory backend: a sorted map per tree behind one lock, for tests.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use crate::storage::backend::{is_empty_range, Backend, KeyValue, ScanDirection, WriteOp};
use crate::storage::trees::Tree;
use crate::storage::StorageError;

/// The contents of every tree, indexed by [`Tree::index`].
type Trees = [BTreeMap<Vec<u8>, Vec<u8>>; Tree::ALL.len()];

/// Keeps everything in memory; nothing survives the process.
pub(crate) struct MemoryBackend {
    trees: Mutex<Trees>,
}

impl MemoryBackend {
    /// A backend holding the writes of `initial` and nothing else.
    pub(crate) fn new(initial: &[WriteOp]) -> Self {
        let mut trees = Trees::default();
        apply_to(&mut trees, initial);
        MemoryBackend {
            trees: Mutex::new(trees),
        }
    }

    /// Takes the lock, turning a poisoned lock into an error.
    fn lock(&self) -> Result<MutexGuard<'_, Trees>, StorageError> {
        self.trees
            .lock()
            .map_err(|_| StorageError::Backend("memory backend lock poisoned".into()))
    }
}

/// Applies `batch` in order; it cannot fail, so it is all-or-nothing under the lock.
fn apply_to(trees: &mut Trees, batch: &[WriteOp]) {
    for op in batch {
        match op {
            WriteOp::Put { tree, key, value } => {
                trees[tree.index()].insert(key.clone(), value.clone());
            }
            WriteOp::Delete { tree, key } => {
                trees[tree.index()].remove(key);
            }
        }
    }
}

impl Backend for MemoryBackend {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.lock()?[tree.index()].get(key).cloned())
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
        let trees = self.lock()?;
        let range = trees[tree.index()].range::<[u8], _>((start, end));
        let limit = limit.unwrap_or(usize::MAX);
        let copy = |(key, value): (&Vec<u8>, &Vec<u8>)| (key.clone(), value.clone());
        Ok(match direction {
            ScanDirection::Ascending => range.take(limit).map(copy).collect(),
            ScanDirection::Descending => range.rev().take(limit).map(copy).collect(),
        })
    }

    fn apply(&self, batch: &[WriteOp]) -> Result<(), StorageError> {
        let mut trees = self.lock()?;
        apply_to(&mut trees, batch);
        Ok(())
    }

    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }
}
