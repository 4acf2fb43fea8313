//! RFC 6121 §2: roster items as they appear on the wire.

use jid::BareJid;
use thiserror::Error;

use crate::element::Element;
use crate::ns;

/// The subscription state shown to the client (pending states travel in `ask`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    /// No subscription either way.
    None,
    /// The user receives the contact's presence.
    To,
    /// The contact receives the user's presence.
    From,
    /// Both directions.
    Both,
    /// Only in a roster set: remove the item.
    Remove,
}

impl Subscription {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
            Subscription::Remove => "remove",
        }
    }

    fn parse(value: &str) -> Option<Subscription> {
        match value {
            "none" => Some(Subscription::None),
            "to" => Some(Subscription::To),
            "from" => Some(Subscription::From),
            "both" => Some(Subscription::Both),
            "remove" => Some(Subscription::Remove),
            _ => None,
        }
    }
}

/// Why a roster item from a client was refused (mapped to `bad-request`/`jid-malformed`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RosterItemError {
    /// The item has no `jid` attribute or it is not a valid JID.
    #[error("item jid missing or malformed")]
    BadJid,
    /// The `subscription` value is unknown.
    #[error("unknown subscription value")]
    BadSubscription,
    /// The same group appears twice.
    #[error("duplicate group")]
    DuplicateGroup,
    /// A group name is empty.
    #[error("empty group name")]
    EmptyGroup,
}

/// One `<item/>` of a roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterItem {
    /// The contact.
    pub jid: BareJid,
    /// The user's name for the contact.
    pub name: Option<String>,
    /// The subscription state.
    pub subscription: Subscription,
    /// True while an outbound subscription request is pending (`ask='subscribe'`).
    pub ask: bool,
    /// True when the user pre-approved the contact's subscription.
    pub approved: bool,
    /// Groups the contact is in.
    pub groups: Vec<String>,
}

impl RosterItem {
    /// Parses an item sent by a client in a roster set.
    pub fn from_element(item: &Element) -> Result<RosterItem, RosterItemError> {
        let jid = item
            .get_attr("jid")
            .and_then(|j| BareJid::new(j).ok())
            .ok_or(RosterItemError::BadJid)?;
        let subscription = match item.get_attr("subscription") {
            Some(value) => Subscription::parse(value).ok_or(RosterItemError::BadSubscription)?,
            None => Subscription::None,
        };
        let mut groups: Vec<String> = Vec::new();
        for group in item.children().filter(|c| c.is("group", ns::ROSTER)) {
            let name = group.text_content();
            if name.is_empty() {
                return Err(RosterItemError::EmptyGroup);
            }
            if groups.contains(&name) {
                return Err(RosterItemError::DuplicateGroup);
            }
            groups.push(name);
        }
        Ok(RosterItem {
            jid,
            name: item.get_attr("name").map(str::to_owned),
            subscription,
            ask: false,
            approved: false,
            groups,
        })
    }

    /// The `<item/>` element for roster results and pushes.
    pub fn to_element(&self) -> Element {
        let mut item = Element::new("item", ns::ROSTER)
            .attr("jid", self.jid.to_string())
            .attr_opt("name", self.name.clone())
            .attr("subscription", self.subscription.as_str());
        if self.ask {
            item.set_attr("ask", "subscribe");
        }
        if self.approved {
            item.set_attr("approved", "true");
        }
        for group in &self.groups {
            item.append_child(Element::new("group", ns::ROSTER).text(group.clone()));
        }
        item
    }
}

/// A `<query xmlns='jabber:iq:roster'/>` with optional version and items.
pub fn query(ver: Option<String>, items: impl IntoIterator<Item = Element>) -> Element {
    let mut query = Element::new("query", ns::ROSTER).attr_opt("ver", ver);
    for item in items {
        query.append_child(item);
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_an_item() {
        let element = Element::parse(
            "<item xmlns='jabber:iq:roster' jid='juliet@example.com' name='Juliet'><group>Friends</group></item>",
        )
        .expect("xml");
        let item = RosterItem::from_element(&element).expect("item");
        assert_eq!(item.jid.as_str(), "juliet@example.com");
        assert_eq!(item.groups, vec!["Friends".to_owned()]);
        let written = item.to_element();
        assert_eq!(written.get_attr("subscription"), Some("none"));
    }

    #[test]
    fn refuses_duplicate_groups() {
        let element = Element::parse(
            "<item xmlns='jabber:iq:roster' jid='a@b'><group>X</group><group>X</group></item>",
        )
        .expect("xml");
        assert_eq!(
            RosterItem::from_element(&element),
            Err(RosterItemError::DuplicateGroup)
        );
    }
}
