//! XEP-0049: Private XML Storage — one stored element per (namespace, name) per account,
//! readable and writable by the account's own resources only (older clients keep bookmarks
//! here).

use std::sync::Arc;

use async_trait::async_trait;
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stanza::{Condition, IqType, StanzaError};

use crate::modules::roster::internal;
use crate::modules::{Implements, IqHandler, IqRequest, IqResult, IqScope, Module, Registrar};
use crate::router::Router;

/// Store name of private XML.
const STORE: &str = "private";

/// The private storage module.
pub struct PrivateModule;

static IMPLEMENTS: &[Implements] = &[Implements {
    spec: "XEP-0049",
    version: "1.2",
    note: "private XML storage per account",
}];

impl Module for PrivateModule {
    fn name(&self) -> &'static str {
        "private"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        registrar.iq(IqScope::Account, ns::PRIVATE, "query", self);
    }
}

#[async_trait]
impl IqHandler for PrivateModule {
    async fn handle(&self, router: &Router, request: IqRequest) -> IqResult {
        if !request.from_owner() {
            return Err(StanzaError::new(Condition::Forbidden));
        }
        let mut children = request.payload.children();
        let (Some(data), None) = (children.next(), children.next()) else {
            return Err(StanzaError::new(Condition::NotAcceptable)
                .with_text("exactly one element is stored or retrieved at a time"));
        };
        if [ns::CLIENT, ns::SERVER, ns::PRIVATE].contains(&data.ns()) {
            return Err(StanzaError::new(Condition::NotAcceptable));
        }
        let account = request.to.to_bare();
        let user = account.node().map(|n| n.to_string()).unwrap_or_default();
        let store = router
            .storage
            .map::<String>(account.domain().as_str(), STORE);
        let key = format!("{} {}", data.ns(), data.name());
        match request.iq_type {
            IqType::Set => {
                store
                    .set(&user, &key, &data.to_xml())
                    .await
                    .map_err(internal)?;
                Ok(None)
            }
            _ => {
                let stored = store
                    .get(&user, &key)
                    .await
                    .map_err(internal)?
                    .and_then(|xml| Element::parse(&xml).ok())
                    .unwrap_or_else(|| Element::new(data.name(), data.ns()));
                Ok(Some(Element::new("query", ns::PRIVATE).child(stored)))
            }
        }
    }
}
