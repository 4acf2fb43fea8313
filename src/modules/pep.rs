//! XEP-0163: Personal Eventing Protocol — a pubsub service on every account, served by the
//! one PubSub engine: auto-create on publish, publish-options preconditions, notifications to
//! the owner's and contacts' resources that asked for them (+notify), here or on other
//! servers, last item on presence.
//! OMEMO (XEP-0384), avatars (XEP-0084), OpenPGP keys (XEP-0373), bookmarks (XEP-0402) and
//! public/private storage (XEP-0222/0223) are all plain uses of it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use jid::{BareJid, FullJid, Jid};
use rempart_xep::data_form::DataForm;
use rempart_xep::delay::delay;
use rempart_xep::disco::{DiscoItem, Identity};
use rempart_xep::element::Element;
use rempart_xep::pubsub::{event_message, NS, NS_EVENT, NS_OWNER};
use rempart_xep::stanza::{Condition, IqType, StanzaError};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::modules::remote_interests::RemoteInterests;
use crate::modules::roster::RosterModule;
use crate::modules::Module;
use crate::pubsub::config::{NodeConfig, SendLastItem};
use crate::pubsub::fanout::Fanout;
use crate::pubsub::protocol::{
    items_event, submit_notifications, Request, ServicePolicy, FEATURES,
};
use crate::pubsub::{
    check_access, ItemRecord, NodeRecord, PubSub, PubSubError, PubSubLimits, Publication, Relation,
    ServiceId,
};
use crate::router::{
    priority, AccountItems, Event, EventHook, Flow, HookPoint, Implements, IqHandler, IqRequest,
    IqResult, IqScope, Registrar, Router, SessionHandle,
};

/// `[modules.pep]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PepConfig {
    /// Serve PEP on every account.
    pub enabled: bool,
    /// What `pubsub#max_items = max` means, and the most items any node keeps.
    pub max_items: usize,
    /// Most nodes per account.
    pub max_nodes: usize,
    /// Largest item payload in bytes.
    pub max_item_size: usize,
    /// Most bytes one account's PEP stores (node names, item ids and payloads).
    pub max_bytes_per_account: usize,
    /// Most subscriptions one node holds, all subscribers together.
    pub max_subscriptions_per_node: usize,
    /// Most subscriptions one bare JID (all its resources) holds on one node.
    pub max_subscriptions_per_jid: usize,
    /// Tasks sending notifications, outside the publishers' sessions.
    pub fanout_workers: usize,
    /// Publishes waiting for each of those tasks; a publisher waits when its worker is full.
    pub fanout_queue: usize,
}

impl Default for PepConfig {
    fn default() -> Self {
        PepConfig {
            enabled: true,
            max_items: 256,
            max_nodes: 256,
            max_item_size: 128 * 1024,
            max_bytes_per_account: 1024 * 1024,
            max_subscriptions_per_node: 1000,
            max_subscriptions_per_jid: 10,
            fanout_workers: 4,
            fanout_queue: 256,
        }
    }
}

/// What PEP adds to the features every pubsub service has (XEP-0163 §4).
const PEP_FEATURES: &[&str] = &[
    "http://jabber.org/protocol/pubsub#access-roster",
    "http://jabber.org/protocol/pubsub#auto-subscribe",
    "http://jabber.org/protocol/pubsub#filtered-notifications",
    "http://jabber.org/protocol/pubsub#last-published",
    "http://jabber.org/protocol/pubsub#presence-notifications",
];

/// The PEP module.
pub struct PepModule {
    engine: Arc<PubSub>,
    fanout: Fanout,
    rosters: Arc<RosterModule>,
    remote: Arc<RemoteInterests>,
}

static IMPLEMENTS: &[Implements] = &[
    Implements {
        spec: "XEP-0060",
        version: "1.30.0",
        note: "publish-options, node config, retract, purge, delete, items with RSM, subscriptions, affiliations, access models",
    },
    Implements {
        spec: "XEP-0163",
        version: "1.2.2",
        note: "PEP on every account with +notify filtering and last-item delivery",
    },
    Implements {
        spec: "XEP-0384",
        version: "0.9.1",
        note: "OMEMO device lists and bundles (both namespaces) work with zero configuration",
    },
    Implements {
        spec: "XEP-0059",
        version: "1.0",
        note: "result set management on pubsub items",
    },
];

impl Module for PepModule {
    fn name(&self) -> &'static str {
        "pep"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        registrar.iq(IqScope::Account, NS, "pubsub", self.clone());
        registrar.iq(IqScope::Account, NS_OWNER, "pubsub", self.clone());
        registrar.account_identity(Identity::new("pubsub", "pep"));
        for feature in FEATURES.iter().chain(PEP_FEATURES) {
            registrar.account_feature(feature);
        }
        registrar.hook(
            HookPoint::NotifyInterestsKnown,
            priority::HANDLER,
            self.clone(),
        );
        registrar.hook(
            HookPoint::SubscriptionApproved,
            priority::HANDLER,
            self.clone(),
        );
        registrar.hook(HookPoint::SessionAvailable, priority::HANDLER, self.clone());
        registrar.hook(
            HookPoint::ContactInterestsKnown,
            priority::HANDLER,
            self.clone(),
        );
        registrar.account_items(self);
    }
}

fn service_of(account: &BareJid) -> ServiceId {
    ServiceId {
        host: account.domain().to_string(),
        owner: account.node().map(|n| n.to_string()).unwrap_or_default(),
    }
}

/// The PEP service of one account.
#[derive(Clone)]
struct AccountService {
    id: ServiceId,
    owner: BareJid,
    address: String,
    rosters: Arc<RosterModule>,
    remote: Arc<RemoteInterests>,
}

impl AccountService {
    fn new(owner: &BareJid, rosters: Arc<RosterModule>, remote: Arc<RemoteInterests>) -> Self {
        AccountService {
            id: service_of(owner),
            owner: owner.clone(),
            address: owner.to_string(),
            rosters,
            remote,
        }
    }

    /// The owner's and contacts' available resources that asked for `node`.
    fn interested(router: &Router, account: &BareJid, node: &str, targets: &mut Vec<FullJid>) {
        for session in router.sessions.of_account(account) {
            if session.presence.available.is_some()
                && session.presence.notify.contains(node)
                && !targets.contains(&session.handle.jid)
            {
                targets.push(session.handle.jid.clone());
            }
        }
    }
}

#[async_trait]
impl ServicePolicy for AccountService {
    fn id(&self) -> &ServiceId {
        &self.id
    }

    fn address(&self) -> &str {
        &self.address
    }

    async fn relation(
        &self,
        router: &Router,
        requester: &BareJid,
        _node: Option<&NodeRecord>,
    ) -> Relation {
        if *requester == self.owner {
            return Relation {
                is_owner: true,
                ..Relation::default()
            };
        }
        match self.rosters.entry(router, &self.owner, requester).await {
            Ok(Some(entry)) => Relation {
                is_owner: false,
                presence_subscribed: entry.subscription.has_from(),
                groups: entry.groups,
            },
            _ => Relation::default(),
        }
    }

    fn may_publish(
        &self,
        _router: &Router,
        requester: &BareJid,
        _node: Option<&NodeRecord>,
    ) -> bool {
        *requester == self.owner
    }

    fn is_owner(&self, requester: &BareJid, _node: Option<&NodeRecord>) -> bool {
        *requester == self.owner
    }

    fn creator(&self, _requester: &BareJid) -> Option<String> {
        None
    }

    fn shared(&self) -> Arc<dyn ServicePolicy> {
        Arc::new(self.clone())
    }

    async fn implicit_recipients(
        &self,
        router: &Router,
        node: &str,
        record: &NodeRecord,
    ) -> Vec<FullJid> {
        let mut targets = Vec::new();
        Self::interested(router, &self.owner, node, &mut targets);
        let contacts = self
            .rosters
            .entries(router, &self.owner)
            .await
            .unwrap_or_default();
        // Remote resources grouped by contact once, not scanned per roster entry.
        let mut remote: HashMap<BareJid, Vec<FullJid>> = HashMap::new();
        for resource in self.remote.interested(&self.owner, node) {
            remote.entry(resource.to_bare()).or_default().push(resource);
        }
        for (contact, entry) in contacts {
            if !entry.subscription.has_from() {
                continue;
            }
            let relation = Relation {
                is_owner: false,
                presence_subscribed: true,
                groups: entry.groups.clone(),
            };
            if check_access(record, contact.as_str(), &relation).is_err() {
                continue;
            }
            if router.config.serves(contact.domain().as_str()) {
                Self::interested(router, &contact, node, &mut targets);
            } else {
                targets.extend(remote.remove(&contact).unwrap_or_default());
            }
        }
        targets
    }
}

impl PepModule {
    /// The module with its limits, reading relationships from the roster module and
    /// remote contacts' interests from their tracker.
    pub fn new(
        config: &PepConfig,
        storage: crate::storage::Storage,
        rosters: Arc<RosterModule>,
        remote: Arc<RemoteInterests>,
    ) -> Self {
        let limits = PubSubLimits {
            max_items: config.max_items,
            max_nodes: config.max_nodes,
            max_item_size: config.max_item_size,
            max_subscriptions_per_node: config.max_subscriptions_per_node,
            max_subscriptions_per_jid: config.max_subscriptions_per_jid,
            max_bytes: Some(config.max_bytes_per_account),
        };
        PepModule {
            engine: Arc::new(PubSub::new(storage, limits, NodeConfig::pep_default())),
            fanout: Fanout::new(config.fanout_workers, config.fanout_queue),
            rosters,
            remote,
        }
    }

    /// Publishes `payload` as item `id` of `owner`'s `node` on the owner's behalf, notifying
    /// as a client's publish does. `creation` configures the node when this publish creates
    /// it; an existing node keeps the configuration its owner chose. Raises no hook event,
    /// so that a conversion never calls itself back.
    pub async fn publish_for_owner(
        &self,
        router: &Router,
        owner: &BareJid,
        node: &str,
        id: &str,
        payload: &Element,
        creation: &DataForm,
    ) -> Result<(), PubSubError> {
        let service = self.service(owner);
        let exists = self.engine.node(&service.id, node).await?.is_some();
        let published = self
            .engine
            .publish(
                &service.id,
                node,
                Publication {
                    item_id: Some(id.to_owned()),
                    payload: Some(payload),
                    publisher: owner.as_str(),
                    options: (!exists).then_some(creation),
                    creator: None,
                },
            )
            .await?;
        let event = items_event(
            node,
            std::slice::from_ref(&published.item),
            published.node.config.deliver_payloads,
        );
        submit_notifications(router, &self.fanout, &service, node, &published.node, event).await;
        Ok(())
    }

    /// Retracts items of `owner`'s `node` on the owner's behalf and notifies the retraction
    /// (clients leave a room whose bookmark is retracted); raises no hook event.
    pub async fn retract_for_owner(
        &self,
        router: &Router,
        owner: &BareJid,
        node: &str,
        ids: &[String],
    ) -> Result<(), PubSubError> {
        let service = self.service(owner);
        let Some(record) = self.engine.node(&service.id, node).await? else {
            return Ok(());
        };
        let mut event = Element::new("items", NS_EVENT).attr("node", node);
        for id in ids {
            if self.engine.retract(&service.id, node, id).await? {
                event.append_child(Element::new("retract", NS_EVENT).attr("id", id.clone()));
            }
        }
        if event.children().next().is_some() {
            submit_notifications(router, &self.fanout, &service, node, &record, event).await;
        }
        Ok(())
    }

    /// One of `owner`'s nodes, if it exists.
    pub async fn node_of(
        &self,
        owner: &BareJid,
        node: &str,
    ) -> Result<Option<NodeRecord>, PubSubError> {
        self.engine.node(&service_of(owner), node).await
    }

    /// The items of one of `owner`'s nodes, oldest first; none when the node does not exist.
    pub async fn items_of(
        &self,
        owner: &BareJid,
        node: &str,
    ) -> Result<Vec<ItemRecord>, PubSubError> {
        self.engine.items(&service_of(owner), node).await
    }

    fn service(&self, owner: &BareJid) -> AccountService {
        AccountService::new(owner, self.rosters.clone(), self.remote.clone())
    }

    fn last_items(&self) -> LastItems {
        LastItems {
            engine: self.engine.clone(),
            rosters: self.rosters.clone(),
            remote: self.remote.clone(),
        }
    }
}

/// Where last items go.
enum Recipient {
    /// A local session: its inbox may be full for a while.
    Session(SessionHandle),
    /// A resource on another server: the link to it queues.
    Remote(FullJid),
}

impl Recipient {
    fn jid(&self) -> &FullJid {
        match self {
            Recipient::Session(handle) => &handle.jid,
            Recipient::Remote(jid) => jid,
        }
    }

    /// False when the recipient is gone.
    async fn deliver(&self, router: &Router, message: Element) -> bool {
        match self {
            Recipient::Session(handle) => handle.send_waiting(message).await,
            Recipient::Remote(_) => {
                router.send_remote(message);
                true
            }
        }
    }
}

/// Sends last published items (XEP-0163 §4.3.3) from a task of its own, waiting for room in
/// the session's inbox: there may be more than it holds, and its actor must keep emptying it.
#[derive(Clone)]
struct LastItems {
    engine: Arc<PubSub>,
    rosters: Arc<RosterModule>,
    remote: Arc<RemoteInterests>,
}

impl LastItems {
    /// Sends the last item of every node `session` asked for, from its own account and from
    /// each local contact whose node it may read (XEP-0163 §6.2).
    async fn send_last_items(&self, router: &Router, session: &FullJid) {
        // Most sessions come online before their caps are known: nothing is wanted yet, and
        // the roster need not be read.
        let wants_items = router.sessions.get(session).is_some_and(|entry| {
            entry.presence.available.is_some() && !entry.presence.notify.is_empty()
        });
        if !wants_items {
            return;
        }
        let user = session.to_bare();
        let mut owners = vec![user.clone()];
        for (contact, roster_entry) in self
            .rosters
            .entries(router, &user)
            .await
            .unwrap_or_default()
        {
            if roster_entry.subscription.has_to() && router.config.serves(contact.domain().as_str())
            {
                owners.push(contact);
            }
        }
        for owner in owners {
            self.send_last_items_of(router, &owner, session).await;
        }
    }

    /// Sends `session` the last item of each of `owner`'s nodes it wants and may read.
    async fn send_last_items_of(&self, router: &Router, owner: &BareJid, session: &FullJid) {
        let Some(entry) = router.sessions.get(session) else {
            return;
        };
        if entry.presence.available.is_none() {
            return;
        }
        let recipient = Recipient::Session(entry.handle);
        self.send_last_items_to(router, owner, &recipient, &entry.presence.notify)
            .await;
    }

    /// Sends an available resource of `owner`'s contact on another server the last item of
    /// each of `owner`'s nodes it wants and may read.
    async fn send_last_items_to_contact(
        &self,
        router: &Router,
        owner: &BareJid,
        contact: &FullJid,
    ) {
        let Some(interests) = self.remote.interests(owner, contact) else {
            return;
        };
        let recipient = Recipient::Remote(contact.clone());
        self.send_last_items_to(router, owner, &recipient, &interests)
            .await;
    }

    /// Sends `recipient` the last item of each of `owner`'s nodes in `interests` it may read.
    async fn send_last_items_to(
        &self,
        router: &Router,
        owner: &BareJid,
        recipient: &Recipient,
        interests: &HashSet<String>,
    ) {
        if interests.is_empty() {
            return;
        }
        let user = recipient.jid().to_bare();
        let service = AccountService::new(owner, self.rosters.clone(), self.remote.clone());
        let Ok(nodes) = self.engine.nodes(&service.id).await else {
            return;
        };
        let relation = service.relation(router, &user, None).await;
        for (name, record) in nodes {
            if !interests.contains(&name)
                || record.config.send_last_published_item != SendLastItem::OnSubAndPresence
                || check_access(&record, user.as_str(), &relation).is_err()
            {
                continue;
            }
            let Ok(items) = self.engine.items(&service.id, &name).await else {
                continue;
            };
            let Some(last) = items.last() else { continue };
            let mut message = event_message(items_event(
                &name,
                std::slice::from_ref(last),
                record.config.deliver_payloads,
            ));
            let stamp = OffsetDateTime::from_unix_timestamp_nanos(i128::from(last.seq) * 1000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            message.append_child(delay(owner.as_str(), stamp));
            message.set_attr("from", owner.to_string());
            message.set_attr("to", recipient.jid().to_string());
            if !recipient.deliver(router, message).await {
                return;
            }
        }
    }
}

#[async_trait]
impl IqHandler<Router> for PepModule {
    async fn handle(&self, router: &Router, request: IqRequest) -> IqResult {
        let Err(owner) = request.to.try_as_full() else {
            return Err(StanzaError::new(Condition::BadRequest));
        };
        let service = self.service(owner);
        let answer = Request {
            engine: &self.engine,
            service: &service,
            router,
            request: &request,
            fanout: &self.fanout,
        }
        .answer()
        .await;
        if let Ok(result) = &answer {
            if request.iq_type == IqType::Set && request.from_owner() {
                raise_change_event(router, owner, &request.payload, result.as_ref()).await;
            }
        }
        answer
    }
}

/// Tells the modules that mirror PEP nodes elsewhere (avatars in the vCard, bookmarks in
/// private XML) what the owner's successful request changed.
async fn raise_change_event(
    router: &Router,
    owner: &BareJid,
    pubsub: &Element,
    result: Option<&Element>,
) {
    let Some(operation) = pubsub.children().next() else {
        return;
    };
    let Some(node) = operation.get_attr("node") else {
        return;
    };
    match (pubsub.ns(), operation.name()) {
        (NS, "publish") => {
            let published_id = result
                .and_then(|r| r.get_child("publish", NS))
                .and_then(|p| p.get_child("item", NS))
                .and_then(|i| i.get_attr("id"));
            let Some(id) = published_id else {
                return;
            };
            let payload = operation
                .get_child("item", NS)
                .and_then(|item| item.children().next());
            let event = Event::PepItemPublished {
                owner,
                node,
                id,
                payload,
            };
            router.run_hooks(event).await;
        }
        (NS, "retract") | (NS_OWNER, "purge" | "delete") => {
            router
                .run_hooks(Event::PepItemsRemoved { owner, node })
                .await;
        }
        _ => {}
    }
}

#[async_trait]
impl EventHook<Router> for PepModule {
    async fn on_event(&self, router: &Router, event: &mut Event<'_>) -> Flow {
        let Some(router) = router.handle() else {
            return Flow::Continue;
        };
        let sender = self.last_items();
        match event {
            Event::NotifyInterestsKnown { session } | Event::SessionAvailable { session } => {
                let jid = session.jid.clone();
                tokio::spawn(async move { sender.send_last_items(&router, &jid).await });
            }
            Event::SubscriptionApproved { user, contact } => {
                let (user, contact) = ((*user).clone(), (*contact).clone());
                tokio::spawn(async move {
                    for session in router.sessions.of_account(&contact) {
                        sender
                            .send_last_items_of(&router, &user, &session.handle.jid)
                            .await;
                    }
                });
            }
            Event::ContactInterestsKnown { owner, contact } => {
                let (owner, contact) = ((*owner).clone(), (*contact).clone());
                tokio::spawn(async move {
                    sender
                        .send_last_items_to_contact(&router, &owner, &contact)
                        .await
                });
            }
            _ => {}
        }
        Flow::Continue
    }
}

#[async_trait]
impl AccountItems<Router> for PepModule {
    async fn items(&self, router: &Router, account: &BareJid, requester: &Jid) -> Vec<DiscoItem> {
        let service = self.service(account);
        let requester = requester.to_bare();
        let relation = service.relation(router, &requester, None).await;
        let Ok(nodes) = self.engine.nodes(&service.id).await else {
            return Vec::new();
        };
        nodes
            .into_iter()
            .filter(|(_, record)| check_access(record, requester.as_str(), &relation).is_ok())
            .map(|(name, _)| DiscoItem {
                jid: account.to_string(),
                node: Some(name),
                name: None,
            })
            .collect()
    }
}
