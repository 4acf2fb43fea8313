//! XEP-0388: Extensible SASL Profile (0.4.0) and XEP-0386: Bind 2 (0.4.0)
//!
//! SASL2 authenticates without a stream restart and may carry, inline, the binding of a
//! resource (Bind 2, with stream management and client state set up at once) or the
//! resumption of a stream-management session, so that a phone is back in one round trip.

use base64::Engine as _;
use thiserror::Error;

use crate::element::Element;
use crate::ns;
use crate::sasl::SaslFailure;

/// Why an `<authenticate/>` or `<response/>` was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Sasl2Error {
    /// No `mechanism` attribute.
    #[error("authenticate without a mechanism")]
    MissingMechanism,
    /// A payload that is not base64.
    #[error("payload is not base64")]
    BadPayload,
}

/// The client's software and device, identified by a stable id (a UUID).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserAgent {
    /// The stable id of this installation.
    pub id: Option<String>,
    /// e.g. "Conversations".
    pub software: Option<String>,
    /// e.g. "Pixel 8".
    pub device: Option<String>,
}

/// A Bind 2 request inside `<authenticate/>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BindRequest {
    /// What the client calls itself, from which the server derives the resource.
    pub tag: Option<String>,
    /// Features to set up with the binding (`<enable xmlns='urn:xmpp:sm:3'/>`,
    /// `<inactive xmlns='urn:xmpp:csi:0'/>`, `<enable xmlns='urn:xmpp:carbons:2'/>`).
    pub inline: Vec<Element>,
}

/// A parsed `<authenticate xmlns='urn:xmpp:sasl:2'/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticate {
    /// The mechanism chosen.
    pub mechanism: String,
    /// The decoded initial response; `None` when absent (the server sends an empty challenge).
    pub initial_response: Option<Vec<u8>>,
    /// Who the client is.
    pub user_agent: UserAgent,
    /// A resource binding to do on success.
    pub bind: Option<BindRequest>,
    /// A stream-management `<resume/>` to do on success.
    pub resume: Option<Element>,
    /// XEP-0484: the mechanism of a FAST token the client asks for.
    pub request_token: Option<String>,
    /// XEP-0484: the client logs in with a FAST token.
    pub fast: Option<FastUse>,
}

/// The `<fast/>` element of a login with a FAST token (XEP-0484).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FastUse {
    /// The client's replay counter, when it sends one.
    pub count: Option<u64>,
    /// The client wants the token invalidated (logging out).
    pub invalidate: bool,
}

impl Authenticate {
    /// Reads an `<authenticate/>`.
    pub fn parse(element: &Element) -> Result<Authenticate, Sasl2Error> {
        let mechanism = element
            .get_attr("mechanism")
            .filter(|m| !m.is_empty())
            .ok_or(Sasl2Error::MissingMechanism)?
            .to_owned();
        let initial_response = match element.get_child("initial-response", ns::SASL2) {
            Some(initial) => Some(decode(&initial.text_content())?),
            None => None,
        };
        let user_agent = element
            .get_child("user-agent", ns::SASL2)
            .map(|agent| UserAgent {
                id: agent.get_attr("id").map(str::to_owned),
                software: agent.child_text("software", ns::SASL2),
                device: agent.child_text("device", ns::SASL2),
            })
            .unwrap_or_default();
        let bind = element
            .get_child("bind", ns::BIND2)
            .map(|bind| BindRequest {
                tag: bind
                    .child_text("tag", ns::BIND2)
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty()),
                inline: bind
                    .children()
                    .filter(|child| !child.is("tag", ns::BIND2))
                    .cloned()
                    .collect(),
            });
        let resume = element.get_child("resume", ns::SM).cloned();
        let request_token = element
            .get_child("request-token", ns::FAST)
            .and_then(|request| request.get_attr("mechanism"))
            .map(str::to_owned);
        let fast = element.get_child("fast", ns::FAST).map(|fast| FastUse {
            count: fast.get_attr("count").and_then(|c| c.parse().ok()),
            invalidate: matches!(fast.get_attr("invalidate"), Some("true" | "1")),
        });
        Ok(Authenticate {
            mechanism,
            initial_response,
            user_agent,
            bind,
            resume,
            request_token,
            fast,
        })
    }
}

/// Decodes a SASL2 payload (`=` or empty means no data).
pub fn decode(text: &str) -> Result<Vec<u8>, Sasl2Error> {
    let text = text.trim();
    if text.is_empty() || text == "=" {
        return Ok(Vec::new());
    }
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| Sasl2Error::BadPayload)
}

fn encode(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The `<authentication/>` stream feature with its mechanisms and what may come inline.
pub fn feature<'a>(mechanisms: impl IntoIterator<Item = &'a str>, inline: Vec<Element>) -> Element {
    let mut feature = Element::new("authentication", ns::SASL2);
    for name in mechanisms {
        feature.append_child(Element::new("mechanism", ns::SASL2).text(name));
    }
    let mut inlined = Element::new("inline", ns::SASL2);
    for element in inline {
        inlined.append_child(element);
    }
    feature.child(inlined)
}

/// The Bind 2 inline feature, listing what may be set up with a binding.
pub fn bind_feature<'a>(features: impl IntoIterator<Item = &'a str>) -> Element {
    let mut inline = Element::new("inline", ns::BIND2);
    for var in features {
        inline.append_child(Element::new("feature", ns::BIND2).attr("var", var));
    }
    Element::new("bind", ns::BIND2).child(inline)
}

/// The XEP-0484 `<fast/>` inline feature with the token mechanisms offered.
pub fn fast_feature<'a>(mechanisms: impl IntoIterator<Item = &'a str>) -> Element {
    let mut fast = Element::new("fast", ns::FAST);
    for name in mechanisms {
        fast.append_child(Element::new("mechanism", ns::FAST).text(name));
    }
    fast
}

/// The XEP-0484 `<token/>` handed to a client in a `<success/>`; `expiry` is an XEP-0082
/// DateTime.
pub fn fast_token(secret: &str, expiry: &str) -> Element {
    Element::new("token", ns::FAST)
        .attr("expiry", expiry)
        .attr("token", secret)
}

/// A `<challenge/>`.
pub fn challenge(data: &[u8]) -> Element {
    Element::new("challenge", ns::SASL2).text(encode(data))
}

/// A `<success/>`: the mechanism's additional data, the authorised JID (full once bound) and
/// what was done inline (`<bound/>`, `<resumed/>`, `<failed/>`).
pub fn success(additional_data: &[u8], jid: &str, inline: Vec<Element>) -> Element {
    let mut success = Element::new("success", ns::SASL2);
    if !additional_data.is_empty() {
        success
            .append_child(Element::new("additional-data", ns::SASL2).text(encode(additional_data)));
    }
    success.append_child(Element::new("authorization-identifier", ns::SASL2).text(jid));
    for element in inline {
        success.append_child(element);
    }
    success
}

/// A `<failure/>` with the RFC 6120 condition.
pub fn failure(condition: SaslFailure) -> Element {
    Element::new("failure", ns::SASL2).child(Element::new(condition.as_str(), ns::SASL))
}

/// The `<bound/>` of a successful Bind 2, with what was enabled inline.
pub fn bound(inline: Vec<Element>) -> Element {
    let mut bound = Element::new("bound", ns::BIND2);
    for element in inline {
        bound.append_child(element);
    }
    bound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authenticate_with_user_agent_and_bind_is_read() {
        let element = Element::parse(concat!(
            "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-1-PLUS'>",
            "<initial-response>cD10bHMtZXhwb3J0ZXIsLG49dXNlcixyPTEyQzRDRDVDLUUzOEUtNEE5OC04RjZELTE1QzM4RjUxQ0NDNg==</initial-response>",
            "<user-agent id='d4565fa7-4d72-4749-b3d3-740edbf87770'>",
            "<software>AwesomeXMPP</software><device>Kiva's Phone</device></user-agent>",
            "<bind xmlns='urn:xmpp:bind:0'><tag>AwesomeXMPP</tag>",
            "<enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>",
            "<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>",
            "</authenticate>"
        ))
        .expect("xml");
        let parsed = Authenticate::parse(&element).expect("valid");
        assert_eq!(parsed.mechanism, "SCRAM-SHA-1-PLUS");
        assert!(parsed
            .initial_response
            .as_deref()
            .is_some_and(|r| r.starts_with(b"p=tls-exporter,,n=user")));
        assert_eq!(
            parsed.user_agent.id.as_deref(),
            Some("d4565fa7-4d72-4749-b3d3-740edbf87770")
        );
        assert_eq!(parsed.user_agent.device.as_deref(), Some("Kiva's Phone"));
        let bind = parsed.bind.expect("bind");
        assert_eq!(bind.tag.as_deref(), Some("AwesomeXMPP"));
        assert_eq!(bind.inline.len(), 1);
        assert!(bind.inline[0].is("enable", ns::SM));
        assert_eq!(parsed.request_token.as_deref(), Some("HT-SHA-256-NONE"));
        assert_eq!(parsed.fast, None);
    }

    #[test]
    fn a_fast_login_with_count_and_invalidation_is_read() {
        let element = Element::parse(
            "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-ENDP'><initial-response>=</initial-response><fast xmlns='urn:xmpp:fast:0' count='123' invalidate='true'/></authenticate>",
        )
        .expect("xml");
        let parsed = Authenticate::parse(&element).expect("valid");
        assert_eq!(
            parsed.fast,
            Some(FastUse {
                count: Some(123),
                invalidate: true
            })
        );
    }

    #[test]
    fn an_authenticate_without_mechanism_or_with_bad_base64_is_refused() {
        let none = Element::parse("<authenticate xmlns='urn:xmpp:sasl:2'/>").expect("xml");
        assert_eq!(
            Authenticate::parse(&none),
            Err(Sasl2Error::MissingMechanism)
        );
        let bad = Element::parse(
            "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>*</initial-response></authenticate>",
        )
        .expect("xml");
        assert_eq!(Authenticate::parse(&bad), Err(Sasl2Error::BadPayload));
    }

    #[test]
    fn a_success_names_the_jid_and_carries_what_was_bound() {
        let success = success(
            b"v=abc",
            "juliet@example.org/balcony",
            vec![bound(Vec::new())],
        );
        assert!(success.has_child("additional-data", ns::SASL2));
        assert_eq!(
            success
                .child_text("authorization-identifier", ns::SASL2)
                .as_deref(),
            Some("juliet@example.org/balcony")
        );
        assert!(success.has_child("bound", ns::BIND2));
    }
}
