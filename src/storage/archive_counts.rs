//! Entry and byte totals of archives, kept in the same transaction as the entries they
//! count, so that quota checks and counts read one key instead of the archive.

use std::collections::BTreeMap;

use crate::storage::backend::{Backend, WriteOp};
use crate::storage::commit::WriteTxn;
use crate::storage::keys;
use crate::storage::trees::Tree;
use crate::storage::StorageError;

/// Archive entries a migration reads at once while counting them.
const MIGRATION_PAGE: usize = 10_000;

/// How many entries, and how many stored bytes, one archive counter holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveUsage {
    /// Entries counted.
    pub entries: u64,
    /// Their stored (encoded) size in bytes.
    pub bytes: u64,
}

impl ArchiveUsage {
    /// Reads a stored counter; an absent counter counts nothing.
    pub(crate) fn decode(stored: Option<&[u8]>) -> Result<Self, StorageError> {
        let Some(stored) = stored else {
            return Ok(ArchiveUsage::default());
        };
        let (entries, bytes) = stored
            .split_at_checked(8)
            .ok_or_else(|| StorageError::Codec("archive counter is not sixteen bytes".into()))?;
        Ok(ArchiveUsage {
            entries: keys::decode_id(entries)?,
            bytes: keys::decode_id(bytes)?,
        })
    }

    /// Two big-endian `u64`: entries, then bytes.
    fn encode(self) -> Vec<u8> {
        let mut stored = self.entries.to_be_bytes().to_vec();
        stored.extend_from_slice(&self.bytes.to_be_bytes());
        stored
    }
}

/// Whether an entry joins or leaves a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CountChange {
    /// The entry was appended.
    Added,
    /// The entry was deleted.
    Removed,
}

/// Reads the counter at `key` as the batch being gathered leaves it.
pub(crate) fn usage_in(txn: &WriteTxn<'_>, key: &[u8]) -> Result<ArchiveUsage, StorageError> {
    ArchiveUsage::decode(txn.get(Tree::ArchiveCounts, key)?.as_deref())
}

/// Counts one entry of `bytes` in or out of the counter at `key`; a counter back at zero is
/// removed, so counters exist only for what is stored.
pub(crate) fn count_entry(
    txn: &mut WriteTxn<'_>,
    key: Vec<u8>,
    bytes: u64,
    change: CountChange,
) -> Result<(), StorageError> {
    let held = usage_in(txn, &key)?;
    let updated = match change {
        CountChange::Added => ArchiveUsage {
            entries: held.entries.saturating_add(1),
            bytes: held.bytes.saturating_add(bytes),
        },
        CountChange::Removed => ArchiveUsage {
            entries: held.entries.saturating_sub(1),
            bytes: held.bytes.saturating_sub(bytes),
        },
    };
    if updated.entries == 0 {
        txn.delete(Tree::ArchiveCounts, key);
    } else {
        txn.put(Tree::ArchiveCounts, key, updated.encode());
    }
    Ok(())
}

/// Migration from schema 1: writes the per-user totals of the entries stored before counters
/// existed. Those entries carry no partner or class, so only the totals are counted.
pub(crate) fn count_existing_entries(backend: &dyn Backend) -> Result<Vec<WriteOp>, StorageError> {
    let mut totals: BTreeMap<Vec<u8>, ArchiveUsage> = BTreeMap::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page =
            backend.scan_prefix(Tree::Archive, b"", after.as_deref(), Some(MIGRATION_PAGE))?;
        let Some((last, _)) = page.last() else {
            break;
        };
        let last = last.clone();
        for (key, value) in page {
            let total = totals
                .entry(keys::archive_user_prefix_of(&key)?.to_vec())
                .or_default();
            total.entries += 1;
            total.bytes = total.bytes.saturating_add(value.len() as u64);
        }
        after = Some(last);
    }
    Ok(totals
        .into_iter()
        .map(|(user_prefix, usage)| WriteOp::Put {
            tree: Tree::ArchiveCounts,
            key: keys::user_counter_key(&user_prefix),
            value: usage.encode(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_round_trips_and_absent_counts_nothing() {
        let usage = ArchiveUsage {
            entries: 3,
            bytes: 1 << 40,
        };
        assert_eq!(
            ArchiveUsage::decode(Some(&usage.encode())).expect("decodes"),
            usage
        );
        assert_eq!(
            ArchiveUsage::decode(None).expect("decodes"),
            ArchiveUsage::default()
        );
        assert!(ArchiveUsage::decode(Some(b"short")).is_err());
    }
}
