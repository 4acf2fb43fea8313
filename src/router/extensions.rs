//! Per-session state of modules (carbons on, push registration…), typed and kept apart from
//! the core's own session state, so that a module adds state without touching the core.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

type Values = HashMap<TypeId, Arc<dyn Any + Send + Sync>>;

/// One value per type, shared by every handle on the session.
#[derive(Debug, Default)]
pub struct SessionExtensions {
    values: RwLock<Values>,
}

impl SessionExtensions {
    /// The value of type `T`, if a module set one.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let values = self.values.read().unwrap_or_else(|e| e.into_inner());
        values
            .get(&TypeId::of::<T>())
            .cloned()
            .and_then(|value| value.downcast::<T>().ok())
    }

    /// Sets (or replaces) the value of type `T`.
    pub fn set<T: Any + Send + Sync>(&self, value: T) {
        let mut values = self.values.write().unwrap_or_else(|e| e.into_inner());
        values.insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// Removes the value of type `T`.
    pub fn remove<T: Any + Send + Sync>(&self) {
        let mut values = self.values.write().unwrap_or_else(|e| e.into_inner());
        values.remove(&TypeId::of::<T>());
    }
}

/// What the session actor tells the rest of the server about its client: whether a
/// connection is attached (XEP-0198 keeps detached sessions) and whether the client said
/// its user is looking (XEP-0352).
#[derive(Debug)]
pub struct SessionStatus {
    attached: AtomicBool,
    inactive: AtomicBool,
    syncs_from_archive: AtomicBool,
}

impl Default for SessionStatus {
    fn default() -> Self {
        SessionStatus {
            attached: AtomicBool::new(true),
            inactive: AtomicBool::new(false),
            syncs_from_archive: AtomicBool::new(false),
        }
    }
}

impl SessionStatus {
    /// Whether a connection is attached.
    pub fn is_attached(&self) -> bool {
        self.attached.load(Ordering::Relaxed)
    }

    /// Whether the client is active: attached and not CSI-inactive. Push notifications go to
    /// accounts with no active session.
    pub fn is_active(&self) -> bool {
        self.is_attached() && !self.inactive.load(Ordering::Relaxed)
    }

    /// Records whether a connection is attached.
    pub fn set_attached(&self, attached: bool) {
        self.attached.store(attached, Ordering::Relaxed);
    }

    /// Whether the client reads the account's message archive (XEP-0313): what it missed is
    /// there, so an ended session need not store its archived stanzas offline again.
    pub fn syncs_from_archive(&self) -> bool {
        self.syncs_from_archive.load(Ordering::Relaxed)
    }

    /// Records that the client queried the account's message archive.
    pub fn set_syncs_from_archive(&self) {
        self.syncs_from_archive.store(true, Ordering::Relaxed);
    }

    /// Records the client's XEP-0352 state.
    pub fn set_inactive(&self, inactive: bool) {
        self.inactive.store(inactive, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Carbons(bool);

    #[test]
    fn a_value_is_found_by_its_type_until_removed() {
        let extensions = SessionExtensions::default();
        assert!(extensions.get::<Carbons>().is_none());
        extensions.set(Carbons(true));
        assert_eq!(extensions.get::<Carbons>().as_deref(), Some(&Carbons(true)));
        extensions.remove::<Carbons>();
        assert!(extensions.get::<Carbons>().is_none());
    }
}
