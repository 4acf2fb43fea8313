//! The module contract: each feature registers its IQ handlers, event hooks, disco features
//! and stream features as data; the router runs them.

pub mod caps;
pub mod catalogue;
pub mod disco;
pub mod offline;
pub mod pep;
pub mod ping;
pub mod presence;
pub mod private;
pub mod pubsub_service;
pub mod remote_interests;
pub mod roster;
pub mod time;
pub mod vcard;
pub mod version;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use jid::{BareJid, FullJid, Jid};
use rempart_xep::disco::{DiscoItem, Identity};
use rempart_xep::element::Element;
use rempart_xep::stanza::{IqType, StanzaError};
use serde::Deserialize;

use crate::router::{Router, SessionHandle};

/// A XEP (or RFC) a module implements, with the version implemented; feeds the README table.
#[derive(Debug, Clone, Copy)]
pub struct Implements {
    /// e.g. "XEP-0160" or "RFC 6121".
    pub spec: &'static str,
    /// The version of the specification implemented.
    pub version: &'static str,
    /// What is supported, in a few words.
    pub note: &'static str,
}

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
    /// See [`Event::MessageUndeliverable`].
    MessageUndeliverable,
    /// See [`Event::PresenceFromClient`].
    PresenceFromClient,
    /// See [`Event::PresenceToAccount`].
    PresenceToAccount,
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
    /// A chat/normal message for a local account found no available resource.
    MessageUndeliverable {
        /// The recipient account.
        to: &'a BareJid,
        /// The message.
        message: &'a Element,
    },
    /// A local session sent a presence stanza (`from` already stamped).
    PresenceFromClient {
        /// The sending session.
        session: &'a SessionHandle,
        /// The presence.
        presence: &'a Element,
    },
    /// A presence stanza arrived for a local account (bare or full JID).
    PresenceToAccount {
        /// The addressed JID.
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
}

impl Event<'_> {
    /// The hook point of this event.
    pub fn point(&self) -> HookPoint {
        match self {
            Event::MessageFromClient { .. } => HookPoint::MessageFromClient,
            Event::MessageUndeliverable { .. } => HookPoint::MessageUndeliverable,
            Event::PresenceFromClient { .. } => HookPoint::PresenceFromClient,
            Event::PresenceToAccount { .. } => HookPoint::PresenceToAccount,
            Event::SessionAvailable { .. } => HookPoint::SessionAvailable,
            Event::SessionClosed { .. } => HookPoint::SessionClosed,
            Event::NotifyInterestsKnown { .. } => HookPoint::NotifyInterestsKnown,
            Event::SubscriptionApproved { .. } => HookPoint::SubscriptionApproved,
            Event::SubscriptionRevoked { .. } => HookPoint::SubscriptionRevoked,
            Event::ContactInterestsKnown { .. } => HookPoint::ContactInterestsKnown,
            Event::RemoteDomainDisconnected { .. } => HookPoint::RemoteDomainDisconnected,
        }
    }
}

/// A hook on events.
#[async_trait]
pub trait EventHook: Send + Sync {
    /// Handles the event; `Stop` prevents later hooks and the default behaviour.
    async fn on_event(&self, router: &Router, event: &Event<'_>) -> Flow;
}

/// Who an IQ is addressed to, for handler lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IqScope {
    /// The server itself (`to` is a served domain).
    Server,
    /// An account (`to` is a local bare JID, or absent meaning the sender's own account).
    Account,
    /// A module's service domain (`to` is e.g. `pubsub.example.org`).
    Service,
}

/// An IQ request as handed to a handler, with addresses already checked.
#[derive(Debug, Clone)]
pub struct IqRequest {
    /// The sender.
    pub from: Jid,
    /// The addressee (a domain or a bare JID; the sender's own bare JID when `to` was absent).
    pub to: Jid,
    /// `get` or `set`.
    pub iq_type: IqType,
    /// The whole `<iq/>`.
    pub stanza: Element,
    /// The single payload child.
    pub payload: Element,
}

impl IqRequest {
    /// True when the sender is a resource of the addressed account.
    pub fn from_owner(&self) -> bool {
        self.from.to_bare() == self.to.to_bare()
    }
}

/// A handler's answer: a payload for the result, or a stanza error.
pub type IqResult = Result<Option<Element>, StanzaError>;

/// An IQ handler for one payload (namespace, element) in one scope.
#[async_trait]
pub trait IqHandler: Send + Sync {
    /// Answers the request.
    async fn handle(&self, router: &Router, request: IqRequest) -> IqResult;
}

/// Contributes items to an account's disco#items (XEP-0030), e.g. PEP nodes.
#[async_trait]
pub trait AccountItems: Send + Sync {
    /// The items `requester` may see on `account`.
    async fn items(&self, router: &Router, account: &BareJid, requester: &Jid) -> Vec<DiscoItem>;
}

/// Hooks of one event point with their priorities.
type PrioritizedHooks = Vec<(i32, Arc<dyn EventHook>)>;

/// What modules register, collected at start.
#[derive(Default)]
pub struct Registrar {
    iq_handlers: HashMap<(IqScope, String, String), Arc<dyn IqHandler>>,
    hooks: HashMap<HookPoint, PrioritizedHooks>,
    server_features: Vec<String>,
    account_features: Vec<String>,
    server_identities: Vec<Identity>,
    account_identities: Vec<Identity>,
    account_items: Vec<Arc<dyn AccountItems>>,
    stream_features: Vec<Element>,
    service_prefixes: Vec<String>,
}

impl Registrar {
    /// Handles IQs whose payload is `<name xmlns=ns>` addressed in `scope`.
    pub fn iq(&mut self, scope: IqScope, ns: &str, name: &str, handler: Arc<dyn IqHandler>) {
        self.iq_handlers
            .insert((scope, ns.to_owned(), name.to_owned()), handler);
    }

    /// Runs `hook` on every event of `point`, ordered by `priority`.
    pub fn hook(&mut self, point: HookPoint, priority: i32, hook: Arc<dyn EventHook>) {
        let hooks = self.hooks.entry(point).or_default();
        hooks.push((priority, hook));
        hooks.sort_by_key(|(p, _)| *p);
    }

    /// Advertises a feature in the server's disco#info.
    pub fn server_feature(&mut self, var: &str) {
        self.server_features.push(var.to_owned());
    }

    /// Advertises a feature in every account's disco#info.
    pub fn account_feature(&mut self, var: &str) {
        self.account_features.push(var.to_owned());
    }

    /// Adds an identity to the server's disco#info.
    pub fn server_identity(&mut self, identity: Identity) {
        self.server_identities.push(identity);
    }

    /// Adds an identity to every account's disco#info.
    pub fn account_identity(&mut self, identity: Identity) {
        self.account_identities.push(identity);
    }

    /// Adds a source of account disco#items.
    pub fn account_items(&mut self, provider: Arc<dyn AccountItems>) {
        self.account_items.push(provider);
    }

    /// Serves `<prefix>.<host>` for every host (IQs reach `IqScope::Service` handlers).
    pub fn service_prefix(&mut self, prefix: &str) {
        self.service_prefixes.push(prefix.to_owned());
    }

    /// Offers an element in the stream features after authentication.
    pub fn stream_feature(&mut self, feature: Element) {
        self.stream_features.push(feature);
    }
}

/// The registrations of all enabled modules, frozen.
pub struct Registry {
    iq_handlers: HashMap<(IqScope, String, String), Arc<dyn IqHandler>>,
    hooks: HashMap<HookPoint, Vec<Arc<dyn EventHook>>>,
    /// Features of the server's disco#info, sorted.
    pub server_features: Vec<String>,
    /// Features of each account's disco#info, sorted.
    pub account_features: Vec<String>,
    /// Identities of the server.
    pub server_identities: Vec<Identity>,
    /// Identities of every account.
    pub account_identities: Vec<Identity>,
    /// Sources of account disco#items.
    pub account_items: Vec<Arc<dyn AccountItems>>,
    /// Stream features offered after authentication.
    pub stream_features: Vec<Element>,
    /// Service subdomain prefixes (e.g. `pubsub`).
    pub service_prefixes: Vec<String>,
    /// What the enabled modules implement.
    pub implements: Vec<Implements>,
}

impl Registry {
    /// Freezes what the modules registered.
    pub fn build(modules: &[Arc<dyn Module>]) -> Registry {
        let mut registrar = Registrar::default();
        let mut implements = Vec::new();
        for module in modules {
            module.clone().register(&mut registrar);
            implements.extend_from_slice(module.implements());
        }
        let mut server_features = registrar.server_features;
        server_features.sort();
        server_features.dedup();
        let mut account_features = registrar.account_features;
        account_features.sort();
        account_features.dedup();
        Registry {
            iq_handlers: registrar.iq_handlers,
            hooks: registrar
                .hooks
                .into_iter()
                .map(|(point, hooks)| (point, hooks.into_iter().map(|(_, h)| h).collect()))
                .collect(),
            server_features,
            account_features,
            server_identities: registrar.server_identities,
            account_identities: registrar.account_identities,
            account_items: registrar.account_items,
            stream_features: registrar.stream_features,
            service_prefixes: registrar.service_prefixes,
            implements,
        }
    }

    /// The handler for a payload, if any.
    pub fn iq_handler(&self, scope: IqScope, payload: &Element) -> Option<Arc<dyn IqHandler>> {
        self.iq_handlers
            .get(&(scope, payload.ns().to_owned(), payload.name().to_owned()))
            .cloned()
    }

    /// The hooks of an event point, in order.
    pub fn hooks(&self, point: HookPoint) -> &[Arc<dyn EventHook>] {
        self.hooks.get(&point).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// A compiled-in feature of the server.
pub trait Module: Send + Sync {
    /// Short name, as used in the `[modules.<name>]` config section.
    fn name(&self) -> &'static str;
    /// The specifications it implements.
    fn implements(&self) -> &'static [Implements];
    /// Registers handlers, hooks and features.
    fn register(self: Arc<Self>, registrar: &mut Registrar);
}

/// `[modules]`: one section per configurable module.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModulesConfig {
    /// `[modules.offline]`
    pub offline: offline::OfflineConfig,
    /// `[modules.version]`
    pub version: version::VersionConfig,
    /// `[modules.pep]`
    pub pep: pep::PepConfig,
    /// `[modules.pubsub]`
    pub pubsub: pubsub_service::PubSubServiceConfig,
    /// `[modules.private]`
    pub private: private::PrivateConfig,
    /// `[modules.vcard]`
    pub vcard: vcard::VCardConfig,
    /// `[modules.caps]`
    pub caps: caps::CapsConfig,
}

/// Builds every module the configuration enables, dependencies first.
pub fn enabled_modules(
    router_config: &crate::config::Config,
    storage: &crate::storage::Storage,
) -> Vec<Arc<dyn Module>> {
    let config = &router_config.modules;
    let rosters = Arc::new(roster::RosterModule::new(
        router_config.limits.max_roster_items,
    ));
    let caps = Arc::new(caps::CapsModule::new(&config.caps));
    let mut modules: Vec<Arc<dyn Module>> = vec![
        rosters.clone(),
        Arc::new(presence::PresenceModule::new(
            rosters.clone(),
            presence::PendingLimits {
                max_requests: router_config.limits.max_pending_subscriptions,
                max_bytes: router_config.limits.max_pending_subscription_bytes,
            },
        )),
        Arc::new(disco::DiscoModule),
        caps.clone(),
        Arc::new(ping::PingModule),
        Arc::new(time::TimeModule),
        Arc::new(private::PrivateModule::new(config.private.clone())),
        Arc::new(vcard::VCardModule::new(config.vcard.clone())),
    ];
    if config.pep.enabled {
        let contacts = Arc::new(remote_interests::RemoteInterests::new(
            caps,
            rosters.clone(),
            remote_interests::RemoteLimits::of(&router_config.s2s),
        ));
        modules.push(contacts.clone());
        modules.push(Arc::new(pep::PepModule::new(
            &config.pep,
            storage.clone(),
            rosters.clone(),
            contacts,
        )));
    }
    if config.pubsub.enabled {
        modules.push(Arc::new(pubsub_service::PubSubServiceModule::new(
            &config.pubsub,
            storage.clone(),
        )));
    }
    if config.version.enabled {
        modules.push(Arc::new(version::VersionModule::new(
            config.version.clone(),
        )));
    }
    if config.offline.enabled {
        modules.push(Arc::new(offline::OfflineModule::new(
            config.offline.clone(),
            rosters,
        )));
    }
    modules
}
