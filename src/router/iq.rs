//! IQ requests as the router hands them to the handlers modules register.

use async_trait::async_trait;
use jid::Jid;
use rempart_xep::element::Element;
use rempart_xep::stanza::{IqType, StanzaError};

/// Who an IQ is addressed to, for handler lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IqScope {
    /// The server itself (`to` is a served domain).
    Server,
    /// An account (`to` is a local bare JID, or absent meaning the sender's own account).
    Account,
    /// A module's service domain (`to` is e.g. `pubsub.example.org`).
    Service,
}

/// An IQ request as handed to a handler, with addresses already checked.
#[derive(Debug, Clone)]
pub struct IqRequest {
    /// The sender.
    pub from: Jid,
    /// The addressee (a domain or a bare JID; the sender's own bare JID when `to` was absent).
    pub to: Jid,
    /// `get` or `set`.
    pub iq_type: IqType,
    /// The whole `<iq/>`.
    pub stanza: Element,
    /// The single payload child.
    pub payload: Element,
}

impl IqRequest {
    /// True when the sender is a resource of the addressed account.
    pub fn from_owner(&self) -> bool {
        self.from.to_bare() == self.to.to_bare()
    }
}

/// A handler's answer: a payload for the result, or a stanza error.
pub type IqResult = Result<Option<Element>, StanzaError>;

/// An IQ handler for one payload (namespace, element) in one scope.
#[async_trait]
pub trait IqHandler<R>: Send + Sync {
    /// Answers the request.
    async fn handle(&self, router: &R, request: IqRequest) -> IqResult;
}
