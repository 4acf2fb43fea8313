//! XEP-0160: Best Practices for Handling Offline Messages — messages for an account without
//! an available resource are stored durably and delivered, in order and stamped with a
//! XEP-0203 delay, at its next available presence.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jid::BareJid;
use rempart_xep::delay::delay;
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stanza::{Condition, MessageType, StanzaError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::{debug, warn};

use crate::modules::{priority, Event, EventHook, Flow, HookPoint, Implements, Module, Registrar};
use crate::router::{Router, SessionHandle};
use crate::storage::ArchiveStore;

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
}

impl Default for OfflineConfig {
    fn default() -> Self {
        OfflineConfig {
            enabled: true,
            max_messages: 1000,
        }
    }
}

/// A stored message, exactly as received.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredMessage {
    xml: String,
    stamp: i64,
}

/// The offline storage module.
pub struct OfflineModule {
    config: OfflineConfig,
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
    /// The module with its configuration.
    pub fn new(config: OfflineConfig) -> Self {
        OfflineModule {
            config,
            delivering: Arc::default(),
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
        let stored = StoredMessage {
            xml: message.to_xml(),
            stamp: OffsetDateTime::now_utc().unix_timestamp(),
        };
        match Self::store(router, to)
            .append_limited(user, &stored, self.config.max_messages)
            .await
        {
            Ok(Some(_)) => {
                debug!(id = message.get_attr("id"), "message stored offline");
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
impl EventHook for OfflineModule {
    async fn on_event(&self, router: &Router, event: &Event<'_>) -> Flow {
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
}
