//! The one PubSub engine (XEP-0060) behind PEP (XEP-0163) and the pubsub service: nodes,
//! items, configuration, affiliations, subscriptions and access models, stored durably.
//! Notification fan-out is the caller's: it knows sessions and capabilities.

pub mod config;
pub mod fanout;
pub mod locks;
pub mod protocol;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::distr::{Alphanumeric, SampleString};
use rempart_xep::data_form::DataForm;
use rempart_xep::element::Element;
use rempart_xep::pubsub::{error_condition, unsupported};
use rempart_xep::stanza::{Condition, StanzaError};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::storage::{MapStore, Storage, StorageError};
use config::{AccessModel, ConfigError, NodeConfig};
use locks::StripedLocks;

/// Store name of everything pubsub keeps.
const STORE: &str = "pubsub";
/// Separates key parts; cannot occur in XML text, hence not in node names or item ids.
const SEP: char = '\u{1}';

/// Limits of one service.
#[derive(Debug, Clone, Copy)]
pub struct PubSubLimits {
    /// What `pubsub#max_items = max` means, and the ceiling of any configured value.
    pub max_items: usize,
    /// Most nodes per service (per account for PEP).
    pub max_nodes: usize,
    /// Largest item payload, in bytes of XML.
    pub max_item_size: usize,
    /// Most subscriptions one node holds, all subscribers together.
    pub max_subscriptions_per_node: usize,
    /// Most subscriptions one bare JID (all its resources) holds on one node.
    pub max_subscriptions_per_jid: usize,
    /// Most bytes the service stores (node names, item ids and payloads); `None` for no
    /// limit. PEP sets it: it bounds what one account keeps.
    pub max_bytes: Option<usize>,
}

/// Which service: an account's PEP (`owner` = localpart) or a host's pubsub component.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceId {
    /// The domain.
    pub host: String,
    /// The account localpart, empty for the host's pubsub component.
    pub owner: String,
}

/// An affiliation (XEP-0060 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Affiliation {
    /// Full control.
    Owner,
    /// May publish.
    Publisher,
    /// May read under the whitelist model.
    Member,
    /// Barred.
    Outcast,
}

impl Affiliation {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::Owner => "owner",
            Affiliation::Publisher => "publisher",
            Affiliation::Member => "member",
            Affiliation::Outcast => "outcast",
        }
    }

    /// Parses an attribute value; `none` is `None`.
    pub fn parse(value: &str) -> Option<Option<Affiliation>> {
        match value {
            "owner" => Some(Some(Affiliation::Owner)),
            "publisher" => Some(Some(Affiliation::Publisher)),
            "member" => Some(Some(Affiliation::Member)),
            "outcast" => Some(Some(Affiliation::Outcast)),
            "none" => Some(None),
            _ => None,
        }
    }
}

/// A node as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Its configuration.
    pub config: NodeConfig,
    /// Affiliations by bare JID (the owner is implicit).
    pub affiliations: BTreeMap<String, Affiliation>,
    /// Explicit subscriptions by subscribed JID.
    pub subscriptions: BTreeMap<String, String>,
}

/// An item as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// The item id.
    pub id: String,
    /// The payload, serialized exactly as published.
    pub payload: String,
    /// Bare JID of the publisher.
    pub publisher: String,
    /// Publication order.
    pub seq: u64,
}

impl ItemRecord {
    /// The `<item/>` element, with or without its payload.
    pub fn to_element(&self, ns: &str, with_payload: bool) -> Element {
        let mut item = Element::new("item", ns).attr("id", self.id.clone());
        if with_payload {
            if let Ok(payload) = Element::parse(&self.payload) {
                item.append_child(payload);
            }
        }
        item
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Record {
    Node(NodeRecord),
    Item(ItemRecord),
}

/// How the requester relates to the service owner, for access checks.
#[derive(Debug, Clone, Default)]
pub struct Relation {
    /// The requester is the owner.
    pub is_owner: bool,
    /// The requester has a presence subscription to the owner.
    pub presence_subscribed: bool,
    /// Roster groups the owner put the requester in.
    pub groups: Vec<String>,
}

/// A failed pubsub operation, mapped to the XEP-0060 errors.
#[derive(Debug)]
pub enum PubSubError {
    /// No such node or item.
    ItemNotFound,
    /// Not allowed to do this (publishing to someone else's PEP, owner operations).
    Forbidden,
    /// Read refused by the access model.
    AccessDenied(AccessModel),
    /// Publish-options conflict with the existing node.
    PreconditionNotMet(String),
    /// A form value is invalid.
    BadValue(String),
    /// The node exists already.
    NodeExists,
    /// Too many nodes.
    TooManyNodes,
    /// The payload is larger than allowed.
    PayloadTooBig,
    /// The service's storage quota would be exceeded.
    QuotaExceeded,
    /// The subscriber or the node holds as many subscriptions as allowed.
    TooManySubscriptions,
    /// Unsubscribing a JID that is not subscribed.
    NotSubscribed,
    /// The request is malformed.
    BadRequest(&'static str),
    /// Storage failed.
    Storage(StorageError),
}

impl From<StorageError> for PubSubError {
    fn from(error: StorageError) -> Self {
        PubSubError::Storage(error)
    }
}

impl PubSubError {
    /// The stanza error for the requester.
    pub fn to_stanza_error(&self) -> StanzaError {
        match self {
            PubSubError::ItemNotFound => StanzaError::new(Condition::ItemNotFound),
            PubSubError::Forbidden => StanzaError::new(Condition::Forbidden),
            PubSubError::AccessDenied(AccessModel::Presence) => {
                StanzaError::new(Condition::NotAuthorized)
                    .with_application(error_condition("presence-subscription-required"))
            }
            PubSubError::AccessDenied(AccessModel::Roster) => {
                StanzaError::new(Condition::NotAuthorized)
                    .with_application(error_condition("not-in-roster-group"))
            }
            PubSubError::AccessDenied(_) => StanzaError::new(Condition::NotAllowed)
                .with_application(error_condition("closed-node")),
            PubSubError::PreconditionNotMet(field) => StanzaError::new(Condition::Conflict)
                .with_text(format!("{field} does not match the node's configuration"))
                .with_application(error_condition("precondition-not-met")),
            PubSubError::BadValue(field) => StanzaError::new(Condition::NotAcceptable)
                .with_text(format!("invalid value for {field}")),
            PubSubError::NodeExists => StanzaError::new(Condition::Conflict),
            PubSubError::TooManyNodes => {
                StanzaError::new(Condition::PolicyViolation).with_text("too many nodes")
            }
            PubSubError::PayloadTooBig => StanzaError::new(Condition::NotAcceptable)
                .with_application(error_condition("payload-too-big")),
            PubSubError::QuotaExceeded => StanzaError::new(Condition::NotAcceptable)
                .with_text("the storage quota of this service is used up")
                .with_application(error_condition("payload-too-big")),
            PubSubError::TooManySubscriptions => StanzaError::new(Condition::PolicyViolation)
                .with_application(error_condition("too-many-subscriptions")),
            PubSubError::NotSubscribed => StanzaError::new(Condition::UnexpectedRequest)
                .with_application(error_condition("not-subscribed")),
            PubSubError::BadRequest(why) => StanzaError::new(Condition::BadRequest).with_text(*why),
            PubSubError::Storage(error) => {
                warn!(%error, "pubsub storage failure");
                StanzaError::new(Condition::InternalServerError)
            }
        }
    }

    /// `feature-not-implemented` with the pubsub feature named.
    pub fn unsupported(feature: &str) -> StanzaError {
        StanzaError::new(Condition::FeatureNotImplemented).with_application(unsupported(feature))
    }
}

/// What is being published.
#[derive(Debug, Clone)]
pub struct Publication<'a> {
    /// The item id asked for; one is generated when absent.
    pub item_id: Option<String>,
    /// The payload (an item may have none).
    pub payload: Option<&'a Element>,
    /// Bare JID of the publisher.
    pub publisher: &'a str,
    /// Publish-options, applied on creation and checked as preconditions otherwise.
    pub options: Option<&'a DataForm>,
    /// Recorded as owner when the publish creates the node.
    pub creator: Option<String>,
}

/// What a publish did.
#[derive(Debug, Clone)]
pub struct Published {
    /// The stored item.
    pub item: ItemRecord,
    /// The node's configuration after the publish.
    pub node: NodeRecord,
    /// Items dropped to honour `max_items`.
    pub evicted: Vec<String>,
}

/// The engine.
pub struct PubSub {
    storage: Storage,
    limits: PubSubLimits,
    seq: AtomicU64,
    default_config: NodeConfig,
    locks: StripedLocks,
}

fn node_key(node: &str) -> String {
    format!("n{SEP}{node}")
}

fn item_prefix(node: &str) -> String {
    format!("i{SEP}{node}{SEP}")
}

fn item_key(node: &str, id: &str) -> String {
    format!("i{SEP}{node}{SEP}{id}")
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(SEP)
}

/// What a node record costs against the quota: what its owner chose the size of.
fn node_bytes(name: &str, record: &NodeRecord) -> usize {
    name.len() + record.config.title.as_ref().map_or(0, String::len)
}

/// What an item costs against the quota.
fn item_bytes(node: &str, item: &ItemRecord) -> usize {
    node.len() + item.id.len() + item.payload.len()
}

/// The bare JID part of a subscribed JID, as stored.
fn bare_part(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

impl PubSub {
    /// An engine whose new nodes start from `default_config`.
    pub fn new(storage: Storage, limits: PubSubLimits, default_config: NodeConfig) -> PubSub {
        PubSub {
            storage,
            limits,
            seq: AtomicU64::new(0),
            default_config,
            locks: StripedLocks::default(),
        }
    }

    /// Holds the lock under which `node` of `service` is read, changed and written. With a
    /// byte quota the whole service shares one lock, so that two publishes cannot both
    /// see room for their item.
    async fn lock(&self, service: &ServiceId, node: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let node = if self.limits.max_bytes.is_some() {
            ""
        } else {
            node
        };
        self.locks.lock((&service.host, &service.owner, node)).await
    }

    /// Bytes the service stores now, as counted against its quota.
    async fn usage(&self, service: &ServiceId) -> Result<usize, PubSubError> {
        let records = self
            .store(service)
            .all_with_prefix(&service.owner, "")
            .await?;
        Ok(records
            .iter()
            .map(|(key, record)| match record {
                Record::Node(node) => node_bytes(key.get(2..).unwrap_or_default(), node),
                Record::Item(item) => {
                    let node = key
                        .get(2..)
                        .and_then(|rest| rest.split(SEP).next())
                        .unwrap_or_default();
                    item_bytes(node, item)
                }
            })
            .sum())
    }

    /// Refuses a change that adds `added` bytes and frees `freed` when the service's quota
    /// would be exceeded.
    async fn check_quota(
        &self,
        service: &ServiceId,
        added: usize,
        freed: usize,
    ) -> Result<(), PubSubError> {
        let Some(quota) = self.limits.max_bytes else {
            return Ok(());
        };
        let after = self.usage(service).await?.saturating_sub(freed) + added;
        if after > quota {
            return Err(PubSubError::QuotaExceeded);
        }
        Ok(())
    }

    /// The limits in force.
    pub fn limits(&self) -> PubSubLimits {
        self.limits
    }

    fn store(&self, service: &ServiceId) -> MapStore<Record> {
        self.storage.map(&service.host, STORE)
    }

    fn next_seq(&self) -> u64 {
        let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000)
            .unwrap_or_default();
        let mut current = self.seq.load(Ordering::Relaxed);
        loop {
            let next = now.max(current + 1);
            match self
                .seq
                .compare_exchange(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(actual) => current = actual,
            }
        }
    }

    /// One node.
    pub async fn node(
        &self,
        service: &ServiceId,
        node: &str,
    ) -> Result<Option<NodeRecord>, PubSubError> {
        if !valid_name(node) {
            return Ok(None);
        }
        match self
            .store(service)
            .get(&service.owner, &node_key(node))
            .await?
        {
            Some(Record::Node(record)) => Ok(Some(record)),
            _ => Ok(None),
        }
    }

    /// All nodes of a service, by name.
    pub async fn nodes(
        &self,
        service: &ServiceId,
    ) -> Result<Vec<(String, NodeRecord)>, PubSubError> {
        let prefix = format!("n{SEP}");
        let records = self
            .store(service)
            .all_with_prefix(&service.owner, &prefix)
            .await?;
        Ok(records
            .into_iter()
            .filter_map(|(key, record)| match record {
                Record::Node(node) => Some((key[prefix.len()..].to_owned(), node)),
                Record::Item(_) => None,
            })
            .collect())
    }

    /// A node's items, oldest first.
    pub async fn items(
        &self,
        service: &ServiceId,
        node: &str,
    ) -> Result<Vec<ItemRecord>, PubSubError> {
        let mut items: Vec<ItemRecord> = self
            .store(service)
            .all_with_prefix(&service.owner, &item_prefix(node))
            .await?
            .into_iter()
            .filter_map(|(_, record)| match record {
                Record::Item(item) => Some(item),
                Record::Node(_) => None,
            })
            .collect();
        items.sort_by_key(|item| item.seq);
        Ok(items)
    }

    /// Creates a node explicitly (XEP-0060 §8.1).
    pub async fn create(
        &self,
        service: &ServiceId,
        node: &str,
        config: Option<&DataForm>,
        creator: Option<String>,
    ) -> Result<NodeRecord, PubSubError> {
        if !valid_name(node) {
            return Err(PubSubError::BadRequest("invalid node name"));
        }
        let _guard = self.lock(service, node).await;
        if self.node(service, node).await?.is_some() {
            return Err(PubSubError::NodeExists);
        }
        let record = self.new_node(service, config, creator).await?;
        self.check_quota(service, node_bytes(node, &record), 0)
            .await?;
        self.save_node(service, node, &record).await?;
        Ok(record)
    }

    async fn new_node(
        &self,
        service: &ServiceId,
        config: Option<&DataForm>,
        creator: Option<String>,
    ) -> Result<NodeRecord, PubSubError> {
        if self.nodes(service).await?.len() >= self.limits.max_nodes {
            return Err(PubSubError::TooManyNodes);
        }
        let mut node_config = self.default_config.clone();
        if let Some(form) = config {
            node_config
                .apply(form, self.limits.max_items)
                .map_err(config_error)?;
        }
        let mut affiliations = BTreeMap::new();
        if let Some(creator) = creator {
            affiliations.insert(creator, Affiliation::Owner);
        }
        Ok(NodeRecord {
            config: node_config,
            affiliations,
            subscriptions: BTreeMap::new(),
        })
    }

    /// Publishes an item, creating the node (with the publish-options as its configuration)
    /// when it does not exist, and checking them as preconditions when it does.
    pub async fn publish(
        &self,
        service: &ServiceId,
        node: &str,
        publication: Publication<'_>,
    ) -> Result<Published, PubSubError> {
        let Publication {
            item_id,
            payload,
            publisher,
            options,
            creator,
        } = publication;
        if !valid_name(node) {
            return Err(PubSubError::BadRequest("invalid node name"));
        }
        let payload = payload.map(Element::to_xml).unwrap_or_default();
        if payload.len() > self.limits.max_item_size {
            return Err(PubSubError::PayloadTooBig);
        }
        let id = item_id
            .filter(|id| valid_name(id))
            .unwrap_or_else(|| Alphanumeric.sample_string(&mut rand::rng(), 16));
        let _guard = self.lock(service, node).await;
        let mut changes: Vec<(String, Option<Record>)> = Vec::new();
        let mut added = 0;
        let record = match self.node(service, node).await? {
            Some(existing) => {
                if let Some(form) = options {
                    existing
                        .config
                        .check_preconditions(form, self.limits.max_items)
                        .map_err(config_error)?;
                }
                existing
            }
            None => {
                let created = self.new_node(service, options, creator).await?;
                added += node_bytes(node, &created);
                changes.push((node_key(node), Some(Record::Node(created.clone()))));
                created
            }
        };
        let item = ItemRecord {
            id: id.clone(),
            payload,
            publisher: publisher.to_owned(),
            seq: self.next_seq(),
        };
        let keep = if record.config.persist_items {
            record.config.max_items.max(1)
        } else {
            1
        };
        let (replaced, others): (Vec<ItemRecord>, Vec<ItemRecord>) = self
            .items(service, node)
            .await?
            .into_iter()
            .partition(|existing| existing.id == id);
        let excess = (others.len() + 1).saturating_sub(keep);
        let evicted: Vec<String> = others.iter().take(excess).map(|i| i.id.clone()).collect();
        let freed: usize = replaced
            .iter()
            .chain(others.iter().take(excess))
            .map(|old| item_bytes(node, old))
            .sum();
        self.check_quota(service, added + item_bytes(node, &item), freed)
            .await?;
        for old in &evicted {
            changes.push((item_key(node, old), None));
        }
        changes.push((item_key(node, &id), Some(Record::Item(item.clone()))));
        self.store(service).apply(&service.owner, changes).await?;
        Ok(Published {
            item,
            node: record,
            evicted,
        })
    }

    /// Removes one item; false when it did not exist.
    pub async fn retract(
        &self,
        service: &ServiceId,
        node: &str,
        id: &str,
    ) -> Result<bool, PubSubError> {
        let _guard = self.lock(service, node).await;
        if self.node(service, node).await?.is_none() {
            return Err(PubSubError::ItemNotFound);
        }
        let store = self.store(service);
        let key = item_key(node, id);
        if store.get(&service.owner, &key).await?.is_none() {
            return Ok(false);
        }
        store.delete(&service.owner, &key).await?;
        Ok(true)
    }

    /// Removes every item of a node.
    pub async fn purge(&self, service: &ServiceId, node: &str) -> Result<NodeRecord, PubSubError> {
        self.remove(service, node, false).await
    }

    /// Deletes a node and its items; returns what it was, for notifications.
    pub async fn delete(&self, service: &ServiceId, node: &str) -> Result<NodeRecord, PubSubError> {
        self.remove(service, node, true).await
    }

    /// Removes a node's items, and the node itself when `with_node`, in one batch.
    async fn remove(
        &self,
        service: &ServiceId,
        node: &str,
        with_node: bool,
    ) -> Result<NodeRecord, PubSubError> {
        let _guard = self.lock(service, node).await;
        let record = self
            .node(service, node)
            .await?
            .ok_or(PubSubError::ItemNotFound)?;
        let mut changes: Vec<(String, Option<Record>)> = self
            .items(service, node)
            .await?
            .into_iter()
            .map(|item| (item_key(node, &item.id), None))
            .collect();
        if with_node {
            changes.push((node_key(node), None));
        }
        self.store(service).apply(&service.owner, changes).await?;
        Ok(record)
    }

    /// Stores a node record; callers hold the node's lock.
    async fn save_node(
        &self,
        service: &ServiceId,
        node: &str,
        record: &NodeRecord,
    ) -> Result<(), PubSubError> {
        self.store(service)
            .set(
                &service.owner,
                &node_key(node),
                &Record::Node(record.clone()),
            )
            .await?;
        Ok(())
    }

    /// Applies a submitted configuration form to an existing node.
    pub async fn configure(
        &self,
        service: &ServiceId,
        node: &str,
        form: &DataForm,
    ) -> Result<NodeRecord, PubSubError> {
        let _guard = self.lock(service, node).await;
        let mut record = self
            .node(service, node)
            .await?
            .ok_or(PubSubError::ItemNotFound)?;
        let before = node_bytes(node, &record);
        record
            .config
            .apply(form, self.limits.max_items)
            .map_err(config_error)?;
        self.check_quota(service, node_bytes(node, &record), before)
            .await?;
        self.save_node(service, node, &record).await?;
        let items = self.items(service, node).await?;
        let keep = record.config.max_items.max(1);
        if items.len() > keep {
            let changes = items[..items.len() - keep]
                .iter()
                .map(|item| (item_key(node, &item.id), None))
                .collect();
            self.store(service).apply(&service.owner, changes).await?;
        }
        Ok(record)
    }

    /// Reads `node`, lets `change` modify it and writes it back, all under the node's lock:
    /// no concurrent change is lost or undone.
    async fn update_node<T>(
        &self,
        service: &ServiceId,
        node: &str,
        change: impl FnOnce(&mut NodeRecord) -> Result<T, PubSubError>,
    ) -> Result<T, PubSubError> {
        let _guard = self.lock(service, node).await;
        let mut record = self
            .node(service, node)
            .await?
            .ok_or(PubSubError::ItemNotFound)?;
        let outcome = change(&mut record)?;
        self.save_node(service, node, &record).await?;
        Ok(outcome)
    }

    /// Subscribes `jid` to `node` if `may_read` accepts the node as it is at that moment and
    /// the subscription caps leave room; returns the node record.
    pub async fn subscribe(
        &self,
        service: &ServiceId,
        node: &str,
        jid: &str,
        may_read: impl FnOnce(&NodeRecord) -> Result<(), PubSubError>,
    ) -> Result<NodeRecord, PubSubError> {
        let limits = self.limits;
        self.update_node(service, node, |record| {
            may_read(record)?;
            if !record.subscriptions.contains_key(jid) {
                let bare = bare_part(jid);
                let of_subscriber = record
                    .subscriptions
                    .keys()
                    .filter(|existing| bare_part(existing) == bare)
                    .count();
                if record.subscriptions.len() >= limits.max_subscriptions_per_node
                    || of_subscriber >= limits.max_subscriptions_per_jid
                {
                    return Err(PubSubError::TooManySubscriptions);
                }
            }
            record
                .subscriptions
                .insert(jid.to_owned(), "subscribed".to_owned());
            Ok(record.clone())
        })
        .await
    }

    /// Removes the subscription of `jid` to `node`.
    pub async fn unsubscribe(
        &self,
        service: &ServiceId,
        node: &str,
        jid: &str,
    ) -> Result<(), PubSubError> {
        self.update_node(service, node, |record| {
            record
                .subscriptions
                .remove(jid)
                .map(|_| ())
                .ok_or(PubSubError::NotSubscribed)
        })
        .await
    }

    /// Applies affiliation changes (`None` removes one) to `node` in one update.
    pub async fn set_affiliations(
        &self,
        service: &ServiceId,
        node: &str,
        changes: Vec<(String, Option<Affiliation>)>,
    ) -> Result<(), PubSubError> {
        self.update_node(service, node, |record| {
            for (jid, affiliation) in changes {
                match affiliation {
                    Some(affiliation) => record.affiliations.insert(jid, affiliation),
                    None => record.affiliations.remove(&jid),
                };
            }
            Ok(())
        })
        .await
    }
}

/// Checks a read under the node's access model.
pub fn check_access(
    node: &NodeRecord,
    requester: &str,
    relation: &Relation,
) -> Result<(), PubSubError> {
    if relation.is_owner {
        return Ok(());
    }
    let affiliation = node.affiliations.get(requester).copied();
    if affiliation == Some(Affiliation::Outcast) {
        return Err(PubSubError::AccessDenied(AccessModel::Whitelist));
    }
    if matches!(
        affiliation,
        Some(Affiliation::Owner | Affiliation::Publisher | Affiliation::Member)
    ) {
        return Ok(());
    }
    let allowed = match node.config.access_model {
        AccessModel::Open => true,
        AccessModel::Presence => relation.presence_subscribed,
        AccessModel::Roster => relation
            .groups
            .iter()
            .any(|g| node.config.roster_groups_allowed.contains(g)),
        AccessModel::Whitelist => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(PubSubError::AccessDenied(node.config.access_model))
    }
}

fn config_error(error: ConfigError) -> PubSubError {
    match error {
        ConfigError::BadValue(field) => PubSubError::BadValue(field),
        ConfigError::PreconditionNotMet(field) => PubSubError::PreconditionNotMet(field),
    }
}
