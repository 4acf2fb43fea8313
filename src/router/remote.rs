//! The router as the local side of server-to-server links: inbound stanzas are routed like
//! any other, and stanzas the links could not send bounce to their senders.

use async_trait::async_trait;
use rempart_xep::element::Element;
use rempart_xep::stanza::Condition;

use crate::router::hooks::Event;
use crate::router::Router;
use crate::s2s::local::LocalServer;

#[async_trait]
impl LocalServer for Router {
    fn is_local_domain(&self, domain: &str) -> bool {
        Router::is_local_domain(self, domain)
    }

    fn default_host(&self) -> String {
        self.hosts().first().cloned().unwrap_or_default()
    }

    async fn route_from_remote(&self, stanza: Element) {
        self.route(stanza).await;
    }

    fn bounce(&self, stanza: &Element, condition: Condition) {
        Router::bounce(self, stanza, condition);
    }

    async fn remote_domain_disconnected(&self, domain: &str) {
        self.run_hooks(Event::RemoteDomainDisconnected { domain })
            .await;
    }
}
