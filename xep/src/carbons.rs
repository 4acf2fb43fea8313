//! XEP-0280: Message Carbons (1.0.1)
//!
//! The enable/disable commands, the `<received/>`/`<sent/>` copies a server sends to an
//! account's other resources, and the `<private/>` opt-out.

use jid::{BareJid, FullJid};

use crate::element::Element;
use crate::forward::{ForwardError, Forwarded};
use crate::hints::Hint;
use crate::ns;
use crate::stanza::MessageType;

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

/// What the copy rules of §6.1 (advertised as [`RULES`]) say about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eligibility {
    /// Copy it.
    Copy,
    /// Do not copy it.
    Skip,
    /// An error: copy it only if it answers a message that was copied (same id, same peer,
    /// the other way), which only the server's memory of recent messages can tell.
    IfAnswerToCopied,
}

/// Applies the rules of §6.1 to a message going `direction` (seen from the account whose
/// resources would get the copies): never a carbon, a `<private/>` or `<no-copy/>` message, a
/// groupchat message, or a private message received from a MUC occupant; always a chat message,
/// a normal message with a body, a message with chat states, receipts or markers, and a MUC
/// invitation.
pub fn eligibility(message: &Element, direction: Direction) -> Eligibility {
    if is_carbon(message) || is_private(message) || Hint::NoCopy.is_on(message) {
        return Eligibility::Skip;
    }
    let kind = MessageType::of(message);
    match kind {
        MessageType::Groupchat => return Eligibility::Skip,
        MessageType::Error => return Eligibility::IfAnswerToCopied,
        _ => {}
    }
    if is_invitation(message) {
        return Eligibility::Copy;
    }
    // The MUC service already sends such a message to every joined client of the user.
    if direction == Direction::Received && message.has_child("x", ns::MUC_USER) {
        return Eligibility::Skip;
    }
    let body = kind == MessageType::Normal && message.has_child("body", ns::CLIENT);
    let im_payload = message
        .children()
        .any(|child| [ns::CHAT_STATES, ns::RECEIPTS, ns::CHAT_MARKERS].contains(&child.ns()));
    if kind == MessageType::Chat || body || im_payload {
        Eligibility::Copy
    } else {
        Eligibility::Skip
    }
}

/// True for a direct (XEP-0249) or mediated (XEP-0045) MUC invitation.
fn is_invitation(message: &Element) -> bool {
    message.has_child("x", ns::CONFERENCE)
        || message
            .get_child("x", ns::MUC_USER)
            .is_some_and(|x| x.has_child("invite", ns::MUC_USER))
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

    fn message(xml: &str) -> Element {
        Element::parse(xml).expect("xml")
    }

    #[test]
    fn chat_and_normal_with_body_are_copied_both_ways() {
        let chat = juliet_to_romeo();
        assert_eq!(eligibility(&chat, Direction::Sent), Eligibility::Copy);
        assert_eq!(eligibility(&chat, Direction::Received), Eligibility::Copy);
        let normal = message("<message xmlns='jabber:client'><body>hi</body></message>");
        assert_eq!(eligibility(&normal, Direction::Received), Eligibility::Copy);
    }

    #[test]
    fn normal_without_body_headline_and_groupchat_are_not_copied() {
        let empty =
            message("<message xmlns='jabber:client' type='normal'><x xmlns='urn:x'/></message>");
        assert_eq!(eligibility(&empty, Direction::Sent), Eligibility::Skip);
        let headline =
            message("<message xmlns='jabber:client' type='headline'><body>news</body></message>");
        assert_eq!(
            eligibility(&headline, Direction::Received),
            Eligibility::Skip
        );
        let groupchat =
            message("<message xmlns='jabber:client' type='groupchat'><body>all</body></message>");
        assert_eq!(eligibility(&groupchat, Direction::Sent), Eligibility::Skip);
    }

    #[test]
    fn chat_states_receipts_and_markers_are_copied_without_a_body() {
        for payload in [
            "<active xmlns='http://jabber.org/protocol/chatstates'/>",
            "<received xmlns='urn:xmpp:receipts' id='m1'/>",
            "<displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/>",
        ] {
            let marker = message(&format!(
                "<message xmlns='jabber:client'>{payload}</message>"
            ));
            assert_eq!(
                eligibility(&marker, Direction::Sent),
                Eligibility::Copy,
                "{payload}"
            );
        }
    }

    #[test]
    fn private_no_copy_and_carbons_are_never_copied() {
        let private = Element::new("message", ns::CLIENT)
            .attr("type", "chat")
            .child(private());
        assert_eq!(eligibility(&private, Direction::Sent), Eligibility::Skip);
        let no_copy = Element::new("message", ns::CLIENT)
            .attr("type", "chat")
            .child(Hint::NoCopy.to_element());
        assert_eq!(
            eligibility(&no_copy, Direction::Received),
            Eligibility::Skip
        );
        let account = BareJid::new("romeo@montague.example").expect("jid");
        let home = FullJid::new("romeo@montague.example/home").expect("jid");
        let copy = carbon_copy(Direction::Received, &account, &home, juliet_to_romeo());
        assert_eq!(eligibility(&copy, Direction::Received), Eligibility::Skip);
    }

    #[test]
    fn errors_depend_on_what_they_answer() {
        let error = message("<message xmlns='jabber:client' type='error' id='m1'/>");
        assert_eq!(
            eligibility(&error, Direction::Received),
            Eligibility::IfAnswerToCopied
        );
    }

    #[test]
    fn muc_private_messages_are_copied_when_sent_only_and_invitations_always() {
        let pm = message(
            "<message xmlns='jabber:client' type='chat'><body>psst</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>",
        );
        assert_eq!(eligibility(&pm, Direction::Sent), Eligibility::Copy);
        assert_eq!(eligibility(&pm, Direction::Received), Eligibility::Skip);
        let mediated = message(
            "<message xmlns='jabber:client'><x xmlns='http://jabber.org/protocol/muc#user'><invite from='a@b'/></x></message>",
        );
        assert_eq!(
            eligibility(&mediated, Direction::Received),
            Eligibility::Copy
        );
        let direct =
            message("<message xmlns='jabber:client'><x xmlns='jabber:x:conference' jid='room@muc'/></message>");
        assert_eq!(eligibility(&direct, Direction::Received), Eligibility::Copy);
    }
}
