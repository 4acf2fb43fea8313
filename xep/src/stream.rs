//! RFC 6120 stream vocabulary: headers, features and stream errors.

use crate::element::{escape, Element};
use crate::ns;

/// The conditions of RFC 6120 §4.9.3 that the server emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamErrorCondition {
    /// The stream header or a stanza is malformed beyond XML well-formedness.
    BadFormat,
    /// The same session was replaced by a newer one.
    Conflict,
    /// The peer was idle or slow for too long.
    ConnectionTimeout,
    /// The `to` of the header names no host served here.
    HostUnknown,
    /// A required address is missing from the header.
    ImproperAddressing,
    /// The server failed internally.
    InternalServerError,
    /// A `from` was used that the stream did not authenticate.
    InvalidFrom,
    /// The stream or content namespace is wrong.
    InvalidNamespace,
    /// The entity must authenticate (or negotiate TLS) first.
    NotAuthorized,
    /// The XML is not well-formed.
    NotWellFormed,
    /// A local policy was violated (size limits, rates).
    PolicyViolation,
    /// The entity is being disconnected for resource reasons (slow consumer).
    ResourceConstraint,
    /// The XML uses restricted features (comments, PIs, DTDs, entities).
    RestrictedXml,
    /// The server is shutting down.
    SystemShutdown,
    /// A top-level element the server does not support.
    UnsupportedStanzaType,
    /// The stream version is not 1.x.
    UnsupportedVersion,
    /// Anything else.
    UndefinedCondition,
}

impl StreamErrorCondition {
    /// The element name of the condition.
    pub fn as_str(self) -> &'static str {
        use StreamErrorCondition::*;
        match self {
            BadFormat => "bad-format",
            Conflict => "conflict",
            ConnectionTimeout => "connection-timeout",
            HostUnknown => "host-unknown",
            ImproperAddressing => "improper-addressing",
            InternalServerError => "internal-server-error",
            InvalidFrom => "invalid-from",
            InvalidNamespace => "invalid-namespace",
            NotAuthorized => "not-authorized",
            NotWellFormed => "not-well-formed",
            PolicyViolation => "policy-violation",
            ResourceConstraint => "resource-constraint",
            RestrictedXml => "restricted-xml",
            SystemShutdown => "system-shutdown",
            UnsupportedStanzaType => "unsupported-stanza-type",
            UnsupportedVersion => "unsupported-version",
            UndefinedCondition => "undefined-condition",
        }
    }
}

/// A stream error with an optional human-readable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    /// The defined condition.
    pub condition: StreamErrorCondition,
    /// Text for humans, never containing secrets.
    pub text: Option<String>,
    /// An application-specific condition element (RFC 6120 §4.9.4), e.g. XEP-0198's
    /// `<handled-count-too-high/>`.
    pub application: Option<Element>,
}

impl StreamError {
    /// A stream error without text.
    pub fn new(condition: StreamErrorCondition) -> Self {
        StreamError {
            condition,
            text: None,
            application: None,
        }
    }

    /// A stream error with an explanatory text.
    pub fn with_text(condition: StreamErrorCondition, text: impl Into<String>) -> Self {
        StreamError {
            condition,
            text: Some(text.into()),
            application: None,
        }
    }

    /// The same error with an application-specific condition element.
    pub fn with_application(mut self, application: Element) -> Self {
        self.application = Some(application);
        self
    }

    /// The `<stream:error>` element as written on the wire.
    pub fn to_xml(&self) -> String {
        let mut out = format!(
            "<stream:error><{} xmlns='{}'/>",
            self.condition.as_str(),
            ns::STREAM_ERRORS
        );
        if let Some(text) = &self.text {
            out.push_str(&format!(
                "<text xmlns='{}' xml:lang='en'>{}</text>",
                ns::STREAM_ERRORS,
                escape(text)
            ));
        }
        if let Some(application) = &self.application {
            out.push_str(&application.to_xml());
        }
        out.push_str("</stream:error>");
        out
    }
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.text {
            Some(text) => write!(f, "{}: {}", self.condition.as_str(), text),
            None => f.write_str(self.condition.as_str()),
        }
    }
}

impl std::error::Error for StreamError {}

/// The attributes of a stream header, in either direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamHeader {
    /// `from` attribute.
    pub from: Option<String>,
    /// `to` attribute.
    pub to: Option<String>,
    /// `id` attribute (set by the receiving entity).
    pub id: Option<String>,
    /// `version` attribute.
    pub version: Option<String>,
    /// `xml:lang` attribute.
    pub lang: Option<String>,
    /// Content namespace (`jabber:client` or `jabber:server`).
    pub content_ns: String,
}

impl StreamHeader {
    /// Reads the header attributes from a resolved `<stream:stream>` start tag.
    pub fn from_element(element: &Element, content_ns: Option<&str>) -> Self {
        StreamHeader {
            from: element.get_attr("from").map(str::to_owned),
            to: element.get_attr("to").map(str::to_owned),
            id: element.get_attr("id").map(str::to_owned),
            version: element.get_attr("version").map(str::to_owned),
            lang: element.get_attr("xml:lang").map(str::to_owned),
            content_ns: content_ns.unwrap_or_default().to_owned(),
        }
    }

    /// True when the major version is 1 (RFC 6120 §4.7.5).
    pub fn version_is_supported(&self) -> bool {
        match &self.version {
            Some(v) => v.split('.').next() == Some("1"),
            None => false,
        }
    }

    /// The opening tag as written on the wire, with the XML declaration.
    pub fn to_xml(&self) -> String {
        let mut out = String::from("<?xml version='1.0'?><stream:stream");
        for (name, value) in [
            ("from", &self.from),
            ("to", &self.to),
            ("id", &self.id),
            ("version", &self.version),
            ("xml:lang", &self.lang),
        ] {
            if let Some(value) = value {
                out.push_str(&format!(" {name}='{}'", escape(value)));
            }
        }
        out.push_str(&format!(
            " xmlns='{}' xmlns:stream='{}'",
            escape(&self.content_ns),
            ns::STREAM
        ));
        if self.content_ns == ns::SERVER {
            out.push_str(&format!(" xmlns:db='{}'", ns::DIALBACK));
        }
        out.push('>');
        out
    }
}

/// The closing tag of a stream.
pub const STREAM_CLOSE: &str = "</stream:stream>";

/// A `<stream:features>` element holding the given features.
pub fn features(children: Vec<Element>) -> Element {
    let mut features = Element::new("features", ns::STREAM);
    for child in children {
        features.append_child(child);
    }
    features
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_error_carries_condition_and_text() {
        let error = StreamError::with_text(StreamErrorCondition::HostUnknown, "no <such> host");
        assert_eq!(
            error.to_xml(),
            "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>no &lt;such&gt; host</text></stream:error>"
        );
    }

    #[test]
    fn version_check_accepts_minor_versions() {
        let mut header = StreamHeader {
            version: Some("1.5".into()),
            ..Default::default()
        };
        assert!(header.version_is_supported());
        header.version = Some("2.0".into());
        assert!(!header.version_is_supported());
        header.version = None;
        assert!(!header.version_is_supported());
    }
}
