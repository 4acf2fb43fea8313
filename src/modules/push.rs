//! XEP-0357: Push Notifications — an app client registers its push service; when a message
//! reaches an account whose user is away (every session that got it detached by XEP-0198 or
//! CSI-inactive, or none available and the message stored offline), the server publishes a
//! summary to every registered service, which wakes the app on the phone.

mod pacing;
mod registrations;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jid::{BareJid, FullJid, Jid};
use rand::distr::{Alphanumeric, SampleString};
use rempart_xep::element::Element;
use rempart_xep::encryption::has_content;
use rempart_xep::ns;
use rempart_xep::push::{PushCommand, PushEnable, Summary};
use rempart_xep::stanza::{Condition, IqType, MessageType, StanzaError};
use serde::Deserialize;
use tracing::{debug, warn};

use crate::modules::Module;
use crate::router::{
    priority, Event, EventHook, Flow, HookPoint, Implements, IqHandler, IqRequest, IqResult,
    IqScope, Registrar, Router,
};
use crate::storage::StorageError;
use pacing::{Pace, Pacing};
use registrations::{AccountRegistrations, Enabled, Target};

/// `[modules.push]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Accept push registrations and send notifications.
    pub enabled: bool,
    /// Most push services (service and node pairs) one account may register.
    pub max_registrations: usize,
    /// Put the message body in notifications. Off by default: the app server usually
    /// hands the notification to Google or Apple.
    pub include_body: bool,
    /// At most one notification per service in this many seconds; later messages are
    /// coalesced into one notification at the end of the interval (0: no pacing).
    pub min_interval_secs: u64,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            enabled: true,
            max_registrations: 5,
            include_body: false,
            min_interval_secs: 10,
        }
    }
}

/// The registration a session enabled, so that an app in the foreground is not woken.
#[derive(Debug)]
struct SessionPush(Target);

/// The push notification module.
pub struct PushModule {
    config: PushConfig,
    pacing: Arc<Pacing>,
}

static IMPLEMENTS: &[Implements] = &[Implements {
    spec: "XEP-0357",
    version: "0.4.1",
    note: "enable/disable per app, summary without body by default, paced, an error disables",
}];

impl PushModule {
    /// The module with its configuration.
    pub fn new(config: PushConfig) -> Self {
        PushModule {
            config,
            pacing: Arc::default(),
        }
    }

    /// The shortest time between two notifications to one service.
    fn interval(&self) -> Duration {
        Duration::from_secs(self.config.min_interval_secs)
    }

    /// Stores a registration and remembers it on the session that sent it.
    async fn enable(&self, router: &Router, request: &IqRequest, enable: PushEnable) -> IqResult {
        let account = request.to.to_bare();
        let stored = AccountRegistrations::of(router, &account)
            .enable(&enable, self.config.max_registrations)
            .await
            .map_err(|error| {
                warn!(%error, "push registration not stored");
                StanzaError::new(Condition::InternalServerError)
            })?;
        if stored == Enabled::TooMany {
            return Err(StanzaError::new(Condition::PolicyViolation)
                .with_text("too many push services registered"));
        }
        if let Ok(full) = request.from.clone().try_into_full() {
            if let Some(entry) = router.sessions.get(&full) {
                entry
                    .handle
                    .extensions
                    .set(SessionPush(Target::of(&enable)));
            }
        }
        Ok(None)
    }

    /// Removes registrations and everything remembered about them.
    async fn disable(
        &self,
        router: &Router,
        account: &BareJid,
        service: &Jid,
        node: Option<&str>,
    ) -> Result<(), StorageError> {
        let removed = AccountRegistrations::of(router, account)
            .disable(service, node)
            .await?;
        self.pacing.forget(account, &removed);
        for entry in router.sessions.of_account(account) {
            let extensions = &entry.handle.extensions;
            if extensions
                .get::<SessionPush>()
                .is_some_and(|push| removed.contains(&push.0))
            {
                extensions.remove::<SessionPush>();
            }
        }
        Ok(())
    }

    /// Counts a message for an away user and notifies every registered service.
    async fn notify(&self, router: &Router, account: &BareJid, message: &Element) {
        let registrations = match AccountRegistrations::of(router, account).all().await {
            Ok(registrations) => registrations,
            Err(error) => {
                warn!(%error, "push registrations unreadable");
                return;
            }
        };
        if registrations.is_empty() {
            return;
        }
        let sender = message.get_attr("from").and_then(|f| Jid::new(f).ok());
        let body = self
            .config
            .include_body
            .then(|| message.child_text("body", ns::CLIENT))
            .flatten();
        let summary = self.pacing.record(account, sender, body);
        for enable in registrations {
            let target = Target::of(&enable);
            if enabled_by_active_session(router, account, &target) {
                continue;
            }
            match self
                .pacing
                .pace(account, &target, Instant::now(), self.interval())
            {
                Pace::Now => publish(router, &self.pacing, account, &enable, &summary).await,
                Pace::After(delay) => self.schedule(router, account, target, delay),
                Pace::Coalesced => {}
            }
        }
    }

    /// Sends the coalesced notification for `target` after `delay`, if the user has not
    /// looked and the service is still registered by then.
    fn schedule(&self, router: &Router, account: &BareJid, target: Target, delay: Duration) {
        let Some(router) = router.handle() else {
            return;
        };
        let pacing = self.pacing.clone();
        let account = account.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(summary) = pacing.due(&account, &target, Instant::now()) else {
                return;
            };
            if enabled_by_active_session(&router, &account, &target) {
                return;
            }
            match AccountRegistrations::of(&router, &account)
                .get(&target)
                .await
            {
                Ok(Some(enable)) => publish(&router, &pacing, &account, &enable, &summary).await,
                Ok(None) => {}
                Err(error) => warn!(%error, "push registration unreadable"),
            }
        });
    }

    /// Handles the service's answer to a notification: an error disables the registration
    /// (XEP-0357 §7.1), unless its type says to wait and retry.
    async fn answered(&self, router: &Router, account: &BareJid, iq: &Element) -> Flow {
        let (Some(id), Some(from)) = (
            iq.get_attr("id"),
            iq.get_attr("from").and_then(|f| Jid::new(f).ok()),
        ) else {
            return Flow::Continue;
        };
        let Some(target) = self.pacing.answered(account, id, &from) else {
            return Flow::Continue;
        };
        let error_type = iq
            .get_child("error", ns::CLIENT)
            .map(|error| error.get_attr("type").unwrap_or_default());
        if error_type.is_some_and(|kind| kind != "wait") {
            debug!(
                id,
                "push service refused a notification; registration disabled"
            );
            if let Err(error) = self
                .disable(router, account, &target.service, Some(&target.node))
                .await
            {
                warn!(%error, "refused push registration not removed");
            }
        }
        Flow::Stop
    }
}

/// True when a session that registered `target` is active: its app is in the foreground.
fn enabled_by_active_session(router: &Router, account: &BareJid, target: &Target) -> bool {
    router.sessions.of_account(account).iter().any(|entry| {
        entry.handle.status.is_active()
            && entry
                .handle
                .extensions
                .get::<SessionPush>()
                .is_some_and(|push| push.0 == *target)
    })
}

/// Publishes a notification to one service, from the account's bare JID, through the
/// router so that a service on another server is reached too.
async fn publish(
    router: &Router,
    pacing: &Pacing,
    account: &BareJid,
    enable: &PushEnable,
    summary: &Summary,
) {
    let id = format!("push-{}", Alphanumeric.sample_string(&mut rand::rng(), 16));
    pacing.sent(account, &Target::of(enable), id.clone());
    debug!(id, "push notification");
    router
        .route(enable.notification_iq(&account.to_string(), &id, summary))
        .await;
}

/// True when a message to `account` is news that should wake its user: a body or an
/// encrypted payload, in a one-to-one chat or normal message, from someone else.
fn worth_notifying(account: &BareJid, message: &Element) -> bool {
    let from_self = message
        .get_attr("from")
        .and_then(|f| Jid::new(f).ok())
        .is_some_and(|from| from.to_bare() == *account);
    matches!(
        MessageType::of(message),
        MessageType::Chat | MessageType::Normal
    ) && has_content(message)
        && !from_self
}

/// True when one of the sessions that got a message is active: its user saw it.
fn seen_by(router: &Router, recipients: &[FullJid]) -> bool {
    recipients.iter().any(|jid| {
        router
            .sessions
            .get(jid)
            .is_some_and(|entry| entry.handle.status.is_active())
    })
}

impl Module for PushModule {
    fn name(&self) -> &'static str {
        "push"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        if !self.config.enabled {
            return;
        }
        registrar.iq(IqScope::Account, ns::PUSH, "enable", self.clone());
        registrar.iq(IqScope::Account, ns::PUSH, "disable", self.clone());
        for point in [
            HookPoint::MessageDelivered,
            HookPoint::MessageStored,
            HookPoint::MessageFromClient,
            HookPoint::SessionAvailable,
            HookPoint::IqToAccount,
        ] {
            registrar.hook(point, priority::HANDLER, self.clone());
        }
        registrar.account_feature(ns::PUSH);
    }
}

#[async_trait]
impl IqHandler<Router> for PushModule {
    async fn handle(&self, router: &Router, request: IqRequest) -> IqResult {
        if request.iq_type != IqType::Set {
            return Err(StanzaError::new(Condition::BadRequest));
        }
        if !request.from_owner() {
            return Err(StanzaError::new(Condition::Forbidden));
        }
        let command = PushCommand::parse(&request.payload)
            .map_err(|error| StanzaError::new(error.condition()).with_text(error.to_string()))?;
        match command {
            PushCommand::Enable(enable) => self.enable(router, &request, enable).await,
            PushCommand::Disable { jid, node } => {
                let account = request.to.to_bare();
                self.disable(router, &account, &jid, node.as_deref())
                    .await
                    .map_err(|error| {
                        warn!(%error, "push registration not removed");
                        StanzaError::new(Condition::InternalServerError)
                    })?;
                Ok(None)
            }
        }
    }
}

#[async_trait]
impl EventHook<Router> for PushModule {
    async fn on_event(&self, router: &Router, event: &mut Event<'_>) -> Flow {
        match event {
            Event::MessageDelivered {
                to,
                message,
                recipients,
            } => {
                if seen_by(router, recipients) {
                    self.pacing.seen(to);
                } else if worth_notifying(to, message) {
                    self.notify(router, to, message).await;
                }
                Flow::Continue
            }
            Event::MessageStored { to, message } => {
                if worth_notifying(to, message) {
                    self.notify(router, to, message).await;
                }
                Flow::Continue
            }
            Event::MessageFromClient { session, .. } => {
                if session.status.is_active() {
                    self.pacing.seen(&session.jid.to_bare());
                }
                Flow::Continue
            }
            Event::SessionAvailable { session } => {
                self.pacing.seen(&session.jid.to_bare());
                Flow::Continue
            }
            Event::IqToAccount { to, iq } => {
                if matches!(iq.get_attr("type"), Some("result" | "error")) {
                    self.answered(router, &to.to_bare(), iq).await
                } else {
                    Flow::Continue
                }
            }
            _ => Flow::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> BareJid {
        BareJid::new("alice@example.org").expect("jid")
    }

    fn message(xml: &str) -> Element {
        Element::parse(xml).expect("xml")
    }

    #[test]
    fn a_chat_with_a_body_or_omemo_from_someone_else_is_worth_notifying() {
        let body = message("<message xmlns='jabber:client' type='chat' from='bob@example.org/x'><body>hi</body></message>");
        assert!(worth_notifying(&alice(), &body));
        let omemo = message("<message xmlns='jabber:client' from='bob@example.org/x'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>");
        assert!(worth_notifying(&alice(), &omemo));
    }

    #[test]
    fn chat_states_own_messages_and_group_chat_do_not_notify() {
        let typing = message("<message xmlns='jabber:client' type='chat' from='bob@example.org/x'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>");
        assert!(!worth_notifying(&alice(), &typing));
        let own = message("<message xmlns='jabber:client' type='chat' from='alice@example.org/desk'><body>note</body></message>");
        assert!(!worth_notifying(&alice(), &own));
        let room = message("<message xmlns='jabber:client' type='groupchat' from='room@muc.example.org/bob'><body>hi</body></message>");
        assert!(!worth_notifying(&alice(), &room));
    }
}
