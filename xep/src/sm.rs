//! XEP-0198: Stream Management (1.6.3)
//!
//! The nonzas a session exchanges to count handled stanzas and to resume a stream. Counters
//! are `u32` because the XEP makes `h` wrap from 2^32-1 back to zero: count with
//! `wrapping_add` and compare with `wrapping_sub`.

use thiserror::Error;

use crate::data_form::parse_bool;
use crate::element::Element;
use crate::ns;
use crate::stanza::Condition;

/// Why an element is not a usable stream management nonza.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SmError {
    /// The element is not one of the nonzas of `urn:xmpp:sm:3`.
    #[error("not a stream management element: {0}")]
    NotSm(String),
    /// A required attribute is absent.
    #[error("missing attribute {0}")]
    MissingAttribute(&'static str),
    /// A counter or a time is not an unsigned 32-bit number.
    #[error("attribute {0} is not an unsigned 32-bit number")]
    BadNumber(&'static str),
    /// A boolean attribute is neither `true`, `false`, `1` nor `0`.
    #[error("attribute {0} is not a boolean")]
    BadBoolean(&'static str),
}

/// One stream management nonza, as sent by either side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmElement {
    /// `<enable/>`: the client asks for acks, and for resumption when `resume` is set.
    Enable {
        /// The client wants the stream to be resumable.
        resume: bool,
        /// The client's preferred resumption time, in seconds.
        max: Option<u32>,
    },
    /// `<enabled/>`: the server counts from now on.
    Enabled {
        /// The SM-ID a resuming client names; present when resumption is allowed.
        id: Option<String>,
        /// The server allows resumption.
        resume: bool,
        /// The server's resumption time, in seconds.
        max: Option<u32>,
        /// Where the client should reconnect to resume (`host:port`).
        location: Option<String>,
    },
    /// `<resume/>`: the client takes over a detached session.
    Resume {
        /// The SM-ID of the former stream.
        previd: String,
        /// Stanzas the client handled from the server on the former stream.
        h: u32,
    },
    /// `<resumed/>`: the server gave the session back.
    Resumed {
        /// The SM-ID of the former stream.
        previd: String,
        /// Stanzas the server handled from the client on the former stream.
        h: u32,
    },
    /// `<failed/>`: enabling or resuming did not happen.
    Failed {
        /// Stanzas handled before a timed-out session ended, when the server still knows it.
        h: Option<u32>,
        /// The stanza error condition; a condition this crate has no name for reads as
        /// `undefined-condition`, since it still only means failure.
        condition: Option<Condition>,
    },
    /// `<r/>`: a request for an ack.
    Request,
    /// `<a/>`: the number of stanzas handled so far.
    Answer {
        /// Stanzas handled, modulo 2^32.
        h: u32,
    },
}

impl SmElement {
    /// Reads a stream management nonza.
    pub fn parse(element: &Element) -> Result<SmElement, SmError> {
        if element.ns() != ns::SM {
            return Err(SmError::NotSm(element.name().to_owned()));
        }
        match element.name() {
            "enable" => Ok(SmElement::Enable {
                resume: boolean(element, "resume")?,
                max: optional_number(element, "max")?,
            }),
            "enabled" => Ok(SmElement::Enabled {
                id: element.get_attr("id").map(str::to_owned),
                resume: boolean(element, "resume")?,
                max: optional_number(element, "max")?,
                location: element.get_attr("location").map(str::to_owned),
            }),
            "resume" => Ok(SmElement::Resume {
                previd: required(element, "previd")?.to_owned(),
                h: counter(element)?,
            }),
            "resumed" => Ok(SmElement::Resumed {
                previd: required(element, "previd")?.to_owned(),
                h: counter(element)?,
            }),
            "failed" => Ok(SmElement::Failed {
                h: optional_number(element, "h")?,
                condition: element
                    .children()
                    .find(|c| c.ns() == ns::STANZA_ERRORS)
                    .map(|c| {
                        Condition::from_name(c.name()).unwrap_or(Condition::UndefinedCondition)
                    }),
            }),
            "r" => Ok(SmElement::Request),
            "a" => Ok(SmElement::Answer {
                h: counter(element)?,
            }),
            other => Err(SmError::NotSm(other.to_owned())),
        }
    }

    /// The element to write on the stream.
    pub fn to_element(&self) -> Element {
        match self {
            SmElement::Enable { resume, max } => Element::new("enable", ns::SM)
                .attr_opt("resume", resume.then_some("true"))
                .attr_opt("max", max.map(|m| m.to_string())),
            SmElement::Enabled {
                id,
                resume,
                max,
                location,
            } => Element::new("enabled", ns::SM)
                .attr_opt("id", id.clone())
                .attr_opt("resume", resume.then_some("true"))
                .attr_opt("max", max.map(|m| m.to_string()))
                .attr_opt("location", location.clone()),
            SmElement::Resume { previd, h } => Element::new("resume", ns::SM)
                .attr("previd", previd.clone())
                .attr("h", h.to_string()),
            SmElement::Resumed { previd, h } => Element::new("resumed", ns::SM)
                .attr("previd", previd.clone())
                .attr("h", h.to_string()),
            SmElement::Failed { h, condition } => {
                let failed = Element::new("failed", ns::SM).attr_opt("h", h.map(|h| h.to_string()));
                match condition {
                    Some(condition) => {
                        failed.child(Element::new(condition.as_str(), ns::STANZA_ERRORS))
                    }
                    None => failed,
                }
            }
            SmElement::Request => Element::new("r", ns::SM),
            SmElement::Answer { h } => Element::new("a", ns::SM).attr("h", h.to_string()),
        }
    }
}

/// The `<sm/>` stream feature, offered once the client may bind or resume.
pub fn feature() -> Element {
    Element::new("sm", ns::SM)
}

/// The `<handled-count-too-high/>` child of the `undefined-condition` stream error sent when
/// a peer acknowledges more stanzas than it was sent.
pub fn handled_count_too_high(h: u32, send_count: u32) -> Element {
    Element::new("handled-count-too-high", ns::SM)
        .attr("h", h.to_string())
        .attr("send-count", send_count.to_string())
}

fn required<'a>(element: &'a Element, name: &'static str) -> Result<&'a str, SmError> {
    element
        .get_attr(name)
        .ok_or(SmError::MissingAttribute(name))
}

fn counter(element: &Element) -> Result<u32, SmError> {
    required(element, "h")?
        .parse()
        .map_err(|_| SmError::BadNumber("h"))
}

fn optional_number(element: &Element, name: &'static str) -> Result<Option<u32>, SmError> {
    element
        .get_attr(name)
        .map(|value| value.parse().map_err(|_| SmError::BadNumber(name)))
        .transpose()
}

fn boolean(element: &Element, name: &'static str) -> Result<bool, SmError> {
    match element.get_attr(name) {
        Some(value) => parse_bool(value).ok_or(SmError::BadBoolean(name)),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Result<SmElement, SmError> {
        SmElement::parse(&Element::parse(xml).expect("xml"))
    }

    fn round_trip(element: &SmElement) -> SmElement {
        SmElement::parse(&element.to_element()).expect("reparse")
    }

    #[test]
    fn enable_with_resume_reads_and_writes_back() {
        let enable = parse("<enable xmlns='urn:xmpp:sm:3' resume='true'/>").expect("enable");
        assert_eq!(
            enable,
            SmElement::Enable {
                resume: true,
                max: None
            }
        );
        assert_eq!(round_trip(&enable), enable);
        let plain = parse("<enable xmlns='urn:xmpp:sm:3' max='300'/>").expect("enable");
        assert_eq!(
            plain,
            SmElement::Enable {
                resume: false,
                max: Some(300)
            }
        );
    }

    #[test]
    fn enabled_with_location_keeps_every_attribute() {
        let enabled = parse(
            "<enabled xmlns='urn:xmpp:sm:3' id='some-long-sm-id' location='[2001:41D0:1:A49b::1]:9222' resume='1'/>",
        )
        .expect("enabled");
        assert_eq!(
            enabled,
            SmElement::Enabled {
                id: Some("some-long-sm-id".to_owned()),
                resume: true,
                max: None,
                location: Some("[2001:41D0:1:A49b::1]:9222".to_owned()),
            }
        );
        assert_eq!(round_trip(&enabled), enabled);
    }

    #[test]
    fn resume_and_resumed_carry_previd_and_counter() {
        let resume = parse("<resume xmlns='urn:xmpp:sm:3' h='7' previd='some-long-sm-id'/>")
            .expect("resume");
        assert_eq!(
            resume,
            SmElement::Resume {
                previd: "some-long-sm-id".to_owned(),
                h: 7
            }
        );
        assert_eq!(round_trip(&resume), resume);
        let resumed = SmElement::Resumed {
            previd: "x".to_owned(),
            h: u32::MAX,
        };
        assert_eq!(round_trip(&resumed), resumed);
    }

    #[test]
    fn failed_reads_its_condition_and_optional_counter() {
        let failed = parse(
            "<failed xmlns='urn:xmpp:sm:3' h='3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>",
        )
        .expect("failed");
        assert_eq!(
            failed,
            SmElement::Failed {
                h: Some(3),
                condition: Some(Condition::ItemNotFound)
            }
        );
        assert_eq!(round_trip(&failed), failed);
        let bare = parse(
            "<failed xmlns='urn:xmpp:sm:3'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>",
        )
        .expect("failed");
        assert_eq!(
            bare,
            SmElement::Failed {
                h: None,
                condition: Some(Condition::UnexpectedRequest)
            }
        );
    }

    #[test]
    fn request_and_answer_from_the_acking_example() {
        assert_eq!(parse("<r xmlns='urn:xmpp:sm:3'/>"), Ok(SmElement::Request));
        assert_eq!(
            parse("<a xmlns='urn:xmpp:sm:3' h='2'/>"),
            Ok(SmElement::Answer { h: 2 })
        );
        assert_eq!(
            SmElement::Request.to_element().to_xml(),
            "<r xmlns='urn:xmpp:sm:3'/>"
        );
    }

    #[test]
    fn a_counter_beyond_32_bits_or_not_a_number_is_an_error() {
        assert_eq!(
            parse("<a xmlns='urn:xmpp:sm:3' h='4294967296'/>"),
            Err(SmError::BadNumber("h"))
        );
        assert_eq!(
            parse("<resume xmlns='urn:xmpp:sm:3' h='some-sequence-number' previd='x'/>"),
            Err(SmError::BadNumber("h"))
        );
        assert_eq!(
            parse("<a xmlns='urn:xmpp:sm:3' h='-1'/>"),
            Err(SmError::BadNumber("h"))
        );
    }

    #[test]
    fn missing_attributes_and_foreign_namespaces_are_errors() {
        assert_eq!(
            parse("<a xmlns='urn:xmpp:sm:3'/>"),
            Err(SmError::MissingAttribute("h"))
        );
        assert_eq!(
            parse("<resume xmlns='urn:xmpp:sm:3' h='1'/>"),
            Err(SmError::MissingAttribute("previd"))
        );
        assert!(matches!(
            parse("<r xmlns='urn:xmpp:sm:2'/>"),
            Err(SmError::NotSm(_))
        ));
        assert_eq!(
            parse("<enable xmlns='urn:xmpp:sm:3' resume='yes'/>"),
            Err(SmError::BadBoolean("resume"))
        );
    }

    #[test]
    fn the_feature_and_the_too_high_count_are_in_the_sm_namespace() {
        assert_eq!(feature().to_xml(), "<sm xmlns='urn:xmpp:sm:3'/>");
        let too_high = handled_count_too_high(10, 8);
        assert_eq!(too_high.get_attr("send-count"), Some("8"));
    }
}
