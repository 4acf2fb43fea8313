//! The small key-value contract every storage backend implements.

use std::ops::Bound;

use crate::storage::trees::Tree;
use crate::storage::StorageError;

/// One key and its value, as prefix scans return them.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// One write of an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Insert or replace a value.
    Put {
        /// Target tree.
        tree: Tree,
        /// Key bytes.
        key: Vec<u8>,
        /// Value bytes.
        value: Vec<u8>,
    },
    /// Remove a key (absent keys are not an error).
    Delete {
        /// Target tree.
        tree: Tree,
        /// Key bytes.
        key: Vec<u8>,
    },
}

/// An ordered key-value store with atomic, durable batches.
///
/// Calls block: async callers go through the typed stores, which use `spawn_blocking`.
pub trait Backend: Send + Sync + 'static {
    /// Reads one key.
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// Keys starting with `prefix`, in ascending key order, strictly after `after` when given,
    /// at most `limit` entries when given.
    fn scan_prefix(
        &self,
        tree: Tree,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: Option<usize>,
    ) -> Result<Vec<KeyValue>, StorageError>;

    /// Applies all writes atomically; when this returns `Ok` they survive a crash.
    fn apply(&self, batch: &[WriteOp]) -> Result<(), StorageError>;

    /// Flushes anything buffered (called on shutdown).
    fn flush(&self) -> Result<(), StorageError>;
}

/// Where a prefix scan starts, so every backend reads `after` the same way: just after `after`
/// when it sorts at or past `prefix`, otherwise at `prefix` itself.
pub(crate) fn scan_start<'a>(prefix: &'a [u8], after: Option<&'a [u8]>) -> Bound<&'a [u8]> {
    match after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    }
}
