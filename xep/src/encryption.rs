//! End-to-end encrypted message payloads (XEP-0384 OMEMO in both namespaces, XEP-0027): a
//! message that carries one is news for its user although the server sees no body.

use crate::element::Element;
use crate::ns;

/// The encrypted payload elements, as (name, namespace).
const ENCRYPTED: [(&str, &str); 3] = [
    ("encrypted", ns::OMEMO),
    ("encrypted", ns::OMEMO_LEGACY),
    ("x", ns::OPENPGP_LEGACY),
];

/// True when the message carries an end-to-end encrypted payload.
pub fn has_encrypted_payload(message: &Element) -> bool {
    ENCRYPTED
        .iter()
        .any(|(name, namespace)| message.has_child(name, namespace))
}

/// True when the message says something to its user: a body or an encrypted payload
/// (chat states, receipts and markers alone do not).
pub fn has_content(message: &Element) -> bool {
    message.has_child("body", ns::CLIENT) || has_encrypted_payload(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Element {
        Element::parse(xml).expect("xml")
    }

    #[test]
    fn omemo_in_either_namespace_is_content_without_a_body() {
        for namespace in [ns::OMEMO, ns::OMEMO_LEGACY] {
            let message = parse(&format!(
                "<message xmlns='jabber:client'><encrypted xmlns='{namespace}'/></message>"
            ));
            assert!(has_encrypted_payload(&message));
            assert!(has_content(&message));
        }
    }

    #[test]
    fn a_chat_state_alone_is_not_content() {
        let typing = parse(
            "<message xmlns='jabber:client'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        );
        assert!(!has_content(&typing));
        let body = parse("<message xmlns='jabber:client'><body>hi</body></message>");
        assert!(has_content(&body));
    }
}
