//! XEP-0054: vcard-temp — each account's vCard, set by its owner and readable by anyone
//! (clients show names and avatars from it).

use std::sync::Arc;

use async_trait::async_trait;
use jid::BareJid;
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stanza::{Condition, IqType, StanzaError};
use serde::Deserialize;

use crate::modules::roster::internal;
use crate::modules::Module;
use crate::router::{
    Event, Implements, IqHandler, IqRequest, IqResult, IqScope, Registrar, Router,
};
use crate::storage::{KvStore, StorageError};

/// Store name of vCards.
const STORE: &str = "vcard";

/// `[modules.vcard]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VCardConfig {
    /// Largest vCard stored, in bytes (avatars inside it count).
    pub max_size: usize,
}

impl Default for VCardConfig {
    fn default() -> Self {
        VCardConfig {
            max_size: 128 * 1024,
        }
    }
}

/// The vcard-temp module.
pub struct VCardModule {
    config: VCardConfig,
}

static IMPLEMENTS: &[Implements] = &[Implements {
    spec: "XEP-0054",
    version: "1.3.0",
    note: "vCards stored per account, with a size limit",
}];

impl Module for VCardModule {
    fn name(&self) -> &'static str {
        "vcard"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        registrar.iq(IqScope::Account, ns::VCARD, "vCard", self);
        registrar.account_feature(ns::VCARD);
        registrar.server_feature(ns::VCARD);
    }
}

impl VCardModule {
    /// The module with its size limit.
    pub fn new(config: VCardConfig) -> Self {
        VCardModule { config }
    }

    /// `owner`'s stored vCard, if any.
    pub async fn vcard(
        &self,
        router: &Router,
        owner: &BareJid,
    ) -> Result<Option<Element>, StorageError> {
        let xml = Self::store_of(router, owner).get(&user_of(owner)).await?;
        Ok(xml.and_then(|xml| Element::parse(&xml).ok()))
    }

    /// Stores `owner`'s vCard within the size limit. Raises no hook event: modules that
    /// convert into the vCard use it without being called back.
    pub async fn store(
        &self,
        router: &Router,
        owner: &BareJid,
        vcard: &Element,
    ) -> Result<(), VCardStoreError> {
        let xml = vcard.to_xml();
        if xml.len() > self.config.max_size {
            return Err(VCardStoreError::TooLarge(self.config.max_size));
        }
        Self::store_of(router, owner)
            .set(&user_of(owner), &xml)
            .await?;
        Ok(())
    }

    fn store_of(router: &Router, owner: &BareJid) -> KvStore<String> {
        router.storage.kv::<String>(owner.domain().as_str(), STORE)
    }
}

/// Why a vCard was not stored.
#[derive(Debug, thiserror::Error)]
pub enum VCardStoreError {
    /// It is larger than the configured limit (in bytes).
    #[error("a vCard may take at most {0} bytes")]
    TooLarge(usize),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn user_of(owner: &BareJid) -> String {
    owner.node().map(|n| n.to_string()).unwrap_or_default()
}

#[async_trait]
impl IqHandler<Router> for VCardModule {
    async fn handle(&self, router: &Router, request: IqRequest) -> IqResult {
        let account = request.to.to_bare();
        match request.iq_type {
            IqType::Set => {
                if !request.from_owner() {
                    return Err(StanzaError::new(Condition::Forbidden));
                }
                match self.store(router, &account, &request.payload).await {
                    Ok(()) => {}
                    Err(error @ VCardStoreError::TooLarge(_)) => {
                        return Err(
                            StanzaError::new(Condition::NotAcceptable).with_text(error.to_string())
                        )
                    }
                    Err(VCardStoreError::Storage(error)) => return Err(internal(error)),
                }
                let event = Event::VCardStored {
                    owner: &account,
                    vcard: &request.payload,
                };
                router.run_hooks(event).await;
                Ok(None)
            }
            _ => match self.vcard(router, &account).await.map_err(internal)? {
                Some(vcard) => Ok(Some(vcard)),
                None if request.from_owner() => Ok(Some(Element::new("vCard", ns::VCARD))),
                // XEP-0054 §3.1: the same answer as for an account that does not exist
                // (which the router gives), so that lookups cannot harvest accounts.
                None => Err(StanzaError::new(Condition::ServiceUnavailable)),
            },
        }
    }
}
