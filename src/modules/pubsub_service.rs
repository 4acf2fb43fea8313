//! XEP-0060: a generic publish-subscribe service on `pubsub.<host>`, served by the same engine
//! and protocol code as PEP. Who may create a node (becoming its owner) is configured: local
//! accounts by default, never users of other servers unless the service is `open`; owners
//! and publishers publish; readers follow the node's access model (open by default).

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use jid::{BareJid, FullJid};
use rempart_xep::disco::{items_query, DiscoInfo, DiscoItem, Identity};
use rempart_xep::ns;
use rempart_xep::pubsub::{NS, NS_OWNER};
use rempart_xep::stanza::{Condition, IqType, StanzaError};
use serde::Deserialize;

use crate::modules::Module;
use crate::pubsub::config::{AccessModel, NodeConfig, SendLastItem};
use crate::pubsub::fanout::Fanout;
use crate::pubsub::protocol::{Request, ServicePolicy, FEATURES};
use crate::pubsub::{
    check_access, Affiliation, NodeRecord, PubSub, PubSubLimits, Relation, ServiceId,
};
use crate::router::{Implements, IqHandler, IqRequest, IqResult, IqScope, Registrar, Router};

/// `[modules.pubsub]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PubSubServiceConfig {
    /// Serve `pubsub.<host>` for every host.
    pub enabled: bool,
    /// The subdomain label.
    pub prefix: String,
    /// What `pubsub#max_items = max` means, and the most items any node keeps.
    pub max_items: usize,
    /// Most nodes per service.
    pub max_nodes: usize,
    /// Largest item payload in bytes.
    pub max_item_size: usize,
    /// Who may create nodes.
    pub node_creation: NodeCreation,
    /// Bare JIDs that may create nodes under `node_creation = "admins"` (and always).
    #[serde(deserialize_with = "bare_jids")]
    pub admins: Vec<BareJid>,
    /// Most subscriptions one node holds, all subscribers together.
    pub max_subscriptions_per_node: usize,
    /// Most subscriptions one bare JID (all its resources) holds on one node.
    pub max_subscriptions_per_jid: usize,
    /// Tasks sending notifications, outside the publishers' sessions.
    pub fanout_workers: usize,
    /// Publishes waiting for each of those tasks; a publisher waits when its worker is full.
    pub fanout_queue: usize,
}

/// Parses a list of bare JIDs, failing the configuration on one that is not.
fn bare_jids<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<BareJid>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|jid| {
            BareJid::new(jid)
                .map_err(|error| serde::de::Error::custom(format!("admins: {jid:?}: {error}")))
        })
        .collect()
}

/// Who may create nodes on the service (XEP-0060 §8.1.3 lets a service restrict it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeCreation {
    /// Only the configured `admins`.
    Admins,
    /// Accounts of the hosts served here (and `admins`).
    Local,
    /// Any user, of this server or another.
    Open,
}

impl Default for PubSubServiceConfig {
    fn default() -> Self {
        PubSubServiceConfig {
            enabled: true,
            prefix: "pubsub".to_owned(),
            max_items: 1000,
            max_nodes: 10_000,
            max_item_size: 128 * 1024,
            node_creation: NodeCreation::Local,
            admins: Vec::new(),
            max_subscriptions_per_node: 1000,
            max_subscriptions_per_jid: 10,
            fanout_workers: 4,
            fanout_queue: 256,
        }
    }
}

static IMPLEMENTS: &[Implements] = &[Implements {
    spec: "XEP-0060",
    version: "1.30.0",
    note: "pubsub service on pubsub.<host>: owners, publishers, subscribers, access models",
}];

/// The pubsub service module.
pub struct PubSubServiceModule {
    engine: PubSub,
    prefix: String,
    fanout: Fanout,
    creators: Arc<Creators>,
}

/// Who may create nodes, as configured.
#[derive(Debug)]
struct Creators {
    policy: NodeCreation,
    admins: HashSet<BareJid>,
}

impl Creators {
    /// True when `requester` may create a node.
    fn allow(&self, router: &Router, requester: &BareJid) -> bool {
        if self.admins.contains(requester) {
            return true;
        }
        match self.policy {
            NodeCreation::Admins => false,
            NodeCreation::Local => {
                requester.node().is_some() && router.config.serves(requester.domain().as_str())
            }
            NodeCreation::Open => requester.node().is_some(),
        }
    }
}

/// The pubsub service of one domain.
#[derive(Clone)]
struct DomainService {
    id: ServiceId,
    creators: Arc<Creators>,
}

fn affiliation(record: Option<&NodeRecord>, requester: &BareJid) -> Option<Affiliation> {
    record.and_then(|r| r.affiliations.get(requester.as_str()).copied())
}

#[async_trait]
impl ServicePolicy for DomainService {
    fn id(&self) -> &ServiceId {
        &self.id
    }

    fn address(&self) -> &str {
        &self.id.host
    }

    async fn relation(
        &self,
        _router: &Router,
        requester: &BareJid,
        node: Option<&NodeRecord>,
    ) -> Relation {
        Relation {
            is_owner: affiliation(node, requester) == Some(Affiliation::Owner),
            ..Relation::default()
        }
    }

    fn may_publish(&self, router: &Router, requester: &BareJid, node: Option<&NodeRecord>) -> bool {
        match node {
            None => self.creators.allow(router, requester),
            Some(_) => matches!(
                affiliation(node, requester),
                Some(Affiliation::Owner | Affiliation::Publisher)
            ),
        }
    }

    fn is_owner(&self, requester: &BareJid, node: Option<&NodeRecord>) -> bool {
        affiliation(node, requester) == Some(Affiliation::Owner)
    }

    fn creator(&self, requester: &BareJid) -> Option<String> {
        Some(requester.to_string())
    }

    fn shared(&self) -> Arc<dyn ServicePolicy> {
        Arc::new(self.clone())
    }

    async fn implicit_recipients(
        &self,
        _router: &Router,
        _node: &str,
        _record: &NodeRecord,
    ) -> Vec<FullJid> {
        Vec::new()
    }
}

impl PubSubServiceModule {
    /// The module with its limits.
    pub fn new(config: &PubSubServiceConfig, storage: crate::storage::Storage) -> Self {
        let limits = PubSubLimits {
            max_items: config.max_items,
            max_nodes: config.max_nodes,
            max_item_size: config.max_item_size,
            max_subscriptions_per_node: config.max_subscriptions_per_node,
            max_subscriptions_per_jid: config.max_subscriptions_per_jid,
            max_bytes: None,
        };
        let creators = Creators {
            policy: config.node_creation,
            admins: config.admins.iter().cloned().collect(),
        };
        let defaults = NodeConfig {
            access_model: AccessModel::Open,
            max_items: 10,
            send_last_published_item: SendLastItem::OnSub,
            ..NodeConfig::pep_default()
        };
        PubSubServiceModule {
            engine: PubSub::new(storage, limits, defaults),
            prefix: config.prefix.clone(),
            fanout: Fanout::new(config.fanout_workers, config.fanout_queue),
            creators: Arc::new(creators),
        }
    }

    async fn disco(&self, request: &IqRequest, service: &DomainService) -> IqResult {
        if request.iq_type != IqType::Get {
            return Err(StanzaError::new(Condition::BadRequest));
        }
        let node = request.payload.get_attr("node").map(str::to_owned);
        let requester = request.from.to_bare();
        if request.payload.ns() == ns::DISCO_INFO {
            let identities = match &node {
                None => vec![Identity::new("pubsub", "service").named("Publish-Subscribe")],
                Some(name) => {
                    let exists = self
                        .engine
                        .node(&service.id, name)
                        .await
                        .ok()
                        .flatten()
                        .is_some();
                    if !exists {
                        return Err(StanzaError::new(Condition::ItemNotFound));
                    }
                    vec![Identity::new("pubsub", "leaf")]
                }
            };
            let info = DiscoInfo {
                node,
                identities,
                features: FEATURES.iter().map(|f| (*f).to_owned()).collect(),
                forms: Vec::new(),
            };
            return Ok(Some(info.to_element()));
        }
        if node.is_some() {
            return Ok(Some(items_query(node, &[])));
        }
        let nodes = self
            .engine
            .nodes(&service.id)
            .await
            .map_err(|e| e.to_stanza_error())?;
        let items: Vec<DiscoItem> = nodes
            .into_iter()
            .filter(|(_, record)| {
                let relation = Relation {
                    is_owner: affiliation(Some(record), &requester) == Some(Affiliation::Owner),
                    ..Relation::default()
                };
                check_access(record, requester.as_str(), &relation).is_ok()
            })
            .map(|(name, _)| DiscoItem {
                jid: service.id.host.clone(),
                node: Some(name),
                name: None,
            })
            .collect();
        Ok(Some(items_query(None, &items)))
    }
}

impl Module for PubSubServiceModule {
    fn name(&self) -> &'static str {
        "pubsub"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        registrar.service_prefix(&self.prefix);
        registrar.iq(IqScope::Service, NS, "pubsub", self.clone());
        registrar.iq(IqScope::Service, NS_OWNER, "pubsub", self.clone());
        registrar.iq(IqScope::Service, ns::DISCO_INFO, "query", self.clone());
        registrar.iq(IqScope::Service, ns::DISCO_ITEMS, "query", self);
    }
}

#[async_trait]
impl IqHandler<Router> for PubSubServiceModule {
    async fn handle(&self, router: &Router, request: IqRequest) -> IqResult {
        let service = DomainService {
            id: ServiceId {
                host: request.to.domain().to_string(),
                owner: String::new(),
            },
            creators: self.creators.clone(),
        };
        if request.payload.ns() == ns::DISCO_INFO || request.payload.ns() == ns::DISCO_ITEMS {
            return self.disco(&request, &service).await;
        }
        Request {
            engine: &self.engine,
            service: &service,
            router,
            request: &request,
            fanout: &self.fanout,
        }
        .answer()
        .await
    }
}
