//! The router: checks and stamps `from`, classifies the destination, runs the hooks registered
//! for it and, by default, delivers per RFC 6121 §8.5. It holds senders, never sockets.

pub mod background;
pub mod extensions;
pub mod hooks;
pub mod inline;
pub mod iq;
mod queries;
pub mod registry;
mod remote;
mod sessions;

use std::sync::{Arc, OnceLock, Weak};

use jid::{BareJid, FullJid, Jid};
use rempart_xep::address::parse_address;
use rempart_xep::element::Element;
use rempart_xep::stanza::{
    error_reply, iq_payload, iq_result, is_error, Condition, IqType, MessageType, StanzaError,
    StanzaKind,
};
use rempart_xep::stream::{StreamError, StreamErrorCondition};
use tracing::{debug, warn};

pub use background::BackgroundTask;
pub use extensions::{SessionExtensions, SessionStatus};
pub use hooks::{priority, Event, EventHook, Flow, HookPoint};
pub use inline::BindInline;
pub use iq::{IqHandler, IqRequest, IqResult, IqScope};
pub use registry::{AccountItems, Implements};
pub use sessions::{
    stanza_cost, PresenceState, SessionCommand, SessionEntry, SessionHandle, SessionTable,
};

/// What modules register with this router, while they register.
pub type Registrar = registry::Registrar<Router>;
/// What modules registered with this router, frozen.
pub type Registry = registry::Registry<Router>;

use crate::accounts::Accounts;
use crate::config::Config;
use crate::s2s::S2s;
use crate::storage::Storage;

/// Where a stanza is going, as far as routing is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A domain served here.
    LocalHost(String),
    /// A service domain of a module (e.g. `pubsub.example.org`).
    LocalService(String),
    /// A bare JID on a domain served here.
    LocalBare(BareJid),
    /// A full JID on a domain served here.
    LocalFull(FullJid),
    /// Anything on another domain.
    Remote(Jid),
}

/// The routing core shared by every connection.
pub struct Router {
    /// The configuration the server started with.
    pub config: Arc<Config>,
    /// Storage for modules.
    pub storage: Storage,
    /// Account service.
    pub accounts: Accounts,
    /// Bound sessions.
    pub sessions: SessionTable,
    /// What the modules registered.
    pub registry: Registry,
    queries: queries::PendingQueries,
    s2s: Arc<S2s>,
    this: OnceLock<Weak<Router>>,
}

impl Router {
    /// A router over the given parts.
    pub fn new(
        config: Arc<Config>,
        storage: Storage,
        accounts: Accounts,
        registry: Registry,
        s2s: Arc<S2s>,
    ) -> Arc<Self> {
        let router = Arc::new(Router {
            config,
            storage,
            accounts,
            sessions: SessionTable::default(),
            registry,
            queries: queries::PendingQueries::default(),
            s2s,
            this: OnceLock::new(),
        });
        let _ = router.this.set(Arc::downgrade(&router));
        let local: Weak<dyn crate::s2s::local::LocalServer> = Arc::downgrade(&router) as _;
        router.s2s.serve_for(local);
        router
    }

    /// An owned handle on this router, for work that outlives the current stanza.
    pub fn handle(&self) -> Option<Arc<Router>> {
        self.this.get().and_then(Weak::upgrade)
    }

    /// Sends an IQ request from the server (`from`, a served domain) to a local or remote
    /// full JID and waits for its answer (`None` on timeout or when the session is gone).
    /// Never call it from the session actor or server stream that must deliver the answer:
    /// spawn a task.
    pub async fn query(&self, to: &FullJid, from: &str, payload: Element) -> Option<Element> {
        let (id, answer) = self.queries.register(to);
        let request = Element::new("iq", rempart_xep::ns::CLIENT)
            .attr("type", "get")
            .attr("id", id.clone())
            .attr("from", from)
            .attr("to", to.to_string())
            .child(payload);
        if !self.send_to(&Jid::from(to.clone()), request) {
            self.queries.forget(&id);
            return None;
        }
        let answer = tokio::time::timeout(queries::QUERY_TIMEOUT, answer).await;
        self.queries.forget(&id);
        answer.ok().and_then(Result::ok)
    }

    /// Classifies a JID.
    pub fn destination(&self, jid: &Jid) -> Destination {
        let domain = jid.domain().as_str();
        if !self.config.serves(domain) {
            if jid.node().is_none() && self.is_service_domain(domain) {
                return Destination::LocalService(domain.to_owned());
            }
            return Destination::Remote(jid.clone());
        }
        match (jid.node(), jid.try_as_full()) {
            (None, _) => Destination::LocalHost(domain.to_owned()),
            (Some(_), Ok(full)) => Destination::LocalFull(full.clone()),
            (Some(_), Err(bare)) => Destination::LocalBare(bare.clone()),
        }
    }

    /// Whether `domain` is a host served here or one of its services (`pubsub.<host>`).
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.config.serves(domain) || self.is_service_domain(domain)
    }

    /// True when `domain` is `<prefix>.<host>` for a module's service prefix and a host.
    pub fn is_service_domain(&self, domain: &str) -> bool {
        self.registry.service_prefixes.iter().any(|prefix| {
            domain
                .strip_prefix(prefix.as_str())
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|host| self.config.serves(host))
        })
    }

    /// The service domains of every host, for the server's disco#items.
    pub fn service_domains(&self) -> Vec<String> {
        let mut domains = Vec::new();
        for prefix in &self.registry.service_prefixes {
            for host in self.hosts() {
                domains.push(format!("{prefix}.{host}"));
            }
        }
        domains
    }

    /// Runs the hooks of an event until one stops it.
    pub async fn run_hooks(&self, mut event: Event<'_>) -> Flow {
        for hook in self.registry.hooks(event.point()) {
            if hook.on_event(self, &mut event).await == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// Handles a stanza sent by a bound local session. A stream error closes that session.
    pub async fn handle_from_client(
        &self,
        session: &SessionHandle,
        mut stanza: Element,
    ) -> Result<(), StreamError> {
        let Some(kind) = StanzaKind::of(&stanza) else {
            return Err(StreamError::with_text(
                StreamErrorCondition::UnsupportedStanzaType,
                format!("<{}/> is not a stanza", stanza.name()),
            ));
        };
        if let Some(from) = stanza.get_attr("from") {
            let claimed = Jid::new(from).map_err(|_| invalid_from())?;
            let own_full = Jid::from(session.jid.clone());
            let own_bare = Jid::from(session.jid.to_bare());
            if claimed != own_full && claimed != own_bare {
                return Err(invalid_from());
            }
        }
        stanza.set_attr("from", session.jid.to_string());
        debug!(kind = ?kind, id = stanza.get_attr("id"), "stanza from client");
        let to = match stanza.get_attr("to").map(parse_address) {
            None => None,
            Some(Ok(jid)) => Some(jid),
            Some(Err(_)) => {
                self.bounce(&stanza, Condition::JidMalformed);
                return Ok(());
            }
        };
        match kind {
            StanzaKind::Iq => {
                let event = Event::IqFromClient {
                    session,
                    iq: &stanza,
                };
                if self.run_hooks(event).await == Flow::Stop {
                    return Ok(());
                }
                self.handle_iq(stanza, to, Some(session)).await
            }
            StanzaKind::Message => {
                if self
                    .run_hooks(Event::MessageFromClient {
                        session,
                        message: &stanza,
                    })
                    .await
                    == Flow::Stop
                {
                    return Ok(());
                }
                let to = to.unwrap_or_else(|| Jid::from(session.jid.to_bare()));
                self.deliver_message(stanza, &to).await;
            }
            StanzaKind::Presence => {
                if self
                    .run_hooks(Event::PresenceFromClient {
                        session,
                        presence: &mut stanza,
                    })
                    .await
                    == Flow::Stop
                {
                    return Ok(());
                }
                if let Some(to) = to {
                    self.route_presence(stanza, &to).await;
                }
            }
        }
        Ok(())
    }

    /// Routes a stanza that did not come from a local client session (generated by the
    /// server or a module; later also received from other servers). `from` must be set.
    pub async fn route(&self, stanza: Element) {
        let Some(to) = stanza.get_attr("to").and_then(|t| Jid::new(t).ok()) else {
            debug!("dropping a stanza without a valid 'to'");
            return;
        };
        match StanzaKind::of(&stanza) {
            Some(StanzaKind::Message) => self.deliver_message(stanza, &to).await,
            Some(StanzaKind::Presence) => self.route_presence(stanza, &to).await,
            Some(StanzaKind::Iq) => self.handle_iq(stanza, Some(to), None).await,
            None => debug!("dropping a non-stanza element"),
        }
    }

    /// Sends an error reply for `stanza` back to its sender (never for errors).
    pub fn bounce(&self, stanza: &Element, condition: Condition) {
        self.bounce_with(stanza, StanzaError::new(condition));
    }

    /// Sends a specific error reply for `stanza` back to its sender.
    pub fn bounce_with(&self, stanza: &Element, error: StanzaError) {
        if is_error(stanza) || stanza.get_attr("type") == Some("result") {
            return;
        }
        // Headlines (pubsub notifications among them) expect no reply (RFC 6121 §5.2.2): a
        // failed one must not send its payload back to every session of the publisher.
        if stanza.name() == "message" && stanza.get_attr("type") == Some("headline") {
            debug!("headline not delivered; no error returned");
            return;
        }
        let reply = error_reply(stanza, &error);
        self.send_local(reply);
    }

    /// Hands a stanza for another domain to the server-to-server links.
    pub fn send_remote(&self, stanza: Element) {
        self.s2s.send(stanza);
    }

    /// The server-to-server service.
    pub fn s2s(&self) -> &Arc<S2s> {
        &self.s2s
    }

    /// Delivers a stanza to a local full JID if it is online; false otherwise.
    pub fn send_to_full(&self, jid: &FullJid, stanza: Element) -> bool {
        match self.sessions.get(jid) {
            Some(entry) => entry.handle.send(stanza),
            None => false,
        }
    }

    /// Delivers a server-generated stanza to its `to`: a local full JID's session, every
    /// session of a local bare JID, or the link to a remote server.
    pub fn send_local(&self, stanza: Element) {
        if let Some(to) = stanza.get_attr("to").and_then(|t| Jid::new(t).ok()) {
            self.send_to(&to, stanza);
        }
    }

    /// Like `send_local` with `to` already parsed; false when a local recipient is offline.
    pub fn send_to(&self, to: &Jid, stanza: Element) -> bool {
        if let Destination::Remote(_) = self.destination(to) {
            self.send_remote(stanza);
            return true;
        }
        match to.try_as_full() {
            Ok(full) => self.send_to_full(full, stanza),
            Err(bare) => {
                let sessions = self.sessions.of_account(bare);
                for entry in &sessions {
                    entry.handle.send(stanza.clone());
                }
                !sessions.is_empty()
            }
        }
    }

    async fn handle_iq(&self, stanza: Element, to: Option<Jid>, session: Option<&SessionHandle>) {
        let Some(iq_type) = IqType::of(&stanza) else {
            self.bounce_with(
                &stanza,
                StanzaError::new(Condition::BadRequest).with_text("missing or unknown type"),
            );
            return;
        };
        if stanza.get_attr("id").is_none() {
            self.bounce_with(
                &stanza,
                StanzaError::new(Condition::BadRequest).with_text("missing id"),
            );
            return;
        }
        let Some(from) = stanza.get_attr("from").and_then(|f| Jid::new(f).ok()) else {
            return;
        };
        let destination = match &to {
            Some(to) => self.destination(to),
            None => Destination::LocalBare(from.to_bare()),
        };
        if let (Some(to), Destination::LocalFull(_) | Destination::LocalBare(_)) =
            (&to, &destination)
        {
            if to.to_bare() != from.to_bare() {
                let event = Event::IqToAccount { to, iq: &stanza };
                if self.run_hooks(event).await == Flow::Stop {
                    return;
                }
            }
        }
        match destination {
            Destination::LocalFull(full) => {
                if !self.send_to_full(&full, stanza.clone()) && iq_type.is_request() {
                    self.bounce(&stanza, Condition::ServiceUnavailable);
                }
            }
            Destination::Remote(_) => self.send_remote(stanza),
            Destination::LocalHost(host) => {
                if !iq_type.is_request() {
                    self.queries.complete(stanza);
                } else {
                    let to = Jid::new(&host).unwrap_or_else(|_| from.clone());
                    self.answer_iq(IqScope::Server, stanza, from, to, iq_type)
                        .await;
                }
            }
            Destination::LocalService(domain) => {
                if iq_type.is_request() {
                    let to = Jid::new(&domain).unwrap_or_else(|_| from.clone());
                    self.answer_iq(IqScope::Service, stanza, from, to, iq_type)
                        .await;
                }
            }
            Destination::LocalBare(bare) => {
                if iq_type.is_request() {
                    let addressed_self = session.is_some_and(|s| s.jid.to_bare() == bare);
                    if !addressed_self && !self.account_exists(&bare).await {
                        self.bounce(&stanza, Condition::ServiceUnavailable);
                        return;
                    }
                    self.answer_iq(IqScope::Account, stanza, from, Jid::from(bare), iq_type)
                        .await;
                }
            }
        }
    }

    async fn answer_iq(
        &self,
        scope: IqScope,
        stanza: Element,
        from: Jid,
        to: Jid,
        iq_type: IqType,
    ) {
        let Some(payload) = iq_payload(&stanza).cloned() else {
            self.bounce_with(
                &stanza,
                StanzaError::new(Condition::BadRequest)
                    .with_text("an IQ needs exactly one payload"),
            );
            return;
        };
        let Some(handler) = self.registry.iq_handler(scope, &payload) else {
            self.bounce(&stanza, Condition::ServiceUnavailable);
            return;
        };
        let mut reply_to = stanza.clone();
        reply_to.set_attr("to", to.to_string());
        let request = IqRequest {
            from,
            to,
            iq_type,
            stanza,
            payload,
        };
        match handler.handle(self, request).await {
            Ok(result) => self.send_local(iq_result(&reply_to, result)),
            Err(error) => self.bounce_with(&reply_to, error),
        }
    }

    /// True when the bare JID is an existing local account (storage errors count as no).
    pub async fn account_exists(&self, bare: &BareJid) -> bool {
        match self.accounts.exists(bare).await {
            Ok(exists) => exists,
            Err(error) => {
                warn!(%error, "account lookup failed");
                false
            }
        }
    }

    /// RFC 6121 §8.5 message delivery.
    pub async fn deliver_message(&self, mut message: Element, to: &Jid) {
        let message_type = MessageType::of(&message);
        match self.destination(to) {
            Destination::Remote(_) => self.send_remote(message),
            Destination::LocalHost(_) | Destination::LocalService(_) => {
                self.bounce(&message, Condition::ServiceUnavailable)
            }
            Destination::LocalFull(full) => {
                let bare = full.to_bare();
                let mut screened = false;
                if let Some(entry) = self.sessions.get(&full) {
                    if self.to_account(&bare, &mut message).await == Flow::Stop {
                        return;
                    }
                    if entry.handle.send(message.clone()) {
                        self.delivered(&bare, &message, &[full]).await;
                        return;
                    }
                    screened = true;
                }
                match message_type {
                    MessageType::Chat | MessageType::Normal | MessageType::Headline => {
                        self.deliver_to_bare(message, &bare, message_type, screened)
                            .await
                    }
                    MessageType::Groupchat => self.bounce(&message, Condition::ServiceUnavailable),
                    MessageType::Error => {}
                }
            }
            Destination::LocalBare(bare) => {
                self.deliver_to_bare(message, &bare, message_type, false)
                    .await
            }
        }
    }

    /// Runs the hooks for a message about to reach a local account.
    async fn to_account(&self, to: &BareJid, message: &mut Element) -> Flow {
        self.run_hooks(Event::MessageToAccount { to, message })
            .await
    }

    /// Runs the hooks for a message handed to sessions of a local account.
    async fn delivered(&self, to: &BareJid, message: &Element, recipients: &[FullJid]) {
        self.run_hooks(Event::MessageDelivered {
            to,
            message,
            recipients,
        })
        .await;
    }

    /// Delivers to the account's available sessions per RFC 6121 §8.5.2; `screened` when
    /// the hooks for a message to the account already ran on it.
    async fn deliver_to_bare(
        &self,
        mut message: Element,
        bare: &BareJid,
        message_type: MessageType,
        screened: bool,
    ) {
        let sessions = self.sessions.of_account(bare);
        // An account with a session exists: only look in storage when it has none.
        if sessions.is_empty() && !self.account_exists(bare).await {
            if matches!(message_type, MessageType::Chat | MessageType::Normal) {
                self.bounce(&message, Condition::ServiceUnavailable);
            }
            return;
        }
        if message_type == MessageType::Groupchat {
            self.bounce(&message, Condition::ServiceUnavailable);
            return;
        }
        if !screened && self.to_account(bare, &mut message).await == Flow::Stop {
            return;
        }
        let available: Vec<SessionEntry> = sessions
            .into_iter()
            .filter(|e| e.presence.available.is_some() && e.presence.priority >= 0)
            .collect();
        let recipients = match message_type {
            MessageType::Chat | MessageType::Normal => {
                let top = available.iter().map(|e| e.presence.priority).max();
                let targets = available
                    .iter()
                    .filter(|e| Some(e.presence.priority) == top);
                send_to_each(targets, &message)
            }
            MessageType::Headline => send_to_each(available.iter(), &message),
            MessageType::Groupchat | MessageType::Error => return,
        };
        if !recipients.is_empty() {
            self.delivered(bare, &message, &recipients).await;
            return;
        }
        if message_type == MessageType::Headline {
            return;
        }
        let flow = self
            .run_hooks(Event::MessageUndeliverable {
                to: bare,
                message: &message,
            })
            .await;
        if flow == Flow::Continue {
            self.bounce(&message, Condition::ServiceUnavailable);
        }
    }

    /// Routes a presence stanza to its addressee.
    pub async fn route_presence(&self, presence: Element, to: &Jid) {
        if let Some(from) = self.local_account_sender(&presence, to) {
            let event = Event::PresenceFromAccount {
                from: &from,
                to,
                presence: &presence,
            };
            if self.run_hooks(event).await == Flow::Stop {
                return;
            }
        }
        match self.destination(to) {
            Destination::Remote(_) => self.send_remote(presence),
            Destination::LocalHost(_) | Destination::LocalService(_) => {}
            Destination::LocalBare(_) | Destination::LocalFull(_) => {
                if self
                    .run_hooks(Event::PresenceToAccount {
                        to,
                        presence: &presence,
                    })
                    .await
                    == Flow::Stop
                {
                    return;
                }
                self.deliver_presence_default(presence, to);
            }
        }
    }

    /// The sender of `stanza` when it is a local account writing outside itself.
    fn local_account_sender(&self, stanza: &Element, to: &Jid) -> Option<Jid> {
        let from = Jid::new(stanza.get_attr("from")?).ok()?;
        let local_account = from.node().is_some() && self.config.serves(from.domain().as_str());
        (local_account && from.to_bare() != to.to_bare()).then_some(from)
    }

    /// Default presence delivery: a full JID gets it if online, a bare JID's available
    /// resources all get it.
    pub fn deliver_presence_default(&self, presence: Element, to: &Jid) {
        match to.try_as_full() {
            Ok(full) => {
                self.send_to_full(full, presence);
            }
            Err(bare) => {
                for entry in self.sessions.of_account(bare) {
                    if entry.presence.available.is_some() {
                        entry.handle.send(presence.clone());
                    }
                }
            }
        }
    }

    /// Registers a bound session; an older session with the same full JID gets `conflict`.
    /// The session's inbox gets the configured byte limit here, before anything can reach it.
    pub fn register_session(&self, handle: SessionHandle) {
        handle.limit_queued_bytes(self.config.limits.session_queue_bytes);
        if let Some(replaced) = self.sessions.insert(handle) {
            replaced.close(StreamError::with_text(
                StreamErrorCondition::Conflict,
                "replaced by a new connection",
            ));
        }
    }

    /// Unregisters a session and runs the hooks for its end.
    pub async fn unregister_session(&self, handle: &SessionHandle) {
        if let Some(state) = self.sessions.remove(handle) {
            self.run_hooks(Event::SessionClosed {
                jid: &handle.jid,
                was_available: state.available.is_some(),
                directed: &state.directed,
            })
            .await;
        }
    }

    /// Unregisters a session that is only put aside (saved at shutdown, to be restored):
    /// contacts are not told it left. Returns its presence state.
    pub fn set_aside_session(&self, handle: &SessionHandle) -> Option<PresenceState> {
        self.sessions.remove(handle)
    }

    /// The hosts served, for disco items and checks.
    pub fn hosts(&self) -> &[String] {
        &self.config.server.hosts
    }
}

/// Sends a copy to every session; returns those that accepted it.
fn send_to_each<'a>(
    sessions: impl Iterator<Item = &'a SessionEntry>,
    stanza: &Element,
) -> Vec<FullJid> {
    sessions
        .filter(|session| session.handle.send(stanza.clone()))
        .map(|session| session.handle.jid.clone())
        .collect()
}

fn invalid_from() -> StreamError {
    StreamError::with_text(
        StreamErrorCondition::InvalidFrom,
        "the 'from' does not match the authenticated address",
    )
}
