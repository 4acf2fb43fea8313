//! Persistent storage: typed stores scoped to (host, module) over a small key-value backend.
//!
//! Every key of a typed store is laid out as `host 0x00 module 0x00 user 0x00 [rest]`, where
//! `user` is empty for host-wide data. Names never contain `0x00`; a name that does is refused
//! with [`StorageError::InvalidKeyPart`] instead of producing an ambiguous key.
//!
//! Every write of the typed stores goes through one commit thread (`commit.rs`), which
//! gathers the writes of many callers into one durable transaction; reads go straight to the
//! backend.

mod archive;
mod archive_counts;
mod archive_ids;
pub mod backend;
mod commit;
mod keys;
mod memory;
mod redb_backend;
#[cfg(feature = "sled")]
mod sled_backend;
mod stores;
pub mod trees;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use archive::{ArchivePage, ArchiveRange, ArchiveStore, EntryTags, HeldUsage};
pub use archive_counts::ArchiveUsage;
pub use backend::{Backend, KeyValue, ScanDirection, WriteOp};
pub use stores::{KvStore, MapStore};
pub use trees::Tree;

use archive_ids::ArchiveIds;
use commit::CommitQueue;
use keys::Scope;
use memory::MemoryBackend;
use redb_backend::RedbBackend;
#[cfg(feature = "sled")]
use sled_backend::SledBackend;
use stores::blocking;

/// The schema version this build reads and writes; bump it together with a new migration step.
pub const SCHEMA_VERSION: u32 = 2;

/// The key of [`Tree::Meta`] holding the schema version, a big-endian `u32`.
const SCHEMA_VERSION_KEY: &[u8] = b"schema_version";

/// One migration step from version `n` to `n + 1`: it reads what it needs and returns the
/// writes, which are applied in one batch together with the new version number.
type Migration = fn(&dyn Backend) -> Result<Vec<WriteOp>, StorageError>;

/// Migration steps in order: `MIGRATIONS[0]` upgrades version 1 to 2, `MIGRATIONS[1]` 2 to 3, …
///
/// 1 → 2: archive counters, counted from the entries already stored.
const MIGRATIONS: &[Migration] = &[archive_counts::count_existing_entries];

/// Everything that can go wrong in storage, so callers can tell a full disk from bad data.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The backend (redb, sled) reported an error.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// A stored value or key could not be encoded or decoded.
    #[error("storage codec error: {0}")]
    Codec(String),
    /// The data was written by a newer Rempart; starting would risk corrupting it.
    #[error("storage schema version {found} is newer than the supported version {supported}")]
    SchemaTooNew {
        /// Version found on disk.
        found: u32,
        /// Newest version this build understands.
        supported: u32,
    },
    /// A host, module or user name contains a NUL byte, which would make keys ambiguous.
    #[error("the {0} name contains a NUL byte")]
    InvalidKeyPart(&'static str),
    /// Creating the data directory or another filesystem operation failed.
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The configured backend is behind a cargo feature this build was made without.
    #[error("this build has no {0} backend; rebuild with `--features {0}`")]
    NotBuiltIn(&'static str),
    /// The blocking task running a storage call panicked or was cancelled.
    #[error("storage task failed")]
    TaskFailed,
}

impl StorageError {
    /// Wraps any backend library error, keeping only its message.
    pub(crate) fn backend(error: impl fmt::Display) -> Self {
        StorageError::Backend(error.to_string())
    }

    /// Wraps an encoding or decoding error, keeping only its message.
    pub(crate) fn codec(error: impl fmt::Display) -> Self {
        StorageError::Codec(error.to_string())
    }

    /// The same failure for every writer of a batch whose commit failed (a commit only
    /// fails in the backend, and the error type cannot be cloned).
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            StorageError::Backend(message) => StorageError::Backend(message.clone()),
            other => StorageError::Backend(other.to_string()),
        }
    }
}

/// Which embedded backend to open, as chosen in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// redb, the default: stable file format and crash-safe commits.
    #[default]
    Redb,
    /// sled, kept from the design card; only in builds with the `sled` feature.
    Sled,
    /// In-memory, lost on exit: for tests.
    Memory,
}

/// The handle modules get their typed stores from; cheap to clone.
///
/// When the last handle and the last store made from it are dropped, the commit thread
/// finishes what is queued and the backend is closed, so the store can be opened again.
#[derive(Clone)]
pub struct Storage {
    backend: Arc<dyn Backend>,
    commits: Arc<CommitQueue>,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage").finish_non_exhaustive()
    }
}

impl Storage {
    /// Opens (or creates) the store under `data_dir` and brings its schema up to date.
    ///
    /// redb uses the file `data_dir/rempart.redb`, sled the directory `data_dir/sled`; the
    /// memory backend ignores `data_dir`. Blocks: call it before serving, not on a hot path.
    pub fn open(kind: BackendKind, data_dir: &Path) -> Result<Storage, StorageError> {
        let backend: Arc<dyn Backend> = match kind {
            BackendKind::Memory => return Ok(Storage::memory()),
            BackendKind::Redb => {
                std::fs::create_dir_all(data_dir)?;
                Arc::new(RedbBackend::open(&data_dir.join("rempart.redb"))?)
            }
            #[cfg(feature = "sled")]
            BackendKind::Sled => {
                std::fs::create_dir_all(data_dir)?;
                Arc::new(SledBackend::open(&data_dir.join("sled"))?)
            }
            #[cfg(not(feature = "sled"))]
            BackendKind::Sled => return Err(StorageError::NotBuiltIn("sled")),
        };
        prepare_schema(backend.as_ref())?;
        let ids = ArchiveIds::load(backend.as_ref())?;
        Storage::start(backend, ids)
    }

    /// A fresh, empty in-memory store, for tests.
    ///
    /// Panics if the operating system cannot start the commit thread, as `std::thread::spawn`.
    pub fn memory() -> Storage {
        let schema = schema_version_write(SCHEMA_VERSION);
        let backend = Arc::new(MemoryBackend::new(&[schema]));
        Storage::start(backend, ArchiveIds::after(0))
            .expect("the operating system starts the storage commit thread")
    }

    /// Starts the commit thread over an opened backend.
    fn start(backend: Arc<dyn Backend>, ids: ArchiveIds) -> Result<Storage, StorageError> {
        let commits = Arc::new(CommitQueue::start(Arc::clone(&backend), ids)?);
        Ok(Storage { backend, commits })
    }

    /// Raw backend access, for migrations, admin tools and the backend test suite.
    pub fn backend(&self) -> Arc<dyn Backend> {
        Arc::clone(&self.backend)
    }

    /// One value per user (or per host with user `""`) for `module` on `host`.
    pub fn kv<T>(&self, host: &str, module: &'static str) -> KvStore<T>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        KvStore::new(
            Scope::new(host, module),
            Arc::clone(&self.backend),
            Arc::clone(&self.commits),
        )
    }

    /// Many values per user, each under its own string key, for `module` on `host`.
    pub fn map<T>(&self, host: &str, module: &'static str) -> MapStore<T>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        MapStore::new(
            Scope::new(host, module),
            Arc::clone(&self.backend),
            Arc::clone(&self.commits),
        )
    }

    /// Time-ordered entries per user with increasing ids, for `module` on `host`.
    pub fn archive<T>(&self, host: &str, module: &'static str) -> ArchiveStore<T>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        ArchiveStore::new(
            Scope::new(host, module),
            Arc::clone(&self.backend),
            Arc::clone(&self.commits),
        )
    }

    /// Removes everything stored for `user` on `host`, in every tree and module, in one batch.
    pub async fn delete_user(&self, host: &str, user: &str) -> Result<(), StorageError> {
        let host_prefix = keys::host_prefix(host)?;
        keys::check_part(user, "user")?;
        let user = user.to_owned();
        let backend = Arc::clone(&self.backend);
        let user_prefixes = blocking(move || {
            let mut prefixes = Vec::new();
            for tree in Tree::ALL.into_iter().filter(|tree| *tree != Tree::Meta) {
                for prefix in user_prefixes(backend.as_ref(), tree, &host_prefix, &user)? {
                    prefixes.push((tree, prefix));
                }
            }
            Ok(prefixes)
        })
        .await?;
        self.commits
            .submit(move |txn| {
                for (tree, prefix) in user_prefixes {
                    for key in txn.keys_with_prefix(tree, &prefix)? {
                        txn.delete(tree, key);
                    }
                }
                Ok(())
            })
            .await
    }

    /// Waits until every write queued before it is durable, then flushes anything the
    /// backend buffers, for a clean shutdown.
    pub async fn flush(&self) -> Result<(), StorageError> {
        self.commits.submit(|_| Ok(())).await?;
        let backend = Arc::clone(&self.backend);
        blocking(move || backend.flush()).await
    }
}

/// The prefix of `user` in each module of the host under `host_prefix` that has keys in
/// `tree`, visiting each module once instead of reading the whole host.
fn user_prefixes(
    backend: &dyn Backend,
    tree: Tree,
    host_prefix: &[u8],
    user: &str,
) -> Result<Vec<Vec<u8>>, StorageError> {
    let mut prefixes = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    while let Some((key, _)) = backend
        .scan_prefix(tree, host_prefix, after.as_deref(), Some(1))?
        .into_iter()
        .next()
    {
        let module_prefix = keys::module_prefix_of(&key, host_prefix.len())?;
        let mut user_prefix = module_prefix.clone();
        keys::push_part(&mut user_prefix, user, "user")?;
        prefixes.push(user_prefix);
        after = Some(keys::past_module(module_prefix));
    }
    Ok(prefixes)
}

/// Writes the schema version on a new store, refuses a newer one and migrates an older one.
fn prepare_schema(backend: &dyn Backend) -> Result<(), StorageError> {
    let found = match backend.get(Tree::Meta, SCHEMA_VERSION_KEY)? {
        None => return backend.apply(&[schema_version_write(SCHEMA_VERSION)]),
        Some(bytes) => decode_schema_version(&bytes)?,
    };
    if found > SCHEMA_VERSION {
        return Err(StorageError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    migrate(backend, found)
}

/// Runs the migration steps from `found` up to [`SCHEMA_VERSION`], each in its own batch.
fn migrate(backend: &dyn Backend, found: u32) -> Result<(), StorageError> {
    if found == 0 {
        return Err(StorageError::Codec(
            "schema version 0 does not exist".into(),
        ));
    }
    for from in found..SCHEMA_VERSION {
        let step = usize::try_from(from - 1)
            .ok()
            .and_then(|index| MIGRATIONS.get(index))
            .ok_or_else(|| StorageError::Codec(format!("no migration from version {from}")))?;
        let mut batch = step(backend)?;
        batch.push(schema_version_write(from + 1));
        backend.apply(&batch)?;
    }
    Ok(())
}

/// The write that records `version` as the schema version.
fn schema_version_write(version: u32) -> WriteOp {
    WriteOp::Put {
        tree: Tree::Meta,
        key: SCHEMA_VERSION_KEY.to_vec(),
        value: version.to_be_bytes().to_vec(),
    }
}

/// Reads a stored schema version, refusing anything but four bytes.
fn decode_schema_version(bytes: &[u8]) -> Result<u32, StorageError> {
    let bytes: [u8; 4] = bytes
        .try_into()
        .map_err(|_| StorageError::Codec("schema version is not four bytes".into()))?;
    Ok(u32::from_be_bytes(bytes))
}
