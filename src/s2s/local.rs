//! What server-to-server links need from the server they belong to, handed to them as a
//! trait object so that links never name the router.

use async_trait::async_trait;
use rempart_xep::element::Element;
use rempart_xep::stanza::Condition;

/// The local side of every server-to-server link.
#[async_trait]
pub trait LocalServer: Send + Sync {
    /// Whether `domain` is served here (a host or one of its service domains).
    fn is_local_domain(&self, domain: &str) -> bool;
    /// The host that answers a stream naming no domain served here.
    fn default_host(&self) -> String;
    /// Routes a stanza received from a remote server whose `from` was proven.
    async fn route_from_remote(&self, stanza: Element);
    /// Answers the sender of a stanza that could not be sent with a stanza error.
    fn bounce(&self, stanza: &Element, condition: Condition);
    /// The last inbound stream on which `domain` was proven ended: what it told us
    /// (presence, interests) is no longer current.
    async fn remote_domain_disconnected(&self, domain: &str);
}
