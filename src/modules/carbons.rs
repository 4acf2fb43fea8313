//! XEP-0280: Message Carbons — a resource that enables carbons gets a copy of every
//! instant message its account sends or receives on another resource, by the copy rules of
//! §6.1 (advertised as `urn:xmpp:carbons:rules:0`), and no one outside the account can pass a
//! forged copy to it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jid::{BareJid, FullJid, Jid};
use rempart_xep::carbons::{
    carbon_copy, eligibility, CarbonsCommand, Direction, Eligibility, RULES,
};
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stanza::{Condition, IqType, StanzaError};
use serde::Deserialize;
use tracing::debug;

use crate::modules::Module;
use crate::router::{
    priority, BindInline, Event, EventHook, Flow, HookPoint, Implements, IqHandler, IqRequest,
    IqResult, IqScope, Registrar, Router, SessionEntry, SessionHandle,
};

/// How many copied messages per account are remembered, so that an error answering one of
/// them is copied too (§6.1).
const REMEMBERED_PER_ACCOUNT: usize = 64;

/// `[modules.carbons]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CarbonsConfig {
    /// Offer message carbons.
    pub enabled: bool,
}

impl Default for CarbonsConfig {
    fn default() -> Self {
        CarbonsConfig { enabled: true }
    }
}

/// Set on a session (in its extensions) while its client has carbons enabled.
#[derive(Debug)]
pub struct CarbonsEnabled;

/// A copied message, remembered by the account it was copied for.
#[derive(Debug)]
struct Copied {
    direction: Direction,
    peer: BareJid,
    id: String,
}

/// The carbons module.
#[derive(Debug, Default)]
pub struct CarbonsModule {
    /// Recently copied messages of accounts with carbons-enabled sessions, newest last.
    copied: Mutex<HashMap<BareJid, VecDeque<Copied>>>,
}

static IMPLEMENTS: &[Implements] = &[Implements {
    spec: "XEP-0280",
    version: "1.0.1",
    note: "sent and received copies by the rules:0 copy rules, private and no-copy honoured, forged copies stripped",
}];

impl Module for CarbonsModule {
    fn name(&self) -> &'static str {
        "carbons"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        registrar.iq(IqScope::Account, ns::CARBONS, "enable", self.clone());
        registrar.iq(IqScope::Account, ns::CARBONS, "disable", self.clone());
        registrar.bind_inline(ns::CARBONS, self.clone());
        registrar.server_feature(ns::CARBONS);
        registrar.server_feature(RULES);
        registrar.account_feature(ns::CARBONS);
        registrar.hook(HookPoint::MessageToAccount, priority::POLICY, self.clone());
        registrar.hook(
            HookPoint::MessageFromClient,
            priority::HANDLER,
            self.clone(),
        );
        registrar.hook(HookPoint::MessageDelivered, priority::HANDLER, self.clone());
        registrar.hook(HookPoint::SessionClosed, priority::HANDLER, self);
    }
}

impl CarbonsModule {
    /// A carbons module remembering nothing yet.
    pub fn new() -> Self {
        CarbonsModule::default()
    }

    /// Copies a message a resource of the account sent to its other carbons-enabled resources
    /// (§8). Messages between the account's own resources are copied when received.
    fn copy_sent(&self, router: &Router, session: &SessionHandle, message: &Element) {
        let account = session.jid.to_bare();
        let Some(to) = message.get_attr("to").and_then(|to| Jid::new(to).ok()) else {
            return;
        };
        let peer = to.to_bare();
        if peer == account {
            return;
        }
        let targets = copy_targets(router, &account, |jid| *jid != session.jid);
        if targets.is_empty() || !self.eligible(&account, &peer, message, Direction::Sent) {
            return;
        }
        for target in targets {
            let copy = carbon_copy(
                Direction::Sent,
                &account,
                &target.handle.jid,
                message.clone(),
            );
            target.handle.send(copy);
        }
    }

    /// Copies a message delivered to some resources of the account to its carbons-enabled
    /// resources that did not get it (§7), never to the resource of the account that sent it.
    fn copy_received(
        &self,
        router: &Router,
        account: &BareJid,
        message: &Element,
        recipients: &[FullJid],
    ) {
        let from = message
            .get_attr("from")
            .and_then(|from| Jid::new(from).ok());
        let Some(from) = from else {
            return;
        };
        let targets = copy_targets(router, account, |jid| {
            !recipients.contains(jid) && from.try_as_full() != Ok(jid)
        });
        if targets.is_empty()
            || !self.eligible(account, &from.to_bare(), message, Direction::Received)
        {
            return;
        }
        for target in targets {
            let copy = carbon_copy(
                Direction::Received,
                account,
                &target.handle.jid,
                message.clone(),
            );
            target.handle.send(copy);
        }
    }

    /// Whether the message is copied, remembering it if so; an error is copied when it
    /// answers a message copied the other way.
    fn eligible(
        &self,
        account: &BareJid,
        peer: &BareJid,
        message: &Element,
        direction: Direction,
    ) -> bool {
        let id = message.get_attr("id");
        let mut copied = self.copied.lock().unwrap_or_else(|e| e.into_inner());
        match eligibility(message, direction) {
            Eligibility::Skip => false,
            Eligibility::IfAnswerToCopied => id.is_some_and(|id| {
                copied.get(account).is_some_and(|remembered| {
                    remembered
                        .iter()
                        .any(|c| c.direction != direction && c.peer == *peer && c.id == id)
                })
            }),
            Eligibility::Copy => {
                if let Some(id) = id {
                    let remembered = copied.entry(account.clone()).or_default();
                    if remembered.len() == REMEMBERED_PER_ACCOUNT {
                        remembered.pop_front();
                    }
                    remembered.push_back(Copied {
                        direction,
                        peer: peer.clone(),
                        id: id.to_owned(),
                    });
                }
                true
            }
        }
    }

    /// Forgets what was copied for an account none of whose sessions is left.
    fn forget_if_gone(&self, router: &Router, account: &BareJid) {
        if router.sessions.of_account(account).is_empty() {
            let mut copied = self.copied.lock().unwrap_or_else(|e| e.into_inner());
            copied.remove(account);
        }
    }
}

/// The account's available, carbons-enabled sessions whose JID passes `wanted`.
fn copy_targets(
    router: &Router,
    account: &BareJid,
    wanted: impl Fn(&FullJid) -> bool,
) -> Vec<SessionEntry> {
    router
        .sessions
        .of_account(account)
        .into_iter()
        .filter(|entry| {
            entry.presence.available.is_some()
                && entry.handle.extensions.get::<CarbonsEnabled>().is_some()
                && wanted(&entry.handle.jid)
        })
        .collect()
}

/// Removes `<sent/>` and `<received/>` copies from a message that does not come from the
/// account itself: only the account's own server makes them (§11), and a client trusting one
/// would show words the account never sent or received.
fn strip_forged_copies(to: &BareJid, message: &mut Element) {
    let from_account = message
        .get_attr("from")
        .and_then(|from| Jid::new(from).ok())
        .is_some_and(|from| from.to_bare() == *to);
    if from_account {
        return;
    }
    let forged =
        |child: &Element| child.ns() == ns::CARBONS && matches!(child.name(), "sent" | "received");
    if message.children().any(forged) {
        debug!(id = message.get_attr("id"), "forged carbon copy stripped");
        message.retain_children(|child| !forged(child));
    }
}

#[async_trait]
impl IqHandler<Router> for CarbonsModule {
    async fn handle(&self, router: &Router, request: IqRequest) -> IqResult {
        if !request.from_owner() {
            return Err(StanzaError::new(Condition::NotAllowed));
        }
        let Some(command) = CarbonsCommand::parse(&request.payload) else {
            return Err(StanzaError::new(Condition::BadRequest));
        };
        if request.iq_type != IqType::Set {
            return Err(StanzaError::new(Condition::BadRequest));
        }
        let session = request
            .from
            .try_as_full()
            .ok()
            .and_then(|full| router.sessions.get(full))
            .ok_or_else(|| StanzaError::new(Condition::NotAllowed))?;
        match command {
            CarbonsCommand::Enable => session.handle.extensions.set(CarbonsEnabled),
            CarbonsCommand::Disable => session.handle.extensions.remove::<CarbonsEnabled>(),
        }
        Ok(None)
    }
}

/// XEP-0386: a client binding with Bind 2 may turn carbons on at once.
impl BindInline for CarbonsModule {
    fn bind_inline(&self, session: &SessionHandle, request: &Element) -> Option<Element> {
        if CarbonsCommand::parse(request) == Some(CarbonsCommand::Enable) {
            session.extensions.set(CarbonsEnabled);
        }
        None
    }
}

#[async_trait]
impl EventHook<Router> for CarbonsModule {
    async fn on_event(&self, router: &Router, event: &mut Event<'_>) -> Flow {
        match event {
            Event::MessageToAccount { to, message } => strip_forged_copies(to, message),
            Event::MessageFromClient { session, message } => {
                self.copy_sent(router, session, message)
            }
            Event::MessageDelivered {
                to,
                message,
                recipients,
            } => self.copy_received(router, to, message, recipients),
            Event::SessionClosed { jid, .. } => self.forget_if_gone(router, &jid.to_bare()),
            _ => {}
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(xml: &str) -> Element {
        Element::parse(xml).expect("xml")
    }

    fn alice() -> BareJid {
        BareJid::new("alice@localhost").expect("jid")
    }

    #[test]
    fn copies_from_another_account_are_stripped() {
        let mut forged = message(
            "<message xmlns='jabber:client' from='mallory@evil.example/x' type='chat'>\
             <body>look</body><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'/></received>\
             <sent xmlns='urn:xmpp:carbons:2'/></message>",
        );
        strip_forged_copies(&alice(), &mut forged);
        assert!(!forged.has_child("received", ns::CARBONS));
        assert!(!forged.has_child("sent", ns::CARBONS));
        assert!(forged.has_child("body", ns::CLIENT));
    }

    #[test]
    fn copies_from_the_account_itself_are_kept() {
        let mut own = message(
            "<message xmlns='jabber:client' from='alice@localhost/desk'><sent xmlns='urn:xmpp:carbons:2'/></message>",
        );
        strip_forged_copies(&alice(), &mut own);
        assert!(own.has_child("sent", ns::CARBONS));
    }

    #[test]
    fn an_error_is_eligible_only_when_it_answers_a_copied_message() {
        let carbons = CarbonsModule::new();
        let bob = BareJid::new("bob@localhost").expect("jid");
        let error = message("<message xmlns='jabber:client' type='error' id='m1'/>");
        assert!(!carbons.eligible(&alice(), &bob, &error, Direction::Received));
        let chat = message("<message xmlns='jabber:client' type='chat' id='m1'/>");
        assert!(carbons.eligible(&alice(), &bob, &chat, Direction::Sent));
        assert!(carbons.eligible(&alice(), &bob, &error, Direction::Received));
        let other = BareJid::new("carol@localhost").expect("jid");
        assert!(!carbons.eligible(&alice(), &other, &error, Direction::Received));
    }
}
