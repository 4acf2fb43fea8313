//! XEP-0359: Unique and Stable Stanza IDs (0.7.0)
//!
//! The `<stanza-id/>` an archiving entity stamps on a message, the `<origin-id/>` a sender
//! sets, and the stripping of stamps that claim to come from the archiving entity itself.

use jid::Jid;
use thiserror::Error;

use crate::address::parse_address;
use crate::element::Element;
use crate::ns;

/// Why an element is not a usable `<stanza-id/>`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StanzaIdError {
    /// The element is not `<stanza-id xmlns='urn:xmpp:sid:0'/>`.
    #[error("not a stanza-id element")]
    NotStanzaId,
    /// The `id` attribute is absent.
    #[error("stanza-id without id")]
    MissingId,
    /// The `by` attribute is absent or not a JID.
    #[error("stanza-id without a valid by")]
    BadBy,
}

/// An id assigned by `by` (an account for one-to-one messages, a room for groupchats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaId {
    /// The unique, stable, opaque id.
    pub id: String,
    /// The entity that assigned it.
    pub by: Jid,
}

impl StanzaId {
    /// Reads a `<stanza-id/>` element.
    pub fn parse(element: &Element) -> Result<StanzaId, StanzaIdError> {
        if !element.is("stanza-id", ns::STANZA_ID) {
            return Err(StanzaIdError::NotStanzaId);
        }
        let id = element.get_attr("id").ok_or(StanzaIdError::MissingId)?;
        let by = element
            .get_attr("by")
            .and_then(|by| parse_address(by).ok())
            .ok_or(StanzaIdError::BadBy)?;
        Ok(StanzaId {
            id: id.to_owned(),
            by,
        })
    }

    /// The `<stanza-id/>` element.
    pub fn to_element(&self) -> Element {
        Element::new("stanza-id", ns::STANZA_ID)
            .attr("id", self.id.clone())
            .attr("by", self.by.to_string())
    }
}

/// True when a `<stanza-id/>` child names `by` as its assigner, compared as JIDs so that a
/// differently written form of the same address is caught too.
fn is_assigned_by(child: &Element, by: &Jid) -> bool {
    child.is("stanza-id", ns::STANZA_ID)
        && child
            .get_attr("by")
            .and_then(|claimed| parse_address(claimed).ok())
            .is_some_and(|claimed| &claimed == by)
}

/// Removes every `<stanza-id/>` whose `by` is `by`: an entity that assigns ids must drop
/// such elements from incoming stanzas, since only it may have written them (§5).
pub fn strip_stanza_ids_by(message: &mut Element, by: &Jid) {
    message.retain_children(|child| !is_assigned_by(child, by));
}

/// The id `by` assigned to the message, if it carries one.
pub fn stanza_id_by(message: &Element, by: &Jid) -> Option<String> {
    message
        .children()
        .find(|child| is_assigned_by(child, by))
        .and_then(|child| child.get_attr("id"))
        .map(str::to_owned)
}

/// The sender's `<origin-id/>`, if the message carries one with an id.
pub fn origin_id(message: &Element) -> Option<&str> {
    message
        .get_child("origin-id", ns::STANZA_ID)
        .and_then(|origin| origin.get_attr("id"))
}

/// An `<origin-id/>` element for a message the server originates.
pub fn origin_id_element(id: &str) -> Element {
    Element::new("origin-id", ns::STANZA_ID).attr("id", id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(text: &str) -> Jid {
        Jid::new(text).expect("jid")
    }

    fn groupchat_example() -> Element {
        Element::parse(
            "<message xmlns='jabber:client' to='room@muc.example.com' type='groupchat'>\
             <body>Typical body text</body>\
             <stanza-id xmlns='urn:xmpp:sid:0' id='5f3dbc5e-e1d3-4077-a492-693f3769c7ad' by='room@muc.example.com'/>\
             <origin-id xmlns='urn:xmpp:sid:0' id='de305d54-75b4-431b-adb2-eb6b9e546013'/></message>",
        )
        .expect("xml")
    }

    #[test]
    fn the_stanza_id_example_reads_and_writes_back() {
        let element = Element::parse(
            "<stanza-id xmlns='urn:xmpp:sid:0' id='de305d54-75b4-431b-adb2-eb6b9e546013' by='room@muc.example.com'/>",
        )
        .expect("xml");
        let stanza_id = StanzaId::parse(&element).expect("stanza-id");
        assert_eq!(stanza_id.id, "de305d54-75b4-431b-adb2-eb6b9e546013");
        assert_eq!(stanza_id.by, jid("room@muc.example.com"));
        assert_eq!(StanzaId::parse(&stanza_id.to_element()), Ok(stanza_id));
    }

    #[test]
    fn a_stanza_id_without_id_or_valid_by_is_an_error() {
        let no_id = Element::new("stanza-id", ns::STANZA_ID).attr("by", "a@b");
        assert_eq!(StanzaId::parse(&no_id), Err(StanzaIdError::MissingId));
        let no_by = Element::new("stanza-id", ns::STANZA_ID).attr("id", "1");
        assert_eq!(StanzaId::parse(&no_by), Err(StanzaIdError::BadBy));
        let bad_by = no_by.clone().attr("by", "@");
        assert_eq!(StanzaId::parse(&bad_by), Err(StanzaIdError::BadBy));
        let wrong_ns = Element::new("stanza-id", "urn:xmpp:sid:1");
        assert_eq!(StanzaId::parse(&wrong_ns), Err(StanzaIdError::NotStanzaId));
    }

    #[test]
    fn the_message_example_gives_both_ids() {
        let message = groupchat_example();
        assert_eq!(
            origin_id(&message),
            Some("de305d54-75b4-431b-adb2-eb6b9e546013")
        );
        assert_eq!(
            stanza_id_by(&message, &jid("room@muc.example.com")).as_deref(),
            Some("5f3dbc5e-e1d3-4077-a492-693f3769c7ad")
        );
        assert_eq!(stanza_id_by(&message, &jid("other@muc.example.com")), None);
    }

    #[test]
    fn stripping_removes_only_forged_ids_even_when_written_differently() {
        let mut message = groupchat_example()
            .child(
                StanzaId {
                    id: "forged".to_owned(),
                    by: jid("juliet@capulet.lit"),
                }
                .to_element(),
            )
            .child(
                Element::new("stanza-id", ns::STANZA_ID)
                    .attr("id", "forged-too")
                    .attr("by", "Juliet@Capulet.LIT"),
            );
        strip_stanza_ids_by(&mut message, &jid("juliet@capulet.lit"));
        let left: Vec<&str> = message
            .children()
            .filter(|c| c.is("stanza-id", ns::STANZA_ID))
            .filter_map(|c| c.get_attr("id"))
            .collect();
        assert_eq!(left, vec!["5f3dbc5e-e1d3-4077-a492-693f3769c7ad"]);
        assert!(origin_id(&message).is_some());
        assert!(message.has_child("body", ns::CLIENT));
    }
}
