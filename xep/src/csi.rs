//! XEP-0352: Client State Indication (1.0.0)
//!
//! The nonzas a client sends to say whether a user is looking at it, so that the server
//! can hold back what is not urgent while it is not.

use crate::element::Element;
use crate::ns;

/// What the client says about its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// `<active/>`: the user is looking; send everything now.
    Active,
    /// `<inactive/>`: the user is away from the client; non-urgent traffic may wait.
    Inactive,
}

impl ClientState {
    /// Reads a CSI nonza; `None` when the element is not one.
    pub fn parse(element: &Element) -> Option<ClientState> {
        if element.ns() != ns::CSI {
            return None;
        }
        match element.name() {
            "active" => Some(ClientState::Active),
            "inactive" => Some(ClientState::Inactive),
            _ => None,
        }
    }

    /// The nonza element.
    pub fn to_element(self) -> Element {
        let name = match self {
            ClientState::Active => "active",
            ClientState::Inactive => "inactive",
        };
        Element::new(name, ns::CSI)
    }
}

/// The `<csi/>` stream feature.
pub fn feature() -> Element {
    Element::new("csi", ns::CSI)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_examples_read_as_their_states_and_write_back() {
        for (xml, state) in [
            ("<inactive xmlns='urn:xmpp:csi:0'/>", ClientState::Inactive),
            ("<active xmlns='urn:xmpp:csi:0'/>", ClientState::Active),
        ] {
            let element = Element::parse(xml).expect("xml");
            assert_eq!(ClientState::parse(&element), Some(state));
            assert_eq!(state.to_element(), element);
        }
    }

    #[test]
    fn other_elements_are_not_client_states() {
        let foreign = Element::parse("<active xmlns='urn:xmpp:csi:1'/>").expect("xml");
        assert_eq!(ClientState::parse(&foreign), None);
        let unknown = Element::new("sleeping", ns::CSI);
        assert_eq!(ClientState::parse(&unknown), None);
    }

    #[test]
    fn the_feature_is_csi_in_its_namespace() {
        assert_eq!(feature().to_xml(), "<csi xmlns='urn:xmpp:csi:0'/>");
    }
}
