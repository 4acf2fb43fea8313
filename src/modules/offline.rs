//! XEP-0160: Best Practices for Handling Offline Messages — messages for an account without
//! an available resource are stored durably and delivered, in order and stamped with a
//! XEP-0203 delay, at its next available presence.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jid::{BareJid, Jid};
use rempart_xep::delay::delay;
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stanza::{Condition, MessageType, StanzaError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::{debug, warn};

use crate::modules::roster::RosterModule;
use crate::modules::Module;
use crate::router::{
    priority, Event, EventHook, Flow, HookPoint, Implements, Registrar, Router, SessionHandle,
};
use crate::storage::{ArchiveStore, ArchiveUsage, EntryTags, HeldUsage};

/// Store name of offline messages.
const STORE: &str = "offline";
/// Chat state notifications are not worth storing (XEP-0085).
const CHAT_STATES: &str = "http://jabber.org/protocol/chatstates";

/// `[modules.offline]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfflineConfig {
    /// Store messages for unavailable accounts.
    pub enabled: bool,
    /// Most messages kept per account; more are refused with `resource-constraint`.
    pub max_messages: usize,
    /// Most bytes of messages kept per account.
    pub max_bytes: usize,
    /// Share (percent) of `max_messages` and `max_bytes` one sender may fill.
    pub sender_share_percent: usize,
    /// Share (percent) that all senders outside the account's roster may fill together, so
    /// that strangers cannot make its contacts' messages bounce.
    pub stranger_share_percent: usize,
}

impl Default for OfflineConfig {
    fn default() -> Self {
        OfflineConfig {
            enabled: true,
            max_messages: 1000,
            max_bytes: 4 * 1024 * 1024,
            sender_share_percent: 10,
            stranger_share_percent: 50,
        }
    }
}

/// The class under which messages from senders outside the account's roster are counted.
const STRANGERS: &str = "stranger";

/// A stored message, exactly as received.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredMessage {
    xml: String,
    stamp: i64,
}

/// The limits one new message is checked against.
#[derive(Debug, Clone, Copy)]
struct Quota {
    messages: u64,
    bytes: u64,
}

impl Quota {
    /// `percent` of `whole`, never below one message and one stanza's worth of nothing.
    fn share(whole: Quota, percent: usize) -> Quota {
        let percent = u64::try_from(percent).unwrap_or(u64::MAX);
        Quota {
            messages: (whole.messages.saturating_mul(percent) / 100).max(1),
            bytes: whole.bytes.saturating_mul(percent) / 100,
        }
    }

    /// True when what `held` counts plus a new entry of `new_bytes` fits.
    fn admits(self, held: ArchiveUsage, new_bytes: u64) -> bool {
        held.entries < self.messages && held.bytes.saturating_add(new_bytes) <= self.bytes
    }
}

/// True when the account's store takes a new message: within the account's quota, the
/// sender's share and, for a sender outside the roster (`contact` false), the strangers'
/// share. Stored sizes are counted in stored (encoded) bytes.
fn store_admits(config: &OfflineConfig, held: &HeldUsage, contact: bool) -> bool {
    let account = Quota {
        messages: u64::try_from(config.max_messages).unwrap_or(u64::MAX),
        bytes: u64::try_from(config.max_bytes).unwrap_or(u64::MAX),
    };
    let sender = Quota::share(account, config.sender_share_percent);
    let strangers = Quota::share(account, config.stranger_share_percent);
    let new = held.entry_bytes;
    account.admits(held.user, new)
        && sender.admits(held.partner, new)
        && (contact || strangers.admits(held.class, new))
}

/// The offline storage module.
pub struct OfflineModule {
    config: OfflineConfig,
    rosters: Arc<RosterModule>,
    delivering: Arc<Mutex<HashSet<BareJid>>>,
}

static IMPLEMENTS: &[Implements] = &[
    Implements {
        spec: "XEP-0160",
        version: "1.0.1",
        note: "durable offline storage with a per-account limit",
    },
    Implements {
        spec: "XEP-0203",
        version: "2.0",
        note: "delay stamps on offline delivery",
    },
];

impl Module for OfflineModule {
    fn name(&self) -> &'static str {
        "offline"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        registrar.hook(
            HookPoint::MessageUndeliverable,
            priority::FALLBACK,
            self.clone(),
        );
        registrar.hook(HookPoint::SessionAvailable, priority::HANDLER, self);
        registrar.server_feature(ns::OFFLINE);
    }
}

/// True when a message carries something a user would miss (not only a chat state) and
/// does not ask not to be stored (XEP-0334).
fn worth_storing(message: &Element) -> bool {
    if message.has_child("no-store", ns::HINTS)
        || message.has_child("no-permanent-store", ns::HINTS)
    {
        return false;
    }
    if message.has_child("store", ns::HINTS) {
        return true;
    }
    message
        .children()
        .any(|child| child.ns() != CHAT_STATES && !child.is("thread", ns::CLIENT))
}

impl OfflineModule {
    /// The module with its configuration; the roster tells contacts from strangers.
    pub fn new(config: OfflineConfig, rosters: Arc<RosterModule>) -> Self {
        OfflineModule {
            config,
            rosters,
            delivering: Arc::default(),
        }
    }

    /// True when `sender` may use the contacts' part of `user`'s store: the account itself,
    /// a server, or a JID in its roster (storage errors count as a stranger).
    async fn is_contact(&self, router: &Router, user: &BareJid, sender: &BareJid) -> bool {
        if sender == user || sender.node().is_none() {
            return true;
        }
        match self.rosters.entry(router, user, sender).await {
            Ok(entry) => entry.is_some_and(|e| e.in_roster),
            Err(error) => {
                warn!(%error, "roster read failed");
                false
            }
        }
    }

    fn store(router: &Router, user: &BareJid) -> ArchiveStore<StoredMessage> {
        router.storage.archive(user.domain().as_str(), STORE)
    }

    async fn store_message(&self, router: &Router, to: &BareJid, message: &Element) -> Flow {
        if !matches!(
            MessageType::of(message),
            MessageType::Chat | MessageType::Normal
        ) || !worth_storing(message)
        {
            return Flow::Continue;
        }
        let user = to.node().map(|n| n.as_str()).unwrap_or_default();
        let sender = message
            .get_attr("from")
            .and_then(|from| Jid::new(from).ok())
            .map(|from| from.to_bare());
        let contact = match &sender {
            Some(sender) => self.is_contact(router, to, sender).await,
            None => false,
        };
        let stored = StoredMessage {
            xml: message.to_xml(),
            stamp: OffsetDateTime::now_utc().unix_timestamp(),
        };
        // Messages without a sender share one sender quota, under the empty partner.
        let tags = EntryTags {
            partner: Some(sender.map(|s| s.to_string()).unwrap_or_default()),
            class: (!contact).then(|| STRANGERS.to_owned()),
        };
        let config = self.config.clone();
        let admit = move |held: &HeldUsage| store_admits(&config, held, contact);
        match Self::store(router, to)
            .append_if(user, &stored, tags, admit)
            .await
        {
            Ok(Some(_)) => {
                debug!(id = message.get_attr("id"), "message stored offline");
                router.run_hooks(Event::MessageStored { to, message }).await;
                Flow::Stop
            }
            Ok(None) => {
                router.bounce_with(
                    message,
                    StanzaError::new(Condition::ResourceConstraint)
                        .with_text("the recipient's offline storage is full"),
                );
                Flow::Stop
            }
            Err(error) => {
                warn!(%error, "offline storage failed");
                router.bounce(message, Condition::InternalServerError);
                Flow::Stop
            }
        }
    }

    /// Delivers the stored messages from a task of its own: the session's actor is busy with
    /// the presence that triggered this and must stay free to empty its inbox.
    /// Only one delivery runs per account: XEP-0160 hands stored messages to the first
    /// available resource, and two at once would both send the same batch.
    fn spawn_delivery(&self, router: &Router, session: &SessionHandle) {
        let Some(router) = router.handle() else {
            return;
        };
        // XEP-0160: a resource with negative priority gets no stored messages; it must not
        // hold the account's delivery either.
        let priority = router
            .sessions
            .get(&session.jid)
            .map(|e| e.presence.priority)
            .unwrap_or(0);
        if priority < 0 {
            return;
        }
        let Some(mark) = DeliveryMark::take(&self.delivering, session.jid.to_bare()) else {
            return;
        };
        let session = session.clone();
        tokio::spawn(async move {
            Self::deliver_stored(&router, &session).await;
            drop(mark);
        });
    }

    async fn deliver_stored(router: &Router, session: &SessionHandle) {
        let user_jid = session.jid.to_bare();
        let user = user_jid.node().map(|n| n.as_str()).unwrap_or_default();
        let store = Self::store(router, &user_jid);
        let host = user_jid.domain().to_string();
        loop {
            let batch = match store.list(user, None, 100).await {
                Ok(batch) => batch,
                Err(error) => {
                    warn!(%error, "offline read failed");
                    return;
                }
            };
            if batch.is_empty() {
                return;
            }
            let mut delivered = Vec::new();
            let mut stalled = false;
            for (id, stored) in batch {
                let Ok(mut message) = Element::parse(&stored.xml) else {
                    warn!(id, "unreadable offline message dropped");
                    delivered.push(id);
                    continue;
                };
                let stamp = OffsetDateTime::from_unix_timestamp(stored.stamp)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                message.append_child(delay(&host, stamp));
                if !session.send_waiting(message).await {
                    stalled = true;
                    break;
                }
                delivered.push(id);
            }
            if let Err(error) = store.delete(user, &delivered).await {
                warn!(%error, "offline delete failed");
                return;
            }
            if stalled {
                return;
            }
        }
    }
}

#[async_trait]
impl EventHook<Router> for OfflineModule {
    async fn on_event(&self, router: &Router, event: &mut Event<'_>) -> Flow {
        match event {
            Event::MessageUndeliverable { to, message } => {
                self.store_message(router, to, message).await
            }
            Event::SessionAvailable { session } => {
                self.spawn_delivery(router, session);
                Flow::Continue
            }
            _ => Flow::Continue,
        }
    }
}

/// The one running delivery of an account; released when dropped, even if the delivery task
/// panics, so the account's next available resource is served.
struct DeliveryMark {
    delivering: Arc<Mutex<HashSet<BareJid>>>,
    account: BareJid,
}

impl DeliveryMark {
    /// The mark for `account`, unless a delivery already holds it.
    fn take(delivering: &Arc<Mutex<HashSet<BareJid>>>, account: BareJid) -> Option<DeliveryMark> {
        let first = delivering
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(account.clone());
        first.then(|| DeliveryMark {
            delivering: delivering.clone(),
            account,
        })
    }
}

impl Drop for DeliveryMark {
    fn drop(&mut self) {
        self.delivering
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_states_alone_are_not_stored_but_encrypted_payloads_are() {
        let typing = Element::parse(
            "<message xmlns='jabber:client' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        )
        .expect("xml");
        assert!(!worth_storing(&typing));
        let omemo = Element::parse(
            "<message xmlns='jabber:client' type='chat'><encrypted xmlns='urn:xmpp:omemo:2'/><store xmlns='urn:xmpp:hints'/></message>",
        )
        .expect("xml");
        assert!(worth_storing(&omemo));
        let refused = Element::parse(
            "<message xmlns='jabber:client'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>",
        )
        .expect("xml");
        assert!(!worth_storing(&refused));
    }

    fn held(user: (u64, u64), partner: (u64, u64), class: (u64, u64), new: u64) -> HeldUsage {
        let usage = |(entries, bytes)| ArchiveUsage { entries, bytes };
        HeldUsage {
            user: usage(user),
            partner: usage(partner),
            class: usage(class),
            entry_bytes: new,
        }
    }

    #[test]
    fn quotas_hold_per_account_per_sender_and_for_strangers_together() {
        let config = OfflineConfig {
            max_messages: 10,
            max_bytes: 1000,
            sender_share_percent: 30,
            stranger_share_percent: 50,
            ..OfflineConfig::default()
        };
        // Two messages of 10 bytes from one stranger: a third one fits its share of three.
        assert!(store_admits(
            &config,
            &held((2, 20), (2, 20), (2, 20), 10),
            false
        ));
        assert!(
            !store_admits(&config, &held((3, 30), (3, 30), (3, 30), 10), false),
            "sender share"
        );
        // Five messages from strangers fill their half of the store, not a contact's part.
        assert!(
            !store_admits(&config, &held((5, 50), (0, 0), (5, 50), 10), false),
            "strangers"
        );
        assert!(store_admits(
            &config,
            &held((5, 50), (0, 0), (0, 0), 10),
            true
        ));
        assert!(
            !store_admits(&config, &held((5, 50), (0, 0), (0, 0), 400), true),
            "bytes"
        );
        assert!(
            !store_admits(&config, &held((10, 100), (0, 0), (0, 0), 1), true),
            "account"
        );
    }
}
