//! Builds owned elements from quick-xml events, with the restrictions of RFC 6120 §11.
//!
//! The builder knows nothing about sockets: the server's stream reader feeds it events read
//! asynchronously, and [`Element::parse`] feeds it a string (stored stanzas, tests).

use std::sync::Arc;

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use thiserror::Error;

use crate::element::{Element, Node};
use crate::ns;
use crate::xml_name::is_qname;

/// Why a piece of XML was refused; each maps to one stream error condition.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The XML is not well-formed (`not-well-formed`).
    #[error("not well-formed: {0}")]
    NotWellFormed(String),
    /// The XML uses a feature RFC 6120 §11.1 forbids (`restricted-xml`).
    #[error("restricted XML: {0}")]
    RestrictedXml(&'static str),
    /// A prefix is used that no declaration binds (`invalid-namespace`).
    #[error("unbound namespace prefix {0}")]
    UnboundPrefix(String),
    /// A configured structural limit was exceeded (`policy-violation`).
    #[error("limit exceeded: {0}")]
    LimitExceeded(&'static str),
}

/// Structural limits applied while building, so that memory stays bounded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Maximum element nesting inside a stanza.
    pub max_depth: usize,
    /// Maximum number of attributes on one element.
    pub max_attributes: usize,
    /// Maximum approximate heap cost of one parsed stanza, in bytes: wire size alone does not
    /// bound memory, since `<a/>` is four bytes on the wire and a hundred once parsed.
    pub max_tree_cost: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 48,
            max_attributes: 64,
            max_tree_cost: 2 * 1024 * 1024,
        }
    }
}

/// What one event produced at stream level.
#[derive(Debug)]
pub enum Built {
    /// Nothing complete yet.
    Pending,
    /// A complete top-level element.
    Element(Element),
    /// The end tag of the enclosing stream.
    StreamEnd,
}

/// A namespace binding in scope: prefix (`""` for the default namespace) and URI, shared by
/// every element resolved against it.
pub type Binding = (String, Arc<str>);

/// A start tag with its name resolved, as needed for stream headers.
#[derive(Debug, Clone)]
pub struct ResolvedStart {
    /// The element without children.
    pub element: Element,
    /// The namespace declarations made on this tag.
    pub declarations: Vec<Binding>,
}

/// Incremental builder of top-level elements inside a stream.
#[derive(Debug)]
pub struct TreeBuilder {
    limits: Limits,
    root_scope: Vec<Binding>,
    scopes: Vec<Vec<Binding>>,
    open: Vec<Element>,
    cost: usize,
}

impl TreeBuilder {
    /// A builder whose outermost scope is the stream header's declarations.
    pub fn new(limits: Limits, root_scope: Vec<Binding>) -> Self {
        TreeBuilder {
            limits,
            root_scope,
            scopes: Vec::new(),
            open: Vec::new(),
            cost: 0,
        }
    }

    /// True when no stanza is partially built.
    pub fn is_idle(&self) -> bool {
        self.open.is_empty()
    }

    /// Feeds one event.
    pub fn feed(&mut self, event: Event<'_>) -> Result<Built, ParseError> {
        match event {
            Event::Start(start) => {
                self.open_element(&start)?;
                Ok(Built::Pending)
            }
            Event::Empty(start) => {
                self.open_element(&start)?;
                Ok(self.close_element())
            }
            Event::End(_) => {
                if self.open.is_empty() {
                    return Ok(Built::StreamEnd);
                }
                Ok(self.close_element())
            }
            Event::Text(text) => {
                self.push_text(&text.xml10_content())?;
                Ok(Built::Pending)
            }
            Event::CData(data) => {
                self.push_text(&data.xml10_content())?;
                Ok(Built::Pending)
            }
            Event::GeneralRef(reference) => {
                let resolved = if reference.is_char_ref() {
                    reference
                        .resolve_char_ref()
                        .map_err(|e| ParseError::NotWellFormed(e.to_string()))?
                } else {
                    let name = reference.xml10_content();
                    predefined_entity(&name)
                };
                match resolved {
                    Some(c) => {
                        self.push_text(c.encode_utf8(&mut [0; 4]))?;
                        Ok(Built::Pending)
                    }
                    None => Err(ParseError::RestrictedXml("entity reference")),
                }
            }
            Event::Comment(_) => Err(ParseError::RestrictedXml("comment")),
            Event::PI(_) => Err(ParseError::RestrictedXml("processing instruction")),
            Event::DocType(_) => Err(ParseError::RestrictedXml("document type declaration")),
            Event::Decl(_) => Err(ParseError::NotWellFormed(
                "XML declaration inside the stream".into(),
            )),
            Event::Eof => Err(ParseError::NotWellFormed("unexpected end of input".into())),
        }
    }

    fn open_element(&mut self, start: &BytesStart<'_>) -> Result<(), ParseError> {
        if self.open.len() >= self.limits.max_depth {
            return Err(ParseError::LimitExceeded("nesting depth"));
        }
        let resolved = resolve_start(start, self.limits, |prefix| self.lookup(prefix))?;
        let element = &resolved.element;
        let cost = Element::cost_of_name(element.name())
            + element
                .attrs()
                .map(|(name, value)| Element::cost_of_attribute(name, value))
                .sum::<usize>();
        self.charge(cost)?;
        self.scopes.push(resolved.declarations);
        self.open.push(resolved.element);
        Ok(())
    }

    fn close_element(&mut self) -> Built {
        self.scopes.pop();
        let Some(done) = self.open.pop() else {
            return Built::StreamEnd;
        };
        match self.open.last_mut() {
            Some(parent) => {
                parent.append_node(Node::Element(done));
                Built::Pending
            }
            None => {
                self.cost = 0;
                Built::Element(done)
            }
        }
    }

    /// Adds to the cost of the stanza being built, refusing it past the limit.
    fn charge(&mut self, cost: usize) -> Result<(), ParseError> {
        self.cost = self.cost.saturating_add(cost);
        if self.cost > self.limits.max_tree_cost {
            return Err(ParseError::LimitExceeded("parsed stanza size"));
        }
        Ok(())
    }

    fn push_text(&mut self, text: &str) -> Result<(), ParseError> {
        check_chars(text)?;
        // An empty text event would become a node that no serialisation can carry.
        if text.is_empty() {
            return Ok(());
        }
        match self.open.last_mut() {
            Some(parent) => {
                parent.append_text(text);
                self.charge(Element::cost_of_text(text))
            }
            None if text.chars().all(|c| c.is_ascii_whitespace()) => Ok(()),
            None => Err(ParseError::NotWellFormed(
                "character data at stream level".into(),
            )),
        }
    }

    fn lookup(&self, prefix: &str) -> Option<Arc<str>> {
        self.scopes
            .iter()
            .rev()
            .chain(std::iter::once(&self.root_scope))
            .flat_map(|scope| scope.iter())
            .find(|(p, _)| p == prefix)
            .map(|(_, uri)| uri.clone())
    }
}

/// Resolves a start tag against the bindings in scope (`lookup`) and its own declarations.
pub fn resolve_start(
    start: &BytesStart<'_>,
    limits: Limits,
    lookup: impl Fn(&str) -> Option<Arc<str>>,
) -> Result<ResolvedStart, ParseError> {
    let name = start.name();
    let qname: &str = name.as_ref();
    if !is_qname(qname) {
        return Err(ParseError::NotWellFormed(format!(
            "{qname:?} is not an element name"
        )));
    }
    let mut declarations: Vec<Binding> = Vec::new();
    let mut plain_attrs = Vec::new();
    for (count, attr) in start.attributes().enumerate() {
        if count >= limits.max_attributes {
            return Err(ParseError::LimitExceeded("attribute count"));
        }
        let attr = attr.map_err(|e| ParseError::NotWellFormed(e.to_string()))?;
        let key = AsRef::<str>::as_ref(&attr.key).to_owned();
        if !is_qname(&key) {
            return Err(ParseError::NotWellFormed(format!(
                "{key:?} is not an attribute name"
            )));
        }
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| match e {
                quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(
                    ..,
                )) => ParseError::RestrictedXml("entity reference"),
                other => ParseError::NotWellFormed(other.to_string()),
            })?;
        check_chars(&value)?;
        if key == "xmlns" {
            declarations.push((String::new(), Arc::from(value.as_ref())));
        } else if let Some(prefix) = key.strip_prefix("xmlns:") {
            if prefix == "xml" || prefix == "xmlns" || value.is_empty() {
                return Err(ParseError::NotWellFormed(format!(
                    "the prefix {prefix} cannot be declared this way"
                )));
            }
            declarations.push((prefix.to_owned(), Arc::from(value.as_ref())));
        } else {
            plain_attrs.push((key, value.into_owned()));
        }
    }
    let find = |prefix: &str| -> Option<Arc<str>> {
        if prefix == "xml" {
            return Some(Arc::from(ns::XML));
        }
        declarations
            .iter()
            .find(|(p, _)| p == prefix)
            .map(|(_, uri)| uri.clone())
            .or_else(|| lookup(prefix))
    };
    let (prefix, local) = match qname.split_once(':') {
        Some((prefix, local)) => (prefix, local),
        None => ("", qname),
    };
    let namespace = match find(prefix) {
        Some(uri) => uri,
        None if prefix.is_empty() => Arc::from(""),
        None => return Err(ParseError::UnboundPrefix(prefix.to_owned())),
    };
    let mut element = Element::new(local, namespace);
    for (key, value) in plain_attrs {
        if element.get_attr(&key).is_some() {
            return Err(ParseError::NotWellFormed(format!(
                "attribute {key} appears twice"
            )));
        }
        match key.split_once(':') {
            Some(("xml", _)) => element.set_attr(&key, value),
            Some((attr_prefix, _)) => match find(attr_prefix) {
                Some(uri) => element.set_prefixed_attr(&key, uri, value),
                None => return Err(ParseError::UnboundPrefix(attr_prefix.to_owned())),
            },
            None => element.set_attr(&key, value),
        }
    }
    Ok(ResolvedStart {
        element,
        declarations,
    })
}

fn predefined_entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => None,
    }
}

/// Refuses characters that XML 1.0 does not allow in a document.
fn check_chars(text: &str) -> Result<(), ParseError> {
    let invalid = text.chars().any(|c| {
        matches!(c, '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')
    });
    if invalid {
        Err(ParseError::NotWellFormed(
            "character not allowed in XML".into(),
        ))
    } else {
        Ok(())
    }
}

impl Element {
    /// Parses one standalone element (stored stanzas, tests); namespaces must be declared.
    pub fn parse(xml: &str) -> Result<Element, ParseError> {
        let mut reader = Reader::from_str(xml);
        reader.config_mut().check_end_names = true;
        let mut builder = TreeBuilder::new(Limits::default(), Vec::new());
        loop {
            let event = reader
                .read_event()
                .map_err(|e| ParseError::NotWellFormed(e.to_string()))?;
            if let Event::Eof = event {
                return Err(ParseError::NotWellFormed("no element".into()));
            }
            if let Event::Decl(_) = event {
                continue;
            }
            if let Built::Element(element) = builder.feed(event)? {
                return Ok(element);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_namespaces_and_entities() {
        let e = Element::parse(
            "<message xmlns='jabber:client' to='a@b'><body>a &amp; b &#x41;</body><x xmlns='urn:x'/></message>",
        )
        .expect("valid");
        assert!(e.is("message", ns::CLIENT));
        assert_eq!(e.child_text("body", ns::CLIENT).as_deref(), Some("a & b A"));
        assert!(e.has_child("x", "urn:x"));
    }

    #[test]
    fn round_trips_through_the_writer() {
        let xml =
            "<iq xmlns='jabber:client' type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>";
        let e = Element::parse(xml).expect("valid");
        assert_eq!(e.to_xml(), xml);
    }

    #[test]
    fn resolves_prefixed_elements() {
        let e =
            Element::parse("<s:error xmlns:s='urn:s'><c xmlns='urn:c'/></s:error>").expect("valid");
        assert!(e.is("error", "urn:s"));
    }

    #[test]
    fn refuses_comments_and_processing_instructions() {
        assert_eq!(
            Element::parse("<a xmlns='u'><!-- hi --></a>"),
            Err(ParseError::RestrictedXml("comment"))
        );
        assert_eq!(
            Element::parse("<a xmlns='u'><?pi x?></a>"),
            Err(ParseError::RestrictedXml("processing instruction"))
        );
    }

    #[test]
    fn refuses_unknown_entities() {
        assert_eq!(
            Element::parse("<a xmlns='u'>&foo;</a>"),
            Err(ParseError::RestrictedXml("entity reference"))
        );
    }

    #[test]
    fn refuses_unbound_prefixes() {
        assert!(matches!(
            Element::parse("<p:a/>"),
            Err(ParseError::UnboundPrefix(_))
        ));
    }

    #[test]
    fn a_prefix_bound_on_the_stream_header_is_declared_when_written() {
        let mut reader = Reader::from_str("<m><b p:tone='calm'/></m>");
        let root = vec![
            (String::new(), Arc::from(ns::CLIENT)),
            ("p".to_owned(), Arc::from("urn:p")),
        ];
        let mut builder = TreeBuilder::new(Limits::default(), root);
        let element = loop {
            let event = reader.read_event().expect("event");
            if let Built::Element(element) = builder.feed(event).expect("valid") {
                break element;
            }
        };
        let written = element.to_xml();
        assert_eq!(
            written,
            "<m xmlns='jabber:client'><b xmlns:p='urn:p' p:tone='calm'/></m>"
        );
        assert_eq!(Element::parse(&written), Ok(element));
    }

    #[test]
    fn namespaces_in_scope_are_shared_not_copied() {
        let xml = format!("<a xmlns='{}'><b/><c/></a>", "u".repeat(100));
        let e = Element::parse(&xml).expect("valid");
        let children: Vec<&Element> = e.children().collect();
        assert!(std::ptr::eq(children[0].ns(), children[1].ns()));
    }

    #[test]
    fn the_parsed_cost_of_a_stanza_is_limited() {
        let limits = Limits {
            max_tree_cost: 10_000,
            ..Limits::default()
        };
        let xml = format!("<a xmlns='u'>{}</a>", "<b/>".repeat(1000));
        let mut reader = Reader::from_str(&xml);
        let mut builder = TreeBuilder::new(limits, Vec::new());
        let outcome = loop {
            match reader.read_event().map(|event| builder.feed(event)) {
                Ok(Ok(Built::Element(_))) => break Ok(()),
                Ok(Ok(_)) => continue,
                Ok(Err(error)) => break Err(error),
                Err(error) => panic!("{error}"),
            }
        };
        assert_eq!(
            outcome,
            Err(ParseError::LimitExceeded("parsed stanza size"))
        );
    }

    #[test]
    fn refuses_names_that_are_not_xml_names() {
        for xml in [
            "<a:b:c xmlns:a='u'/>",
            "<message xmlns='jabber:client' 1c='2'/>",
            "<message xmlns='jabber:client'><b&/></message>",
        ] {
            assert!(
                matches!(Element::parse(xml), Err(ParseError::NotWellFormed(_))),
                "{xml}"
            );
        }
    }

    #[test]
    fn enforces_depth_limit() {
        let deep = "<a xmlns='u'>".repeat(100) + &"</a>".repeat(100);
        assert_eq!(
            Element::parse(&deep),
            Err(ParseError::LimitExceeded("nesting depth"))
        );
    }
}
