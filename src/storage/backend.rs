//! The small key-value contract every storage backend implements.

use std::ops::Bound;

use crate::storage::trees::Tree;
use crate::storage::StorageError;

/// One key and its value, as scans return them.
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

/// The order a range scan visits its keys in, so archives can be paged from either end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanDirection {
    /// Smallest key first.
    Ascending,
    /// Largest key first.
    Descending,
}

/// An ordered key-value store with atomic, durable batches.
///
/// Calls block: async callers go through the typed stores, which run reads in
/// `spawn_blocking` and writes on the commit thread.
pub trait Backend: Send + Sync + 'static {
    /// Reads one key.
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// Keys between `start` and `end`, visited in `direction`, at most `limit` entries when
    /// given. An empty or inverted range returns nothing.
    fn scan_range(
        &self,
        tree: Tree,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        direction: ScanDirection,
        limit: Option<usize>,
    ) -> Result<Vec<KeyValue>, StorageError>;

    /// Applies all writes atomically; when this returns `Ok` they survive a crash.
    fn apply(&self, batch: &[WriteOp]) -> Result<(), StorageError>;

    /// Flushes anything buffered (called on shutdown).
    fn flush(&self) -> Result<(), StorageError>;

    /// Keys starting with `prefix`, in ascending key order, strictly after `after` when given,
    /// at most `limit` entries when given.
    fn scan_prefix(
        &self,
        tree: Tree,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: Option<usize>,
    ) -> Result<Vec<KeyValue>, StorageError> {
        let end = prefix_end(prefix);
        self.scan_range(
            tree,
            scan_start(prefix, after),
            end.as_ref().map(Vec::as_slice),
            ScanDirection::Ascending,
            limit,
        )
    }
}

/// Where a prefix scan starts, so every backend reads `after` the same way: just after `after`
/// when it sorts at or past `prefix`, otherwise at `prefix` itself.
fn scan_start<'a>(prefix: &'a [u8], after: Option<&'a [u8]>) -> Bound<&'a [u8]> {
    match after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    }
}

/// The first key past every key starting with `prefix`: the prefix with its last byte below
/// 0xFF incremented, or no end at all when there is no such byte.
pub(crate) fn prefix_end(prefix: &[u8]) -> Bound<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Bound::Excluded(end);
        }
    }
    Bound::Unbounded
}

/// True when no key lies between `start` and `end`, which ordered maps refuse to range over.
pub(crate) fn is_empty_range(start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    match (start, end) {
        (Bound::Included(start), Bound::Included(end)) => start > end,
        (Bound::Included(start), Bound::Excluded(end))
        | (Bound::Excluded(start), Bound::Included(end))
        | (Bound::Excluded(start), Bound::Excluded(end)) => start >= end,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"ab"), Bound::Excluded(b"ac".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xFF]), Bound::Excluded(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), Bound::Unbounded);
        assert_eq!(prefix_end(b""), Bound::Unbounded);
    }

    #[test]
    fn inverted_and_empty_ranges_are_empty() {
        let (a, b): (&[u8], &[u8]) = (b"a", b"b");
        assert!(is_empty_range(Bound::Included(b), Bound::Excluded(a)));
        assert!(is_empty_range(Bound::Excluded(a), Bound::Excluded(a)));
        assert!(!is_empty_range(Bound::Included(a), Bound::Included(a)));
        assert!(!is_empty_range(Bound::Excluded(a), Bound::Unbounded));
    }
}
