//! Archive stores: time-ordered entries per user under increasing ids (message archives,
//! offline messages, pubsub items), with an index by conversation partner and counters.
//!
//! Writes go through the commit thread; reads go straight to the backend.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Bound;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::storage::archive_counts::{count_entry, usage_in, ArchiveUsage, CountChange};
use crate::storage::archive_ids;
use crate::storage::backend::{prefix_end, Backend, KeyValue, ScanDirection};
use crate::storage::commit::{CommitQueue, WriteTxn};
use crate::storage::keys::{self, Scope};
use crate::storage::stores::{blocking, decode, encode};
use crate::storage::trees::Tree;
use crate::storage::StorageError;

/// The trees holding an archive's data under its user prefix.
const ARCHIVE_TREES: [Tree; 4] = [
    Tree::Archive,
    Tree::ArchiveByPartner,
    Tree::ArchiveEntryTags,
    Tree::ArchiveCounts,
];

/// What an entry is indexed and counted under besides its user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryTags {
    /// The conversation partner (a bare JID): indexed for `with` queries and counted.
    pub partner: Option<String>,
    /// A group of entries counted together, e.g. offline messages from strangers.
    pub class: Option<String>,
}

impl EntryTags {
    /// Tags naming only a conversation partner.
    pub fn partner(partner: Option<&str>) -> Self {
        EntryTags {
            partner: partner.map(str::to_owned),
            class: None,
        }
    }

    /// True when there is nothing to index or count beyond the user's total.
    fn is_empty(&self) -> bool {
        self.partner.is_none() && self.class.is_none()
    }

    /// Refuses names that would make keys ambiguous before anything is queued.
    fn check(&self) -> Result<(), StorageError> {
        if let Some(partner) = &self.partner {
            keys::check_part(partner, "partner")?;
        }
        if let Some(class) = &self.class {
            keys::check_part(class, "class")?;
        }
        Ok(())
    }
}

/// What a user's archive holds, as a conditional append sees it just before its write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeldUsage {
    /// All of the user's entries.
    pub user: ArchiveUsage,
    /// The user's entries with the new entry's partner (nothing when it has none).
    pub partner: ArchiveUsage,
    /// The user's entries of the new entry's class (nothing when it has none).
    pub class: ArchiveUsage,
    /// The stored size of the new entry, in the unit of [`ArchiveUsage::bytes`].
    pub entry_bytes: u64,
}

/// Which entries of a user a query reads: an id range, optionally one conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveRange {
    /// Only entries with a greater id.
    pub after: Option<u64>,
    /// Only entries with a smaller id.
    pub before: Option<u64>,
    /// Only entries appended with this partner.
    pub with: Option<String>,
    /// Read from the newest entry down instead of from the oldest up.
    pub newest_first: bool,
    /// Most entries returned.
    pub limit: usize,
}

/// One page of a query, for RSM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivePage<T> {
    /// The entries, in the order read: newest first when the query asked for it.
    pub entries: Vec<(u64, T)>,
    /// True when no entry of the range is left after this page (RSM `complete`).
    pub complete: bool,
}

/// Time-ordered entries per user under increasing `u64` ids that sort by time.
pub struct ArchiveStore<T> {
    scope: Scope,
    backend: Arc<dyn Backend>,
    commits: Arc<CommitQueue>,
    value: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for ArchiveStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArchiveStore")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl<T> Clone for ArchiveStore<T> {
    fn clone(&self) -> Self {
        ArchiveStore {
            scope: self.scope.clone(),
            backend: Arc::clone(&self.backend),
            commits: Arc::clone(&self.commits),
            value: PhantomData,
        }
    }
}

impl<T> ArchiveStore<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// Built by [`crate::storage::Storage::archive`].
    pub(crate) fn new(scope: Scope, backend: Arc<dyn Backend>, commits: Arc<CommitQueue>) -> Self {
        ArchiveStore {
            scope,
            backend,
            commits,
            value: PhantomData,
        }
    }

    /// The smallest id an entry written at `time` can have, to turn a MAM `start`/`end` into
    /// an id range.
    pub fn id_for_time(time: OffsetDateTime) -> u64 {
        archive_ids::id_for_time(time)
    }

    /// The time an entry's id says it was written at (to the microsecond, later ids of a
    /// burst a little ahead); `None` for an id beyond the calendar.
    pub fn time_of_id(id: u64) -> Option<OffsetDateTime> {
        archive_ids::time_of_id(id)
    }

    /// Stores an entry durably, indexed under `partner` when given, and returns its id,
    /// greater than every id handed out before.
    pub async fn append(
        &self,
        user: &str,
        value: &T,
        partner: Option<&str>,
    ) -> Result<u64, StorageError> {
        let entry = self.new_entry(user, value, EntryTags::partner(partner))?;
        self.commits
            .submit(move |txn| write_entry(txn, entry))
            .await
    }

    /// Like [`ArchiveStore::append`], but writes nothing and returns `None` when the user
    /// already holds `max` entries (e.g. a full offline queue).
    pub async fn append_limited(
        &self,
        user: &str,
        value: &T,
        max: usize,
    ) -> Result<Option<u64>, StorageError> {
        let max = u64::try_from(max).unwrap_or(u64::MAX);
        self.append_if(user, value, EntryTags::default(), move |held| {
            held.user.entries < max
        })
        .await
    }

    /// Like [`ArchiveStore::append`] with `tags`, but writes nothing and returns `None`
    /// unless `admit` accepts what the user already holds (e.g. quotas). No other write runs
    /// between the check and the append; `admit` runs on the commit thread, so keep it short.
    pub async fn append_if(
        &self,
        user: &str,
        value: &T,
        tags: EntryTags,
        admit: impl FnOnce(&HeldUsage) -> bool + Send + 'static,
    ) -> Result<Option<u64>, StorageError> {
        let entry = self.new_entry(user, value, tags)?;
        self.commits
            .submit(move |txn| {
                let held = held_usage(txn, &entry)?;
                if !admit(&held) {
                    return Ok(None);
                }
                write_entry(txn, entry).map(Some)
            })
            .await
    }

    /// Up to `limit` entries in ascending id order, starting after `after` when given.
    pub async fn list(
        &self,
        user: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, T)>, StorageError> {
        let range = ArchiveRange {
            after,
            limit,
            ..ArchiveRange::default()
        };
        Ok(self.query(user, &range).await?.entries)
    }

    /// One page of the user's entries in `range`, and whether the range holds more.
    pub async fn query(
        &self,
        user: &str,
        range: &ArchiveRange,
    ) -> Result<ArchivePage<T>, StorageError> {
        let user_prefix = self.scope.user_prefix(user)?;
        let index_prefix = match &range.with {
            Some(partner) => Some(keys::partner_prefix(&user_prefix, partner)?),
            None => None,
        };
        let range = range.clone();
        let backend = Arc::clone(&self.backend);
        blocking(move || {
            let scan_prefix = index_prefix.as_deref().unwrap_or(&user_prefix);
            let tree = match index_prefix {
                Some(_) => Tree::ArchiveByPartner,
                None => Tree::Archive,
            };
            let mut rows = scan_ids(backend.as_ref(), tree, scan_prefix, &range)?;
            let complete = rows.len() <= range.limit;
            rows.truncate(range.limit);
            let mut entries = Vec::with_capacity(rows.len());
            for (key, value) in rows {
                let id = keys::archive_id_of(&key)?;
                if tree == Tree::Archive {
                    entries.push((id, decode(&value)?));
                    continue;
                }
                // An entry deleted since the index was read is skipped.
                let entry_key = keys::archive_entry_key(&user_prefix, id);
                if let Some(value) = backend.get(Tree::Archive, &entry_key)? {
                    entries.push((id, decode(&value)?));
                }
            }
            Ok(ArchivePage { entries, complete })
        })
        .await
    }

    /// The entry with this id, if the user holds it.
    pub async fn get(&self, user: &str, id: u64) -> Result<Option<T>, StorageError> {
        let key = keys::archive_entry_key(&self.scope.user_prefix(user)?, id);
        let backend = Arc::clone(&self.backend);
        blocking(move || {
            backend
                .get(Tree::Archive, &key)?
                .map(|value| decode(&value))
                .transpose()
        })
        .await
    }

    /// How many entries the user holds, read from its counter.
    pub async fn count(&self, user: &str) -> Result<usize, StorageError> {
        let usage = self.usage(user, None).await?;
        Ok(usize::try_from(usage.entries).unwrap_or(usize::MAX))
    }

    /// The entries and stored bytes the user holds, all of them or those with `partner`.
    pub async fn usage(
        &self,
        user: &str,
        partner: Option<&str>,
    ) -> Result<ArchiveUsage, StorageError> {
        let user_prefix = self.scope.user_prefix(user)?;
        let key = match partner {
            Some(partner) => keys::partner_counter_key(&user_prefix, partner)?,
            None => keys::user_counter_key(&user_prefix),
        };
        let backend = Arc::clone(&self.backend);
        blocking(move || ArchiveUsage::decode(backend.get(Tree::ArchiveCounts, &key)?.as_deref()))
            .await
    }

    /// Removes the given entries, their index keys and their counts in one batch; absent
    /// ids are ignored.
    pub async fn delete(&self, user: &str, ids: &[u64]) -> Result<(), StorageError> {
        let user_prefix = self.scope.user_prefix(user)?;
        let ids = ids.to_vec();
        self.commits
            .submit(move |txn| {
                for id in ids {
                    remove_entry(txn, &user_prefix, id)?;
                }
                Ok(())
            })
            .await
    }

    /// Removes all of the user's entries, index keys and counters in one batch.
    pub async fn delete_all(&self, user: &str) -> Result<(), StorageError> {
        let user_prefix = self.scope.user_prefix(user)?;
        self.commits
            .submit(move |txn| {
                for tree in ARCHIVE_TREES {
                    for key in txn.keys_with_prefix(tree, &user_prefix)? {
                        txn.delete(tree, key);
                    }
                }
                Ok(())
            })
            .await
    }

    /// Encodes an entry for the commit thread, checking its names first.
    fn new_entry(&self, user: &str, value: &T, tags: EntryTags) -> Result<NewEntry, StorageError> {
        tags.check()?;
        Ok(NewEntry {
            user_prefix: self.scope.user_prefix(user)?,
            value: encode(value)?,
            tags,
        })
    }
}

/// An encoded entry on its way to the commit thread.
struct NewEntry {
    user_prefix: Vec<u8>,
    value: Vec<u8>,
    tags: EntryTags,
}

impl NewEntry {
    /// The stored size the counters add up.
    fn bytes(&self) -> u64 {
        stored_bytes(&self.value)
    }
}

/// The stored size of an entry's value, in the unit the counters use.
fn stored_bytes(value: &[u8]) -> u64 {
    u64::try_from(value.len()).unwrap_or(u64::MAX)
}

/// The counter keys an entry with `tags` is counted under, the user's total first.
fn counter_keys(user_prefix: &[u8], tags: &EntryTags) -> Result<Vec<Vec<u8>>, StorageError> {
    let mut counters = vec![keys::user_counter_key(user_prefix)];
    if let Some(partner) = &tags.partner {
        counters.push(keys::partner_counter_key(user_prefix, partner)?);
    }
    if let Some(class) = &tags.class {
        counters.push(keys::class_counter_key(user_prefix, class)?);
    }
    Ok(counters)
}

/// What the user holds under the counters `entry` would join.
fn held_usage(txn: &WriteTxn<'_>, entry: &NewEntry) -> Result<HeldUsage, StorageError> {
    let prefix = &entry.user_prefix;
    let partner = match &entry.tags.partner {
        Some(partner) => usage_in(txn, &keys::partner_counter_key(prefix, partner)?)?,
        None => ArchiveUsage::default(),
    };
    let class = match &entry.tags.class {
        Some(class) => usage_in(txn, &keys::class_counter_key(prefix, class)?)?,
        None => ArchiveUsage::default(),
    };
    Ok(HeldUsage {
        user: usage_in(txn, &keys::user_counter_key(prefix))?,
        partner,
        class,
        entry_bytes: entry.bytes(),
    })
}

/// Writes `entry` under a fresh id with its index key, tags and counts.
fn write_entry(txn: &mut WriteTxn<'_>, entry: NewEntry) -> Result<u64, StorageError> {
    let id = txn.next_archive_id()?;
    let bytes = entry.bytes();
    let key = keys::archive_entry_key(&entry.user_prefix, id);
    for counter in counter_keys(&entry.user_prefix, &entry.tags)? {
        count_entry(txn, counter, bytes, CountChange::Added)?;
    }
    if let Some(partner) = &entry.tags.partner {
        let index_key =
            keys::archive_entry_key(&keys::partner_prefix(&entry.user_prefix, partner)?, id);
        txn.put(Tree::ArchiveByPartner, index_key, Vec::new());
    }
    if !entry.tags.is_empty() {
        txn.put(Tree::ArchiveEntryTags, key.clone(), encode(&entry.tags)?);
    }
    txn.put(Tree::Archive, key, entry.value);
    Ok(id)
}

/// Deletes one entry with its index key, tags and counts, if it exists.
fn remove_entry(txn: &mut WriteTxn<'_>, user_prefix: &[u8], id: u64) -> Result<(), StorageError> {
    let key = keys::archive_entry_key(user_prefix, id);
    let Some(value) = txn.get(Tree::Archive, &key)? else {
        return Ok(());
    };
    let tags: EntryTags = match txn.get(Tree::ArchiveEntryTags, &key)? {
        Some(stored) => decode(&stored)?,
        None => EntryTags::default(),
    };
    for counter in counter_keys(user_prefix, &tags)? {
        count_entry(txn, counter, stored_bytes(&value), CountChange::Removed)?;
    }
    if let Some(partner) = &tags.partner {
        let index_key = keys::archive_entry_key(&keys::partner_prefix(user_prefix, partner)?, id);
        txn.delete(Tree::ArchiveByPartner, index_key);
    }
    if !tags.is_empty() {
        txn.delete(Tree::ArchiveEntryTags, key.clone());
    }
    txn.delete(Tree::Archive, key);
    Ok(())
}

/// Reads up to `range.limit + 1` keys of `tree` under `prefix` (entries or index keys, both
/// ending in the id) within the range's ids, in the range's direction; the extra one tells
/// whether more exist.
fn scan_ids(
    backend: &dyn Backend,
    tree: Tree,
    prefix: &[u8],
    range: &ArchiveRange,
) -> Result<Vec<KeyValue>, StorageError> {
    let start = match range.after {
        Some(after) => Bound::Excluded(keys::archive_entry_key(prefix, after)),
        None => Bound::Included(prefix.to_vec()),
    };
    let end = match range.before {
        Some(before) => Bound::Excluded(keys::archive_entry_key(prefix, before)),
        None => prefix_end(prefix),
    };
    let direction = if range.newest_first {
        ScanDirection::Descending
    } else {
        ScanDirection::Ascending
    };
    backend.scan_range(
        tree,
        start.as_ref().map(Vec::as_slice),
        end.as_ref().map(Vec::as_slice),
        direction,
        Some(range.limit.saturating_add(1)),
    )
}
