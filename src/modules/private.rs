//! XEP-0049: Private XML Storage — one stored element per (namespace, name) per account,
//! readable and writable by the account's own resources only (older clients keep bookmarks
//! here).

use std::sync::Arc;

use async_trait::async_trait;
use jid::BareJid;
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stanza::{Condition, IqType, StanzaError};
use serde::Deserialize;
use tracing::warn;

use crate::modules::roster::internal;
use crate::modules::Module;
use crate::router::{
    Event, Implements, IqHandler, IqRequest, IqResult, IqScope, Registrar, Router,
};
use crate::storage::{MapStore, StorageError};

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

    /// The element `<name xmlns=ns/>` `owner` stored, if any.
    pub async fn element(
        &self,
        router: &Router,
        owner: &BareJid,
        ns: &str,
        name: &str,
    ) -> Result<Option<Element>, StorageError> {
        let stored = Self::store_of(router, owner)
            .get(&user_of(owner), &key_of(ns, name))
            .await?;
        Ok(stored.and_then(|xml| Element::parse(&xml).ok()))
    }

    /// Stores `data` for `owner` within the quota, replacing the element of the same name
    /// and namespace. Raises no hook event: modules that convert into private storage use it
    /// without being called back.
    pub async fn store(
        &self,
        router: &Router,
        owner: &BareJid,
        data: &Element,
    ) -> Result<(), PrivateStoreError> {
        let store = Self::store_of(router, owner);
        let user = user_of(owner);
        let key = key_of(data.ns(), data.name());
        let xml = data.to_xml();
        let held = store.all(&user).await?;
        self.check_quota(&held, &key, xml.len())?;
        store.set(&user, &key, &xml).await?;
        Ok(())
    }

    fn store_of(router: &Router, owner: &BareJid) -> MapStore<String> {
        router.storage.map::<String>(owner.domain().as_str(), STORE)
    }

    /// Refuses a write of `size` bytes under `key` that would pass the account's quota.
    fn check_quota(
        &self,
        held: &[(String, String)],
        key: &str,
        size: usize,
    ) -> Result<(), PrivateStoreError> {
        if size > self.config.max_bytes {
            return Err(PrivateStoreError::LargerThanQuota);
        }
        let others = held.iter().filter(|(stored, _)| stored != key);
        let (keys, bytes) = others.fold((0usize, 0usize), |(keys, bytes), (_, xml)| {
            (keys + 1, bytes.saturating_add(xml.len()))
        });
        if keys >= self.config.max_keys || bytes.saturating_add(size) > self.config.max_bytes {
            return Err(PrivateStoreError::QuotaUsedUp);
        }
        Ok(())
    }
}

/// Why an element was not stored.
#[derive(Debug, thiserror::Error)]
pub enum PrivateStoreError {
    /// The element alone is larger than the whole quota.
    #[error("the element is larger than the private storage quota")]
    LargerThanQuota,
    /// The account's quota in keys or bytes is used up.
    #[error("the private storage quota of this account is used up")]
    QuotaUsedUp,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl PrivateStoreError {
    /// The answer to the client: an element larger than the whole quota is
    /// `not-acceptable`, a full store is `resource-constraint`.
    fn to_stanza_error(&self) -> StanzaError {
        match self {
            PrivateStoreError::LargerThanQuota => {
                StanzaError::new(Condition::NotAcceptable).with_text(self.to_string())
            }
            PrivateStoreError::QuotaUsedUp => {
                StanzaError::new(Condition::ResourceConstraint).with_text(self.to_string())
            }
            PrivateStoreError::Storage(error) => {
                warn!(%error, "storage failure");
                StanzaError::new(Condition::InternalServerError)
            }
        }
    }
}

fn user_of(owner: &BareJid) -> String {
    owner.node().map(|n| n.to_string()).unwrap_or_default()
}

fn key_of(ns: &str, name: &str) -> String {
    format!("{ns} {name}")
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
        let owner = request.to.to_bare();
        match request.iq_type {
            IqType::Set => {
                self.store(router, &owner, data)
                    .await
                    .map_err(|error| error.to_stanza_error())?;
                let event = Event::PrivateXmlStored {
                    owner: &owner,
                    data,
                };
                router.run_hooks(event).await;
                Ok(None)
            }
            _ => {
                let mut stored = self
                    .element(router, &owner, data.ns(), data.name())
                    .await
                    .map_err(internal)?
                    .unwrap_or_else(|| Element::new(data.name(), data.ns()));
                let event = Event::PrivateXmlRead {
                    owner: &owner,
                    data: &mut stored,
                };
                router.run_hooks(event).await;
                Ok(Some(Element::new("query", ns::PRIVATE).child(stored)))
            }
        }
    }
}
