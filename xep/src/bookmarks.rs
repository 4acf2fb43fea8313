//! XEP-0402: PEP Native Bookmarks (1.2.0) and XEP-0048: Bookmarks (1.2)
//!
//! A chat room bookmark in both shapes: one `<conference/>` per PEP item of
//! `urn:xmpp:bookmarks:1` (the room JID is the item id), or all of them in one
//! `<storage xmlns='storage:bookmarks'/>` element (private XML storage or the PEP node of the
//! same name).

use crate::element::Element;

/// XEP-0402 node and payload namespace.
pub const NS: &str = "urn:xmpp:bookmarks:1";
/// XEP-0048 storage namespace (also its PEP node).
pub const NS_LEGACY: &str = "storage:bookmarks";
/// XEP-0402 feature: bookmarks are unified with private XML storage (XEP-0049).
pub const COMPAT: &str = "urn:xmpp:bookmarks:1#compat";
/// XEP-0402 feature: bookmarks are unified with the XEP-0048 PEP node.
pub const COMPAT_PEP: &str = "urn:xmpp:bookmarks:1#compat-pep";
/// XEP-0411 feature: XEP-0048 bookmarks are converted between private XML and PEP.
pub const CONVERSION: &str = "urn:xmpp:bookmarks-conversion:0";

/// One chat room bookmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conference {
    /// The room JID.
    pub jid: String,
    /// A name the user gave it.
    pub name: Option<String>,
    /// Join it on login.
    pub autojoin: bool,
    /// The nickname to use in it.
    pub nick: Option<String>,
    /// Its password.
    pub password: Option<String>,
    /// Elements of other namespaces clients keep with it, preserved both ways.
    pub extensions: Vec<Element>,
}

fn parse_bool(value: Option<&str>) -> bool {
    matches!(value, Some("true" | "1"))
}

impl Conference {
    /// Reads a `<conference/>` of a `storage:bookmarks` element; `None` without a `jid`.
    pub fn from_legacy(conference: &Element) -> Option<Conference> {
        if !conference.is("conference", NS_LEGACY) {
            return None;
        }
        Some(Conference {
            jid: conference.get_attr("jid")?.to_owned(),
            name: conference.get_attr("name").map(str::to_owned),
            autojoin: parse_bool(conference.get_attr("autojoin")),
            nick: conference.child_text("nick", NS_LEGACY),
            password: conference.child_text("password", NS_LEGACY),
            extensions: conference
                .children()
                .filter(|child| child.ns() != NS_LEGACY)
                .cloned()
                .collect(),
        })
    }

    /// Reads the `<conference/>` payload of the PEP item `id`.
    pub fn from_item(id: &str, conference: &Element) -> Option<Conference> {
        if !conference.is("conference", NS) || id.is_empty() {
            return None;
        }
        Some(Conference {
            jid: id.to_owned(),
            name: conference.get_attr("name").map(str::to_owned),
            autojoin: parse_bool(conference.get_attr("autojoin")),
            nick: conference.child_text("nick", NS),
            password: conference.child_text("password", NS),
            extensions: conference
                .get_child("extensions", NS)
                .map(|extensions| extensions.children().cloned().collect())
                .unwrap_or_default(),
        })
    }

    /// The `<conference/>` of a `storage:bookmarks` element.
    pub fn to_legacy(&self) -> Element {
        let mut conference = Element::new("conference", NS_LEGACY)
            .attr("jid", self.jid.clone())
            .attr_opt("name", self.name.clone())
            .attr("autojoin", if self.autojoin { "true" } else { "false" });
        self.append_fields(&mut conference, NS_LEGACY);
        for extension in &self.extensions {
            conference.append_child(extension.clone());
        }
        conference
    }

    /// The `<conference/>` payload of its PEP item (whose id is [`Conference::jid`]).
    pub fn to_item_payload(&self) -> Element {
        let mut conference = Element::new("conference", NS)
            .attr_opt("name", self.name.clone())
            .attr_opt("autojoin", self.autojoin.then_some("true"));
        self.append_fields(&mut conference, NS);
        if !self.extensions.is_empty() {
            let mut extensions = Element::new("extensions", NS);
            for extension in &self.extensions {
                extensions.append_child(extension.clone());
            }
            conference.append_child(extensions);
        }
        conference
    }

    fn append_fields(&self, conference: &mut Element, ns: &str) {
        if let Some(nick) = &self.nick {
            conference.append_child(Element::new("nick", ns).text(nick.clone()));
        }
        if let Some(password) = &self.password {
            conference.append_child(Element::new("password", ns).text(password.clone()));
        }
    }
}

/// The conferences of a `storage:bookmarks` element, in order, each room once (the last
/// entry of a room wins, as a later write would).
pub fn legacy_conferences(storage: &Element) -> Vec<Conference> {
    let mut conferences: Vec<Conference> = Vec::new();
    for conference in storage.children().filter_map(Conference::from_legacy) {
        conferences.retain(|known| known.jid != conference.jid);
        conferences.push(conference);
    }
    conferences
}

/// A `storage:bookmarks` element holding `conferences`, after the entries of `previous`
/// that are not conferences (URL bookmarks, which XEP-0402 does not carry).
pub fn legacy_storage(conferences: &[Conference], previous: Option<&Element>) -> Element {
    let mut storage = Element::new("storage", NS_LEGACY);
    for kept in previous
        .into_iter()
        .flat_map(Element::children)
        .filter(|child| !child.is("conference", NS_LEGACY))
    {
        storage.append_child(kept.clone());
    }
    for conference in conferences {
        storage.append_child(conference.to_legacy());
    }
    storage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_conference_becomes_an_item_and_back() {
        let xml = "<storage xmlns='storage:bookmarks'><url name='site' url='https://example.org'/><conference jid='council@conference.underhill.org' name='Council of Oberon' autojoin='1'><nick>Puck</nick><password>pw</password><minimized xmlns='urn:example:state'/></conference></storage>";
        let storage = Element::parse(xml).expect("xml");
        let conferences = legacy_conferences(&storage);
        assert_eq!(conferences.len(), 1);
        let payload = conferences[0].to_item_payload();
        let back = Conference::from_item("council@conference.underhill.org", &payload)
            .expect("conference");
        assert_eq!(back, conferences[0]);
        assert!(back.autojoin);
        assert_eq!(back.nick.as_deref(), Some("Puck"));
        assert_eq!(back.extensions.len(), 1);
        let rebuilt = legacy_storage(&[back], Some(&storage));
        assert_eq!(legacy_conferences(&rebuilt), conferences);
        assert!(
            rebuilt.has_child("url", NS_LEGACY),
            "URL bookmarks are kept"
        );
    }

    #[test]
    fn minimal_item_has_no_jid_attribute_and_defaults_to_no_autojoin() {
        let payload = Element::new("conference", NS);
        let conference = Conference::from_item("room@muc.example", &payload).expect("valid");
        assert!(!conference.autojoin);
        let legacy = conference.to_legacy();
        assert_eq!(legacy.get_attr("jid"), Some("room@muc.example"));
        assert_eq!(conference.to_item_payload().get_attr("jid"), None);
    }

    #[test]
    fn a_conference_without_jid_is_skipped() {
        let xml = "<storage xmlns='storage:bookmarks'><conference name='nowhere'/></storage>";
        assert!(legacy_conferences(&Element::parse(xml).expect("xml")).is_empty());
    }
}
