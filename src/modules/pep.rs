//! XEP-0163: Personal Eventing Protocol — a pubsub service on every account, served by the
//! one PubSub engine: auto-create on publish, publish-options preconditions, notifications to
//! the owner's and contacts' resources that asked for them (+notify), last item on presence.
//! OMEMO (XEP-0384), avatars (XEP-0084), OpenPGP keys (XEP-0373), bookmarks (XEP-0402) and
//! public/private storage (XEP-0222/0223) are all plain uses of it.

use std::sync::Arc;

use async_trait::async_trait;
use jid::{BareJid, FullJid, Jid};
use rempart_xep::data_form::DataForm;
use rempart_xep::delay::delay;
use rempart_xep::disco::{DiscoItem, Identity};
use rempart_xep::element::Element;
use rempart_xep::pubsub::{event_message, NS, NS_EVENT, NS_OWNER, NS_RSM, PUBLISH_OPTIONS};
use rempart_xep::stanza::{Condition, IqType, StanzaError};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::modules::roster::RosterModule;
use crate::modules::{
    priority, AccountItems, Event, EventHook, Flow, HookPoint, Implements, IqHandler, IqRequest,
    IqResult, IqScope, Module, Registrar,
};
use crate::pubsub::config::{NodeConfig, SendLastItem};
use crate::pubsub::{
    Affiliation, ItemRecord, NodeRecord, PubSub, PubSubError, PubSubLimits, Relation, ServiceId,
};
use crate::router::Router;

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
}

impl Default for PepConfig {
    fn default() -> Self {
        PepConfig {
            enabled: true,
            max_items: 256,
            max_nodes: 256,
            max_item_size: 128 * 1024,
        }
    }
}

/// The features PEP advertises on accounts (XEP-0060 §10, XEP-0163 §4).
const FEATURES: &[&str] = &[
    "http://jabber.org/protocol/pubsub",
    "http://jabber.org/protocol/pubsub#access-open",
    "http://jabber.org/protocol/pubsub#access-presence",
    "http://jabber.org/protocol/pubsub#access-roster",
    "http://jabber.org/protocol/pubsub#access-whitelist",
    "http://jabber.org/protocol/pubsub#auto-create",
    "http://jabber.org/protocol/pubsub#auto-subscribe",
    "http://jabber.org/protocol/pubsub#config-node",
    "http://jabber.org/protocol/pubsub#create-and-configure",
    "http://jabber.org/protocol/pubsub#create-nodes",
    "http://jabber.org/protocol/pubsub#delete-items",
    "http://jabber.org/protocol/pubsub#delete-nodes",
    "http://jabber.org/protocol/pubsub#filtered-notifications",
    "http://jabber.org/protocol/pubsub#item-ids",
    "http://jabber.org/protocol/pubsub#last-published",
    "http://jabber.org/protocol/pubsub#modify-affiliations",
    "http://jabber.org/protocol/pubsub#multi-items",
    "http://jabber.org/protocol/pubsub#persistent-items",
    "http://jabber.org/protocol/pubsub#presence-notifications",
    "http://jabber.org/protocol/pubsub#publish",
    "http://jabber.org/protocol/pubsub#publish-options",
    "http://jabber.org/protocol/pubsub#purge-nodes",
    "http://jabber.org/protocol/pubsub#retract-items",
    "http://jabber.org/protocol/pubsub#retrieve-affiliations",
    "http://jabber.org/protocol/pubsub#retrieve-items",
    "http://jabber.org/protocol/pubsub#retrieve-subscriptions",
    "http://jabber.org/protocol/pubsub#subscribe",
    "http://jabber.org/protocol/rsm",
];

/// The PEP module.
pub struct PepModule {
    engine: PubSub,
    rosters: Arc<RosterModule>,
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
        for feature in FEATURES {
            registrar.account_feature(feature);
        }
        registrar.hook(
            HookPoint::NotifyInterestsKnown,
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

fn node_attr(element: &Element) -> Result<String, StanzaError> {
    element
        .get_attr("node")
        .map(str::to_owned)
        .ok_or_else(|| PubSubError::BadRequest("node attribute missing").to_stanza_error())
}

fn form_in(parent: Option<&Element>) -> Option<DataForm> {
    parent
        .and_then(|p| p.get_child("x", rempart_xep::ns::DATA_FORMS))
        .and_then(DataForm::parse)
}

impl PepModule {
    /// The module with its limits, reading relationships from the roster module.
    pub fn new(
        config: &PepConfig,
        storage: crate::storage::Storage,
        rosters: Arc<RosterModule>,
    ) -> Self {
        let limits = PubSubLimits {
            max_items: config.max_items,
            max_nodes: config.max_nodes,
            max_item_size: config.max_item_size,
        };
        PepModule {
            engine: PubSub::new(storage, limits, NodeConfig::pep_default()),
            rosters,
        }
    }

    /// How `requester` relates to `owner`, from the owner's roster.
    async fn relation(&self, router: &Router, owner: &BareJid, requester: &BareJid) -> Relation {
        if owner == requester {
            return Relation {
                is_owner: true,
                ..Relation::default()
            };
        }
        match self.rosters.entry(router, owner, requester).await {
            Ok(Some(entry)) => Relation {
                is_owner: false,
                presence_subscribed: entry.subscription.has_from(),
                groups: entry.groups,
            },
            _ => Relation::default(),
        }
    }

    /// Every full JID that should get a notification about `node` of `owner`.
    async fn recipients(
        &self,
        router: &Router,
        owner: &BareJid,
        node: &str,
        record: &NodeRecord,
    ) -> Vec<FullJid> {
        let mut targets: Vec<FullJid> = Vec::new();
        let interested = |bare: &BareJid, targets: &mut Vec<FullJid>| {
            for session in router.sessions.of_account(bare) {
                if session.presence.available.is_some()
                    && session.presence.notify.contains(node)
                    && !targets.contains(&session.handle.jid)
                {
                    targets.push(session.handle.jid.clone());
                }
            }
        };
        interested(owner, &mut targets);
        let contacts = self
            .rosters
            .entries(router, owner)
            .await
            .unwrap_or_default();
        for (contact, entry) in contacts {
            // Contacts on other servers are reached once server-to-server links exist.
            if !entry.subscription.has_from() || !router.config.serves(contact.domain().as_str()) {
                continue;
            }
            let relation = Relation {
                is_owner: false,
                presence_subscribed: true,
                groups: entry.groups.clone(),
            };
            if self
                .engine
                .check_access(record, contact.as_str(), &relation)
                .is_ok()
            {
                interested(&contact, &mut targets);
            }
        }
        for subscriber in record.subscriptions.keys() {
            let Ok(jid) = Jid::new(subscriber) else {
                continue;
            };
            let relation = self.relation(router, owner, &jid.to_bare()).await;
            if self
                .engine
                .check_access(record, jid.to_bare().as_str(), &relation)
                .is_err()
            {
                continue;
            }
            match jid.try_into_full() {
                Ok(full) => {
                    if !targets.contains(&full) {
                        targets.push(full);
                    }
                }
                Err(bare) => {
                    for session in router.sessions.of_account(&bare) {
                        if session.presence.available.is_some()
                            && !targets.contains(&session.handle.jid)
                        {
                            targets.push(session.handle.jid.clone());
                        }
                    }
                }
            }
        }
        targets
    }

    async fn notify(
        &self,
        router: &Router,
        owner: &BareJid,
        node: &str,
        record: &NodeRecord,
        payload: Element,
    ) {
        for target in self.recipients(router, owner, node, record).await {
            let mut message = event_message(payload.clone());
            message.set_attr("from", owner.to_string());
            message.set_attr("to", target.to_string());
            router.send_to_full(&target, message);
        }
    }

    fn items_element(node: &str, items: &[ItemRecord], with_payload: bool) -> Element {
        let mut element = Element::new("items", NS_EVENT).attr("node", node);
        for item in items {
            element.append_child(item.to_element(NS_EVENT, with_payload));
        }
        element
    }

    async fn publish(
        &self,
        router: &Router,
        request: &IqRequest,
        owner: &BareJid,
        pubsub: &Element,
        publish: &Element,
    ) -> IqResult {
        if !request.from_owner() {
            return Err(StanzaError::new(Condition::Forbidden));
        }
        let node = node_attr(publish)?;
        let items: Vec<&Element> = publish.children().filter(|c| c.is("item", NS)).collect();
        if items.len() > 1 {
            return Err(PubSubError::BadRequest("publish one item at a time").to_stanza_error());
        }
        let item = items.first();
        let payload = item.and_then(|i| i.children().next());
        let options = form_in(pubsub.get_child("publish-options", NS)).filter(|form| {
            form.form_type
                .as_deref()
                .is_none_or(|t| t == PUBLISH_OPTIONS)
        });
        let service = service_of(owner);
        let published = self
            .engine
            .publish(
                &service,
                &node,
                item.and_then(|i| i.get_attr("id")).map(str::to_owned),
                payload,
                owner.as_str(),
                options.as_ref(),
            )
            .await
            .map_err(|e| e.to_stanza_error())?;
        let event = Self::items_element(
            &node,
            std::slice::from_ref(&published.item),
            published.node.config.deliver_payloads,
        );
        self.notify(router, owner, &node, &published.node, event)
            .await;
        Ok(Some(
            Element::new("pubsub", NS).child(
                Element::new("publish", NS)
                    .attr("node", node)
                    .child(Element::new("item", NS).attr("id", published.item.id)),
            ),
        ))
    }

    async fn retrieve(
        &self,
        router: &Router,
        request: &IqRequest,
        owner: &BareJid,
        pubsub: &Element,
        items: &Element,
    ) -> IqResult {
        let node = node_attr(items)?;
        let service = service_of(owner);
        let record = self
            .engine
            .node(&service, &node)
            .await
            .map_err(|e| e.to_stanza_error())?
            .ok_or_else(|| PubSubError::ItemNotFound.to_stanza_error())?;
        let requester = request.from.to_bare();
        let relation = self.relation(router, owner, &requester).await;
        self.engine
            .check_access(&record, requester.as_str(), &relation)
            .map_err(|e| e.to_stanza_error())?;
        let mut stored = self
            .engine
            .items(&service, &node)
            .await
            .map_err(|e| e.to_stanza_error())?;
        let wanted: Vec<&str> = items
            .children()
            .filter(|c| c.is("item", NS))
            .filter_map(|c| c.get_attr("id"))
            .collect();
        if !wanted.is_empty() {
            stored.retain(|item| wanted.contains(&item.id.as_str()));
        }
        if let Some(max) = items
            .get_attr("max_items")
            .and_then(|m| m.parse::<usize>().ok())
        {
            let skip = stored.len().saturating_sub(max);
            stored.drain(..skip);
        }
        let mut result = Element::new("items", NS).attr("node", node);
        let rsm = pubsub.get_child("set", NS_RSM);
        let total = stored.len();
        let mut page_start = 0;
        if let Some(set) = rsm {
            if let Some(after) = set.child_text("after", NS_RSM) {
                page_start = stored
                    .iter()
                    .position(|i| i.id == after)
                    .map_or(total, |p| p + 1);
            }
            let max = set
                .child_text("max", NS_RSM)
                .and_then(|m| m.parse::<usize>().ok())
                .unwrap_or(total);
            stored = stored.into_iter().skip(page_start).take(max).collect();
        }
        for item in &stored {
            result.append_child(item.to_element(NS, true));
        }
        let mut pubsub_result = Element::new("pubsub", NS).child(result);
        if rsm.is_some() {
            let mut set = Element::new("set", NS_RSM);
            if let (Some(first), Some(last)) = (stored.first(), stored.last()) {
                set.append_child(
                    Element::new("first", NS_RSM)
                        .attr("index", page_start.to_string())
                        .text(first.id.clone()),
                );
                set.append_child(Element::new("last", NS_RSM).text(last.id.clone()));
            }
            set.append_child(Element::new("count", NS_RSM).text(total.to_string()));
            pubsub_result.append_child(set);
        }
        Ok(Some(pubsub_result))
    }

    async fn retract(
        &self,
        router: &Router,
        request: &IqRequest,
        owner: &BareJid,
        retract: &Element,
    ) -> IqResult {
        if !request.from_owner() {
            return Err(StanzaError::new(Condition::Forbidden));
        }
        let node = node_attr(retract)?;
        let service = service_of(owner);
        let ids: Vec<String> = retract
            .children()
            .filter(|c| c.is("item", NS))
            .filter_map(|c| c.get_attr("id").map(str::to_owned))
            .collect();
        if ids.is_empty() {
            return Err(PubSubError::BadRequest("item id required").to_stanza_error());
        }
        let record = self
            .engine
            .node(&service, &node)
            .await
            .map_err(|e| e.to_stanza_error())?
            .ok_or_else(|| PubSubError::ItemNotFound.to_stanza_error())?;
        let mut removed = Vec::new();
        for id in ids {
            if self
                .engine
                .retract(&service, &node, &id)
                .await
                .map_err(|e| e.to_stanza_error())?
            {
                removed.push(id);
            }
        }
        if removed.is_empty() {
            return Err(PubSubError::ItemNotFound.to_stanza_error());
        }
        let asked = matches!(retract.get_attr("notify"), Some("true" | "1"));
        if asked || record.config.notify_retract {
            let mut event = Element::new("items", NS_EVENT).attr("node", node.clone());
            for id in removed {
                event.append_child(Element::new("retract", NS_EVENT).attr("id", id));
            }
            self.notify(router, owner, &node, &record, event).await;
        }
        Ok(None)
    }

    async fn subscribe(
        &self,
        router: &Router,
        request: &IqRequest,
        owner: &BareJid,
        subscribe: &Element,
    ) -> IqResult {
        let node = node_attr(subscribe)?;
        let jid = subscribe
            .get_attr("jid")
            .and_then(|j| Jid::new(j).ok())
            .ok_or_else(|| PubSubError::BadRequest("jid attribute missing").to_stanza_error())?;
        if jid.to_bare() != request.from.to_bare() {
            return Err(StanzaError::new(Condition::BadRequest)
                .with_application(rempart_xep::pubsub::error_condition("invalid-jid")));
        }
        let service = service_of(owner);
        let mut record = self
            .engine
            .node(&service, &node)
            .await
            .map_err(|e| e.to_stanza_error())?
            .ok_or_else(|| PubSubError::ItemNotFound.to_stanza_error())?;
        let relation = self.relation(router, owner, &jid.to_bare()).await;
        self.engine
            .check_access(&record, jid.to_bare().as_str(), &relation)
            .map_err(|e| e.to_stanza_error())?;
        record
            .subscriptions
            .insert(jid.to_string(), "subscribed".to_owned());
        self.engine
            .save_node(&service, &node, &record)
            .await
            .map_err(|e| e.to_stanza_error())?;
        if record.config.send_last_published_item != SendLastItem::Never {
            let items = self
                .engine
                .items(&service, &node)
                .await
                .map_err(|e| e.to_stanza_error())?;
            if let Some(last) = items.last() {
                let mut message =
                    event_message(Self::items_element(&node, std::slice::from_ref(last), true));
                message.set_attr("from", owner.to_string());
                message.set_attr("to", jid.to_string());
                router.send_local(message);
            }
        }
        Ok(Some(
            Element::new("pubsub", NS).child(
                Element::new("subscription", NS)
                    .attr("node", node)
                    .attr("jid", jid.to_string())
                    .attr("subscription", "subscribed"),
            ),
        ))
    }

    async fn unsubscribe(
        &self,
        request: &IqRequest,
        owner: &BareJid,
        unsubscribe: &Element,
    ) -> IqResult {
        let node = node_attr(unsubscribe)?;
        let jid = unsubscribe.get_attr("jid").unwrap_or_default().to_owned();
        if Jid::new(&jid).map(|j| j.to_bare()) != Ok(request.from.to_bare()) {
            return Err(StanzaError::new(Condition::Forbidden));
        }
        let service = service_of(owner);
        let mut record = self
            .engine
            .node(&service, &node)
            .await
            .map_err(|e| e.to_stanza_error())?
            .ok_or_else(|| PubSubError::ItemNotFound.to_stanza_error())?;
        if record.subscriptions.remove(&jid).is_none() {
            return Err(StanzaError::new(Condition::UnexpectedRequest)
                .with_application(rempart_xep::pubsub::error_condition("not-subscribed")));
        }
        self.engine
            .save_node(&service, &node, &record)
            .await
            .map_err(|e| e.to_stanza_error())?;
        Ok(None)
    }

    async fn create(
        &self,
        request: &IqRequest,
        owner: &BareJid,
        pubsub: &Element,
        create: &Element,
    ) -> IqResult {
        if !request.from_owner() {
            return Err(StanzaError::new(Condition::Forbidden));
        }
        let node = create
            .get_attr("node")
            .ok_or_else(|| PubSubError::unsupported("instant-nodes"))?;
        let config = form_in(pubsub.get_child("configure", NS));
        self.engine
            .create(&service_of(owner), node, config.as_ref())
            .await
            .map_err(|e| e.to_stanza_error())?;
        Ok(None)
    }

    async fn handle_user(&self, router: &Router, request: &IqRequest, owner: &BareJid) -> IqResult {
        let pubsub = &request.payload;
        let set = request.iq_type == IqType::Set;
        if let Some(publish) = pubsub.get_child("publish", NS).filter(|_| set) {
            return self.publish(router, request, owner, pubsub, publish).await;
        }
        if let Some(create) = pubsub.get_child("create", NS).filter(|_| set) {
            return self.create(request, owner, pubsub, create).await;
        }
        if let Some(retract) = pubsub.get_child("retract", NS).filter(|_| set) {
            return self.retract(router, request, owner, retract).await;
        }
        if let Some(subscribe) = pubsub.get_child("subscribe", NS).filter(|_| set) {
            return self.subscribe(router, request, owner, subscribe).await;
        }
        if let Some(unsubscribe) = pubsub.get_child("unsubscribe", NS).filter(|_| set) {
            return self.unsubscribe(request, owner, unsubscribe).await;
        }
        if let Some(items) = pubsub.get_child("items", NS).filter(|_| !set) {
            return self.retrieve(router, request, owner, pubsub, items).await;
        }
        if pubsub.has_child("affiliations", NS) && !set {
            return self.own_affiliations(request, owner).await;
        }
        if pubsub.has_child("subscriptions", NS) && !set {
            return self.own_subscriptions(request, owner).await;
        }
        Err(StanzaError::new(Condition::FeatureNotImplemented))
    }

    async fn own_affiliations(&self, request: &IqRequest, owner: &BareJid) -> IqResult {
        let requester = request.from.to_bare();
        let mut list = Element::new("affiliations", NS);
        for (name, record) in self
            .engine
            .nodes(&service_of(owner))
            .await
            .map_err(|e| e.to_stanza_error())?
        {
            let affiliation = if request.from_owner() {
                Some(Affiliation::Owner)
            } else {
                record.affiliations.get(requester.as_str()).copied()
            };
            if let Some(affiliation) = affiliation {
                list.append_child(
                    Element::new("affiliation", NS)
                        .attr("node", name)
                        .attr("affiliation", affiliation.as_str()),
                );
            }
        }
        Ok(Some(Element::new("pubsub", NS).child(list)))
    }

    async fn own_subscriptions(&self, request: &IqRequest, owner: &BareJid) -> IqResult {
        let requester = request.from.to_bare();
        let mut list = Element::new("subscriptions", NS);
        for (name, record) in self
            .engine
            .nodes(&service_of(owner))
            .await
            .map_err(|e| e.to_stanza_error())?
        {
            for jid in record.subscriptions.keys() {
                if Jid::new(jid).map(|j| j.to_bare()) == Ok(requester.clone()) {
                    list.append_child(
                        Element::new("subscription", NS)
                            .attr("node", name.clone())
                            .attr("jid", jid.clone())
                            .attr("subscription", "subscribed"),
                    );
                }
            }
        }
        Ok(Some(Element::new("pubsub", NS).child(list)))
    }

    async fn handle_owner(
        &self,
        router: &Router,
        request: &IqRequest,
        owner: &BareJid,
    ) -> IqResult {
        if !request.from_owner() {
            return Err(StanzaError::new(Condition::Forbidden));
        }
        let pubsub = &request.payload;
        let service = service_of(owner);
        let set = request.iq_type == IqType::Set;
        let map = |e: PubSubError| e.to_stanza_error();
        if let Some(configure) = pubsub.get_child("configure", NS_OWNER) {
            let node = node_attr(configure)?;
            if set {
                let form = form_in(Some(configure)).ok_or_else(|| {
                    PubSubError::BadRequest("configuration form missing").to_stanza_error()
                })?;
                if form.kind == "cancel" {
                    return Ok(None);
                }
                self.engine
                    .configure(&service, &node, &form)
                    .await
                    .map_err(map)?;
                return Ok(None);
            }
            let record = self
                .engine
                .node(&service, &node)
                .await
                .map_err(map)?
                .ok_or_else(|| map(PubSubError::ItemNotFound))?;
            let form = record.config.to_form(self.engine.limits().max_items);
            return Ok(Some(
                Element::new("pubsub", NS_OWNER).child(
                    Element::new("configure", NS_OWNER)
                        .attr("node", node)
                        .child(form.to_element()),
                ),
            ));
        }
        if let Some(delete) = pubsub.get_child("delete", NS_OWNER).filter(|_| set) {
            let node = node_attr(delete)?;
            let record = self.engine.delete(&service, &node).await.map_err(map)?;
            if record.config.notify_delete {
                let event = Element::new("delete", NS_EVENT).attr("node", node.clone());
                self.notify(router, owner, &node, &record, event).await;
            }
            return Ok(None);
        }
        if let Some(purge) = pubsub.get_child("purge", NS_OWNER).filter(|_| set) {
            let node = node_attr(purge)?;
            let record = self.engine.purge(&service, &node).await.map_err(map)?;
            let event = Element::new("purge", NS_EVENT).attr("node", node.clone());
            self.notify(router, owner, &node, &record, event).await;
            return Ok(None);
        }
        if let Some(affiliations) = pubsub.get_child("affiliations", NS_OWNER) {
            let node = node_attr(affiliations)?;
            let mut record = self
                .engine
                .node(&service, &node)
                .await
                .map_err(map)?
                .ok_or_else(|| map(PubSubError::ItemNotFound))?;
            if set {
                for change in affiliations
                    .children()
                    .filter(|c| c.is("affiliation", NS_OWNER))
                {
                    let jid = change
                        .get_attr("jid")
                        .and_then(|j| BareJid::new(j).ok())
                        .ok_or_else(|| map(PubSubError::BadRequest("jid attribute missing")))?;
                    let affiliation = change
                        .get_attr("affiliation")
                        .and_then(Affiliation::parse)
                        .ok_or_else(|| map(PubSubError::BadRequest("unknown affiliation")))?;
                    match affiliation {
                        Some(affiliation) => {
                            record.affiliations.insert(jid.to_string(), affiliation)
                        }
                        None => record.affiliations.remove(jid.as_str()),
                    };
                }
                self.engine
                    .save_node(&service, &node, &record)
                    .await
                    .map_err(map)?;
                return Ok(None);
            }
            let mut list = Element::new("affiliations", NS_OWNER).attr("node", node);
            list.append_child(
                Element::new("affiliation", NS_OWNER)
                    .attr("jid", owner.to_string())
                    .attr("affiliation", "owner"),
            );
            for (jid, affiliation) in &record.affiliations {
                list.append_child(
                    Element::new("affiliation", NS_OWNER)
                        .attr("jid", jid.clone())
                        .attr("affiliation", affiliation.as_str()),
                );
            }
            return Ok(Some(Element::new("pubsub", NS_OWNER).child(list)));
        }
        if let Some(subscriptions) = pubsub.get_child("subscriptions", NS_OWNER).filter(|_| !set) {
            let node = node_attr(subscriptions)?;
            let record = self
                .engine
                .node(&service, &node)
                .await
                .map_err(map)?
                .ok_or_else(|| map(PubSubError::ItemNotFound))?;
            let mut list = Element::new("subscriptions", NS_OWNER).attr("node", node);
            for (jid, state) in &record.subscriptions {
                list.append_child(
                    Element::new("subscription", NS_OWNER)
                        .attr("jid", jid.clone())
                        .attr("subscription", state.clone()),
                );
            }
            return Ok(Some(Element::new("pubsub", NS_OWNER).child(list)));
        }
        Err(StanzaError::new(Condition::FeatureNotImplemented))
    }

    /// Sends the last item of every node `session` asked for, from its own account and from
    /// each local contact whose node it may read (XEP-0163 §6.2).
    async fn send_last_items(&self, router: &Router, session: &FullJid) {
        let Some(entry) = router.sessions.get(session) else {
            return;
        };
        let interests = entry.presence.notify.clone();
        if interests.is_empty() {
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
            let service = service_of(&owner);
            let Ok(nodes) = self.engine.nodes(&service).await else {
                continue;
            };
            let relation = self.relation(router, &owner, &user).await;
            for (name, record) in nodes {
                if !interests.contains(&name)
                    || record.config.send_last_published_item != SendLastItem::OnSubAndPresence
                    || self
                        .engine
                        .check_access(&record, user.as_str(), &relation)
                        .is_err()
                {
                    continue;
                }
                let Ok(items) = self.engine.items(&service, &name).await else {
                    continue;
                };
                let Some(last) = items.last() else { continue };
                let mut message = event_message(Self::items_element(
                    &name,
                    std::slice::from_ref(last),
                    record.config.deliver_payloads,
                ));
                let stamp = OffsetDateTime::from_unix_timestamp_nanos(i128::from(last.seq) * 1000)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                message.append_child(delay(owner.as_str(), stamp));
                message.set_attr("from", owner.to_string());
                message.set_attr("to", session.to_string());
                router.send_to_full(session, message);
            }
        }
    }
}

#[async_trait]
impl IqHandler for PepModule {
    async fn handle(&self, router: &Router, request: IqRequest) -> IqResult {
        let Err(owner) = request.to.try_as_full() else {
            return Err(StanzaError::new(Condition::BadRequest));
        };
        let owner = owner.clone();
        if request.payload.ns() == NS_OWNER {
            self.handle_owner(router, &request, &owner).await
        } else {
            self.handle_user(router, &request, &owner).await
        }
    }
}

#[async_trait]
impl EventHook for PepModule {
    async fn on_event(&self, router: &Router, event: &Event<'_>) -> Flow {
        if let Event::NotifyInterestsKnown { session } = event {
            self.send_last_items(router, &session.jid).await;
        }
        Flow::Continue
    }
}

#[async_trait]
impl AccountItems for PepModule {
    async fn items(&self, router: &Router, account: &BareJid, requester: &Jid) -> Vec<DiscoItem> {
        let relation = self.relation(router, account, &requester.to_bare()).await;
        let Ok(nodes) = self.engine.nodes(&service_of(account)).await else {
            return Vec::new();
        };
        nodes
            .into_iter()
            .filter(|(_, record)| {
                self.engine
                    .check_access(record, requester.to_bare().as_str(), &relation)
                    .is_ok()
            })
            .map(|(name, _)| DiscoItem {
                jid: account.to_string(),
                node: Some(name),
                name: None,
            })
            .collect()
    }
}
