//! XEP-0060: a generic publish-subscribe service on `pubsub.<host>`, served by the same engine
//! and protocol code as PEP. Any local user may create a node (becoming its owner); owners
//! and publishers publish; readers follow the node's access model (open by default).

use std::sync::Arc;

use async_trait::async_trait;
use jid::{BareJid, FullJid};
use rempart_xep::disco::{items_query, DiscoInfo, DiscoItem, Identity};
use rempart_xep::ns;
use rempart_xep::pubsub::{NS, NS_OWNER};
use rempart_xep::stanza::{Condition, IqType, StanzaError};
use serde::Deserialize;

use crate::modules::{Implements, IqHandler, IqRequest, IqResult, IqScope, Module, Registrar};
use crate::pubsub::config::{AccessModel, NodeConfig, SendLastItem};
use crate::pubsub::protocol::{Request, ServicePolicy, FEATURES};
use crate::pubsub::{
    check_access, Affiliation, NodeRecord, PubSub, PubSubLimits, Relation, ServiceId,
};
use crate::router::Router;

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
}

impl Default for PubSubServiceConfig {
    fn default() -> Self {
        PubSubServiceConfig {
            enabled: true,
            prefix: "pubsub".to_owned(),
            max_items: 1000,
            max_nodes: 10_000,
            max_item_size: 128 * 1024,
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
}

/// The pubsub service of one domain.
struct DomainService {
    id: ServiceId,
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

    fn may_publish(&self, requester: &BareJid, node: Option<&NodeRecord>) -> bool {
        match node {
            None => requester.node().is_some(),
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
impl IqHandler for PubSubServiceModule {
    async fn handle(&self, router: &Router, request: IqRequest) -> IqResult {
        let service = DomainService {
            id: ServiceId {
                host: request.to.domain().to_string(),
                owner: String::new(),
            },
        };
        if request.payload.ns() == ns::DISCO_INFO || request.payload.ns() == ns::DISCO_ITEMS {
            return self.disco(&request, &service).await;
        }
        Request {
            engine: &self.engine,
            service: &service,
            router,
            request: &request,
        }
        .answer()
        .await
    }
}
