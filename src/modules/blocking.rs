//! XEP-0191: Blocking Command — a durable blocklist per account, changed by block and unblock
//! commands that are pushed to the account's resources that fetched the list, and enforced
//! both ways: nothing from a blocked JID reaches the account, and nothing the account sends
//! reaches a blocked JID.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use jid::{BareJid, Jid};
use rempart_xep::blocking::{
    blocked_error, blocklist, is_blocklist_request, item_matches, BlockingCommand,
};
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stanza::{Condition, IqType, StanzaError};
use serde::Deserialize;
use tracing::{debug, warn};

use crate::modules::roster::{internal, RosterModule};
use crate::modules::Module;
use crate::router::{
    priority, Event, EventHook, Flow, HookPoint, Implements, IqHandler, IqRequest, IqResult,
    IqScope, Registrar, Router,
};
use crate::storage::{MapStore, StorageError};

/// Store name of blocklists: one key per blocked JID.
const STORE: &str = "blocking";

/// `[modules.blocking]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlockingConfig {
    /// Offer the blocking command.
    pub enabled: bool,
    /// Most JIDs on one account's blocklist; a block past it gets `resource-constraint`.
    pub max_items: usize,
}

impl Default for BlockingConfig {
    fn default() -> Self {
        BlockingConfig {
            enabled: true,
            max_items: 1000,
        }
    }
}

/// Set on a session (in its extensions) once its client fetched the blocklist: it gets the
/// pushes of later changes (§3.3).
#[derive(Debug)]
pub struct BlocklistRequested;

/// The blocking module; also the handle other modules use to ask whether a JID is blocked.
pub struct BlockingModule {
    config: BlockingConfig,
    rosters: Arc<RosterModule>,
    push_counter: AtomicU64,
}

static IMPLEMENTS: &[Implements] = &[Implements {
    spec: "XEP-0191",
    version: "1.3",
    note: "durable blocklist with pushes, enforced on messages, presence and IQs both ways",
}];

impl Module for BlockingModule {
    fn name(&self) -> &'static str {
        "blocking"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        for name in ["blocklist", "block", "unblock"] {
            registrar.iq(IqScope::Account, ns::BLOCKING, name, self.clone());
        }
        registrar.server_feature(ns::BLOCKING);
        for point in [
            HookPoint::MessageFromClient,
            HookPoint::IqFromClient,
            HookPoint::PresenceFromClient,
            HookPoint::PresenceFromAccount,
            HookPoint::MessageToAccount,
            HookPoint::IqToAccount,
            HookPoint::PresenceToAccount,
        ] {
            registrar.hook(point, priority::POLICY, self.clone());
        }
    }
}

/// The account name the blocklist is stored under.
fn user_key(account: &BareJid) -> &str {
    account.node().map(|n| n.as_str()).unwrap_or_default()
}

/// True when `other` is someone the account may block: not the account itself (§5: a
/// resource never blocks another) and not its own server.
fn is_peer(account: &BareJid, other: &Jid) -> bool {
    let own_server =
        other.node().is_none() && other.resource().is_none() && other.domain() == account.domain();
    other.to_bare() != *account && !own_server
}

/// A copy of `presence` readdressed.
fn presence_copy(presence: &Element, from: &str, to: &str) -> Element {
    let mut copy = presence.clone();
    copy.set_attr("from", from);
    copy.set_attr("to", to);
    copy
}

impl BlockingModule {
    /// A blocking module reading contacts from `rosters`.
    pub fn new(config: BlockingConfig, rosters: Arc<RosterModule>) -> Self {
        BlockingModule {
            config,
            rosters,
            push_counter: AtomicU64::new(1),
        }
    }

    fn store(router: &Router, account: &BareJid) -> MapStore<()> {
        router.storage.map(account.domain().as_str(), STORE)
    }

    /// The JIDs the account blocked, in stored order.
    pub async fn blocklist(
        &self,
        router: &Router,
        account: &BareJid,
    ) -> Result<Vec<Jid>, StorageError> {
        let stored = Self::store(router, account).all(user_key(account)).await?;
        Ok(stored
            .into_iter()
            .filter_map(|(key, ())| Jid::new(&key).ok())
            .collect())
    }

    /// True when the account blocked `other` (a storage failure is logged and blocks nothing,
    /// so that a broken store does not silence every account).
    pub async fn is_blocked(&self, router: &Router, account: &BareJid, other: &Jid) -> bool {
        if !is_peer(account, other) {
            return false;
        }
        match self.blocklist(router, account).await {
            Ok(items) => items.iter().any(|item| item_matches(item, other)),
            Err(error) => {
                warn!(%error, "blocklist read failed");
                false
            }
        }
    }

    /// True when the account blocked the JID in the stanza's `address` attribute.
    async fn blocks_attr(
        &self,
        router: &Router,
        account: &BareJid,
        stanza: &Element,
        address: &str,
    ) -> bool {
        match stanza.get_attr(address).and_then(|a| Jid::new(a).ok()) {
            Some(other) => self.is_blocked(router, account, &other).await,
            None => false,
        }
    }

    /// Sends a change to every resource of the account that fetched the blocklist.
    fn push(&self, router: &Router, account: &BareJid, command: &BlockingCommand) {
        for entry in router.sessions.of_account(account) {
            if entry
                .handle
                .extensions
                .get::<BlocklistRequested>()
                .is_none()
            {
                continue;
            }
            let id = format!(
                "block-push{}",
                self.push_counter.fetch_add(1, Ordering::Relaxed)
            );
            let push = command.to_push(&entry.handle.jid.to_string(), &id);
            entry.handle.send(push);
        }
    }

    /// The account's contacts allowed to see its presence (subscription from or both) that
    /// one of `items` covers and none of `still_blocked` does.
    async fn contacts_covered(
        &self,
        router: &Router,
        account: &BareJid,
        items: &[Jid],
        still_blocked: &[Jid],
    ) -> Result<Vec<BareJid>, StorageError> {
        let entries = self.rosters.entries(router, account).await?;
        Ok(entries
            .into_iter()
            .filter(|(_, entry)| entry.subscription.has_from())
            .map(|(contact, _)| contact)
            .filter(|contact| {
                let contact = Jid::from(contact.clone());
                items.iter().any(|item| item_matches(item, &contact))
                    && !still_blocked
                        .iter()
                        .any(|item| item_matches(item, &contact))
            })
            .collect())
    }

    /// Routes each available resource's presence (or `unavailable`) to each contact.
    async fn send_presence(
        &self,
        router: &Router,
        account: &BareJid,
        contacts: &[BareJid],
        available: bool,
    ) {
        for session in router.sessions.of_account(account) {
            let Some(current) = &session.presence.available else {
                continue;
            };
            let from = session.handle.jid.to_string();
            for contact in contacts {
                let presence = if available {
                    presence_copy(current, &from, contact.as_str())
                } else {
                    Element::new("presence", ns::CLIENT)
                        .attr("type", "unavailable")
                        .attr("from", from.as_str())
                        .attr("to", contact.as_str())
                };
                router.route(presence).await;
            }
        }
    }

    async fn block(&self, router: &Router, account: &BareJid, jids: Vec<Jid>) -> IqResult {
        let current = self.blocklist(router, account).await.map_err(internal)?;
        let mut added: Vec<Jid> = Vec::new();
        for jid in &jids {
            if !current.contains(jid) && !added.contains(jid) {
                added.push(jid.clone());
            }
        }
        if current.len() + added.len() > self.config.max_items {
            return Err(
                StanzaError::new(Condition::ResourceConstraint).with_text(format!(
                    "a blocklist holds at most {} JIDs",
                    self.config.max_items
                )),
            );
        }
        // Told before the block is stored, while the outbound filter still lets it through;
        // should the store then fail, the contact only sees the account offline for a while.
        let contacts = self
            .contacts_covered(router, account, &added, &current)
            .await
            .map_err(internal)?;
        self.send_presence(router, account, &contacts, false).await;
        let changes = added
            .iter()
            .map(|jid| (jid.to_string(), Some(())))
            .collect();
        Self::store(router, account)
            .apply(user_key(account), changes)
            .await
            .map_err(internal)?;
        self.push(router, account, &BlockingCommand::Block(jids));
        Ok(None)
    }

    async fn unblock(&self, router: &Router, account: &BareJid, jids: Vec<Jid>) -> IqResult {
        let current = self.blocklist(router, account).await.map_err(internal)?;
        let store = Self::store(router, account);
        let removed: Vec<Jid> = if jids.is_empty() {
            store
                .delete_all(user_key(account))
                .await
                .map_err(internal)?;
            current.clone()
        } else {
            let removed: Vec<Jid> = current
                .iter()
                .filter(|item| jids.contains(item))
                .cloned()
                .collect();
            let changes = removed.iter().map(|jid| (jid.to_string(), None)).collect();
            store
                .apply(user_key(account), changes)
                .await
                .map_err(internal)?;
            removed
        };
        let remaining: Vec<Jid> = current
            .into_iter()
            .filter(|item| !removed.contains(item))
            .collect();
        self.push(router, account, &BlockingCommand::Unblock(jids));
        match self
            .contacts_covered(router, account, &removed, &remaining)
            .await
        {
            Ok(contacts) => self.send_presence(router, account, &contacts, true).await,
            Err(error) => warn!(%error, "roster read failed; presence not sent after unblock"),
        }
        Ok(None)
    }

    /// A client's stanza to someone the account blocked: messages and IQs bounce with
    /// `<not-acceptable/>` and `<blocked/>` (§3.4), presence is not sent.
    async fn outbound(&self, router: &Router, account: &BareJid, stanza: &Element) -> Flow {
        if !self.blocks_attr(router, account, stanza, "to").await {
            return Flow::Continue;
        }
        debug!(
            kind = stanza.name(),
            id = stanza.get_attr("id"),
            "to a blocked JID"
        );
        if stanza.name() != "presence" {
            router.bounce_with(stanza, blocked_error());
        }
        Flow::Stop
    }

    /// A stanza from someone the account blocked (§3.5): presence is dropped silently,
    /// messages and IQ requests are answered `<service-unavailable/>`, as if the account did
    /// not exist; other IQs and errors are dropped.
    async fn inbound(&self, router: &Router, account: &BareJid, stanza: &Element) -> Flow {
        if !self.blocks_attr(router, account, stanza, "from").await {
            return Flow::Continue;
        }
        debug!(
            kind = stanza.name(),
            id = stanza.get_attr("id"),
            "from a blocked JID"
        );
        let answered = match stanza.name() {
            "message" => true,
            "iq" => matches!(stanza.get_attr("type"), Some("get" | "set")),
            _ => false,
        };
        if answered {
            router.bounce(stanza, Condition::ServiceUnavailable);
        }
        Flow::Stop
    }
}

#[async_trait]
impl IqHandler<Router> for BlockingModule {
    async fn handle(&self, router: &Router, request: IqRequest) -> IqResult {
        if !request.from_owner() {
            return Err(StanzaError::new(Condition::Forbidden));
        }
        let account = request.to.to_bare();
        if is_blocklist_request(&request.payload) {
            if request.iq_type != IqType::Get {
                return Err(StanzaError::new(Condition::BadRequest));
            }
            let items = self.blocklist(router, &account).await.map_err(internal)?;
            if let Some(session) = request
                .from
                .try_as_full()
                .ok()
                .and_then(|full| router.sessions.get(full))
            {
                session.handle.extensions.set(BlocklistRequested);
            }
            return Ok(Some(blocklist(&items)));
        }
        if request.iq_type != IqType::Set {
            return Err(StanzaError::new(Condition::BadRequest));
        }
        let command = BlockingCommand::parse(&request.payload)
            .map_err(|error| StanzaError::new(error.condition()).with_text(error.to_string()))?;
        match command {
            BlockingCommand::Block(jids) => self.block(router, &account, jids).await,
            BlockingCommand::Unblock(jids) => self.unblock(router, &account, jids).await,
        }
    }
}

#[async_trait]
impl EventHook<Router> for BlockingModule {
    async fn on_event(&self, router: &Router, event: &mut Event<'_>) -> Flow {
        match event {
            Event::MessageFromClient { session, message } => {
                self.outbound(router, &session.jid.to_bare(), message).await
            }
            Event::IqFromClient { session, iq } => {
                self.outbound(router, &session.jid.to_bare(), iq).await
            }
            Event::PresenceFromClient { session, presence } => {
                self.outbound(router, &session.jid.to_bare(), presence)
                    .await
            }
            Event::PresenceFromAccount { from, presence, .. } => {
                self.outbound(router, &from.to_bare(), presence).await
            }
            Event::MessageToAccount { to, message } => self.inbound(router, to, message).await,
            Event::IqToAccount { to, iq } => self.inbound(router, &to.to_bare(), iq).await,
            Event::PresenceToAccount { to, presence } => {
                self.inbound(router, &to.to_bare(), presence).await
            }
            _ => Flow::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(text: &str) -> Jid {
        Jid::new(text).expect("jid")
    }

    #[test]
    fn the_account_and_its_server_are_never_peers() {
        let alice = BareJid::new("alice@localhost").expect("jid");
        assert!(!is_peer(&alice, &jid("alice@localhost/phone")));
        assert!(!is_peer(&alice, &jid("localhost")));
        assert!(is_peer(&alice, &jid("bob@localhost")));
        assert!(is_peer(&alice, &jid("localhost/bot")));
        assert!(is_peer(&alice, &jid("evil.example")));
    }
}
