//! XEP-0191: Blocking Command (1.3)
//!
//! The blocklist, the block and unblock commands (which are also the pushes sent to the
//! user's other resources), and the error returned when the user writes to a blocked JID.

use jid::Jid;
use thiserror::Error;

use crate::address::parse_address;
use crate::element::Element;
use crate::ns;
use crate::stanza::{Condition, ErrorType, StanzaError};

/// Why a blocking command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BlockingError {
    /// The element is not `<block/>` or `<unblock/>` in `urn:xmpp:blocking`.
    #[error("not a blocking command")]
    NotBlocking,
    /// A `<block/>` without any item (§3.3).
    #[error("block without items")]
    EmptyBlock,
    /// An item has no `jid` or a malformed one.
    #[error("item jid missing or malformed")]
    BadJid,
}

impl BlockingError {
    /// The stanza error condition to answer with.
    pub fn condition(&self) -> Condition {
        match self {
            BlockingError::BadJid => Condition::JidMalformed,
            _ => Condition::BadRequest,
        }
    }
}

/// A change to the blocklist, sent by a client or pushed to its resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockingCommand {
    /// Block these JIDs (at least one).
    Block(Vec<Jid>),
    /// Unblock these JIDs; an empty list unblocks every JID.
    Unblock(Vec<Jid>),
}

impl BlockingCommand {
    /// Reads the payload of an IQ set.
    pub fn parse(payload: &Element) -> Result<BlockingCommand, BlockingError> {
        if payload.ns() != ns::BLOCKING {
            return Err(BlockingError::NotBlocking);
        }
        match payload.name() {
            "block" => {
                let items = items(payload)?;
                if items.is_empty() {
                    return Err(BlockingError::EmptyBlock);
                }
                Ok(BlockingCommand::Block(items))
            }
            "unblock" => Ok(BlockingCommand::Unblock(items(payload)?)),
            _ => Err(BlockingError::NotBlocking),
        }
    }

    /// The `<block/>` or `<unblock/>` element.
    pub fn to_element(&self) -> Element {
        match self {
            BlockingCommand::Block(jids) => with_items("block", jids),
            BlockingCommand::Unblock(jids) => with_items("unblock", jids),
        }
    }

    /// The push of this change to one of the user's resources that fetched the blocklist.
    pub fn to_push(&self, to: &str, id: &str) -> Element {
        Element::new("iq", ns::CLIENT)
            .attr("type", "set")
            .attr("to", to)
            .attr("id", id)
            .child(self.to_element())
    }
}

/// True when the payload of an IQ get asks for the blocklist.
pub fn is_blocklist_request(payload: &Element) -> bool {
    payload.is("blocklist", ns::BLOCKING)
}

/// The `<blocklist/>` answer, one item per blocked JID.
pub fn blocklist(jids: &[Jid]) -> Element {
    with_items("blocklist", jids)
}

/// Reads a `<blocklist/>` answer.
pub fn parse_blocklist(blocklist: &Element) -> Result<Vec<Jid>, BlockingError> {
    if !is_blocklist_request(blocklist) {
        return Err(BlockingError::NotBlocking);
    }
    items(blocklist)
}

/// The error for a stanza the user sent to a JID they blocked: `not-acceptable` with the
/// `<blocked/>` application condition, of type `cancel` as in the XEP's example (§3.4).
pub fn blocked_error() -> StanzaError {
    let error = StanzaError::new(Condition::NotAcceptable)
        .with_application(Element::new("blocked", ns::BLOCKING_ERRORS));
    StanzaError {
        error_type: ErrorType::Cancel,
        ..error
    }
}

/// True when the blocklist item `item` covers `address`, by the matching order of §5 (that
/// of XEP-0016): `user@domain/resource` and `domain/resource` only themselves, `user@domain`
/// any of its resources, `domain` the domain and every address on it.
pub fn item_matches(item: &Jid, address: &Jid) -> bool {
    match (item.node(), item.resource()) {
        (_, Some(_)) => item == address,
        (Some(_), None) => item.to_bare() == address.to_bare(),
        (None, None) => item.domain() == address.domain(),
    }
}

fn items(parent: &Element) -> Result<Vec<Jid>, BlockingError> {
    parent
        .children()
        .filter(|c| c.is("item", ns::BLOCKING))
        .map(|item| {
            item.get_attr("jid")
                .and_then(|jid| parse_address(jid).ok())
                .ok_or(BlockingError::BadJid)
        })
        .collect()
}

fn with_items(name: &str, jids: &[Jid]) -> Element {
    jids.iter()
        .fold(Element::new(name, ns::BLOCKING), |parent, jid| {
            parent.child(Element::new("item", ns::BLOCKING).attr("jid", jid.to_string()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(text: &str) -> Jid {
        Jid::new(text).expect("jid")
    }

    fn parse(xml: &str) -> Result<BlockingCommand, BlockingError> {
        BlockingCommand::parse(&Element::parse(xml).expect("xml"))
    }

    #[test]
    fn the_blocklist_example_reads_and_writes_back() {
        let element = Element::parse(
            "<blocklist xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/><item jid='iago@shakespeare.lit'/></blocklist>",
        )
        .expect("xml");
        let jids = parse_blocklist(&element).expect("blocklist");
        assert_eq!(
            jids,
            vec![jid("romeo@montague.net"), jid("iago@shakespeare.lit")]
        );
        assert_eq!(blocklist(&jids), element);
        assert_eq!(
            blocklist(&[]).to_xml(),
            "<blocklist xmlns='urn:xmpp:blocking'/>"
        );
        assert!(is_blocklist_request(&blocklist(&[])));
    }

    #[test]
    fn block_and_unblock_commands_read_and_write_back() {
        let block =
            parse("<block xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/></block>")
                .expect("block");
        assert_eq!(
            block,
            BlockingCommand::Block(vec![jid("romeo@montague.net")])
        );
        assert_eq!(BlockingCommand::parse(&block.to_element()), Ok(block));
        let unblock_all = parse("<unblock xmlns='urn:xmpp:blocking'/>").expect("unblock");
        assert_eq!(unblock_all, BlockingCommand::Unblock(Vec::new()));
        assert_eq!(
            BlockingCommand::parse(&unblock_all.to_element()),
            Ok(unblock_all)
        );
    }

    #[test]
    fn a_push_is_an_iq_set_to_the_resource() {
        let push = BlockingCommand::Block(vec![jid("romeo@montague.net")])
            .to_push("juliet@capulet.com/chamber", "push1");
        assert_eq!(push.get_attr("type"), Some("set"));
        assert_eq!(push.get_attr("to"), Some("juliet@capulet.com/chamber"));
        let payload = push.get_child("block", ns::BLOCKING).expect("payload");
        assert!(BlockingCommand::parse(payload).is_ok());
    }

    #[test]
    fn an_empty_block_or_a_bad_item_is_refused() {
        let empty = parse("<block xmlns='urn:xmpp:blocking'/>");
        assert_eq!(empty, Err(BlockingError::EmptyBlock));
        assert_eq!(BlockingError::EmptyBlock.condition(), Condition::BadRequest);
        let bad = parse("<block xmlns='urn:xmpp:blocking'><item jid='@'/></block>");
        assert_eq!(bad, Err(BlockingError::BadJid));
        assert_eq!(BlockingError::BadJid.condition(), Condition::JidMalformed);
        let missing = parse("<unblock xmlns='urn:xmpp:blocking'><item/></unblock>");
        assert_eq!(missing, Err(BlockingError::BadJid));
        let foreign = parse("<block xmlns='urn:xmpp:blocking:1'><item jid='a@b'/></block>");
        assert_eq!(foreign, Err(BlockingError::NotBlocking));
    }

    #[test]
    fn the_blocked_error_is_not_acceptable_with_the_blocked_condition() {
        let error = blocked_error();
        assert_eq!(error.error_type, ErrorType::Cancel);
        let element = error.to_element();
        assert!(element.has_child("not-acceptable", ns::STANZA_ERRORS));
        assert!(element.has_child("blocked", ns::BLOCKING_ERRORS));
    }

    #[test]
    fn items_match_in_the_order_of_the_xep() {
        let full = jid("romeo@montague.net/orchard");
        let other_resource = jid("romeo@montague.net/garden");
        let bare = jid("romeo@montague.net");
        let server = jid("montague.net");
        let server_resource = jid("montague.net/bot");
        assert!(item_matches(&full, &full));
        assert!(!item_matches(&full, &other_resource));
        assert!(!item_matches(&full, &bare));
        assert!(item_matches(&bare, &full));
        assert!(item_matches(&bare, &bare));
        assert!(!item_matches(&bare, &jid("tybalt@montague.net")));
        assert!(!item_matches(&bare, &server));
        assert!(item_matches(&server_resource, &server_resource));
        assert!(!item_matches(&server_resource, &server));
        assert!(item_matches(&server, &full));
        assert!(item_matches(&server, &server_resource));
        assert!(item_matches(&server, &server));
        assert!(!item_matches(&server, &jid("capulet.net")));
        assert!(!item_matches(&server, &jid("romeo@sub.montague.net")));
    }
}
