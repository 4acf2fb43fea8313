//! The XEP-0060 protocol over the engine: parses pubsub IQs, applies the service's policy
//! (who owns, who publishes, who is notified), answers, and fans notifications out. PEP and
//! the pubsub component differ only in their [`ServicePolicy`].

use std::sync::Arc;

use async_trait::async_trait;
use jid::{BareJid, FullJid, Jid};
use rempart_xep::data_form::DataForm;
use rempart_xep::element::Element;
use rempart_xep::pubsub::{
    error_condition, event_message, NS, NS_EVENT, NS_OWNER, NS_RSM, PUBLISH_OPTIONS,
};
use rempart_xep::stanza::{Condition, IqType, StanzaError};

use crate::pubsub::config::SendLastItem;
use crate::pubsub::fanout::Fanout;
use crate::pubsub::{
    check_access, Affiliation, ItemRecord, NodeRecord, PubSub, PubSubError, Publication, Relation,
    ServiceId,
};
use crate::router::{IqRequest, IqResult, Router};

/// Features every pubsub service here supports (XEP-0060 §10).
pub const FEATURES: &[&str] = &[
    "http://jabber.org/protocol/pubsub",
    "http://jabber.org/protocol/pubsub#access-open",
    "http://jabber.org/protocol/pubsub#access-presence",
    "http://jabber.org/protocol/pubsub#access-whitelist",
    "http://jabber.org/protocol/pubsub#auto-create",
    "http://jabber.org/protocol/pubsub#config-node",
    "http://jabber.org/protocol/pubsub#create-and-configure",
    "http://jabber.org/protocol/pubsub#create-nodes",
    "http://jabber.org/protocol/pubsub#delete-items",
    "http://jabber.org/protocol/pubsub#delete-nodes",
    "http://jabber.org/protocol/pubsub#item-ids",
    "http://jabber.org/protocol/pubsub#modify-affiliations",
    "http://jabber.org/protocol/pubsub#multi-items",
    "http://jabber.org/protocol/pubsub#persistent-items",
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

/// What distinguishes one kind of pubsub service from another.
#[async_trait]
pub trait ServicePolicy: Send + Sync {
    /// Where the service's data is stored.
    fn id(&self) -> &ServiceId;
    /// The service's address: the `from` of its notifications.
    fn address(&self) -> &str;
    /// How the requester relates to the service, for access models.
    async fn relation(
        &self,
        router: &Router,
        requester: &BareJid,
        node: Option<&NodeRecord>,
    ) -> Relation;
    /// True when the requester may publish to the node (or create it when `None`).
    fn may_publish(&self, router: &Router, requester: &BareJid, node: Option<&NodeRecord>) -> bool;
    /// True when the requester owns the node (configure, delete, purge, affiliations).
    fn is_owner(&self, requester: &BareJid, node: Option<&NodeRecord>) -> bool;
    /// The affiliation a node creator gets recorded under, if the service records one.
    fn creator(&self, requester: &BareJid) -> Option<String>;
    /// An owned copy, for notifications sent after the request is answered.
    fn shared(&self) -> Arc<dyn ServicePolicy>;
    /// Resources notified without an explicit subscription (PEP: +notify contacts).
    async fn implicit_recipients(
        &self,
        router: &Router,
        node: &str,
        record: &NodeRecord,
    ) -> Vec<FullJid>;
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

fn fail(error: PubSubError) -> StanzaError {
    error.to_stanza_error()
}

/// An `<items/>` event payload.
pub fn items_event(node: &str, items: &[ItemRecord], with_payload: bool) -> Element {
    let mut element = Element::new("items", NS_EVENT).attr("node", node);
    for item in items {
        element.append_child(item.to_element(NS_EVENT, with_payload));
    }
    element
}

/// One pubsub request being answered.
pub struct Request<'a> {
    /// The engine.
    pub engine: &'a PubSub,
    /// The addressed service.
    pub service: &'a dyn ServicePolicy,
    /// The router.
    pub router: &'a Router,
    /// The request.
    pub request: &'a IqRequest,
    /// Where notifications are handed over, to be sent outside the requester's session.
    pub fanout: &'a Fanout,
}

/// Every address to notify about `node`: the policy's implicit recipients plus the explicit
/// subscribers still allowed to read — a local bare subscription fans out to the available
/// sessions here, a remote one is left to the subscriber's server.
async fn recipients(
    router: &Router,
    service: &dyn ServicePolicy,
    node: &str,
    record: &NodeRecord,
) -> Vec<Jid> {
    let mut targets: Vec<Jid> = service
        .implicit_recipients(router, node, record)
        .await
        .into_iter()
        .map(Jid::from)
        .collect();
    for subscriber in record.subscriptions.keys() {
        let Ok(jid) = Jid::new(subscriber) else {
            continue;
        };
        let bare = jid.to_bare();
        let relation = service.relation(router, &bare, Some(record)).await;
        if check_access(record, bare.as_str(), &relation).is_err() {
            continue;
        }
        let addresses: Vec<Jid> = match jid.try_into_full() {
            Ok(full) => vec![Jid::from(full)],
            Err(bare) if !router.is_local_domain(bare.domain().as_str()) => {
                vec![Jid::from(bare)]
            }
            Err(bare) => router
                .sessions
                .of_account(&bare)
                .into_iter()
                .filter(|s| s.presence.available.is_some())
                .map(|s| Jid::from(s.handle.jid))
                .collect(),
        };
        for address in addresses {
            if !targets.contains(&address) {
                targets.push(address);
            }
        }
    }
    targets
}

/// Sends `payload` to everyone to notify about `node`. A local subscriber that is gone is
/// skipped without a word to the publisher.
async fn send_notifications(
    router: &Router,
    service: &dyn ServicePolicy,
    node: &str,
    record: &NodeRecord,
    payload: Element,
) {
    for target in recipients(router, service, node, record).await {
        let mut message = event_message(payload.clone());
        message.set_attr("from", service.address());
        message.set_attr("to", target.to_string());
        // Local sessions directly, subscribers on other servers over their link.
        router.send_to(&target, message);
    }
}

/// Hands the notifications about `node` to the fan-out workers: whoever changed the node is
/// answered without waiting for them, however many recipients there are.
pub async fn submit_notifications(
    router: &Router,
    fanout: &Fanout,
    service: &dyn ServicePolicy,
    node: &str,
    record: &NodeRecord,
    payload: Element,
) {
    let Some(router) = router.handle() else {
        return;
    };
    let service = service.shared();
    let key = service.id().clone();
    let (node, record) = (node.to_owned(), record.clone());
    let delivery = async move {
        send_notifications(&router, service.as_ref(), &node, &record, payload).await;
    };
    fanout.submit(key, Box::pin(delivery)).await;
}

impl Request<'_> {
    fn requester(&self) -> BareJid {
        self.request.from.to_bare()
    }

    async fn existing(&self, node: &str) -> Result<NodeRecord, StanzaError> {
        self.engine
            .node(self.service.id(), node)
            .await
            .map_err(fail)?
            .ok_or_else(|| fail(PubSubError::ItemNotFound))
    }

    async fn check_read(&self, record: &NodeRecord) -> Result<(), StanzaError> {
        let requester = self.requester();
        let relation = self
            .service
            .relation(self.router, &requester, Some(record))
            .await;
        check_access(record, requester.as_str(), &relation).map_err(fail)
    }

    /// Answers a request in the pubsub or pubsub#owner namespace.
    pub async fn answer(&self) -> IqResult {
        if self.request.payload.ns() == NS_OWNER {
            self.owner_request().await
        } else {
            self.user_request().await
        }
    }

    async fn user_request(&self) -> IqResult {
        let pubsub = &self.request.payload;
        let set = self.request.iq_type == IqType::Set;
        let child = |name: &str| pubsub.get_child(name, NS);
        match (set, child("publish"), child("create"), child("retract")) {
            (true, Some(publish), _, _) => return self.publish(publish).await,
            (true, None, Some(create), _) => return self.create(create).await,
            (true, None, None, Some(retract)) => return self.retract(retract).await,
            _ => {}
        }
        if let Some(subscribe) = child("subscribe").filter(|_| set) {
            return self.subscribe(subscribe).await;
        }
        if let Some(unsubscribe) = child("unsubscribe").filter(|_| set) {
            return self.unsubscribe(unsubscribe).await;
        }
        if let Some(items) = child("items").filter(|_| !set) {
            return self.retrieve(items).await;
        }
        if child("affiliations").is_some() && !set {
            return self.own_affiliations().await;
        }
        if child("subscriptions").is_some() && !set {
            return self.own_subscriptions().await;
        }
        Err(StanzaError::new(Condition::FeatureNotImplemented))
    }

    async fn notify(&self, node: &str, record: &NodeRecord, payload: Element) {
        submit_notifications(
            self.router,
            self.fanout,
            self.service,
            node,
            record,
            payload,
        )
        .await;
    }

    async fn publish(&self, publish: &Element) -> IqResult {
        let node = node_attr(publish)?;
        let requester = self.requester();
        let existing = self
            .engine
            .node(self.service.id(), &node)
            .await
            .map_err(fail)?;
        if !self
            .service
            .may_publish(self.router, &requester, existing.as_ref())
        {
            return Err(StanzaError::new(Condition::Forbidden));
        }
        let items: Vec<&Element> = publish.children().filter(|c| c.is("item", NS)).collect();
        if items.len() > 1 {
            return Err(fail(PubSubError::BadRequest("publish one item at a time")));
        }
        let item = items.first();
        let options =
            form_in(self.request.payload.get_child("publish-options", NS)).filter(|form| {
                form.form_type
                    .as_deref()
                    .is_none_or(|t| t == PUBLISH_OPTIONS)
            });
        let published = self
            .engine
            .publish(
                self.service.id(),
                &node,
                Publication {
                    item_id: item.and_then(|i| i.get_attr("id")).map(str::to_owned),
                    payload: item.and_then(|i| i.children().next()),
                    publisher: requester.as_str(),
                    options: options.as_ref(),
                    creator: self.service.creator(&requester),
                },
            )
            .await
            .map_err(fail)?;
        let event = items_event(
            &node,
            std::slice::from_ref(&published.item),
            published.node.config.deliver_payloads,
        );
        self.notify(&node, &published.node, event).await;
        Ok(Some(
            Element::new("pubsub", NS).child(
                Element::new("publish", NS)
                    .attr("node", node)
                    .child(Element::new("item", NS).attr("id", published.item.id)),
            ),
        ))
    }

    async fn retrieve(&self, items: &Element) -> IqResult {
        let node = node_attr(items)?;
        let record = self.existing(&node).await?;
        self.check_read(&record).await?;
        let mut stored = self
            .engine
            .items(self.service.id(), &node)
            .await
            .map_err(fail)?;
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
        let rsm = self.request.payload.get_child("set", NS_RSM);
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
        let mut result = Element::new("items", NS).attr("node", node);
        for item in &stored {
            result.append_child(item.to_element(NS, true));
        }
        let mut pubsub = Element::new("pubsub", NS).child(result);
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
            pubsub.append_child(set);
        }
        Ok(Some(pubsub))
    }

    async fn retract(&self, retract: &Element) -> IqResult {
        let node = node_attr(retract)?;
        let record = self.existing(&node).await?;
        if !self
            .service
            .may_publish(self.router, &self.requester(), Some(&record))
        {
            return Err(StanzaError::new(Condition::Forbidden));
        }
        let ids: Vec<String> = retract
            .children()
            .filter(|c| c.is("item", NS))
            .filter_map(|c| c.get_attr("id").map(str::to_owned))
            .collect();
        if ids.is_empty() {
            return Err(fail(PubSubError::BadRequest("item id required")));
        }
        let mut removed = Vec::new();
        for id in ids {
            if self
                .engine
                .retract(self.service.id(), &node, &id)
                .await
                .map_err(fail)?
            {
                removed.push(id);
            }
        }
        if removed.is_empty() {
            return Err(fail(PubSubError::ItemNotFound));
        }
        let asked = matches!(retract.get_attr("notify"), Some("true" | "1"));
        if asked || record.config.notify_retract {
            let mut event = Element::new("items", NS_EVENT).attr("node", node.clone());
            for id in removed {
                event.append_child(Element::new("retract", NS_EVENT).attr("id", id));
            }
            self.notify(&node, &record, event).await;
        }
        Ok(None)
    }

    async fn subscribe(&self, subscribe: &Element) -> IqResult {
        let node = node_attr(subscribe)?;
        let jid = subscribe
            .get_attr("jid")
            .and_then(|j| Jid::new(j).ok())
            .ok_or_else(|| fail(PubSubError::BadRequest("jid attribute missing")))?;
        if jid.to_bare() != self.requester() {
            return Err(StanzaError::new(Condition::BadRequest)
                .with_application(error_condition("invalid-jid")));
        }
        let seen = self.existing(&node).await?;
        let requester = self.requester();
        let relation = self
            .service
            .relation(self.router, &requester, Some(&seen))
            .await;
        // The access check runs again on the record as it is under the node's lock: an
        // owner's lock-down between the two reads wins.
        let record = self
            .engine
            .subscribe(self.service.id(), &node, &jid.to_string(), |current| {
                check_access(current, requester.as_str(), &relation)
            })
            .await
            .map_err(fail)?;
        if record.config.send_last_published_item != SendLastItem::Never {
            let items = self
                .engine
                .items(self.service.id(), &node)
                .await
                .map_err(fail)?;
            if let Some(last) = items.last() {
                let mut message =
                    event_message(items_event(&node, std::slice::from_ref(last), true));
                message.set_attr("from", self.service.address());
                message.set_attr("to", jid.to_string());
                self.router.send_local(message);
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

    async fn unsubscribe(&self, unsubscribe: &Element) -> IqResult {
        let node = node_attr(unsubscribe)?;
        let jid = unsubscribe.get_attr("jid").unwrap_or_default().to_owned();
        if Jid::new(&jid).map(|j| j.to_bare()) != Ok(self.requester()) {
            return Err(StanzaError::new(Condition::Forbidden));
        }
        self.engine
            .unsubscribe(self.service.id(), &node, &jid)
            .await
            .map_err(fail)?;
        Ok(None)
    }

    async fn create(&self, create: &Element) -> IqResult {
        let requester = self.requester();
        if !self.service.may_publish(self.router, &requester, None) {
            return Err(StanzaError::new(Condition::Forbidden));
        }
        let node = create
            .get_attr("node")
            .ok_or_else(|| PubSubError::unsupported("instant-nodes"))?;
        let config = form_in(self.request.payload.get_child("configure", NS));
        self.engine
            .create(
                self.service.id(),
                node,
                config.as_ref(),
                self.service.creator(&requester),
            )
            .await
            .map_err(fail)?;
        Ok(None)
    }

    async fn own_affiliations(&self) -> IqResult {
        let requester = self.requester();
        let mut list = Element::new("affiliations", NS);
        for (name, record) in self.engine.nodes(self.service.id()).await.map_err(fail)? {
            let affiliation = if self.service.is_owner(&requester, Some(&record)) {
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

    async fn own_subscriptions(&self) -> IqResult {
        let requester = self.requester();
        let mut list = Element::new("subscriptions", NS);
        for (name, record) in self.engine.nodes(self.service.id()).await.map_err(fail)? {
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

    async fn owner_request(&self) -> IqResult {
        let pubsub = &self.request.payload;
        let set = self.request.iq_type == IqType::Set;
        let Some(operation) = pubsub.children().next() else {
            return Err(fail(PubSubError::BadRequest("empty request")));
        };
        let node = node_attr(operation)?;
        let record = self.existing(&node).await?;
        if !self.service.is_owner(&self.requester(), Some(&record)) {
            return Err(StanzaError::new(Condition::Forbidden));
        }
        let id = self.service.id();
        match (operation.name(), set) {
            ("configure", false) => {
                let form = record.config.to_form(self.engine.limits().max_items);
                Ok(Some(
                    Element::new("pubsub", NS_OWNER).child(
                        Element::new("configure", NS_OWNER)
                            .attr("node", node)
                            .child(form.to_element()),
                    ),
                ))
            }
            ("configure", true) => {
                let form = form_in(Some(operation))
                    .ok_or_else(|| fail(PubSubError::BadRequest("configuration form missing")))?;
                if form.kind != "cancel" {
                    self.engine
                        .configure(id, &node, &form)
                        .await
                        .map_err(fail)?;
                }
                Ok(None)
            }
            ("delete", true) => {
                let deleted = self.engine.delete(id, &node).await.map_err(fail)?;
                if deleted.config.notify_delete {
                    let event = Element::new("delete", NS_EVENT).attr("node", node.clone());
                    self.notify(&node, &deleted, event).await;
                }
                Ok(None)
            }
            ("purge", true) => {
                let purged = self.engine.purge(id, &node).await.map_err(fail)?;
                let event = Element::new("purge", NS_EVENT).attr("node", node.clone());
                self.notify(&node, &purged, event).await;
                Ok(None)
            }
            ("affiliations", true) => self.set_affiliations(&node, operation).await,
            ("affiliations", false) => {
                let mut list = Element::new("affiliations", NS_OWNER).attr("node", node);
                let requester = self.requester();
                if !record.affiliations.contains_key(requester.as_str()) {
                    list.append_child(
                        Element::new("affiliation", NS_OWNER)
                            .attr("jid", requester.to_string())
                            .attr("affiliation", "owner"),
                    );
                }
                for (jid, affiliation) in &record.affiliations {
                    list.append_child(
                        Element::new("affiliation", NS_OWNER)
                            .attr("jid", jid.clone())
                            .attr("affiliation", affiliation.as_str()),
                    );
                }
                Ok(Some(Element::new("pubsub", NS_OWNER).child(list)))
            }
            ("subscriptions", false) => {
                let mut list = Element::new("subscriptions", NS_OWNER).attr("node", node);
                for (jid, state) in &record.subscriptions {
                    list.append_child(
                        Element::new("subscription", NS_OWNER)
                            .attr("jid", jid.clone())
                            .attr("subscription", state.clone()),
                    );
                }
                Ok(Some(Element::new("pubsub", NS_OWNER).child(list)))
            }
            _ => Err(StanzaError::new(Condition::FeatureNotImplemented)),
        }
    }

    async fn set_affiliations(&self, node: &str, request: &Element) -> IqResult {
        let mut changes = Vec::new();
        for change in request.children().filter(|c| c.is("affiliation", NS_OWNER)) {
            let jid = change
                .get_attr("jid")
                .and_then(|j| BareJid::new(j).ok())
                .ok_or_else(|| fail(PubSubError::BadRequest("jid attribute missing")))?;
            let affiliation = change
                .get_attr("affiliation")
                .and_then(Affiliation::parse)
                .ok_or_else(|| fail(PubSubError::BadRequest("unknown affiliation")))?;
            changes.push((jid.to_string(), affiliation));
        }
        self.engine
            .set_affiliations(self.service.id(), node, changes)
            .await
            .map_err(fail)?;
        Ok(None)
    }
}
