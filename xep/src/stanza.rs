//! Stanzas of RFC 6120 §8: kinds, types, replies and stanza errors.

use crate::element::Element;
use crate::ns;

/// The three stanza kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StanzaKind {
    /// `<message/>`
    Message,
    /// `<presence/>`
    Presence,
    /// `<iq/>`
    Iq,
}

impl StanzaKind {
    /// The kind of a top-level element in a content namespace, if it is a stanza.
    pub fn of(element: &Element) -> Option<StanzaKind> {
        if element.ns() != ns::CLIENT && element.ns() != ns::SERVER {
            return None;
        }
        match element.name() {
            "message" => Some(StanzaKind::Message),
            "presence" => Some(StanzaKind::Presence),
            "iq" => Some(StanzaKind::Iq),
            _ => None,
        }
    }
}

/// The `type` of an IQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IqType {
    /// A request for data.
    Get,
    /// A request to change data.
    Set,
    /// A successful answer.
    Result,
    /// An error answer.
    Error,
}

impl IqType {
    /// Parses the `type` attribute of an IQ; `None` when absent or unknown.
    pub fn of(iq: &Element) -> Option<IqType> {
        match iq.get_attr("type")? {
            "get" => Some(IqType::Get),
            "set" => Some(IqType::Set),
            "result" => Some(IqType::Result),
            "error" => Some(IqType::Error),
            _ => None,
        }
    }

    /// True for requests, which must always be answered.
    pub fn is_request(self) -> bool {
        matches!(self, IqType::Get | IqType::Set)
    }
}

/// The `type` of a message, defaulting to `normal` (RFC 6121 §5.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// One-to-one conversation.
    Chat,
    /// A reply-less message.
    Normal,
    /// Multi-user chat.
    Groupchat,
    /// Alerts and broadcasts.
    Headline,
    /// An error.
    Error,
}

impl MessageType {
    /// Parses the `type` attribute of a message.
    pub fn of(message: &Element) -> MessageType {
        match message.get_attr("type") {
            Some("chat") => MessageType::Chat,
            Some("groupchat") => MessageType::Groupchat,
            Some("headline") => MessageType::Headline,
            Some("error") => MessageType::Error,
            _ => MessageType::Normal,
        }
    }
}

/// Error types of RFC 6120 §8.3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// Retry after providing credentials.
    Auth,
    /// Do not retry.
    Cancel,
    /// Proceed (the condition was only a warning).
    Continue,
    /// Retry after changing the data sent.
    Modify,
    /// Retry after waiting.
    Wait,
}

impl ErrorType {
    fn as_str(self) -> &'static str {
        match self {
            ErrorType::Auth => "auth",
            ErrorType::Cancel => "cancel",
            ErrorType::Continue => "continue",
            ErrorType::Modify => "modify",
            ErrorType::Wait => "wait",
        }
    }
}

/// Stanza error conditions of RFC 6120 §8.3.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Malformed request.
    BadRequest,
    /// The resource or item already exists.
    Conflict,
    /// Known but not implemented.
    FeatureNotImplemented,
    /// Not allowed for this requester.
    Forbidden,
    /// Internal failure.
    InternalServerError,
    /// The item does not exist.
    ItemNotFound,
    /// A JID is malformed.
    JidMalformed,
    /// The request violates a local policy (e.g. a limit).
    NotAcceptable,
    /// Nobody may do this.
    NotAllowed,
    /// Credentials required.
    NotAuthorized,
    /// Limits exceeded.
    PolicyViolation,
    /// The intended recipient is temporarily unavailable.
    RecipientUnavailable,
    /// The remote domain does not exist or cannot be reached.
    RemoteServerNotFound,
    /// The remote domain could not be reached in time.
    RemoteServerTimeout,
    /// Out of resources (for instance a full offline store).
    ResourceConstraint,
    /// No such service.
    ServiceUnavailable,
    /// A subscription is required.
    SubscriptionRequired,
    /// Anything else.
    UndefinedCondition,
    /// Not expected at this point.
    UnexpectedRequest,
}

impl Condition {
    /// The element name of the condition.
    pub fn as_str(self) -> &'static str {
        use Condition::*;
        match self {
            BadRequest => "bad-request",
            Conflict => "conflict",
            FeatureNotImplemented => "feature-not-implemented",
            Forbidden => "forbidden",
            InternalServerError => "internal-server-error",
            ItemNotFound => "item-not-found",
            JidMalformed => "jid-malformed",
            NotAcceptable => "not-acceptable",
            NotAllowed => "not-allowed",
            NotAuthorized => "not-authorized",
            PolicyViolation => "policy-violation",
            RecipientUnavailable => "recipient-unavailable",
            RemoteServerNotFound => "remote-server-not-found",
            RemoteServerTimeout => "remote-server-timeout",
            ResourceConstraint => "resource-constraint",
            ServiceUnavailable => "service-unavailable",
            SubscriptionRequired => "subscription-required",
            UndefinedCondition => "undefined-condition",
            UnexpectedRequest => "unexpected-request",
        }
    }

    /// The condition named by an element of the stanza-errors namespace, if it is one of ours.
    pub fn from_name(name: &str) -> Option<Condition> {
        use Condition::*;
        let all = [
            BadRequest,
            Conflict,
            FeatureNotImplemented,
            Forbidden,
            InternalServerError,
            ItemNotFound,
            JidMalformed,
            NotAcceptable,
            NotAllowed,
            NotAuthorized,
            PolicyViolation,
            RecipientUnavailable,
            RemoteServerNotFound,
            RemoteServerTimeout,
            ResourceConstraint,
            ServiceUnavailable,
            SubscriptionRequired,
            UndefinedCondition,
            UnexpectedRequest,
        ];
        all.into_iter().find(|condition| condition.as_str() == name)
    }

    /// The error type RFC 6120 §8.3.3 pairs with the condition.
    pub fn default_type(self) -> ErrorType {
        use Condition::*;
        match self {
            BadRequest | JidMalformed | NotAcceptable | PolicyViolation => ErrorType::Modify,
            NotAuthorized | Forbidden | SubscriptionRequired => ErrorType::Auth,
            RecipientUnavailable | RemoteServerTimeout | ResourceConstraint | UnexpectedRequest => {
                ErrorType::Wait
            }
            _ => ErrorType::Cancel,
        }
    }
}

/// A stanza error to send back to the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaError {
    /// What to do about it.
    pub error_type: ErrorType,
    /// The defined condition.
    pub condition: Condition,
    /// Text for humans.
    pub text: Option<String>,
    /// An application-specific condition element (boxed: errors travel in `Result`s).
    pub application: Option<Box<Element>>,
}

impl StanzaError {
    /// An error with the condition's default type.
    pub fn new(condition: Condition) -> Self {
        StanzaError {
            error_type: condition.default_type(),
            condition,
            text: None,
            application: None,
        }
    }

    /// Adds a human-readable text.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// Adds an application-specific condition.
    pub fn with_application(mut self, application: Element) -> Self {
        self.application = Some(Box::new(application));
        self
    }

    /// The `<error/>` element.
    pub fn to_element(&self) -> Element {
        let mut error = Element::new("error", ns::CLIENT).attr("type", self.error_type.as_str());
        error.append_child(Element::new(self.condition.as_str(), ns::STANZA_ERRORS));
        if let Some(text) = &self.text {
            error.append_child(
                Element::new("text", ns::STANZA_ERRORS)
                    .attr("xml:lang", "en")
                    .text(text.clone()),
            );
        }
        if let Some(application) = &self.application {
            error.append_child(application.as_ref().clone());
        }
        error
    }

    /// Reads the condition of an `<error/>` child of a stanza.
    pub fn condition_of(stanza: &Element) -> Option<String> {
        let error = stanza.get_child("error", ns::CLIENT)?;
        error
            .children()
            .find(|c| c.ns() == ns::STANZA_ERRORS && c.name() != "text")
            .map(|c| c.name().to_owned())
    }
}

/// True when the stanza is itself an error, which must never be answered with an error.
pub fn is_error(stanza: &Element) -> bool {
    stanza.get_attr("type") == Some("error")
}

/// The error reply to `original`: addresses swapped, same id, the original payload kept
/// for messages and presences (RFC 6120 §8.3.1).
pub fn error_reply(original: &Element, error: &StanzaError) -> Element {
    let mut reply = Element::new(original.name(), ns::CLIENT)
        .attr("type", "error")
        .attr_opt("id", original.get_attr("id"))
        .attr_opt("to", original.get_attr("from"))
        .attr_opt("from", original.get_attr("to"));
    if original.name() != "iq" {
        for child in original.children() {
            if !child.is("error", ns::CLIENT) {
                reply.append_child(child.clone());
            }
        }
    }
    reply.append_child(error.to_element());
    reply
}

/// A `result` answer to an IQ request, with an optional payload.
pub fn iq_result(request: &Element, payload: Option<Element>) -> Element {
    let mut reply = Element::new("iq", ns::CLIENT)
        .attr("type", "result")
        .attr_opt("id", request.get_attr("id"))
        .attr_opt("to", request.get_attr("from"))
        .attr_opt("from", request.get_attr("to"));
    if let Some(payload) = payload {
        reply.append_child(payload);
    }
    reply
}

/// The single payload child of an IQ request, as RFC 6120 §8.2.3 requires.
pub fn iq_payload(iq: &Element) -> Option<&Element> {
    let mut children = iq.children().filter(|c| !c.is("error", ns::CLIENT));
    let first = children.next()?;
    match children.next() {
        Some(_) => None,
        None => Some(first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reply_swaps_addresses_and_keeps_id() {
        let iq = Element::new("iq", ns::CLIENT)
            .attr("type", "get")
            .attr("id", "q1")
            .attr("from", "a@x/r")
            .attr("to", "x")
            .child(Element::new("query", "urn:unknown"));
        let reply = error_reply(&iq, &StanzaError::new(Condition::ServiceUnavailable));
        assert_eq!(reply.get_attr("to"), Some("a@x/r"));
        assert_eq!(reply.get_attr("from"), Some("x"));
        assert_eq!(reply.get_attr("id"), Some("q1"));
        assert_eq!(
            StanzaError::condition_of(&reply).as_deref(),
            Some("service-unavailable")
        );
        assert!(!reply.has_child("query", "urn:unknown"));
    }

    #[test]
    fn condition_names_read_back_to_the_same_condition() {
        let condition = Condition::from_name("item-not-found");
        assert_eq!(condition, Some(Condition::ItemNotFound));
        assert_eq!(Condition::from_name("no-such-condition"), None);
    }

    #[test]
    fn iq_payload_requires_exactly_one_child() {
        let two = Element::new("iq", ns::CLIENT)
            .child(Element::new("a", "u"))
            .child(Element::new("b", "u"));
        assert!(iq_payload(&two).is_none());
        let one = Element::new("iq", ns::CLIENT).child(Element::new("a", "u"));
        assert_eq!(iq_payload(&one).map(Element::name), Some("a"));
    }
}
