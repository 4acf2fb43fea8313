//! XEP-0280: Message Carbons (1.0.1)
//!
//! The enable/disable commands, the `<received/>`/`<sent/>` copies a server sends to an
//! account's other resources, and the `<private/>` opt-out.

use jid::{BareJid, FullJid};

use crate::element::Element;
use crate::forward::{ForwardError, Forwarded};
use crate::ns;

/// The disco feature saying the server applies every copy rule of §6.1.
pub const RULES: &str = "urn:xmpp:carbons:rules:0";

/// A client's request, the payload of an IQ set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CarbonsCommand {
    /// `<enable/>`: send copies to this resource.
    Enable,
    /// `<disable/>`: stop sending copies to this resource.
    Disable,
}

impl CarbonsCommand {
    /// Reads the payload of an IQ set; `None` when it is not a carbons command.
    pub fn parse(payload: &Element) -> Option<CarbonsCommand> {
        if payload.ns() != ns::CARBONS {
            return None;
        }
        match payload.name() {
            "enable" => Some(CarbonsCommand::Enable),
            "disable" => Some(CarbonsCommand::Disable),
            _ => None,
        }
    }

    /// The payload element.
    pub fn to_element(self) -> Element {
        let name = match self {
            CarbonsCommand::Enable => "enable",
            CarbonsCommand::Disable => "disable",
        };
        Element::new(name, ns::CARBONS)
    }
}

/// Which way the copied message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The account received the message (`<received/>`).
    Received,
    /// One of the account's resources sent the message (`<sent/>`).
    Sent,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Received => "received",
            Direction::Sent => "sent",
        }
    }
}

/// The copy of `message` for the resource `to` of `account`: from the bare JID, of the
/// message's type, with the original inside `<received/>` or `<sent/>` (§7 and §8).
pub fn carbon_copy(
    direction: Direction,
    account: &BareJid,
    to: &FullJid,
    message: Element,
) -> Element {
    let kind = message.get_attr("type").map(str::to_owned);
    let wrapper =
        Element::new(direction.as_str(), ns::CARBONS).child(Forwarded::new(message).to_element());
    Element::new("message", ns::CLIENT)
        .attr("from", account.to_string())
        .attr("to", to.to_string())
        .attr_opt("type", kind)
        .child(wrapper)
}

/// A carbon copy read back: its direction and the forwarded original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarbonCopy {
    /// Received or sent.
    pub direction: Direction,
    /// The original message.
    pub forwarded: Forwarded,
}

/// Reads the `<received/>` or `<sent/>` child of a message: `None` when the message is not
/// a carbon copy, an error when it is one with a broken `<forwarded/>`.
pub fn carbon_of(message: &Element) -> Option<Result<CarbonCopy, ForwardError>> {
    let (direction, wrapper) = [Direction::Received, Direction::Sent]
        .into_iter()
        .find_map(|d| message.get_child(d.as_str(), ns::CARBONS).map(|w| (d, w)))?;
    let forwarded = wrapper
        .get_child("forwarded", ns::FORWARD)
        .ok_or(ForwardError::NotForwarded)
        .and_then(Forwarded::parse);
    Some(forwarded.map(|forwarded| CarbonCopy {
        direction,
        forwarded,
    }))
}

/// True when the message is itself a carbon copy, which is never copied again.
pub fn is_carbon(message: &Element) -> bool {
    message.has_child("received", ns::CARBONS) || message.has_child("sent", ns::CARBONS)
}

/// True when the sender excluded the message from carbons with `<private/>`.
pub fn is_private(message: &Element) -> bool {
    message.has_child("private", ns::CARBONS)
}

/// The `<private/>` element a client adds to keep a message out of carbons.
pub fn private() -> Element {
    Element::new("private", ns::CARBONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn juliet_to_romeo() -> Element {
        Element::parse(
            "<message xmlns='jabber:client' from='juliet@capulet.example/balcony' to='romeo@montague.example/garden' type='chat'>\
             <body>What man art thou that, thus bescreen'd in night, so stumblest on my counsel?</body>\
             <thread>0e3141cd80894871a68e6fe6b1ec56fa</thread></message>",
        )
        .expect("xml")
    }

    #[test]
    fn enable_and_disable_commands_read_and_write_back() {
        let enable = Element::parse("<enable xmlns='urn:xmpp:carbons:2'/>").expect("xml");
        assert_eq!(CarbonsCommand::parse(&enable), Some(CarbonsCommand::Enable));
        let disable = CarbonsCommand::Disable.to_element();
        assert_eq!(disable.to_xml(), "<disable xmlns='urn:xmpp:carbons:2'/>");
        assert_eq!(
            CarbonsCommand::parse(&disable),
            Some(CarbonsCommand::Disable)
        );
        let old = Element::parse("<enable xmlns='urn:xmpp:carbons:1'/>").expect("xml");
        assert_eq!(CarbonsCommand::parse(&old), None);
    }

    #[test]
    fn received_copy_matches_the_example_addressing() {
        let account = BareJid::new("romeo@montague.example").expect("jid");
        let home = FullJid::new("romeo@montague.example/home").expect("jid");
        let copy = carbon_copy(Direction::Received, &account, &home, juliet_to_romeo());
        assert_eq!(copy.get_attr("from"), Some("romeo@montague.example"));
        assert_eq!(copy.get_attr("to"), Some("romeo@montague.example/home"));
        assert_eq!(copy.get_attr("type"), Some("chat"));
        let read = carbon_of(&copy).expect("a carbon").expect("well formed");
        assert_eq!(read.direction, Direction::Received);
        assert_eq!(read.forwarded.stanza, juliet_to_romeo());
        assert!(is_carbon(&copy));
        assert!(!is_carbon(&juliet_to_romeo()));
    }

    #[test]
    fn sent_copy_reads_back_as_sent() {
        let account = BareJid::new("romeo@montague.example").expect("jid");
        let garden = FullJid::new("romeo@montague.example/garden").expect("jid");
        let copy = carbon_copy(Direction::Sent, &account, &garden, juliet_to_romeo());
        let read = carbon_of(&copy).expect("a carbon").expect("well formed");
        assert_eq!(read.direction, Direction::Sent);
    }

    #[test]
    fn a_carbon_wrapper_without_forwarded_is_an_error() {
        let broken = Element::new("message", ns::CLIENT).child(Element::new("sent", ns::CARBONS));
        assert_eq!(carbon_of(&broken), Some(Err(ForwardError::NotForwarded)));
        assert_eq!(carbon_of(&juliet_to_romeo()), None);
    }

    #[test]
    fn the_private_example_is_private() {
        let message = Element::parse(
            "<message xmlns='jabber:client' from='romeo@montague.example/home' to='juliet@capulet.example/home' type='chat'>\
             <body>Neither, fair saint, if either thee dislike.</body>\
             <private xmlns='urn:xmpp:carbons:2'/><no-copy xmlns='urn:xmpp:hints'/></message>",
        )
        .expect("xml");
        assert!(is_private(&message));
        assert!(!is_private(&juliet_to_romeo()));
        assert!(is_private(
            &Element::new("message", ns::CLIENT).child(private())
        ));
    }
}
