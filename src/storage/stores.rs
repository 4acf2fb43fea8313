//! The typed stores modules use: key-value, map and archive, each scoped to (host, module).
//!
//! Values are JSON (serde_json). Every call runs the blocking backend work in
//! `tokio::task::spawn_blocking`, so callers never block the runtime.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::storage::backend::{Backend, WriteOp};
use crate::storage::keys::{self, Scope};
use crate::storage::trees::Tree;
use crate::storage::StorageError;

/// The key of [`Tree::Meta`] holding the highest archive id ever written, a big-endian `u64`,
/// so ids keep increasing across restarts even if the clock goes back.
const ARCHIVE_LAST_ID_KEY: &[u8] = b"archive_last_id";

/// Runs blocking storage work off the async runtime.
pub(crate) async fn blocking<R, F>(work: F) -> Result<R, StorageError>
where
    F: FnOnce() -> Result<R, StorageError> + Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| StorageError::TaskFailed)?
}

/// Encodes a stored value.
fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(value).map_err(StorageError::codec)
}

/// Decodes a stored value.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StorageError> {
    serde_json::from_slice(bytes).map_err(StorageError::codec)
}

/// Deletes every key under `prefix` in `tree` in one batch.
fn delete_prefix(backend: &dyn Backend, tree: Tree, prefix: &[u8]) -> Result<(), StorageError> {
    let batch: Vec<WriteOp> = backend
        .scan_prefix(tree, prefix, None, None)?
        .into_iter()
        .map(|(key, _)| WriteOp::Delete { tree, key })
        .collect();
    backend.apply(&batch)
}

/// One value per user (or per host, with user `""`), e.g. a vCard or a roster version.
pub struct KvStore<T> {
    scope: Scope,
    backend: Arc<dyn Backend>,
    value: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for KvStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvStore")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl<T> Clone for KvStore<T> {
    fn clone(&self) -> Self {
        KvStore {
            scope: self.scope.clone(),
            backend: Arc::clone(&self.backend),
            value: PhantomData,
        }
    }
}

impl<T> KvStore<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// Built by [`crate::storage::Storage::kv`].
    pub(crate) fn new(scope: Scope, backend: Arc<dyn Backend>) -> Self {
        KvStore {
            scope,
            backend,
            value: PhantomData,
        }
    }

    /// Reads the user's value, if any.
    pub async fn get(&self, user: &str) -> Result<Option<T>, StorageError> {
        let key = self.scope.user_prefix(user)?;
        let backend = Arc::clone(&self.backend);
        blocking(move || {
            backend
                .get(Tree::Kv, &key)?
                .map(|bytes| decode(&bytes))
                .transpose()
        })
        .await
    }

    /// Stores the user's value durably, replacing any previous one.
    pub async fn set(&self, user: &str, value: &T) -> Result<(), StorageError> {
        let key = self.scope.user_prefix(user)?;
        let value = encode(value)?;
        let backend = Arc::clone(&self.backend);
        blocking(move || {
            backend.apply(&[WriteOp::Put {
                tree: Tree::Kv,
                key,
                value,
            }])
        })
        .await
    }

    /// Removes the user's value; removing an absent value is not an error.
    pub async fn delete(&self, user: &str) -> Result<(), StorageError> {
        let key = self.scope.user_prefix(user)?;
        let backend = Arc::clone(&self.backend);
        blocking(move || {
            backend.apply(&[WriteOp::Delete {
                tree: Tree::Kv,
                key,
            }])
        })
        .await
    }

    /// The users holding a value in this store, sorted.
    pub async fn users(&self) -> Result<Vec<String>, StorageError> {
        let prefix = self.scope.prefix()?;
        let backend = Arc::clone(&self.backend);
        blocking(move || {
            backend
                .scan_prefix(Tree::Kv, &prefix, None, None)?
                .iter()
                .map(|(key, _)| keys::name_after(key, &prefix))
                .collect()
        })
        .await
    }
}

/// Many values per user, each under a string key, e.g. roster items or private XML.
pub struct MapStore<T> {
    scope: Scope,
    backend: Arc<dyn Backend>,
    value: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for MapStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapStore")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl<T> Clone for MapStore<T> {
    fn clone(&self) -> Self {
        MapStore {
            scope: self.scope.clone(),
            backend: Arc::clone(&self.backend),
            value: PhantomData,
        }
    }
}

impl<T> MapStore<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// Built by [`crate::storage::Storage::map`].
    pub(crate) fn new(scope: Scope, backend: Arc<dyn Backend>) -> Self {
        MapStore {
            scope,
            backend,
            value: PhantomData,
        }
    }

    /// The full key of `key` for `user`.
    fn entry_key(&self, user: &str, key: &str) -> Result<Vec<u8>, StorageError> {
        let mut entry_key = self.scope.user_prefix(user)?;
        entry_key.extend_from_slice(key.as_bytes());
        Ok(entry_key)
    }

    /// Reads one of the user's values.
    pub async fn get(&self, user: &str, key: &str) -> Result<Option<T>, StorageError> {
        let key = self.entry_key(user, key)?;
        let backend = Arc::clone(&self.backend);
        blocking(move || {
            backend
                .get(Tree::Map, &key)?
                .map(|bytes| decode(&bytes))
                .transpose()
        })
        .await
    }

    /// Stores one of the user's values durably, replacing any previous one.
    pub async fn set(&self, user: &str, key: &str, value: &T) -> Result<(), StorageError> {
        let batch = self.batch(user, [(key, Some(value))])?;
        self.write(batch).await
    }

    /// Removes one of the user's values; removing an absent value is not an error.
    pub async fn delete(&self, user: &str, key: &str) -> Result<(), StorageError> {
        let batch = self.batch(user, [(key, None)])?;
        self.write(batch).await
    }

    /// All of the user's values, sorted by key.
    pub async fn all(&self, user: &str) -> Result<Vec<(String, T)>, StorageError> {
        self.all_with_prefix(user, "").await
    }

    /// The user's values whose key starts with `key_prefix`, sorted by key (full keys).
    pub async fn all_with_prefix(
        &self,
        user: &str,
        key_prefix: &str,
    ) -> Result<Vec<(String, T)>, StorageError> {
        let user_prefix = self.scope.user_prefix(user)?;
        let mut prefix = user_prefix.clone();
        prefix.extend_from_slice(key_prefix.as_bytes());
        let backend = Arc::clone(&self.backend);
        blocking(move || {
            backend
                .scan_prefix(Tree::Map, &prefix, None, None)?
                .into_iter()
                .map(|(key, value)| {
                    let name = key
                        .strip_prefix(user_prefix.as_slice())
                        .ok_or_else(|| StorageError::Codec("key outside its prefix".into()))?;
                    let name = String::from_utf8(name.to_vec()).map_err(StorageError::codec)?;
                    Ok((name, decode(&value)?))
                })
                .collect()
        })
        .await
    }

    /// Removes all of the user's values in one batch.
    pub async fn delete_all(&self, user: &str) -> Result<(), StorageError> {
        let prefix = self.scope.user_prefix(user)?;
        let backend = Arc::clone(&self.backend);
        blocking(move || delete_prefix(backend.as_ref(), Tree::Map, &prefix)).await
    }

    /// Every (user, key, value) of the store, for the rare reads across all users (e.g. the
    /// sessions saved at shutdown, read once at start).
    pub async fn everything(&self) -> Result<Vec<(String, String, T)>, StorageError> {
        let prefix = self.scope.prefix()?;
        let backend = Arc::clone(&self.backend);
        blocking(move || {
            backend
                .scan_prefix(Tree::Map, &prefix, None, None)?
                .into_iter()
                .map(|(key, value)| {
                    let rest = key
                        .strip_prefix(prefix.as_slice())
                        .ok_or_else(|| StorageError::Codec("key outside its prefix".into()))?;
                    let (user, entry) = keys::split_name(rest)?;
                    Ok((user, entry, decode(&value)?))
                })
                .collect()
        })
        .await
    }

    /// Applies several changes atomically: `Some` stores the value, `None` removes the key.
    pub async fn apply(
        &self,
        user: &str,
        changes: Vec<(String, Option<T>)>,
    ) -> Result<(), StorageError> {
        let batch = self.batch(
            user,
            changes
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_ref())),
        )?;
        self.write(batch).await
    }

    /// The writes for `changes` to the user's values: `Some` stores, `None` removes.
    fn batch<'a>(
        &self,
        user: &str,
        changes: impl IntoIterator<Item = (&'a str, Option<&'a T>)>,
    ) -> Result<Vec<WriteOp>, StorageError>
    where
        T: 'a,
    {
        changes
            .into_iter()
            .map(|(key, value)| {
                let key = self.entry_key(user, key)?;
                Ok(match value {
                    Some(value) => WriteOp::Put {
                        tree: Tree::Map,
                        key,
                        value: encode(value)?,
                    },
                    None => WriteOp::Delete {
                        tree: Tree::Map,
                        key,
                    },
                })
            })
            .collect()
    }

    /// Applies `batch` off the runtime.
    async fn write(&self, batch: Vec<WriteOp>) -> Result<(), StorageError> {
        let backend = Arc::clone(&self.backend);
        blocking(move || backend.apply(&batch)).await
    }
}

/// Hands out archive ids and serialises archive appends, shared by all archives of a `Storage`.
///
/// Holding the lock across "count, then write" makes [`ArchiveStore::append_limited`]
/// race-free, and writing ids in lock order keeps the persisted highest id exact. The price is
/// that archive appends of one server are written one at a time.
pub(crate) struct ArchiveLog {
    last_id: Mutex<u64>,
}

impl ArchiveLog {
    /// A log whose next id is above `last_id`.
    pub(crate) fn new(last_id: u64) -> Self {
        ArchiveLog {
            last_id: Mutex::new(last_id),
        }
    }

    /// A log continuing after the highest id the backend has recorded.
    pub(crate) fn load(backend: &dyn Backend) -> Result<Self, StorageError> {
        let last_id = match backend.get(Tree::Meta, ARCHIVE_LAST_ID_KEY)? {
            None => 0,
            Some(bytes) => decode_id(&bytes)?,
        };
        Ok(ArchiveLog::new(last_id))
    }

    /// Appends `value` under `prefix` with a fresh id.
    fn append(
        &self,
        backend: &dyn Backend,
        prefix: &[u8],
        value: Vec<u8>,
    ) -> Result<u64, StorageError> {
        let mut last_id = self.lock();
        write_entry(&mut last_id, backend, prefix, value)
    }

    /// Appends like [`ArchiveLog::append`] unless `prefix` already holds `max` entries; the
    /// count and the write happen under one lock.
    fn append_limited(
        &self,
        backend: &dyn Backend,
        prefix: &[u8],
        value: Vec<u8>,
        max: usize,
    ) -> Result<Option<u64>, StorageError> {
        let mut last_id = self.lock();
        let held = backend.scan_prefix(Tree::Archive, prefix, None, Some(max))?;
        if held.len() >= max {
            return Ok(None);
        }
        write_entry(&mut last_id, backend, prefix, value).map(Some)
    }

    /// Appends like [`ArchiveLog::append`] when `admit` accepts the entries `prefix` already
    /// holds (as raw values); reading them and the write happen under one lock.
    fn append_if(
        &self,
        backend: &dyn Backend,
        prefix: &[u8],
        value: Vec<u8>,
        admit: impl FnOnce(Vec<Vec<u8>>) -> Result<bool, StorageError>,
    ) -> Result<Option<u64>, StorageError> {
        let mut last_id = self.lock();
        let held = backend.scan_prefix(Tree::Archive, prefix, None, None)?;
        if !admit(held.into_iter().map(|(_, value)| value).collect())? {
            return Ok(None);
        }
        write_entry(&mut last_id, backend, prefix, value).map(Some)
    }

    /// Takes the append lock. The guarded id only changes after a successful write, so a
    /// poisoned lock still holds a correct value.
    fn lock(&self) -> MutexGuard<'_, u64> {
        self.last_id.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes `value` under `prefix` with the id after `last_id` (at least the current time in
/// microseconds), records that id as the highest, and advances `last_id` once it is durable.
fn write_entry(
    last_id: &mut u64,
    backend: &dyn Backend,
    prefix: &[u8],
    value: Vec<u8>,
) -> Result<u64, StorageError> {
    let next = last_id
        .checked_add(1)
        .ok_or_else(|| StorageError::Backend("archive ids exhausted".into()))?;
    let id = next.max(now_unix_micros());
    let mut key = prefix.to_vec();
    key.extend_from_slice(&id.to_be_bytes());
    backend.apply(&[
        WriteOp::Put {
            tree: Tree::Archive,
            key,
            value,
        },
        WriteOp::Put {
            tree: Tree::Meta,
            key: ARCHIVE_LAST_ID_KEY.to_vec(),
            value: id.to_be_bytes().to_vec(),
        },
    ])?;
    *last_id = id;
    Ok(id)
}

/// Microseconds since the Unix epoch, the floor for new archive ids (0 if the clock is broken).
fn now_unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Reads a big-endian `u64` id.
fn decode_id(bytes: &[u8]) -> Result<u64, StorageError> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StorageError::Codec("archive id is not eight bytes".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

/// Time-ordered entries per user under increasing `u64` ids, e.g. message archives, offline
/// messages and pubsub items.
pub struct ArchiveStore<T> {
    scope: Scope,
    backend: Arc<dyn Backend>,
    log: Arc<ArchiveLog>,
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
            log: Arc::clone(&self.log),
            value: PhantomData,
        }
    }
}

impl<T> ArchiveStore<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// Built by [`crate::storage::Storage::archive`].
    pub(crate) fn new(scope: Scope, backend: Arc<dyn Backend>, log: Arc<ArchiveLog>) -> Self {
        ArchiveStore {
            scope,
            backend,
            log,
            value: PhantomData,
        }
    }

    /// Stores an entry durably and returns its id, greater than every id handed out before.
    pub async fn append(&self, user: &str, value: &T) -> Result<u64, StorageError> {
        let prefix = self.scope.user_prefix(user)?;
        let value = encode(value)?;
        let backend = Arc::clone(&self.backend);
        let log = Arc::clone(&self.log);
        blocking(move || log.append(backend.as_ref(), &prefix, value)).await
    }

    /// Like [`ArchiveStore::append`], but writes nothing and returns `None` when the user
    /// already holds `max` entries (e.g. a full offline queue).
    pub async fn append_limited(
        &self,
        user: &str,
        value: &T,
        max: usize,
    ) -> Result<Option<u64>, StorageError> {
        let prefix = self.scope.user_prefix(user)?;
        let value = encode(value)?;
        let backend = Arc::clone(&self.backend);
        let log = Arc::clone(&self.log);
        blocking(move || log.append_limited(backend.as_ref(), &prefix, value, max)).await
    }

    /// Like [`ArchiveStore::append`], but writes nothing and returns `None` unless `admit`
    /// accepts what the user already holds, read as `V` (a view of `T` that may skip fields,
    /// e.g. to check quotas without decoding whole payloads). No other append runs between
    /// the check and the write.
    pub async fn append_if<V>(
        &self,
        user: &str,
        value: &T,
        admit: impl FnOnce(Vec<V>) -> bool + Send + 'static,
    ) -> Result<Option<u64>, StorageError>
    where
        V: DeserializeOwned,
    {
        let prefix = self.scope.user_prefix(user)?;
        let value = encode(value)?;
        let backend = Arc::clone(&self.backend);
        let log = Arc::clone(&self.log);
        blocking(move || {
            log.append_if(backend.as_ref(), &prefix, value, |held| {
                let held = held
                    .iter()
                    .map(|bytes| decode(bytes))
                    .collect::<Result<Vec<V>, _>>()?;
                Ok(admit(held))
            })
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
        let prefix = self.scope.user_prefix(user)?;
        let after = after.map(|id| {
            let mut key = prefix.clone();
            key.extend_from_slice(&id.to_be_bytes());
            key
        });
        let backend = Arc::clone(&self.backend);
        blocking(move || {
            backend
                .scan_prefix(Tree::Archive, &prefix, after.as_deref(), Some(limit))?
                .into_iter()
                .map(|(key, value)| {
                    let id = key
                        .strip_prefix(prefix.as_slice())
                        .ok_or_else(|| StorageError::Codec("key outside its prefix".into()))?;
                    Ok((decode_id(id)?, decode(&value)?))
                })
                .collect()
        })
        .await
    }

    /// How many entries the user holds.
    pub async fn count(&self, user: &str) -> Result<usize, StorageError> {
        let prefix = self.scope.user_prefix(user)?;
        let backend = Arc::clone(&self.backend);
        blocking(move || {
            Ok(backend
                .scan_prefix(Tree::Archive, &prefix, None, None)?
                .len())
        })
        .await
    }

    /// Removes the given entries in one batch; absent ids are ignored.
    pub async fn delete(&self, user: &str, ids: &[u64]) -> Result<(), StorageError> {
        let prefix = self.scope.user_prefix(user)?;
        let batch: Vec<WriteOp> = ids
            .iter()
            .map(|id| {
                let mut key = prefix.clone();
                key.extend_from_slice(&id.to_be_bytes());
                WriteOp::Delete {
                    tree: Tree::Archive,
                    key,
                }
            })
            .collect();
        let backend = Arc::clone(&self.backend);
        blocking(move || backend.apply(&batch)).await
    }

    /// Removes all of the user's entries in one batch.
    pub async fn delete_all(&self, user: &str) -> Result<(), StorageError> {
        let prefix = self.scope.user_prefix(user)?;
        let backend = Arc::clone(&self.backend);
        blocking(move || delete_prefix(backend.as_ref(), Tree::Archive, &prefix)).await
    }
}
