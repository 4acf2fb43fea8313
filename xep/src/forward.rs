//! XEP-0297: Stanza Forwarding (1.0)
//!
//! The `<forwarded/>` wrapper that carbons and archive results put around a stanza.

use thiserror::Error;
use time::OffsetDateTime;

use crate::delay::{delay_stamp, stamp_of, DateTimeError};
use crate::element::Element;
use crate::ns;
use crate::stanza::StanzaKind;

/// Why an element is not a usable `<forwarded/>`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ForwardError {
    /// The element is not `<forwarded xmlns='urn:xmpp:forward:0'/>`.
    #[error("not a forwarded element")]
    NotForwarded,
    /// No message, presence or iq is inside.
    #[error("forwarded element without a stanza")]
    NoStanza,
    /// The `<delay/>` stamp is missing or malformed.
    #[error("bad delay: {0}")]
    BadDelay(#[from] DateTimeError),
}

/// A forwarded stanza with the time it was originally handled, if known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// When the stanza was sent or received, from the inner `<delay/>`.
    pub stamp: Option<OffsetDateTime>,
    /// The stanza, as it was.
    pub stanza: Element,
}

impl Forwarded {
    /// Forwards a stanza without a stamp (carbons).
    pub fn new(stanza: Element) -> Forwarded {
        Forwarded {
            stamp: None,
            stanza,
        }
    }

    /// Forwards a stanza stamped with when it was handled (archive results).
    pub fn stamped(stanza: Element, stamp: OffsetDateTime) -> Forwarded {
        Forwarded {
            stamp: Some(stamp),
            stanza,
        }
    }

    /// Reads a `<forwarded/>` element.
    pub fn parse(element: &Element) -> Result<Forwarded, ForwardError> {
        if !element.is("forwarded", ns::FORWARD) {
            return Err(ForwardError::NotForwarded);
        }
        let stamp = element
            .get_child("delay", ns::DELAY)
            .map(stamp_of)
            .transpose()?;
        let stanza = element
            .children()
            .find(|child| StanzaKind::of(child).is_some())
            .ok_or(ForwardError::NoStanza)?
            .clone();
        Ok(Forwarded { stamp, stanza })
    }

    /// The `<forwarded/>` element, delay first as in the XEP's examples.
    pub fn to_element(&self) -> Element {
        let mut forwarded = Element::new("forwarded", ns::FORWARD);
        if let Some(stamp) = self.stamp {
            forwarded.append_child(delay_stamp(stamp));
        }
        forwarded.child(self.stanza.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const EXAMPLE: &str = "<forwarded xmlns='urn:xmpp:forward:0'>\
        <delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25Z'/>\
        <message from='juliet@capulet.lit/orchard' id='0202197' to='romeo@montague.lit' type='chat' xmlns='jabber:client'>\
        <body>Yet I should kill thee with much cherishing.</body>\
        <mood xmlns='http://jabber.org/protocol/mood'><amorous/></mood></message></forwarded>";

    #[test]
    fn the_forwarding_example_reads_stamp_and_message() {
        let forwarded =
            Forwarded::parse(&Element::parse(EXAMPLE).expect("xml")).expect("forwarded");
        assert_eq!(forwarded.stamp, Some(datetime!(2010-07-10 23:08:25 UTC)));
        assert_eq!(forwarded.stanza.get_attr("id"), Some("0202197"));
        assert_eq!(
            Forwarded::parse(&forwarded.to_element()).expect("reparse"),
            forwarded
        );
    }

    #[test]
    fn an_unstamped_forward_writes_no_delay() {
        let message = Element::new("message", ns::CLIENT).attr("id", "m1");
        let element = Forwarded::new(message).to_element();
        assert!(!element.has_child("delay", ns::DELAY));
        assert_eq!(Forwarded::parse(&element).expect("parse").stamp, None);
    }

    #[test]
    fn a_forward_without_stanza_or_with_a_bad_stamp_is_an_error() {
        let empty = Element::new("forwarded", ns::FORWARD);
        assert_eq!(Forwarded::parse(&empty), Err(ForwardError::NoStanza));
        let bad = Element::parse(
            "<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='yesterday'/><message xmlns='jabber:client'/></forwarded>",
        )
        .expect("xml");
        assert!(matches!(
            Forwarded::parse(&bad),
            Err(ForwardError::BadDelay(_))
        ));
        let wrong = Element::new("forwarded", "urn:xmpp:forward:1");
        assert_eq!(Forwarded::parse(&wrong), Err(ForwardError::NotForwarded));
    }
}
