//! RFC 6121 §3–4: presence subscriptions (the whole state machine, pre-approval included),
//! initial presence with probes, broadcasts, directed presence and unavailable on disconnect.

use std::sync::Arc;

use async_trait::async_trait;
use jid::{BareJid, FullJid, Jid};
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stanza::{Condition, StanzaError};
use tracing::warn;

use crate::modules::roster::{RosterEntry, RosterModule};
use crate::modules::Module;
use crate::router::{
    priority, Event, EventHook, Flow, HookPoint, Implements, Registrar, Router, SessionHandle,
};

/// XEP-0172: the nickname a contact may put in its subscription request.
const NICK: &str = "http://jabber.org/protocol/nick";

/// How many subscription requests may wait for an account's answer, and their total size.
#[derive(Debug, Clone, Copy)]
pub struct PendingLimits {
    /// Most requests waiting per account.
    pub max_requests: usize,
    /// Most bytes of stored requests per account.
    pub max_bytes: usize,
}

/// The presence module.
pub struct PresenceModule {
    rosters: Arc<RosterModule>,
    pending: PendingLimits,
}

static IMPLEMENTS: &[Implements] = &[Implements {
    spec: "RFC 6121",
    version: "2011",
    note: "presence subscriptions, probes, broadcast, directed presence",
}];

impl Module for PresenceModule {
    fn name(&self) -> &'static str {
        "presence"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        registrar.hook(
            HookPoint::PresenceFromClient,
            priority::HANDLER,
            self.clone(),
        );
        registrar.hook(
            HookPoint::PresenceToAccount,
            priority::HANDLER,
            self.clone(),
        );
        registrar.hook(HookPoint::SessionClosed, priority::HANDLER, self);
    }
}

fn presence(kind: Option<&str>, from: &str, to: &str) -> Element {
    Element::new("presence", ns::CLIENT)
        .attr_opt("type", kind)
        .attr("from", from)
        .attr("to", to)
}

/// A copy of `stanza` readdressed.
fn readdressed(stanza: &Element, from: &str, to: &str) -> Element {
    let mut copy = stanza.clone();
    copy.set_attr("from", from);
    copy.set_attr("to", to);
    copy
}

fn priority_of(presence: &Element) -> i8 {
    presence
        .child_text("priority", ns::CLIENT)
        .and_then(|p| p.trim().parse::<i16>().ok())
        .map(|p| p.clamp(i16::from(i8::MIN), i16::from(i8::MAX)) as i8)
        .unwrap_or(0)
}

/// The subscription request as stored and redelivered: the contact's address and, when it
/// gave them, its status text (RFC 6121 §3.1.2) and nickname (XEP-0172); nothing else of what
/// the contact sent is kept.
fn subscription_request(contact: &str, user: &str, received: &Element) -> Element {
    let mut request = presence(Some("subscribe"), contact, user);
    for (name, namespace) in [("status", ns::CLIENT), ("nick", NICK)] {
        if let Some(child) = received.get_child(name, namespace) {
            request.append_child(Element::new(name, namespace).text(child.text_content()));
        }
    }
    request
}

/// Requests waiting for an answer and the bytes they take, without `except`'s.
fn pending_usage(entries: &[(BareJid, RosterEntry)], except: &BareJid) -> (usize, usize) {
    entries
        .iter()
        .filter(|(contact, entry)| entry.pending_in && contact != except)
        .fold((0, 0), |(count, bytes), (_, entry)| {
            let size = entry.pending_in_request.as_ref().map_or(0, String::len);
            (count + 1, bytes + size)
        })
}

impl PresenceModule {
    /// A presence module over the roster module's state.
    pub fn new(rosters: Arc<RosterModule>, pending: PendingLimits) -> Self {
        PresenceModule { rosters, pending }
    }

    /// True when one more stored request of `size` bytes from `contact` fits the account's
    /// limits (a contact asking again only replaces its earlier request).
    async fn request_fits(
        &self,
        router: &Router,
        user: &BareJid,
        contact: &BareJid,
        size: usize,
    ) -> bool {
        let entries = self.entries(router, user).await;
        let (count, bytes) = pending_usage(&entries, contact);
        count < self.pending.max_requests && bytes.saturating_add(size) <= self.pending.max_bytes
    }

    async fn entries(&self, router: &Router, user: &BareJid) -> Vec<(BareJid, RosterEntry)> {
        match self.rosters.entries(router, user).await {
            Ok(entries) => entries,
            Err(error) => {
                warn!(%error, "roster read failed");
                Vec::new()
            }
        }
    }

    async fn entry(
        &self,
        router: &Router,
        user: &BareJid,
        contact: &BareJid,
    ) -> Option<RosterEntry> {
        match self.rosters.entry(router, user, contact).await {
            Ok(entry) => entry,
            Err(error) => {
                warn!(%error, "roster read failed");
                None
            }
        }
    }

    async fn save(
        &self,
        router: &Router,
        user: &BareJid,
        contact: &BareJid,
        before: Option<&RosterEntry>,
        after: &RosterEntry,
    ) -> bool {
        match self
            .rosters
            .save(router, user, contact, before, after)
            .await
        {
            Ok(()) => true,
            Err(error) => {
                warn!(%error, "roster write failed");
                false
            }
        }
    }

    /// Available/unavailable presence without `to`: update state and broadcast (§4.2, §4.5).
    async fn broadcast_from(&self, router: &Router, session: &SessionHandle, stanza: &Element) {
        let user = session.jid.to_bare();
        let from = session.jid.to_string();
        let available = stanza.get_attr("type").is_none();
        let mut was_available = false;
        let mut directed = Vec::new();
        router.sessions.update(&session.jid, |state| {
            was_available = state.available.is_some();
            if available {
                state.available = Some(std::sync::Arc::new(stanza.clone()));
                state.priority = priority_of(stanza);
            } else {
                state.available = None;
                directed = std::mem::take(&mut state.directed);
            }
        });
        if !available && !was_available {
            return;
        }
        let entries = self.entries(router, &user).await;
        for (contact, entry) in &entries {
            if entry.subscription.has_from() {
                router
                    .route(readdressed(stanza, &from, contact.as_str()))
                    .await;
            }
        }
        for other in router.sessions.of_account(&user) {
            if other.presence.available.is_some() || other.handle.id == session.id {
                other
                    .handle
                    .send(readdressed(stanza, &from, &other.handle.jid.to_string()));
            }
        }
        for target in directed {
            router
                .route(readdressed(stanza, &from, target.as_str()))
                .await;
        }
        if available && !was_available {
            self.initial_presence(router, session, &entries).await;
        }
    }

    /// §4.2.2: probes to contacts, presence of the user's other resources, pending
    /// subscription requests, then the modules interested in a newly available session.
    async fn initial_presence(
        &self,
        router: &Router,
        session: &SessionHandle,
        entries: &[(BareJid, RosterEntry)],
    ) {
        let user = session.jid.to_bare();
        let to_self = session.jid.to_string();
        for (contact, entry) in entries {
            if entry.subscription.has_to() {
                router
                    .route(presence(Some("probe"), user.as_str(), contact.as_str()))
                    .await;
            }
        }
        for other in router.sessions.of_account(&user) {
            if other.handle.id == session.id {
                continue;
            }
            if let Some(available) = &other.presence.available {
                session.send(readdressed(
                    available,
                    &other.handle.jid.to_string(),
                    &to_self,
                ));
            }
        }
        let requests: Vec<Element> = entries
            .iter()
            .filter(|(_, entry)| entry.pending_in)
            .map(|(contact, entry)| {
                let received = entry
                    .pending_in_request
                    .as_deref()
                    .and_then(|xml| Element::parse(xml).ok())
                    .unwrap_or_else(|| presence(Some("subscribe"), contact.as_str(), &to_self));
                subscription_request(contact.as_str(), &to_self, &received)
            })
            .collect();
        Self::spawn_request_delivery(session, requests);
        router.run_hooks(Event::SessionAvailable { session }).await;
    }

    /// Sends the pending subscription requests from a task of its own, waiting for room in
    /// the session's inbox: there may be hundreds, and the session's actor, busy with the
    /// presence that triggered this, is what empties that inbox.
    fn spawn_request_delivery(session: &SessionHandle, requests: Vec<Element>) {
        if requests.is_empty() {
            return;
        }
        let session = session.clone();
        tokio::spawn(async move {
            for request in requests {
                if !session.send_waiting(request).await {
                    return;
                }
            }
        });
    }

    /// Outbound subscription management (§3.1.2, §3.2.2, §3.3.2, §3.4).
    async fn outbound_subscription(
        &self,
        router: &Router,
        session: &SessionHandle,
        stanza: &Element,
        to: &Jid,
        kind: &str,
    ) {
        let user = session.jid.to_bare();
        let contact = to.to_bare();
        let before = self.entry(router, &user, &contact).await;
        let mut after = before.clone().unwrap_or_default();
        let outgoing = readdressed(stanza, user.as_str(), contact.as_str());
        match kind {
            "subscribe" => {
                after.in_roster = true;
                if !after.subscription.has_to() {
                    after.pending_out = true;
                }
                if self
                    .save(router, &user, &contact, before.as_ref(), &after)
                    .await
                {
                    router.route(outgoing).await;
                }
            }
            "subscribed" => {
                if after.pending_in {
                    after.pending_in = false;
                    after.pending_in_request = None;
                    after.subscription = after.subscription.with_from(true);
                    if self
                        .save(router, &user, &contact, before.as_ref(), &after)
                        .await
                    {
                        router.route(outgoing).await;
                        self.send_current_presence(router, &user, &contact).await;
                    }
                } else if !after.subscription.has_from() {
                    after.in_roster = true;
                    after.approved = true;
                    self.save(router, &user, &contact, before.as_ref(), &after)
                        .await;
                }
            }
            "unsubscribe" => {
                after.pending_out = false;
                after.subscription = after.subscription.with_to(false);
                if self
                    .save(router, &user, &contact, before.as_ref(), &after)
                    .await
                {
                    router.route(outgoing).await;
                }
            }
            "unsubscribed" => {
                let had_from = after.subscription.has_from();
                after.pending_in = false;
                after.pending_in_request = None;
                after.approved = false;
                after.subscription = after.subscription.with_from(false);
                if self
                    .save(router, &user, &contact, before.as_ref(), &after)
                    .await
                {
                    router.route(outgoing).await;
                    if had_from {
                        self.send_unavailable(router, &user, &contact).await;
                    }
                }
            }
            _ => {}
        }
    }

    /// Inbound subscription management for a local account (§3.1.3, §3.2.3, §3.3.3).
    async fn inbound_subscription(
        &self,
        router: &Router,
        user: &BareJid,
        stanza: &Element,
        kind: &str,
    ) {
        let Some(contact) = stanza
            .get_attr("from")
            .and_then(|f| Jid::new(f).ok())
            .map(|j| j.to_bare())
        else {
            return;
        };
        if !router.account_exists(user).await {
            if kind == "subscribe" {
                router
                    .route(presence(
                        Some("unsubscribed"),
                        user.as_str(),
                        contact.as_str(),
                    ))
                    .await;
            }
            return;
        }
        let before = self.entry(router, user, &contact).await;
        let mut after = before.clone().unwrap_or_default();
        let stamped = readdressed(stanza, contact.as_str(), user.as_str());
        match kind {
            "subscribe" => {
                if after.subscription.has_from() {
                    router
                        .route(presence(
                            Some("subscribed"),
                            user.as_str(),
                            contact.as_str(),
                        ))
                        .await;
                } else if after.approved {
                    after.approved = false;
                    after.subscription = after.subscription.with_from(true);
                    if self
                        .save(router, user, &contact, before.as_ref(), &after)
                        .await
                    {
                        router
                            .route(presence(
                                Some("subscribed"),
                                user.as_str(),
                                contact.as_str(),
                            ))
                            .await;
                        self.send_current_presence(router, user, &contact).await;
                    }
                } else {
                    let request =
                        subscription_request(contact.as_str(), user.as_str(), stanza).to_xml();
                    if !self
                        .request_fits(router, user, &contact, request.len())
                        .await
                    {
                        router.bounce_with(
                            stanza,
                            StanzaError::new(Condition::ResourceConstraint).with_text(
                                "too many subscription requests are waiting for this account",
                            ),
                        );
                        return;
                    }
                    after.pending_in = true;
                    after.pending_in_request = Some(request);
                    if self
                        .save(router, user, &contact, before.as_ref(), &after)
                        .await
                    {
                        self.deliver_to_interested(router, user, &stamped);
                    }
                }
            }
            "subscribed" if after.pending_out => {
                after.pending_out = false;
                after.subscription = after.subscription.with_to(true);
                if self
                    .save(router, user, &contact, before.as_ref(), &after)
                    .await
                {
                    self.deliver_to_interested(router, user, &stamped);
                }
            }
            "unsubscribe" if after.subscription.has_from() || after.pending_in => {
                after.pending_in = false;
                after.pending_in_request = None;
                after.subscription = after.subscription.with_from(false);
                if self
                    .save(router, user, &contact, before.as_ref(), &after)
                    .await
                {
                    self.deliver_to_interested(router, user, &stamped);
                }
            }
            "unsubscribed" if after.subscription.has_to() || after.pending_out => {
                after.pending_out = false;
                after.subscription = after.subscription.with_to(false);
                if self
                    .save(router, user, &contact, before.as_ref(), &after)
                    .await
                {
                    self.deliver_to_interested(router, user, &stamped);
                }
            }
            _ => {}
        }
    }

    /// §4.3.2: answers a probe with the user's current presence, if the prober may see it.
    async fn answer_probe(&self, router: &Router, user: &BareJid, stanza: &Element) {
        let Some(prober) = stanza.get_attr("from").and_then(|f| Jid::new(f).ok()) else {
            return;
        };
        let allowed = self
            .entry(router, user, &prober.to_bare())
            .await
            .is_some_and(|e| e.subscription.has_from());
        if !allowed {
            return;
        }
        let sessions = router.sessions.of_account(user);
        let mut any = false;
        for session in sessions {
            if let Some(available) = &session.presence.available {
                any = true;
                router
                    .route(readdressed(
                        available,
                        &session.handle.jid.to_string(),
                        prober.as_str(),
                    ))
                    .await;
            }
        }
        if !any {
            router
                .route(presence(
                    Some("unavailable"),
                    user.as_str(),
                    prober.as_str(),
                ))
                .await;
        }
    }

    /// A contact was just allowed to see the user's presence: send it, and let modules
    /// share what the contact may now read (PEP last items).
    async fn send_current_presence(&self, router: &Router, user: &BareJid, contact: &BareJid) {
        for session in router.sessions.of_account(user) {
            if let Some(available) = &session.presence.available {
                router
                    .route(readdressed(
                        available,
                        &session.handle.jid.to_string(),
                        contact.as_str(),
                    ))
                    .await;
            }
        }
        router
            .run_hooks(Event::SubscriptionApproved { user, contact })
            .await;
    }

    async fn send_unavailable(&self, router: &Router, user: &BareJid, contact: &BareJid) {
        for session in router.sessions.of_account(user) {
            if session.presence.available.is_some() {
                router
                    .route(presence(
                        Some("unavailable"),
                        &session.handle.jid.to_string(),
                        contact.as_str(),
                    ))
                    .await;
            }
        }
    }

    /// Subscription stanzas go to the user's interested resources: available ones that
    /// asked for the roster (RFC 6121 §1.4, §3.1.3).
    fn deliver_to_interested(&self, router: &Router, user: &BareJid, stanza: &Element) {
        for session in router.sessions.of_account(user) {
            if session.presence.available.is_some() && session.presence.interested {
                session.handle.send(readdressed(
                    stanza,
                    stanza.get_attr("from").unwrap_or_default(),
                    &session.handle.jid.to_string(),
                ));
            }
        }
    }

    async fn handle_outbound(&self, router: &Router, session: &SessionHandle, stanza: &Element) {
        let kind = stanza.get_attr("type");
        let to = stanza.get_attr("to").and_then(|t| Jid::new(t).ok());
        match (kind, to) {
            (None | Some("unavailable"), None) => {
                self.broadcast_from(router, session, stanza).await
            }
            (None | Some("unavailable"), Some(to)) => {
                let subscribed = self
                    .entry(router, &session.jid.to_bare(), &to.to_bare())
                    .await
                    .is_some_and(|e| e.subscription.has_from());
                let available = kind.is_none();
                router.sessions.update(&session.jid, |state| {
                    if state.available.is_none() {
                        return;
                    }
                    if available && !subscribed && !state.directed.contains(&to) {
                        state.directed.push(to.clone());
                    } else if !available {
                        state.directed.retain(|j| j != &to);
                    }
                });
                router.route_presence(stanza.clone(), &to).await;
            }
            (
                Some(kind @ ("subscribe" | "subscribed" | "unsubscribe" | "unsubscribed")),
                Some(to),
            ) => {
                self.outbound_subscription(router, session, stanza, &to, kind)
                    .await
            }
            (Some("probe"), Some(to)) => {
                let mut probe = stanza.clone();
                probe.set_attr("from", session.jid.to_bare().to_string());
                router.route_presence(probe, &to).await;
            }
            (Some("error"), Some(to)) => router.route_presence(stanza.clone(), &to).await,
            _ => {}
        }
    }

    async fn handle_inbound(&self, router: &Router, to: &Jid, stanza: &Element) -> Flow {
        let user = to.to_bare();
        match stanza.get_attr("type") {
            Some(kind @ ("subscribe" | "subscribed" | "unsubscribe" | "unsubscribed")) => {
                self.inbound_subscription(router, &user, stanza, kind).await;
                Flow::Stop
            }
            Some("probe") => {
                self.answer_probe(router, &user, stanza).await;
                Flow::Stop
            }
            _ => Flow::Continue,
        }
    }

    async fn session_closed(&self, router: &Router, jid: &FullJid, directed: &[Jid]) {
        let user = jid.to_bare();
        let from = jid.to_string();
        for target in directed {
            router
                .route(presence(Some("unavailable"), &from, target.as_str()))
                .await;
        }
        for (contact, entry) in self.entries(router, &user).await {
            if entry.subscription.has_from() {
                router
                    .route(presence(Some("unavailable"), &from, contact.as_str()))
                    .await;
            }
        }
        for other in router.sessions.of_account(&user) {
            if other.presence.available.is_some() {
                other.handle.send(presence(
                    Some("unavailable"),
                    &from,
                    &other.handle.jid.to_string(),
                ));
            }
        }
    }
}

#[async_trait]
impl EventHook<Router> for PresenceModule {
    async fn on_event(&self, router: &Router, event: &mut Event<'_>) -> Flow {
        match event {
            Event::PresenceFromClient { session, presence } => {
                self.handle_outbound(router, session, presence).await;
                Flow::Stop
            }
            Event::PresenceToAccount { to, presence } => {
                self.handle_inbound(router, to, presence).await
            }
            Event::SessionClosed {
                jid,
                was_available: true,
                directed,
            } => {
                self.session_closed(router, jid, directed).await;
                Flow::Continue
            }
            _ => Flow::Continue,
        }
    }
}
