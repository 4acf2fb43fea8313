//! XEP-0049: Private XML Storage — one stored element per (namespace, name) per account,
//! readable and writable by the account's own resources only (older clients keep bookmarks
//! here).

use std::sync::Arc;

use async_trait::async_trait;
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stanza::{Condition, IqType, StanzaError};
use serde::Deserialize;

use crate::modules::roster::internal;
use crate::modules::Module;
use crate::router::{Implements, IqHandler, IqRequest, IqResult, IqScope, Registrar, Router};

/// Store name of private XML.
const STORE: &str = "private";

/// `[modules.private]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivateConfig {
    /// Most stored elements (distinct namespace and name) per account.
    pub max_keys: usize,
    /// Most bytes of stored elements per account, all keys together.
    pub max_bytes: usize,
}

impl Default for PrivateConfig {
    fn default() -> Self {
        PrivateConfig {
            max_keys: 64,
            max_bytes: 512 * 1024,
        }
    }
}

/// The private storage module.
pub struct PrivateModule {
    config: PrivateConfig,
}

static IMPLEMENTS: &[Implements] = &[Implements {
    spec: "XEP-0049",
    version: "1.2",
    note: "private XML storage per account, with a quota in keys and bytes",
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

impl PrivateModule {
    /// The module with its quota.
    pub fn new(config: PrivateConfig) -> Self {
        PrivateModule { config }
    }

    /// Refuses a write of `size` bytes under `key` that would pass the account's quota: an
    /// element larger than the whole quota is `not-acceptable`, a full store is
    /// `resource-constraint`.
    fn check_quota(
        &self,
        held: &[(String, String)],
        key: &str,
        size: usize,
    ) -> Result<(), StanzaError> {
        if size > self.config.max_bytes {
            return Err(StanzaError::new(Condition::NotAcceptable)
                .with_text("the element is larger than the private storage quota"));
        }
        let others = held.iter().filter(|(stored, _)| stored != key);
        let (keys, bytes) = others.fold((0usize, 0usize), |(keys, bytes), (_, xml)| {
            (keys + 1, bytes.saturating_add(xml.len()))
        });
        if keys >= self.config.max_keys || bytes.saturating_add(size) > self.config.max_bytes {
            return Err(StanzaError::new(Condition::ResourceConstraint)
                .with_text("the private storage quota of this account is used up"));
        }
        Ok(())
    }
}

#[async_trait]
impl IqHandler<Router> for PrivateModule {
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
                let xml = data.to_xml();
                let held = store.all(&user).await.map_err(internal)?;
                self.check_quota(&held, &key, xml.len())?;
                store.set(&user, &key, &xml).await.map_err(internal)?;
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
