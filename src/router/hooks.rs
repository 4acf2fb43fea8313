//! The events the router hands to module hooks, and the hook contract.

use async_trait::async_trait;
use jid::{BareJid, FullJid, Jid};
use rempart_xep::element::Element;

use crate::router::sessions::SessionHandle;

/// Whether later hooks still run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Let the next hook (or the default behaviour) run.
    Continue,
    /// The event is fully handled.
    Stop,
}

/// Hook ordering: lower runs first.
pub mod priority {
    /// Checks and policy that may veto an event.
    pub const POLICY: i32 = 100;
    /// The module that normally handles the event.
    pub const HANDLER: i32 = 500;
    /// Last-resort handling (storage of undeliverable data).
    pub const FALLBACK: i32 = 900;
}

/// Which events a hook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookPoint {
    /// See [`Event::MessageFromClient`].
    MessageFromClient,
    /// See [`Event::MessageToAccount`].
    MessageToAccount,
    /// See [`Event::MessageDelivered`].
    MessageDelivered,
    /// See [`Event::MessageUndeliverable`].
    MessageUndeliverable,
    /// See [`Event::MessageStored`].
    MessageStored,
    /// See [`Event::PresenceFromClient`].
    PresenceFromClient,
    /// See [`Event::IqFromClient`].
    IqFromClient,
    /// See [`Event::IqToAccount`].
    IqToAccount,
    /// See [`Event::PresenceToAccount`].
    PresenceToAccount,
    /// See [`Event::PresenceFromAccount`].
    PresenceFromAccount,
    /// See [`Event::SessionAvailable`].
    SessionAvailable,
    /// See [`Event::SessionClosed`].
    SessionClosed,
    /// See [`Event::NotifyInterestsKnown`].
    NotifyInterestsKnown,
    /// See [`Event::SubscriptionApproved`].
    SubscriptionApproved,
    /// See [`Event::SubscriptionRevoked`].
    SubscriptionRevoked,
    /// See [`Event::ContactInterestsKnown`].
    ContactInterestsKnown,
    /// See [`Event::RemoteDomainDisconnected`].
    RemoteDomainDisconnected,
    /// See [`Event::PepItemPublished`].
    PepItemPublished,
    /// See [`Event::PepItemsRemoved`].
    PepItemsRemoved,
    /// See [`Event::VCardStored`].
    VCardStored,
    /// See [`Event::PrivateXmlStored`].
    PrivateXmlStored,
    /// See [`Event::PrivateXmlRead`].
    PrivateXmlRead,
}

/// Something that happened, handed to the hooks registered for it.
#[derive(Debug)]
pub enum Event<'a> {
    /// A local session sent a message (`from` already stamped), before delivery.
    MessageFromClient {
        /// The sending session.
        session: &'a SessionHandle,
        /// The message.
        message: &'a Element,
    },
    /// A message for a local account, from a local session, a module or another server,
    /// before delivery: a hook may stop it (blocking) or add to it (an archive's stanza-id).
    MessageToAccount {
        /// The recipient account.
        to: &'a BareJid,
        /// The message, which hooks may change.
        message: &'a mut Element,
    },
    /// A message for a local account was handed to some of its sessions (carbons and push
    /// hang on this).
    MessageDelivered {
        /// The recipient account.
        to: &'a BareJid,
        /// The message as delivered.
        message: &'a Element,
        /// The sessions that got it.
        recipients: &'a [FullJid],
    },
    /// A chat/normal message for a local account found no available resource.
    MessageUndeliverable {
        /// The recipient account.
        to: &'a BareJid,
        /// The message.
        message: &'a Element,
    },
    /// A message for a local account without an available resource was stored for later
    /// delivery (offline storage raises it; push notifications hang on it).
    MessageStored {
        /// The recipient account.
        to: &'a BareJid,
        /// The message as stored.
        message: &'a Element,
    },
    /// A local session sent a presence stanza (`from` already stamped), before it is
    /// handled: a hook may add to it (the XEP-0153 avatar hash).
    PresenceFromClient {
        /// The sending session.
        session: &'a SessionHandle,
        /// The presence, which hooks may change.
        presence: &'a mut Element,
    },
    /// A local session sent an IQ (`from` already stamped), before routing.
    IqFromClient {
        /// The sending session.
        session: &'a SessionHandle,
        /// The IQ.
        iq: &'a Element,
    },
    /// An IQ from someone else arrived for a local account (bare or full JID), before it is
    /// answered or delivered.
    IqToAccount {
        /// The addressed JID.
        to: &'a Jid,
        /// The IQ.
        iq: &'a Element,
    },
    /// A presence stanza arrived for a local account (bare or full JID).
    PresenceToAccount {
        /// The addressed JID.
        to: &'a Jid,
        /// The presence.
        presence: &'a Element,
    },
    /// A presence stanza from a local account (sent by its client, or by the server for it:
    /// broadcasts, probe answers, unavailable on disconnect) is about to be routed to someone
    /// else; `Stop` keeps it from leaving (blocking).
    PresenceFromAccount {
        /// The sender, a local account's bare or full JID.
        from: &'a Jid,
        /// The addressee, not of the sender's account.
        to: &'a Jid,
        /// The presence.
        presence: &'a Element,
    },
    /// A session sent its initial available presence.
    SessionAvailable {
        /// The session.
        session: &'a SessionHandle,
    },
    /// A session ended.
    SessionClosed {
        /// Its full JID.
        jid: &'a FullJid,
        /// Whether it was available (so contacts must be told it left).
        was_available: bool,
        /// Who got directed presence from it.
        directed: &'a [Jid],
    },
    /// The `+notify` interests of an available session became known (XEP-0115).
    NotifyInterestsKnown {
        /// The session.
        session: &'a SessionHandle,
    },
    /// A local user approved a contact's presence subscription.
    SubscriptionApproved {
        /// The local user.
        user: &'a BareJid,
        /// The contact now subscribed to the user's presence.
        contact: &'a BareJid,
    },
    /// A contact lost its subscription to a local user's presence (by either side, or by
    /// the removal of the roster item).
    SubscriptionRevoked {
        /// The local user.
        user: &'a BareJid,
        /// The contact no longer subscribed to the user's presence.
        contact: &'a BareJid,
    },
    /// The `+notify` interests of an available resource of a contact on another server,
    /// subscribed to a local account's presence, became known (XEP-0115, XEP-0163 §4.3).
    ContactInterestsKnown {
        /// The local account.
        owner: &'a BareJid,
        /// The contact's resource.
        contact: &'a FullJid,
    },
    /// The last inbound server stream on which a remote domain was proven ended: what it
    /// told us (presence, interests) is no longer current.
    RemoteDomainDisconnected {
        /// The remote domain.
        domain: &'a str,
    },
    /// An account's owner published an item to one of its PEP nodes (after it is stored,
    /// before the owner gets the result). Publishes made by modules raise no event, so a
    /// conversion never triggers itself.
    PepItemPublished {
        /// The account.
        owner: &'a BareJid,
        /// The node.
        node: &'a str,
        /// The item id.
        id: &'a str,
        /// The item's payload, if it has one.
        payload: Option<&'a Element>,
    },
    /// An account's owner retracted items of one of its PEP nodes, purged it or deleted it.
    PepItemsRemoved {
        /// The account.
        owner: &'a BareJid,
        /// The node.
        node: &'a str,
    },
    /// An account's owner stored its vCard (XEP-0054); writes by modules raise no event.
    VCardStored {
        /// The account.
        owner: &'a BareJid,
        /// The vCard as stored.
        vcard: &'a Element,
    },
    /// An account's owner stored an element in private XML storage (XEP-0049); writes by
    /// modules raise no event.
    PrivateXmlStored {
        /// The account.
        owner: &'a BareJid,
        /// The element as stored.
        data: &'a Element,
    },
    /// An account's owner asks for an element of its private XML storage: a hook may answer
    /// with a newer copy kept elsewhere (bookmarks in PEP).
    PrivateXmlRead {
        /// The account.
        owner: &'a BareJid,
        /// The element about to be returned (stored, or empty), which hooks may replace.
        data: &'a mut Element,
    },
}

impl Event<'_> {
    /// The hook point of this event.
    pub fn point(&self) -> HookPoint {
        match self {
            Event::MessageFromClient { .. } => HookPoint::MessageFromClient,
            Event::MessageToAccount { .. } => HookPoint::MessageToAccount,
            Event::MessageDelivered { .. } => HookPoint::MessageDelivered,
            Event::MessageUndeliverable { .. } => HookPoint::MessageUndeliverable,
            Event::MessageStored { .. } => HookPoint::MessageStored,
            Event::PresenceFromClient { .. } => HookPoint::PresenceFromClient,
            Event::IqFromClient { .. } => HookPoint::IqFromClient,
            Event::IqToAccount { .. } => HookPoint::IqToAccount,
            Event::PresenceToAccount { .. } => HookPoint::PresenceToAccount,
            Event::PresenceFromAccount { .. } => HookPoint::PresenceFromAccount,
            Event::SessionAvailable { .. } => HookPoint::SessionAvailable,
            Event::SessionClosed { .. } => HookPoint::SessionClosed,
            Event::NotifyInterestsKnown { .. } => HookPoint::NotifyInterestsKnown,
            Event::SubscriptionApproved { .. } => HookPoint::SubscriptionApproved,
            Event::SubscriptionRevoked { .. } => HookPoint::SubscriptionRevoked,
            Event::ContactInterestsKnown { .. } => HookPoint::ContactInterestsKnown,
            Event::RemoteDomainDisconnected { .. } => HookPoint::RemoteDomainDisconnected,
            Event::PepItemPublished { .. } => HookPoint::PepItemPublished,
            Event::PepItemsRemoved { .. } => HookPoint::PepItemsRemoved,
            Event::VCardStored { .. } => HookPoint::VCardStored,
            Event::PrivateXmlStored { .. } => HookPoint::PrivateXmlStored,
            Event::PrivateXmlRead { .. } => HookPoint::PrivateXmlRead,
        }
    }
}

/// A hook on events.
#[async_trait]
pub trait EventHook<R>: Send + Sync {
    /// Handles the event; `Stop` prevents later hooks and the default behaviour.
    async fn on_event(&self, router: &R, event: &mut Event<'_>) -> Flow;
}
