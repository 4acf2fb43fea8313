//! XEP-0313: Message Archive Management (1.1.3)
//!
//! The archive query with its filter form, the result messages and `<fin/>` that answer it,
//! the archive metadata and the query form offered to clients. Queries in `urn:xmpp:mam:1`
//! and `urn:xmpp:mam:0` have the same shape and are read too, and answers are written in the
//! namespace of the query. Where the older versions send `<fin/>` is the server's concern:
//! this module only builds the element.

mod metadata;
mod query;
mod results;

pub use metadata::{metadata, parse_metadata, query_form, ArchiveBound};
pub use query::MamQuery;
pub use results::{Fin, MamResult};

use thiserror::Error;

use crate::forward::ForwardError;
use crate::ns;
use crate::rsm::RsmError;
use crate::stanza::Condition;

/// The disco features of an archive that supports the whole of this version.
pub const FEATURES: [&str; 2] = [ns::MAM, ns::MAM_EXTENDED];

/// Why a MAM element was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MamError {
    /// The element is not the expected MAM element in a known MAM namespace.
    #[error("not a MAM element")]
    NotMam,
    /// The form has a field the server does not support (`feature-not-implemented`).
    #[error("unsupported query field {0}")]
    UnknownField(String),
    /// A field's value is malformed, or a single-valued field has several.
    #[error("bad value for field {0}")]
    BadField(&'static str),
    /// The form's FORM_TYPE is not the query's namespace.
    #[error("FORM_TYPE does not match the query namespace")]
    WrongFormType,
    /// The RSM part is malformed.
    #[error(transparent)]
    Rsm(#[from] RsmError),
    /// A required attribute is absent or malformed.
    #[error("missing or bad attribute {0}")]
    BadAttribute(&'static str),
    /// A forwarded result is malformed.
    #[error(transparent)]
    Forward(#[from] ForwardError),
}

impl MamError {
    /// The stanza error condition to answer a query with.
    pub fn condition(&self) -> Condition {
        match self {
            MamError::UnknownField(_) => Condition::FeatureNotImplemented,
            _ => Condition::BadRequest,
        }
    }
}

/// The MAM namespace a client used, kept so that the answer speaks the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MamNs {
    /// `urn:xmpp:mam:2`.
    V2,
    /// `urn:xmpp:mam:1`.
    V1,
    /// `urn:xmpp:mam:0`.
    V0,
}

impl MamNs {
    /// The version a namespace names, if it is a MAM namespace.
    pub fn of(namespace: &str) -> Option<MamNs> {
        match namespace {
            ns::MAM => Some(MamNs::V2),
            ns::MAM_1 => Some(MamNs::V1),
            ns::MAM_0 => Some(MamNs::V0),
            _ => None,
        }
    }

    /// The namespace URI.
    pub fn as_str(self) -> &'static str {
        match self {
            MamNs::V2 => ns::MAM,
            MamNs::V1 => ns::MAM_1,
            MamNs::V0 => ns::MAM_0,
        }
    }
}
