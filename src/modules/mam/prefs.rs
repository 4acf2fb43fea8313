//! XEP-0441: an account's archiving preferences, stored per account and read for every
//! message it sends or receives.

use jid::{BareJid, Jid};
use rempart_xep::address::parse_address;
use rempart_xep::element::Element;
use rempart_xep::mam::MamNs;
use rempart_xep::mam_prefs::{ArchivePolicy, Prefs};
use rempart_xep::stanza::{Condition, StanzaError};
use serde::{Deserialize, Serialize};

use super::{user_of, MamModule, PREFS};
use crate::modules::roster::internal;
use crate::router::{IqResult, Router};
use crate::storage::{KvStore, StorageError};

/// Preferences as stored: the default policy's name and the two JID lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredPrefs {
    default: String,
    always: Vec<String>,
    never: Vec<String>,
}

impl StoredPrefs {
    fn of(prefs: &Prefs) -> StoredPrefs {
        let names = |jids: &[Jid]| jids.iter().map(Jid::to_string).collect();
        StoredPrefs {
            default: prefs.default.as_str().to_owned(),
            always: names(&prefs.always),
            never: names(&prefs.never),
        }
    }

    /// The preferences in `ns`; a default that no longer reads falls back to `fallback`.
    fn to_prefs(&self, ns: MamNs, fallback: ArchivePolicy) -> Prefs {
        let jids = |names: &[String]| {
            names
                .iter()
                .filter_map(|name| parse_address(name).ok())
                .collect()
        };
        Prefs {
            ns,
            default: ArchivePolicy::parse(&self.default).unwrap_or(fallback),
            always: jids(&self.always),
            never: jids(&self.never),
        }
    }
}

/// The preferences store of an account's host.
fn prefs_store(router: &Router, account: &BareJid) -> KvStore<StoredPrefs> {
    router.storage.kv(account.domain().as_str(), PREFS)
}

impl MamModule {
    /// The account's preferences in `ns`: as it set them, or the configured default with
    /// empty lists.
    pub(super) async fn prefs(
        &self,
        router: &Router,
        account: &BareJid,
        ns: MamNs,
    ) -> Result<Prefs, StorageError> {
        let fallback = ArchivePolicy::from(self.config.default_policy);
        let stored = prefs_store(router, account).get(user_of(account)).await?;
        Ok(match stored {
            Some(stored) => stored.to_prefs(ns, fallback),
            None => Prefs {
                ns,
                default: fallback,
                always: Vec::new(),
                never: Vec::new(),
            },
        })
    }

    /// Answers a preferences request with the current preferences.
    pub(super) async fn get_prefs(
        &self,
        router: &Router,
        account: &BareJid,
        ns: MamNs,
    ) -> IqResult {
        let prefs = self.prefs(router, account, ns).await.map_err(internal)?;
        Ok(Some(prefs.to_element()))
    }

    /// Stores new preferences, durably, and answers with them (XEP-0441 §3).
    pub(super) async fn set_prefs(
        &self,
        router: &Router,
        account: &BareJid,
        payload: &Element,
    ) -> IqResult {
        let prefs = Prefs::parse(payload).map_err(|error| {
            StanzaError::new(Condition::BadRequest).with_text(error.to_string())
        })?;
        prefs_store(router, account)
            .set(user_of(account), &StoredPrefs::of(&prefs))
            .await
            .map_err(internal)?;
        Ok(Some(prefs.to_element()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_preferences_read_back_in_the_namespace_asked_for() {
        let prefs = Prefs {
            ns: MamNs::V2,
            default: ArchivePolicy::Roster,
            always: vec![Jid::new("romeo@montague.lit").expect("jid")],
            never: vec![Jid::new("tybalt@capulet.lit/sword").expect("jid")],
        };
        let read = StoredPrefs::of(&prefs).to_prefs(MamNs::V1, ArchivePolicy::Always);
        assert_eq!(read.ns, MamNs::V1);
        assert_eq!(read.default, ArchivePolicy::Roster);
        assert_eq!(read.always, prefs.always);
        assert_eq!(read.never, prefs.never);
    }
}
