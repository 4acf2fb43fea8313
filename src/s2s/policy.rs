//! Which remote domains may federate with us, and how they must prove who they are.

use serde::Deserialize;

/// How a remote domain is authenticated, or whether it is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// A certificate valid for the domain (then SASL EXTERNAL), or else Server Dialback —
    /// what most of the XMPP network relies on.
    Dialback,
    /// Only a certificate valid for the domain authenticates it.
    RequireValidCert,
    /// No federation with the domain at all.
    Deny,
}

impl Policy {
    /// Whether an unverified certificate may be made up for with dialback.
    pub fn allows_dialback(self) -> bool {
        self == Policy::Dialback
    }
}
