//! XEP-0352 Client State Indication: while the client says its user is not looking, what is
//! not urgent (presence, chat states, receipts, PEP notifications) waits, and a newer
//! presence from the same sender replaces the one waiting; anything urgent (a message with a
//! body or an encrypted payload, an IQ) goes at once, after what waited, so order is kept.

use std::collections::VecDeque;

use rempart_xep::element::Element;
use rempart_xep::encryption::has_content;
use rempart_xep::ns;

/// Stanzas held while the client is inactive, in arrival order.
#[derive(Debug, Default)]
pub struct HeldStanzas {
    inactive: bool,
    held: VecDeque<(Element, usize)>,
}

impl HeldStanzas {
    /// Records the client's state; returns what to send now (everything held, on `active`).
    pub fn set_inactive(&mut self, inactive: bool) -> Vec<(Element, usize)> {
        self.inactive = inactive;
        if inactive {
            Vec::new()
        } else {
            self.held.drain(..).collect()
        }
    }

    /// Takes a stanza on its way to the client: `None` when it is held, otherwise what to
    /// send now, in order (what was held, then the stanza). Past `max_held`, everything
    /// goes out.
    pub fn pass(&mut self, stanza: Element, cost: usize, max_held: usize) -> Vec<(Element, usize)> {
        if !self.inactive {
            return vec![(stanza, cost)];
        }
        if is_urgent(&stanza) {
            let mut out: Vec<(Element, usize)> = self.held.drain(..).collect();
            out.push((stanza, cost));
            return out;
        }
        if stanza.name() == "presence" {
            let from = stanza.get_attr("from");
            if let Some(slot) = self
                .held
                .iter_mut()
                .find(|(held, _)| held.name() == "presence" && held.get_attr("from") == from)
            {
                *slot = (stanza, cost);
                return Vec::new();
            }
        }
        self.held.push_back((stanza, cost));
        if self.held.len() > max_held {
            return self.held.drain(..).collect();
        }
        Vec::new()
    }

    /// Takes what is held, for rerouting when the session ends.
    pub fn take(&mut self) -> Vec<Element> {
        self.held.drain(..).map(|(stanza, _)| stanza).collect()
    }
}

/// Whether the client must get the stanza at once.
fn is_urgent(stanza: &Element) -> bool {
    match stanza.name() {
        "iq" => true,
        "message" => is_urgent_message(stanza),
        _ => false,
    }
}

fn is_urgent_message(message: &Element) -> bool {
    // An encrypted message is urgent though it has no body for the server to see.
    if message.get_attr("type") == Some("error") || has_content(message) {
        return true;
    }
    // A carbon copy or a forwarded message is as urgent as what it carries.
    message
        .children()
        .flat_map(|wrapper| wrapper.children())
        .filter(|forwarded| forwarded.is("forwarded", ns::FORWARD))
        .flat_map(|forwarded| forwarded.children())
        .any(|inner| inner.name() == "message" && is_urgent_message(inner))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Element {
        Element::parse(xml).expect("xml")
    }

    fn ids(out: &[(Element, usize)]) -> Vec<&str> {
        out.iter()
            .filter_map(|(stanza, _)| stanza.get_attr("id"))
            .collect()
    }

    #[test]
    fn an_active_client_gets_everything_at_once() {
        let mut held = HeldStanzas::default();
        let out = held.pass(parse("<presence xmlns='jabber:client' id='p'/>"), 1, 10);
        assert_eq!(ids(&out), ["p"]);
    }

    #[test]
    fn presence_waits_and_a_message_with_a_body_brings_it_along_in_order() {
        let mut held = HeldStanzas::default();
        held.set_inactive(true);
        assert!(held
            .pass(
                parse("<presence xmlns='jabber:client' from='a@x/1' id='p1'/>"),
                1,
                10
            )
            .is_empty());
        assert!(held
            .pass(
                parse("<message xmlns='jabber:client' id='typing'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"),
                1,
                10
            )
            .is_empty());
        let out = held.pass(
            parse("<message xmlns='jabber:client' id='m'><body>hi</body></message>"),
            1,
            10,
        );
        assert_eq!(ids(&out), ["p1", "typing", "m"]);
    }

    #[test]
    fn a_newer_presence_replaces_the_one_waiting_from_the_same_sender() {
        let mut held = HeldStanzas::default();
        held.set_inactive(true);
        for id in ["p1", "p2"] {
            let presence = format!("<presence xmlns='jabber:client' from='a@x/1' id='{id}'/>");
            held.pass(parse(&presence), 1, 10);
        }
        held.pass(
            parse("<presence xmlns='jabber:client' from='b@x/1' id='other'/>"),
            1,
            10,
        );
        assert_eq!(ids(&held.set_inactive(false)), ["p2", "other"]);
    }

    #[test]
    fn an_omemo_message_without_body_is_urgent() {
        let mut held = HeldStanzas::default();
        held.set_inactive(true);
        let out = held.pass(
            parse("<message xmlns='jabber:client' id='e'><encrypted xmlns='urn:xmpp:omemo:2'/></message>"),
            1,
            10,
        );
        assert_eq!(ids(&out), ["e"]);
    }

    #[test]
    fn too_many_held_stanzas_all_go_out() {
        let mut held = HeldStanzas::default();
        held.set_inactive(true);
        for n in 0..3 {
            let presence = format!("<presence xmlns='jabber:client' from='a@x/{n}' id='p{n}'/>");
            let out = held.pass(parse(&presence), 1, 2);
            if n < 2 {
                assert!(out.is_empty());
            } else {
                assert_eq!(ids(&out), ["p0", "p1", "p2"]);
            }
        }
    }
}
