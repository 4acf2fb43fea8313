//! RFC 6121 §2: Roster management — get, set, remove, pushes to interested resources and
//! versioning. The subscription state lives here too; the presence module drives it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use jid::BareJid;
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::roster::{query, RosterItem, Subscription};
use rempart_xep::stanza::{Condition, IqType, StanzaError};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use tracing::warn;

use crate::modules::Module;
use crate::router::{
    Event, Implements, IqHandler, IqRequest, IqResult, IqScope, Registrar, Router,
};
use crate::storage::{MapStore, StorageError};

/// Store name of roster entries.
const STORE: &str = "roster";

/// The subscription state of RFC 6121 Appendix A, without the pending flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubscriptionState {
    /// Neither direction.
    #[default]
    None,
    /// The user sees the contact's presence.
    To,
    /// The contact sees the user's presence.
    From,
    /// Both.
    Both,
}

impl SubscriptionState {
    /// True when the user receives the contact's presence.
    pub fn has_to(self) -> bool {
        matches!(self, SubscriptionState::To | SubscriptionState::Both)
    }

    /// True when the contact receives the user's presence.
    pub fn has_from(self) -> bool {
        matches!(self, SubscriptionState::From | SubscriptionState::Both)
    }

    /// The state with the `to` direction set or cleared.
    pub fn with_to(self, on: bool) -> Self {
        Self::from_parts(on, self.has_from())
    }

    /// The state with the `from` direction set or cleared.
    pub fn with_from(self, on: bool) -> Self {
        Self::from_parts(self.has_to(), on)
    }

    fn from_parts(to: bool, from: bool) -> Self {
        match (to, from) {
            (false, false) => SubscriptionState::None,
            (true, false) => SubscriptionState::To,
            (false, true) => SubscriptionState::From,
            (true, true) => SubscriptionState::Both,
        }
    }

    fn wire(self) -> Subscription {
        match self {
            SubscriptionState::None => Subscription::None,
            SubscriptionState::To => Subscription::To,
            SubscriptionState::From => Subscription::From,
            SubscriptionState::Both => Subscription::Both,
        }
    }
}

/// What the server keeps about one contact of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterEntry {
    /// Shown in the roster (false while it only holds a pending inbound request).
    pub in_roster: bool,
    /// The user's name for the contact.
    pub name: Option<String>,
    /// The user's groups for the contact.
    pub groups: Vec<String>,
    /// Subscription directions.
    pub subscription: SubscriptionState,
    /// The user asked to subscribe and the contact has not answered.
    pub pending_out: bool,
    /// The contact asked to subscribe and the user has not answered.
    pub pending_in: bool,
    /// The subscription request as received, redelivered at each login while pending.
    pub pending_in_request: Option<String>,
    /// The user pre-approved a subscription from the contact.
    pub approved: bool,
}

impl RosterEntry {
    /// The wire item for results and pushes.
    pub fn item(&self, jid: &BareJid) -> RosterItem {
        RosterItem {
            jid: jid.clone(),
            name: self.name.clone(),
            subscription: self.subscription.wire(),
            ask: self.pending_out,
            approved: self.approved,
            groups: self.groups.clone(),
        }
    }

    /// True when nothing worth keeping is left.
    fn is_empty(&self) -> bool {
        !self.in_roster
            && !self.pending_in
            && !self.approved
            && !self.pending_out
            && self.subscription == SubscriptionState::None
    }
}

/// The roster module; also the typed handle other modules use to read and change rosters.
pub struct RosterModule {
    max_items: usize,
    push_counter: AtomicU64,
}

static IMPLEMENTS: &[Implements] = &[Implements {
    spec: "RFC 6121",
    version: "2011",
    note: "rosters, versioning, subscriptions with pre-approval",
}];

impl Module for RosterModule {
    fn name(&self) -> &'static str {
        "roster"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        registrar.iq(IqScope::Account, ns::ROSTER, "query", self.clone());
        registrar.stream_feature(Element::new("ver", ns::ROSTER_VER));
        registrar.stream_feature(Element::new("sub", ns::PRE_APPROVAL));
    }
}

impl RosterModule {
    /// A roster module holding at most `max_items` items per account.
    pub fn new(max_items: usize) -> Self {
        RosterModule {
            max_items,
            push_counter: AtomicU64::new(1),
        }
    }

    fn store(router: &Router, user: &BareJid) -> MapStore<RosterEntry> {
        router.storage.map(user.domain().as_str(), STORE)
    }

    fn user_key(user: &BareJid) -> &str {
        user.node().map(|n| n.as_str()).unwrap_or_default()
    }

    /// The entry for one contact.
    pub async fn entry(
        &self,
        router: &Router,
        user: &BareJid,
        contact: &BareJid,
    ) -> Result<Option<RosterEntry>, StorageError> {
        Self::store(router, user)
            .get(Self::user_key(user), contact.as_str())
            .await
    }

    /// Every entry of an account, including those only holding pending requests.
    pub async fn entries(
        &self,
        router: &Router,
        user: &BareJid,
    ) -> Result<Vec<(BareJid, RosterEntry)>, StorageError> {
        let all = Self::store(router, user).all(Self::user_key(user)).await?;
        Ok(all
            .into_iter()
            .filter_map(|(key, entry)| BareJid::new(&key).ok().map(|jid| (jid, entry)))
            .collect())
    }

    /// Stores an entry (durably), pushes the change to interested resources when the
    /// visible item changed, and tells modules when the contact lost its subscription.
    pub async fn save(
        &self,
        router: &Router,
        user: &BareJid,
        contact: &BareJid,
        before: Option<&RosterEntry>,
        after: &RosterEntry,
    ) -> Result<(), StorageError> {
        let store = Self::store(router, user);
        if after.is_empty() {
            store.delete(Self::user_key(user), contact.as_str()).await?;
        } else {
            store
                .set(Self::user_key(user), contact.as_str(), after)
                .await?;
        }
        let visible_before = before.filter(|e| e.in_roster).map(|e| e.item(contact));
        let visible_after = Some(after).filter(|e| e.in_roster).map(|e| e.item(contact));
        if visible_before != visible_after {
            let item = match visible_after {
                Some(item) => item,
                None => RosterItem {
                    subscription: Subscription::Remove,
                    ..after.item(contact)
                },
            };
            let ver = self.version(router, user).await.ok();
            self.push(router, user, item.to_element(), ver);
        }
        if before.is_some_and(|e| e.subscription.has_from()) && !after.subscription.has_from() {
            router
                .run_hooks(Event::SubscriptionRevoked { user, contact })
                .await;
        }
        Ok(())
    }

    /// The roster version: a digest of the visible items, so any change changes it.
    pub async fn version(&self, router: &Router, user: &BareJid) -> Result<String, StorageError> {
        let entries = self.entries(router, user).await?;
        let mut digest = Sha1::new();
        for (jid, entry) in entries.iter().filter(|(_, e)| e.in_roster) {
            digest.update(entry.item(jid).to_element().to_xml().as_bytes());
        }
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.finalize()))
    }

    fn push(&self, router: &Router, user: &BareJid, item: Element, ver: Option<String>) {
        for entry in router.sessions.of_account(user) {
            if !entry.presence.interested {
                continue;
            }
            let id = format!("push{}", self.push_counter.fetch_add(1, Ordering::Relaxed));
            let push = Element::new("iq", ns::CLIENT)
                .attr("type", "set")
                .attr("id", id)
                .attr("to", entry.handle.jid.to_string())
                .child(query(ver.clone(), [item.clone()]));
            entry.handle.send(push);
        }
    }

    async fn handle_get(&self, router: &Router, request: &IqRequest, user: &BareJid) -> IqResult {
        if let Ok(full) = request.from.try_as_full() {
            router
                .sessions
                .update(full, |state| state.interested = true);
        }
        let ver = self.version(router, user).await.map_err(internal)?;
        if request.payload.get_attr("ver") == Some(ver.as_str()) {
            return Ok(None);
        }
        let entries = self.entries(router, user).await.map_err(internal)?;
        let items = entries
            .iter()
            .filter(|(_, e)| e.in_roster)
            .map(|(jid, e)| e.item(jid).to_element());
        Ok(Some(query(Some(ver), items)))
    }

    async fn handle_set(&self, router: &Router, request: &IqRequest, user: &BareJid) -> IqResult {
        let mut items = request
            .payload
            .children()
            .filter(|c| c.is("item", ns::ROSTER));
        let (Some(item), None) = (items.next(), items.next()) else {
            return Err(StanzaError::new(Condition::BadRequest)
                .with_text("a roster set carries exactly one item"));
        };
        let item = RosterItem::from_element(item).map_err(|e| {
            let condition = match e {
                rempart_xep::roster::RosterItemError::BadJid => Condition::JidMalformed,
                _ => Condition::BadRequest,
            };
            StanzaError::new(condition).with_text(e.to_string())
        })?;
        let before = self
            .entry(router, user, &item.jid)
            .await
            .map_err(internal)?;
        if item.subscription == Subscription::Remove {
            let Some(before) = before else {
                return Err(StanzaError::new(Condition::ItemNotFound));
            };
            self.remove_contact(router, user, &item.jid, &before)
                .await?;
            return Ok(None);
        }
        if before.as_ref().is_none_or(|e| !e.in_roster) {
            let count = self.entries(router, user).await.map_err(internal)?;
            if count.iter().filter(|(_, e)| e.in_roster).count() >= self.max_items {
                return Err(StanzaError::new(Condition::NotAllowed).with_text("the roster is full"));
            }
        }
        let mut after = before.clone().unwrap_or_default();
        after.in_roster = true;
        after.name = item.name.filter(|n| !n.is_empty());
        after.groups = item.groups;
        self.save(router, user, &item.jid, before.as_ref(), &after)
            .await
            .map_err(internal)?;
        Ok(None)
    }

    /// RFC 6121 §2.5.2: removing an item cancels subscriptions both ways.
    async fn remove_contact(
        &self,
        router: &Router,
        user: &BareJid,
        contact: &BareJid,
        before: &RosterEntry,
    ) -> Result<(), StanzaError> {
        let removed = RosterEntry::default();
        self.save(router, user, contact, Some(before), &removed)
            .await
            .map_err(internal)?;
        let presence = |kind: &str| {
            Element::new("presence", ns::CLIENT)
                .attr("type", kind)
                .attr("from", user.to_string())
                .attr("to", contact.to_string())
        };
        if before.subscription.has_to() || before.pending_out {
            router.route(presence("unsubscribe")).await;
        }
        if before.subscription.has_from() || before.pending_in {
            router.route(presence("unsubscribed")).await;
        }
        Ok(())
    }
}

#[async_trait]
impl IqHandler<Router> for RosterModule {
    async fn handle(&self, router: &Router, request: IqRequest) -> IqResult {
        if !request.from_owner() {
            return Err(StanzaError::new(Condition::Forbidden));
        }
        let Err(user) = request.to.try_as_full() else {
            return Err(StanzaError::new(Condition::BadRequest));
        };
        match request.iq_type {
            IqType::Get => self.handle_get(router, &request, user).await,
            IqType::Set => self.handle_set(router, &request, user).await,
            IqType::Result | IqType::Error => Ok(None),
        }
    }
}

/// Logs a storage failure once and turns it into `internal-server-error`.
pub fn internal(error: StorageError) -> StanzaError {
    warn!(%error, "storage failure");
    StanzaError::new(Condition::InternalServerError)
}
