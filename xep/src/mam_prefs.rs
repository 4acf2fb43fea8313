//! XEP-0441: Message Archive Management Preferences (0.2.0)
//!
//! Which contacts' messages go into a user's archive: a default and two JID lists.

use jid::Jid;
use thiserror::Error;

use crate::address::parse_address;
use crate::element::Element;
use crate::mam::MamNs;

/// Why a `<prefs/>` element was refused (`bad-request`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PrefsError {
    /// The element is not `<prefs/>` in a MAM namespace.
    #[error("not a MAM prefs element")]
    NotPrefs,
    /// The `default` attribute is absent or not `always`, `never` or `roster`.
    #[error("missing or unknown default")]
    BadDefault,
    /// A listed JID is malformed.
    #[error("malformed JID in a prefs list: {0}")]
    BadJid(String),
}

/// What happens to messages with a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchivePolicy {
    /// Archive them.
    Always,
    /// Do not archive them.
    Never,
    /// Archive them when the contact's bare JID is in the user's roster.
    Roster,
}

impl ArchivePolicy {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            ArchivePolicy::Always => "always",
            ArchivePolicy::Never => "never",
            ArchivePolicy::Roster => "roster",
        }
    }

    /// The policy an attribute value (or a stored setting) names.
    pub fn parse(value: &str) -> Option<ArchivePolicy> {
        match value {
            "always" => Some(ArchivePolicy::Always),
            "never" => Some(ArchivePolicy::Never),
            "roster" => Some(ArchivePolicy::Roster),
            _ => None,
        }
    }
}

/// A user's archiving preferences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefs {
    /// The namespace they were read in, or are to be answered in.
    pub ns: MamNs,
    /// The policy for contacts on neither list.
    pub default: ArchivePolicy,
    /// Contacts whose messages are always archived.
    pub always: Vec<Jid>,
    /// Contacts whose messages are never archived.
    pub never: Vec<Jid>,
}

impl Prefs {
    /// Reads a `<prefs/>` element; missing lists are empty.
    pub fn parse(prefs: &Element) -> Result<Prefs, PrefsError> {
        let version = MamNs::of(prefs.ns()).ok_or(PrefsError::NotPrefs)?;
        if prefs.name() != "prefs" {
            return Err(PrefsError::NotPrefs);
        }
        let default = prefs
            .get_attr("default")
            .and_then(ArchivePolicy::parse)
            .ok_or(PrefsError::BadDefault)?;
        let list = |name: &str| -> Result<Vec<Jid>, PrefsError> {
            let Some(list) = prefs.get_child(name, version.as_str()) else {
                return Ok(Vec::new());
            };
            list.children()
                .filter(|c| c.is("jid", version.as_str()))
                .map(|c| {
                    let text = c.text_content();
                    parse_address(text.trim()).map_err(|_| PrefsError::BadJid(text))
                })
                .collect()
        };
        Ok(Prefs {
            ns: version,
            default,
            always: list("always")?,
            never: list("never")?,
        })
    }

    /// The `<prefs/>` element, with both lists present even when empty (as the answer requires).
    pub fn to_element(&self) -> Element {
        let namespace = self.ns.as_str();
        let list = |name: &str, jids: &[Jid]| {
            jids.iter()
                .fold(Element::new(name, namespace), |list, jid| {
                    list.child(Element::new("jid", namespace).text(jid.to_string()))
                })
        };
        Element::new("prefs", namespace)
            .attr("default", self.default.as_str())
            .child(list("always", &self.always))
            .child(list("never", &self.never))
    }

    /// The policy for messages with `target` (the `to` of outgoing, the `from` of incoming
    /// messages), by the matching rules of §2.3. A contact on both lists is never archived,
    /// the safer reading of a contradiction.
    pub fn policy_for(&self, target: &Jid) -> ArchivePolicy {
        if self
            .never
            .iter()
            .any(|listed| listed_matches(listed, target))
        {
            ArchivePolicy::Never
        } else if self
            .always
            .iter()
            .any(|listed| listed_matches(listed, target))
        {
            ArchivePolicy::Always
        } else {
            self.default
        }
    }
}

/// A listed full JID matches only itself; a listed bare JID matches any resource of it.
fn listed_matches(listed: &Jid, target: &Jid) -> bool {
    match listed.resource() {
        Some(_) => listed == target,
        None => listed.to_bare() == target.to_bare(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPDATE: &str = "<prefs xmlns='urn:xmpp:mam:2' default='roster'>\
        <always><jid>romeo@montague.lit</jid></always>\
        <never><jid>montague@montague.lit</jid></never></prefs>";

    fn jid(text: &str) -> Jid {
        Jid::new(text).expect("jid")
    }

    #[test]
    fn the_update_example_reads_and_writes_back() {
        let prefs = Prefs::parse(&Element::parse(UPDATE).expect("xml")).expect("prefs");
        assert_eq!(prefs.default, ArchivePolicy::Roster);
        assert_eq!(prefs.always, vec![jid("romeo@montague.lit")]);
        assert_eq!(prefs.never, vec![jid("montague@montague.lit")]);
        assert_eq!(prefs.to_element(), Element::parse(UPDATE).expect("xml"));
    }

    #[test]
    fn an_answer_without_lists_writes_them_empty() {
        let prefs = Prefs::parse(
            &Element::parse("<prefs xmlns='urn:xmpp:mam:2' default='always'/>").expect("xml"),
        )
        .expect("prefs");
        assert!(prefs.always.is_empty());
        assert_eq!(
            prefs.to_element().to_xml(),
            "<prefs xmlns='urn:xmpp:mam:2' default='always'><always/><never/></prefs>"
        );
    }

    #[test]
    fn a_bad_default_a_bad_jid_or_another_element_is_an_error() {
        let parse = |xml: &str| Prefs::parse(&Element::parse(xml).expect("xml"));
        assert_eq!(
            parse("<prefs xmlns='urn:xmpp:mam:2'/>"),
            Err(PrefsError::BadDefault)
        );
        assert_eq!(
            parse("<prefs xmlns='urn:xmpp:mam:2' default='sometimes'/>"),
            Err(PrefsError::BadDefault)
        );
        assert!(matches!(
            parse(
                "<prefs xmlns='urn:xmpp:mam:2' default='never'><never><jid>@</jid></never></prefs>"
            ),
            Err(PrefsError::BadJid(_))
        ));
        assert_eq!(
            parse("<query xmlns='urn:xmpp:mam:2'/>"),
            Err(PrefsError::NotPrefs)
        );
    }

    #[test]
    fn bare_entries_match_every_resource_and_full_entries_only_themselves() {
        let prefs = Prefs {
            ns: MamNs::V2,
            default: ArchivePolicy::Roster,
            always: vec![jid("romeo@montague.lit"), jid("nurse@capulet.lit/kitchen")],
            never: vec![jid("montague@montague.lit")],
        };
        assert_eq!(
            prefs.policy_for(&jid("romeo@montague.lit/orchard")),
            ArchivePolicy::Always
        );
        assert_eq!(
            prefs.policy_for(&jid("nurse@capulet.lit/kitchen")),
            ArchivePolicy::Always
        );
        assert_eq!(
            prefs.policy_for(&jid("nurse@capulet.lit/garden")),
            ArchivePolicy::Roster
        );
        assert_eq!(
            prefs.policy_for(&jid("montague@montague.lit/hall")),
            ArchivePolicy::Never
        );
    }
}
