//! XEP-0334: Message Processing Hints (1.0.0)
//!
//! Hints a sender puts on a message to say whether it may be copied or stored.

use crate::element::Element;
use crate::ns;

/// One processing hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// `<no-permanent-store/>`: keep it only as long as needed to deliver it.
    NoPermanentStore,
    /// `<no-store/>`: store it nowhere (no archive, no offline storage).
    NoStore,
    /// `<no-copy/>`: send no copies (carbons) of it.
    NoCopy,
    /// `<store/>`: archive it even if it would not be by default.
    Store,
}

impl Hint {
    /// The element name of the hint.
    pub fn as_str(self) -> &'static str {
        match self {
            Hint::NoPermanentStore => "no-permanent-store",
            Hint::NoStore => "no-store",
            Hint::NoCopy => "no-copy",
            Hint::Store => "store",
        }
    }

    /// The hint element to add to a message.
    pub fn to_element(self) -> Element {
        Element::new(self.as_str(), ns::HINTS)
    }

    /// True when the message carries this hint.
    pub fn is_on(self, message: &Element) -> bool {
        message.has_child(self.as_str(), ns::HINTS)
    }
}

/// True when the message asks not to be kept in any permanent store (archive, offline
/// storage): `<no-store/>` implies `<no-permanent-store/>`.
pub fn forbids_permanent_store(message: &Element) -> bool {
    Hint::NoStore.is_on(message) || Hint::NoPermanentStore.is_on(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_no_copy_no_store_example_carries_both_hints() {
        let message = Element::parse(
            "<message xmlns='jabber:client' to='juliet@capulet.lit/laptop' from='romeo@montague.lit/laptop'>\
             <body>V unir avtug'f pybnx gb uvqr zr sebz gurve fvtug</body>\
             <no-copy xmlns='urn:xmpp:hints'/><no-store xmlns='urn:xmpp:hints'/></message>",
        )
        .expect("xml");
        assert!(Hint::NoCopy.is_on(&message));
        assert!(Hint::NoStore.is_on(&message));
        assert!(!Hint::Store.is_on(&message));
        assert!(forbids_permanent_store(&message));
    }

    #[test]
    fn a_hint_in_another_namespace_is_not_a_hint() {
        let message = Element::new("message", ns::CLIENT).child(Element::new("no-store", "urn:x"));
        assert!(!forbids_permanent_store(&message));
        let hinted = Element::new("message", ns::CLIENT).child(Hint::NoPermanentStore.to_element());
        assert!(forbids_permanent_store(&hinted));
    }
}
