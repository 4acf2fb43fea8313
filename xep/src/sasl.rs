//! RFC 6120 §6 SASL negotiation elements and XEP-0440 channel-binding advertisement.

use crate::element::Element;
use crate::ns;

/// SASL failure conditions of RFC 6120 §6.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslFailure {
    /// The client aborted.
    Aborted,
    /// The authzid is not allowed.
    InvalidAuthzid,
    /// The mechanism is not offered.
    InvalidMechanism,
    /// The data could not be decoded.
    MalformedRequest,
    /// The mechanism needs TLS first.
    EncryptionRequired,
    /// Wrong credentials or too many attempts.
    NotAuthorized,
    /// The server failed; retry later.
    TemporaryAuthFailure,
}

impl SaslFailure {
    /// The element name.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslFailure::Aborted => "aborted",
            SaslFailure::InvalidAuthzid => "invalid-authzid",
            SaslFailure::InvalidMechanism => "invalid-mechanism",
            SaslFailure::MalformedRequest => "malformed-request",
            SaslFailure::EncryptionRequired => "encryption-required",
            SaslFailure::NotAuthorized => "not-authorized",
            SaslFailure::TemporaryAuthFailure => "temporary-auth-failure",
        }
    }

    /// The `<failure/>` element.
    pub fn to_element(self) -> Element {
        Element::new("failure", ns::SASL).child(Element::new(self.as_str(), ns::SASL))
    }
}

/// The `<mechanisms/>` stream feature.
pub fn mechanisms<'a>(names: impl IntoIterator<Item = &'a str>) -> Element {
    let mut element = Element::new("mechanisms", ns::SASL);
    for name in names {
        element.append_child(Element::new("mechanism", ns::SASL).text(name));
    }
    element
}

/// The XEP-0440 `<sasl-channel-binding/>` stream feature.
pub fn channel_binding_types<'a>(types: impl IntoIterator<Item = &'a str>) -> Element {
    let mut element = Element::new("sasl-channel-binding", ns::SASL_CB);
    for kind in types {
        element.append_child(Element::new("channel-binding", ns::SASL_CB).attr("type", kind));
    }
    element
}
