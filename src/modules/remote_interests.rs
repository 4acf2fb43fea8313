//! XEP-0163 §4.3 for contacts on other servers: which PEP nodes each of their available
//! resources wants (`+notify`, learnt through the caps module), taken from the presence they
//! send a local account they are subscribed to, and kept in memory once per account, so that
//! PEP notifies them and sends them last items as it does local contacts' sessions.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jid::{BareJid, FullJid, Jid};
use rempart_xep::element::Element;
use tracing::{debug, warn};

use crate::modules::caps::{AnnouncedCaps, Announcer, CapsModule};
use crate::modules::roster::RosterModule;
use crate::modules::{priority, Event, EventHook, Flow, HookPoint, Implements, Module, Registrar};
use crate::router::Router;

/// Remote resources remembered per account: room for every device of every contact, while a
/// peer announcing endless resources cannot grow memory without bound.
const MAX_PER_ACCOUNT: usize = 1000;

/// An available remote resource.
struct Resource {
    /// The `ver` it announced last: an answer about an older one is stale.
    ver: String,
    /// The nodes it asked notifications for; empty until known.
    interests: Arc<HashSet<String>>,
}

/// The available remote resources of each local account's contacts.
#[derive(Default)]
struct Known {
    by_owner: HashMap<BareJid, HashMap<FullJid, Resource>>,
}

impl Known {
    /// Whether `contact` is tracked with `ver` already (its subscription was checked then,
    /// and losing it would have removed the entry).
    fn is_current(&self, owner: &BareJid, contact: &FullJid, ver: &str) -> bool {
        self.by_owner
            .get(owner)
            .and_then(|resources| resources.get(contact))
            .is_some_and(|resource| resource.ver == ver)
    }

    /// Notes that `contact` announced `ver`; true when its interests must be learnt.
    fn remember(&mut self, owner: &BareJid, contact: &FullJid, ver: &str) -> bool {
        let resources = self.by_owner.entry(owner.clone()).or_default();
        if let Some(resource) = resources.get_mut(contact) {
            if resource.ver == ver {
                return false;
            }
            resource.ver = ver.to_owned();
            return true;
        }
        if resources.len() >= MAX_PER_ACCOUNT {
            debug!("too many remote resources for one account; this one is not tracked");
            return false;
        }
        resources.insert(
            contact.clone(),
            Resource {
                ver: ver.to_owned(),
                interests: Arc::default(),
            },
        );
        true
    }

    /// Records the interests behind `ver` if `contact` still announces it; true when they
    /// are new and not empty, so last items are due.
    fn learn(
        &mut self,
        owner: &BareJid,
        contact: &FullJid,
        ver: &str,
        interests: Arc<HashSet<String>>,
    ) -> bool {
        let Some(resource) = self
            .by_owner
            .get_mut(owner)
            .and_then(|resources| resources.get_mut(contact))
            .filter(|resource| resource.ver == ver)
        else {
            return false;
        };
        let due = resource.interests != interests && !interests.is_empty();
        resource.interests = interests;
        due
    }

    /// Forgets the resources of `owner`'s contacts that `gone` matches.
    fn forget(&mut self, owner: &BareJid, gone: impl Fn(&FullJid) -> bool) {
        if let Some(resources) = self.by_owner.get_mut(owner) {
            resources.retain(|jid, _| !gone(jid));
            if resources.is_empty() {
                self.by_owner.remove(owner);
            }
        }
    }

    fn interested(&self, owner: &BareJid, node: &str) -> Vec<FullJid> {
        self.by_owner
            .get(owner)
            .into_iter()
            .flatten()
            .filter(|(_, resource)| resource.interests.contains(node))
            .map(|(jid, _)| jid.clone())
            .collect()
    }

    fn interests(&self, owner: &BareJid, contact: &FullJid) -> Option<Arc<HashSet<String>>> {
        self.by_owner
            .get(owner)?
            .get(contact)
            .map(|r| r.interests.clone())
    }
}

/// A contact's resource as one local account sees it, while its interests are learnt.
struct ContactResource {
    known: Arc<Mutex<Known>>,
    owner: BareJid,
    jid: FullJid,
    ver: String,
}

#[async_trait]
impl Announcer for ContactResource {
    fn jid(&self) -> &FullJid {
        &self.jid
    }

    fn asked_from(&self) -> &str {
        self.owner.domain().as_str()
    }

    async fn learned(&self, router: &Router, interests: Arc<HashSet<String>>) {
        let due = self.known.lock().unwrap_or_else(|e| e.into_inner()).learn(
            &self.owner,
            &self.jid,
            &self.ver,
            interests,
        );
        if due {
            router
                .run_hooks(Event::ContactInterestsKnown {
                    owner: &self.owner,
                    contact: &self.jid,
                })
                .await;
        }
    }
}

/// The tracker; also the typed handle PEP reads remote recipients from.
pub struct RemoteInterests {
    caps: Arc<CapsModule>,
    rosters: Arc<RosterModule>,
    known: Arc<Mutex<Known>>,
}

static IMPLEMENTS: &[Implements] = &[Implements {
    spec: "XEP-0163",
    version: "1.2.2",
    note: "+notify interests of contacts on other servers, learnt from their presence",
}];

impl Module for RemoteInterests {
    fn name(&self) -> &'static str {
        "remote_interests"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        registrar.hook(
            HookPoint::PresenceToAccount,
            priority::HANDLER,
            self.clone(),
        );
        registrar.hook(HookPoint::SubscriptionRevoked, priority::HANDLER, self);
    }
}

impl RemoteInterests {
    /// A tracker learning interests through `caps`, checking subscriptions in `rosters`.
    pub fn new(caps: Arc<CapsModule>, rosters: Arc<RosterModule>) -> Self {
        RemoteInterests {
            caps,
            rosters,
            known: Arc::default(),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The available resources of `owner`'s contacts on other servers that asked for `node`.
    pub fn interested(&self, owner: &BareJid, node: &str) -> Vec<FullJid> {
        self.known().interested(owner, node)
    }

    /// The nodes one of them asked for, while it is available.
    pub fn interests(&self, owner: &BareJid, contact: &FullJid) -> Option<Arc<HashSet<String>>> {
        self.known().interests(owner, contact)
    }

    async fn subscribed(&self, router: &Router, owner: &BareJid, contact: &BareJid) -> bool {
        match self.rosters.entry(router, owner, contact).await {
            Ok(entry) => entry.is_some_and(|e| e.subscription.has_from()),
            Err(error) => {
                warn!(%error, "roster read failed");
                false
            }
        }
    }

    /// Follows the presence a remote resource sends an account.
    async fn presence(&self, router: &Router, to: &Jid, presence: &Element) {
        // Contacts broadcast to the bare account, so each account learns once, whatever
        // its number of sessions.
        let Err(owner) = to.try_as_full() else {
            return;
        };
        let Some(contact) = presence.get_attr("from").and_then(|f| FullJid::new(f).ok()) else {
            return;
        };
        // Local sessions' interests live in the session table.
        if router.config.serves(contact.domain().as_str()) {
            return;
        }
        let caps = match presence.get_attr("type") {
            None => AnnouncedCaps::of(presence),
            Some("unavailable" | "error") => None,
            Some(_) => return,
        };
        let Some(caps) = caps else {
            self.known().forget(owner, |jid| *jid == contact);
            return;
        };
        // Most presences repeat a known ver (a status change): no roster read for those.
        if self.known().is_current(owner, &contact, &caps.ver) {
            return;
        }
        if !self.subscribed(router, owner, &contact.to_bare()).await {
            return;
        }
        if !self.known().remember(owner, &contact, &caps.ver) {
            return;
        }
        let resource = Arc::new(ContactResource {
            known: self.known.clone(),
            owner: owner.clone(),
            jid: contact,
            ver: caps.ver.clone(),
        });
        self.caps.announce(router, resource, caps).await;
    }
}

#[async_trait]
impl EventHook for RemoteInterests {
    async fn on_event(&self, router: &Router, event: &Event<'_>) -> Flow {
        match event {
            Event::PresenceToAccount { to, presence } => {
                self.presence(router, to, presence).await;
            }
            Event::SubscriptionRevoked { user, contact } => {
                self.known().forget(user, |jid| jid.to_bare() == **contact);
            }
            _ => {}
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> FullJid {
        FullJid::new(s).expect("full jid")
    }

    fn owner() -> BareJid {
        BareJid::new("alice@a.test").expect("bare jid")
    }

    fn wanting(node: &str) -> Arc<HashSet<String>> {
        Arc::new(HashSet::from([node.to_owned()]))
    }

    #[test]
    fn a_resource_is_learnt_once_per_ver() {
        let mut known = Known::default();
        let bob = jid("bob@b.test/phone");
        assert!(known.remember(&owner(), &bob, "v1"));
        assert!(!known.remember(&owner(), &bob, "v1"));
        assert!(known.learn(&owner(), &bob, "v1", wanting("devices")));
        assert!(!known.learn(&owner(), &bob, "v1", wanting("devices")));
        assert_eq!(known.interested(&owner(), "devices"), vec![bob.clone()]);
        assert!(known.remember(&owner(), &bob, "v2"));
    }

    #[test]
    fn an_answer_about_an_older_ver_is_ignored() {
        let mut known = Known::default();
        let bob = jid("bob@b.test/phone");
        known.remember(&owner(), &bob, "v1");
        known.remember(&owner(), &bob, "v2");
        assert!(!known.learn(&owner(), &bob, "v1", wanting("devices")));
        assert!(known.interested(&owner(), "devices").is_empty());
    }

    #[test]
    fn an_unavailable_resource_is_not_learnt_afterwards() {
        let mut known = Known::default();
        let bob = jid("bob@b.test/phone");
        known.remember(&owner(), &bob, "v1");
        known.forget(&owner(), |j| *j == bob);
        assert!(!known.learn(&owner(), &bob, "v1", wanting("devices")));
        assert!(known.interests(&owner(), &bob).is_none());
    }

    #[test]
    fn forgetting_a_contact_forgets_all_its_resources() {
        let mut known = Known::default();
        let contact = BareJid::new("bob@b.test").expect("bare jid");
        for resource in ["bob@b.test/phone", "bob@b.test/laptop", "carol@b.test/pc"] {
            known.remember(&owner(), &jid(resource), "v1");
            known.learn(&owner(), &jid(resource), "v1", wanting("devices"));
        }
        known.forget(&owner(), |j| j.to_bare() == contact);
        assert_eq!(
            known.interested(&owner(), "devices"),
            vec![jid("carol@b.test/pc")]
        );
    }

    #[test]
    fn an_account_remembers_a_bounded_number_of_resources() {
        let mut known = Known::default();
        for n in 0..MAX_PER_ACCOUNT {
            assert!(known.remember(&owner(), &jid(&format!("bob@b.test/{n}")), "v1"));
        }
        assert!(!known.remember(&owner(), &jid("bob@b.test/one-too-many"), "v1"));
    }
}
