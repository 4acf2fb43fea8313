//! XEP-0163 §4.3 for contacts on other servers: which PEP nodes each of their available
//! resources wants (`+notify`, learnt through the caps module), taken from the presence they
//! send a local account they are subscribed to, and kept in memory once per account, so that
//! PEP notifies them and sends them last items as it does local contacts' sessions.
//! What a remote server told us is forgotten when its last inbound stream ends, and each
//! remote domain and contact has its own share of an account's room.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jid::{BareJid, FullJid, Jid};
use rempart_xep::element::Element;
use tracing::{debug, warn};

use crate::modules::caps::{AnnouncedCaps, Announcer, CapsModule};
use crate::modules::roster::RosterModule;
use crate::modules::Module;
use crate::router::{priority, Event, EventHook, Flow, HookPoint, Implements, Registrar, Router};
use crate::s2s::S2sConfig;

/// How many remote resources one account remembers: room for every device of every
/// contact, while a peer announcing endless resources can neither grow memory without bound
/// nor take the places of other servers' or other contacts' resources.
#[derive(Debug, Clone, Copy)]
pub struct RemoteLimits {
    /// Per local account.
    pub per_account: usize,
    /// Per local account and remote domain.
    pub per_domain: usize,
    /// Per local account and remote contact.
    pub per_contact: usize,
}

impl RemoteLimits {
    /// The limits of the `[s2s]` section.
    pub fn of(config: &S2sConfig) -> RemoteLimits {
        RemoteLimits {
            per_account: config.max_remote_resources_per_account,
            per_domain: config.max_remote_resources_per_domain,
            per_contact: config.max_remote_resources_per_contact,
        }
    }
}

impl Default for RemoteLimits {
    fn default() -> Self {
        RemoteLimits::of(&S2sConfig::default())
    }
}

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
    limits: RemoteLimits,
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
        if resources.len() >= self.limits.per_account {
            debug!("too many remote resources for one account; this one is not tracked");
            return false;
        }
        let same_domain = resources
            .keys()
            .filter(|known| known.domain() == contact.domain());
        let (mut of_domain, mut of_contact) = (0, 0);
        for known in same_domain {
            of_domain += 1;
            if known.node() == contact.node() {
                of_contact += 1;
            }
        }
        if of_domain >= self.limits.per_domain || of_contact >= self.limits.per_contact {
            debug!(domain = %contact.domain(), "too many remote resources of one domain or contact; this one is not tracked");
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

    /// Forgets every resource of `domain`, for every account.
    fn forget_domain(&mut self, domain: &str) {
        self.by_owner.retain(|_, resources| {
            resources.retain(|jid, _| jid.domain().as_str() != domain);
            !resources.is_empty()
        });
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
        registrar.hook(
            HookPoint::SubscriptionRevoked,
            priority::HANDLER,
            self.clone(),
        );
        registrar.hook(HookPoint::RemoteDomainDisconnected, priority::HANDLER, self);
    }
}

impl RemoteInterests {
    /// A tracker learning interests through `caps`, checking subscriptions in `rosters`,
    /// remembering as many resources as `limits` allow.
    pub fn new(caps: Arc<CapsModule>, rosters: Arc<RosterModule>, limits: RemoteLimits) -> Self {
        RemoteInterests {
            caps,
            rosters,
            known: Arc::new(Mutex::new(Known {
                by_owner: HashMap::new(),
                limits,
            })),
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
impl EventHook<Router> for RemoteInterests {
    async fn on_event(&self, router: &Router, event: &mut Event<'_>) -> Flow {
        match event {
            Event::PresenceToAccount { to, presence } => {
                self.presence(router, to, presence).await;
            }
            Event::SubscriptionRevoked { user, contact } => {
                self.known().forget(user, |jid| jid.to_bare() == **contact);
            }
            Event::RemoteDomainDisconnected { domain } => {
                debug!(%domain, "the remote domain's link ended: its contacts' interests expire");
                self.known().forget_domain(domain);
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
        let limits = known.limits;
        let mut added = 0;
        'domains: for domain in 0.. {
            for contact in 0..limits.per_domain / limits.per_contact {
                for resource in 0..limits.per_contact {
                    let resource = format!("c{contact}@d{domain}.test/{resource}");
                    assert!(known.remember(&owner(), &jid(&resource), "v1"));
                    added += 1;
                    if added == limits.per_account {
                        break 'domains;
                    }
                }
            }
        }
        assert!(!known.remember(&owner(), &jid("bob@fresh.test/one-too-many"), "v1"));
    }

    #[test]
    fn one_remote_domain_cannot_crowd_out_the_others() {
        let mut known = Known::default();
        let limits = known.limits;
        for n in 0..limits.per_domain {
            let resource = format!("user{}@b.test/{}", n / limits.per_contact, n);
            assert!(known.remember(&owner(), &jid(&resource), "v1"));
        }
        assert!(!known.remember(&owner(), &jid("another@b.test/phone"), "v1"));
        assert!(known.remember(&owner(), &jid("carol@c.test/phone"), "v1"));
    }

    #[test]
    fn one_remote_contact_cannot_crowd_out_its_neighbours() {
        let mut known = Known::default();
        for n in 0..known.limits.per_contact {
            assert!(known.remember(&owner(), &jid(&format!("bob@b.test/{n}")), "v1"));
        }
        assert!(!known.remember(&owner(), &jid("bob@b.test/one-too-many"), "v1"));
        assert!(known.remember(&owner(), &jid("dave@b.test/phone"), "v1"));
    }

    #[test]
    fn interests_expire_when_their_domain_disconnects() {
        let mut known = Known::default();
        let other_owner = BareJid::new("zoe@a.test").expect("bare jid");
        for (owner, resource) in [
            (owner(), "bob@b.test/phone"),
            (other_owner.clone(), "bob@b.test/laptop"),
            (owner(), "carol@c.test/pc"),
        ] {
            known.remember(&owner, &jid(resource), "v1");
            known.learn(&owner, &jid(resource), "v1", wanting("devices"));
        }
        known.forget_domain("b.test");
        assert_eq!(
            known.interested(&owner(), "devices"),
            vec![jid("carol@c.test/pc")]
        );
        assert!(known.interested(&other_owner, "devices").is_empty());
    }
}
