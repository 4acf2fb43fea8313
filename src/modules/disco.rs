//! XEP-0030: Service Discovery for the server and for accounts, built from what modules
//! register; XEP-0115: the server's own capabilities hash for stream features.

use std::sync::Arc;

use async_trait::async_trait;
use rempart_xep::caps::{ver_string, SERVER_NODE};
use rempart_xep::disco::{items_query, DiscoInfo, DiscoItem, Identity};
use rempart_xep::ns;
use rempart_xep::stanza::{Condition, IqType, StanzaError};

use crate::modules::Module;
use crate::router::{Implements, IqHandler, IqRequest, IqResult, IqScope, Registrar, Router};

/// The disco module.
pub struct DiscoModule;

static IMPLEMENTS: &[Implements] = &[
    Implements {
        spec: "XEP-0030",
        version: "2.5.0",
        note: "disco#info and #items on the server and accounts",
    },
    Implements {
        spec: "XEP-0115",
        version: "1.6.0",
        note: "server capabilities in stream features",
    },
];

impl Module for DiscoModule {
    fn name(&self) -> &'static str {
        "disco"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        for scope in [IqScope::Server, IqScope::Account] {
            registrar.iq(scope, ns::DISCO_INFO, "query", self.clone());
            registrar.iq(scope, ns::DISCO_ITEMS, "query", self.clone());
        }
        registrar.server_feature(ns::DISCO_INFO);
        registrar.server_feature(ns::DISCO_ITEMS);
        registrar.account_feature(ns::DISCO_INFO);
        registrar.account_feature(ns::DISCO_ITEMS);
        registrar.server_identity(Identity::new("server", "im").named("Rempart"));
        registrar.account_identity(Identity::new("account", "registered"));
    }
}

fn account_info(router: &Router) -> DiscoInfo {
    DiscoInfo {
        node: None,
        identities: router.registry.account_identities.clone(),
        features: router.registry.account_features.clone(),
        forms: Vec::new(),
    }
}

#[async_trait]
impl IqHandler<Router> for DiscoModule {
    async fn handle(&self, router: &Router, request: IqRequest) -> IqResult {
        if request.iq_type != IqType::Get {
            return Err(StanzaError::new(Condition::BadRequest));
        }
        let node = request.payload.get_attr("node").map(str::to_owned);
        let on_server = request.to.node().is_none();
        if request.payload.ns() == ns::DISCO_ITEMS {
            if node.is_some() {
                return Err(StanzaError::new(Condition::ItemNotFound));
            }
            let mut items = Vec::new();
            if on_server
                && request.to.node().is_none()
                && router.config.serves(request.to.domain().as_str())
            {
                items.extend(router.service_domains().into_iter().map(|jid| DiscoItem {
                    jid,
                    node: None,
                    name: None,
                }));
            }
            if let Err(account) = request.to.try_as_full() {
                if account.node().is_some() {
                    for provider in &router.registry.account_items {
                        items.extend(provider.items(router, account, &request.from).await);
                    }
                }
            }
            return Ok(Some(items_query(None, &items)));
        }
        let mut info = if on_server {
            router.registry.server_info()
        } else {
            account_info(router)
        };
        if let Some(node) = node {
            let caps_node = format!("{SERVER_NODE}#{}", ver_string(&info));
            if !on_server || node != caps_node {
                return Err(StanzaError::new(Condition::ItemNotFound));
            }
            info.node = Some(node);
        }
        Ok(Some(info.to_element()))
    }
}
