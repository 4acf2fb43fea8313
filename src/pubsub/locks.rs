//! Striped async locks that make each change of a node record one read-modify-write: two
//! requests racing on the same node (a subscribe and an owner's lock-down) are serialised,
//! so neither writes back a record the other has already changed.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use tokio::sync::{Mutex, MutexGuard};

/// How many locks the keys are spread over: a fixed number, so memory does not grow with
/// the number of nodes; unrelated nodes sharing a stripe only wait for each other briefly.
const STRIPES: usize = 64;

/// A fixed set of async mutexes, chosen by the hash of a key.
pub struct StripedLocks {
    stripes: Vec<Mutex<()>>,
}

impl Default for StripedLocks {
    fn default() -> Self {
        StripedLocks {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }
}

impl StripedLocks {
    /// Waits for the lock guarding `key`; it is held until the guard is dropped. An async
    /// mutex, so holding it across storage awaits is sound.
    pub async fn lock(&self, key: impl Hash) -> MutexGuard<'_, ()> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let index = usize::try_from(hasher.finish() % STRIPES as u64).unwrap_or_default();
        self.stripes[index].lock().await
    }
}
