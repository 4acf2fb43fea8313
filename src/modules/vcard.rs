//! XEP-0054: vcard-temp — each account's vCard, set by its owner and readable by anyone
//! (clients show names and avatars from it).

use std::sync::Arc;

use async_trait::async_trait;
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stanza::{Condition, IqType, StanzaError};
use serde::Deserialize;

use crate::modules::roster::internal;
use crate::modules::Module;
use crate::router::{Implements, IqHandler, IqRequest, IqResult, IqScope, Registrar, Router};

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
}

#[async_trait]
impl IqHandler<Router> for VCardModule {
    async fn handle(&self, router: &Router, request: IqRequest) -> IqResult {
        let account = request.to.to_bare();
        let user = account.node().map(|n| n.to_string()).unwrap_or_default();
        let store = router
            .storage
            .kv::<String>(account.domain().as_str(), STORE);
        match request.iq_type {
            IqType::Set => {
                if !request.from_owner() {
                    return Err(StanzaError::new(Condition::Forbidden));
                }
                let xml = request.payload.to_xml();
                if xml.len() > self.config.max_size {
                    return Err(
                        StanzaError::new(Condition::NotAcceptable).with_text(format!(
                            "a vCard may take at most {} bytes",
                            self.config.max_size
                        )),
                    );
                }
                store.set(&user, &xml).await.map_err(internal)?;
                Ok(None)
            }
            _ => {
                let stored = store
                    .get(&user)
                    .await
                    .map_err(internal)?
                    .and_then(|xml| Element::parse(&xml).ok());
                match stored {
                    Some(vcard) => Ok(Some(vcard)),
                    None if request.from_owner() => Ok(Some(Element::new("vCard", ns::VCARD))),
                    // XEP-0054 §3.1: the same answer as for an account that does not exist
                    // (which the router gives), so that lookups cannot harvest accounts.
                    None => Err(StanzaError::new(Condition::ServiceUnavailable)),
                }
            }
        }
    }
}
