//! The push services each account registered (XEP-0357 §5), stored durably: one entry per
//! (service JID, node), holding the `<enable/>` command as the client sent it.

use jid::{BareJid, Jid};
use rempart_xep::element::Element;
use rempart_xep::push::{PushCommand, PushEnable};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::router::Router;
use crate::storage::{MapStore, StorageError};

/// Store name of push registrations.
const STORE: &str = "push";

/// One registration as stored: the `<enable/>` element, publish-options included.
#[derive(Debug, Serialize, Deserialize)]
struct StoredRegistration {
    enable: String,
}

/// Where notifications go: a push service and the node its app server provisioned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The XMPP push service.
    pub service: Jid,
    /// The node on that service.
    pub node: String,
}

impl Target {
    /// The target of a registration.
    pub fn of(enable: &PushEnable) -> Target {
        Target {
            service: enable.jid.clone(),
            node: enable.node.clone(),
        }
    }

    /// The storage key: the service's length first, so that no (service, node) pair can
    /// spell another's key.
    fn key(&self) -> String {
        let service = self.service.to_string();
        format!("{}:{service}{}", service.len(), self.node)
    }
}

/// Whether an `<enable/>` was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enabled {
    /// Stored (new, or replacing the publish-options of the same service and node).
    Stored,
    /// Refused: the account already has as many registrations as allowed.
    TooMany,
}

/// The registrations of one account.
pub struct AccountRegistrations {
    store: MapStore<StoredRegistration>,
    user: String,
}

impl AccountRegistrations {
    /// The registrations of a local account.
    pub fn of(router: &Router, account: &BareJid) -> AccountRegistrations {
        AccountRegistrations {
            store: router.storage.map(account.domain().as_str(), STORE),
            user: account.node().map(|n| n.to_string()).unwrap_or_default(),
        }
    }

    /// Every registration; an unreadable entry is skipped (and logged), not fatal.
    pub async fn all(&self) -> Result<Vec<PushEnable>, StorageError> {
        let stored = self.store.all(&self.user).await?;
        Ok(stored
            .into_iter()
            .filter_map(|(key, entry)| {
                let enable = read(&entry);
                if enable.is_none() {
                    warn!(key, "unreadable push registration skipped");
                }
                enable
            })
            .collect())
    }

    /// The registration of one target, if it is still enabled.
    pub async fn get(&self, target: &Target) -> Result<Option<PushEnable>, StorageError> {
        let entry = self.store.get(&self.user, &target.key()).await?;
        Ok(entry.as_ref().and_then(read))
    }

    /// Stores a registration; a known (service, node) gets the new publish-options
    /// (XEP-0357 §5), a new one counts against `max`.
    pub async fn enable(&self, enable: &PushEnable, max: usize) -> Result<Enabled, StorageError> {
        let key = Target::of(enable).key();
        let existing = self.store.all(&self.user).await?;
        if existing.len() >= max && !existing.iter().any(|(k, _)| *k == key) {
            return Ok(Enabled::TooMany);
        }
        let entry = StoredRegistration {
            enable: PushCommand::Enable(enable.clone()).to_element().to_xml(),
        };
        self.store.set(&self.user, &key, &entry).await?;
        Ok(Enabled::Stored)
    }

    /// Removes the service's registration for `node`, or all of them without a node
    /// (XEP-0357 §6); returns the targets removed.
    pub async fn disable(
        &self,
        service: &Jid,
        node: Option<&str>,
    ) -> Result<Vec<Target>, StorageError> {
        let removed: Vec<Target> = self
            .all()
            .await?
            .iter()
            .map(Target::of)
            .filter(|target| {
                target.service == *service && node.is_none_or(|node| target.node == node)
            })
            .collect();
        let changes = removed.iter().map(|target| (target.key(), None)).collect();
        self.store.apply(&self.user, changes).await?;
        Ok(removed)
    }
}

/// The registration in a stored entry.
fn read(entry: &StoredRegistration) -> Option<PushEnable> {
    let element = Element::parse(&entry.enable).ok()?;
    match PushCommand::parse(&element) {
        Ok(PushCommand::Enable(enable)) => Some(enable),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(service: &str, node: &str) -> Target {
        Target {
            service: Jid::new(service).expect("jid"),
            node: node.to_owned(),
        }
    }

    #[test]
    fn keys_of_different_targets_differ_even_when_their_texts_join_alike() {
        let a = target("push.example/a", "b c");
        let b = target("push.example/a b", "c");
        assert_ne!(a.key(), b.key());
    }

    #[test]
    fn a_stored_entry_reads_back_as_the_registration() {
        let enable = PushEnable {
            jid: Jid::new("push.example").expect("jid"),
            node: "n1".to_owned(),
            publish_options: None,
        };
        let entry = StoredRegistration {
            enable: PushCommand::Enable(enable.clone()).to_element().to_xml(),
        };
        assert_eq!(read(&entry), Some(enable));
        let broken = StoredRegistration {
            enable: "<enable".to_owned(),
        };
        assert_eq!(read(&broken), None);
    }
}
