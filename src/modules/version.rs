//! XEP-0092: Software Version — the server's name and version.

use std::sync::Arc;

use async_trait::async_trait;
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stanza::{Condition, IqType, StanzaError};
use serde::Deserialize;

use crate::modules::Module;
use crate::router::{Implements, IqHandler, IqRequest, IqResult, IqScope, Registrar, Router};

/// `[modules.version]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VersionConfig {
    /// Answer version queries at all.
    pub enabled: bool,
    /// Include the operating system (off by default: it helps attackers more than users).
    pub show_os: bool,
}

impl Default for VersionConfig {
    fn default() -> Self {
        VersionConfig {
            enabled: true,
            show_os: false,
        }
    }
}

/// The software version module.
pub struct VersionModule {
    config: VersionConfig,
}

static IMPLEMENTS: &[Implements] = &[Implements {
    spec: "XEP-0092",
    version: "1.1",
    note: "server name and version",
}];

impl VersionModule {
    /// The module with its configuration.
    pub fn new(config: VersionConfig) -> Self {
        VersionModule { config }
    }
}

impl Module for VersionModule {
    fn name(&self) -> &'static str {
        "version"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        registrar.iq(IqScope::Server, ns::VERSION, "query", self);
        registrar.server_feature(ns::VERSION);
    }
}

#[async_trait]
impl IqHandler<Router> for VersionModule {
    async fn handle(&self, _router: &Router, request: IqRequest) -> IqResult {
        if request.iq_type != IqType::Get {
            return Err(StanzaError::new(Condition::BadRequest));
        }
        let mut query = Element::new("query", ns::VERSION)
            .child(Element::new("name", ns::VERSION).text("Rempart"))
            .child(Element::new("version", ns::VERSION).text(env!("CARGO_PKG_VERSION")));
        if self.config.show_os {
            query.append_child(Element::new("os", ns::VERSION).text(std::env::consts::OS));
        }
        Ok(Some(query))
    }
}
