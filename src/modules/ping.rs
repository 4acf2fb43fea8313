//! XEP-0199: XMPP Ping — answers pings to the server and to accounts. The session actor
//! pings idle clients itself.

use std::sync::Arc;

use async_trait::async_trait;
use rempart_xep::ns;

use crate::modules::Module;
use crate::router::{Implements, IqHandler, IqRequest, IqResult, IqScope, Registrar, Router};

/// The ping module.
pub struct PingModule;

static IMPLEMENTS: &[Implements] = &[Implements {
    spec: "XEP-0199",
    version: "2.0.1",
    note: "server answers pings and pings idle clients",
}];

impl Module for PingModule {
    fn name(&self) -> &'static str {
        "ping"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        registrar.iq(IqScope::Server, ns::PING, "ping", self.clone());
        registrar.iq(IqScope::Account, ns::PING, "ping", self);
        registrar.server_feature(ns::PING);
    }
}

#[async_trait]
impl IqHandler<Router> for PingModule {
    async fn handle(&self, _router: &Router, _request: IqRequest) -> IqResult {
        Ok(None)
    }
}
