//! The key-value and map stores modules use, each scoped to (host, module); archives are in
//! `archive.rs`.
//!
//! Values are JSON (serde_json). Reads run the blocking backend work in
//! `tokio::task::spawn_blocking`; writes go through the commit thread. Callers never block the
//! runtime.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::storage::backend::{Backend, WriteOp};
use crate::storage::commit::CommitQueue;
use crate::storage::keys::{self, Scope};
use crate::storage::trees::Tree;
use crate::storage::StorageError;

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
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(value).map_err(StorageError::codec)
}

/// Decodes a stored value.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StorageError> {
    serde_json::from_slice(bytes).map_err(StorageError::codec)
}

/// Applies `batch` through the commit thread, returning once it is durable.
async fn write(commits: &CommitQueue, batch: Vec<WriteOp>) -> Result<(), StorageError> {
    commits
        .submit(move |txn| {
            for op in batch {
                match op {
                    WriteOp::Put { tree, key, value } => txn.put(tree, key, value),
                    WriteOp::Delete { tree, key } => txn.delete(tree, key),
                }
            }
            Ok(())
        })
        .await
}

/// One value per user (or per host, with user `""`), e.g. a vCard or a roster version.
pub struct KvStore<T> {
    scope: Scope,
    backend: Arc<dyn Backend>,
    commits: Arc<CommitQueue>,
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
            commits: Arc::clone(&self.commits),
            value: PhantomData,
        }
    }
}

impl<T> KvStore<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// Built by [`crate::storage::Storage::kv`].
    pub(crate) fn new(scope: Scope, backend: Arc<dyn Backend>, commits: Arc<CommitQueue>) -> Self {
        KvStore {
            scope,
            backend,
            commits,
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
        write(
            &self.commits,
            vec![WriteOp::Put {
                tree: Tree::Kv,
                key,
                value,
            }],
        )
        .await
    }

    /// Removes the user's value; removing an absent value is not an error.
    pub async fn delete(&self, user: &str) -> Result<(), StorageError> {
        let key = self.scope.user_prefix(user)?;
        write(
            &self.commits,
            vec![WriteOp::Delete {
                tree: Tree::Kv,
                key,
            }],
        )
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
    commits: Arc<CommitQueue>,
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
            commits: Arc::clone(&self.commits),
            value: PhantomData,
        }
    }
}

impl<T> MapStore<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// Built by [`crate::storage::Storage::map`].
    pub(crate) fn new(scope: Scope, backend: Arc<dyn Backend>, commits: Arc<CommitQueue>) -> Self {
        MapStore {
            scope,
            backend,
            commits,
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
        write(&self.commits, batch).await
    }

    /// Removes one of the user's values; removing an absent value is not an error.
    pub async fn delete(&self, user: &str, key: &str) -> Result<(), StorageError> {
        let batch = self.batch(user, [(key, None)])?;
        write(&self.commits, batch).await
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
        self.commits
            .submit(move |txn| {
                for key in txn.keys_with_prefix(Tree::Map, &prefix)? {
                    txn.delete(Tree::Map, key);
                }
                Ok(())
            })
            .await
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
        write(&self.commits, batch).await
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
}
