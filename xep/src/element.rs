//! An owned XML element: what the reader produces and what every stanza handler works on.
//!
//! Escaping is done once, here, when an element is written, and every element is written
//! self-contained: the namespaces it and its attributes use are declared on it, never
//! borrowed from the stream header of the peer that sent it.
//!
//! Namespace URIs are shared (`Arc<str>`): a parser hands every element in the scope of one
//! declaration the same allocation, so a long URI costs its bytes once, not once per element.

use std::sync::Arc;

use crate::ns;

/// A child of an element: another element or character data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A nested element.
    Element(Element),
    /// Character data, unescaped.
    Text(String),
}

/// An attribute: its name as written (`id`, `xml:lang`, `p:key`), the namespace a prefixed
/// name was bound to when parsed (so the writer can declare it), and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attribute {
    name: String,
    ns: Option<Arc<str>>,
    value: String,
}

/// An XML element with its namespace resolved, attributes in document order and children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    name: String,
    ns: Arc<str>,
    attrs: Vec<Attribute>,
    children: Vec<Node>,
}

impl Element {
    /// A new empty element in namespace `ns`.
    pub fn new(name: impl Into<String>, ns: impl Into<Arc<str>>) -> Self {
        Element {
            name: name.into(),
            ns: ns.into(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Approximate heap cost of an element with this name, without attributes or children,
    /// as a parser should account for it.
    pub fn cost_of_name(name: &str) -> usize {
        std::mem::size_of::<Node>() + name.len()
    }

    /// Approximate heap cost of one attribute, as a parser should account for it.
    pub fn cost_of_attribute(name: &str, value: &str) -> usize {
        std::mem::size_of::<Attribute>() + name.len() + value.len()
    }

    /// Approximate heap cost of a text node, as a parser should account for it.
    pub fn cost_of_text(text: &str) -> usize {
        std::mem::size_of::<Node>() + text.len()
    }

    /// Builder: sets an attribute.
    pub fn attr(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Builder: sets an attribute when the value is present.
    pub fn attr_opt(mut self, name: &str, value: Option<impl Into<String>>) -> Self {
        if let Some(value) = value {
            self.set_attr(name, value);
        }
        self
    }

    /// Builder: appends a child element.
    pub fn child(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    /// Builder: appends character data.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.children.push(Node::Text(text.into()));
        self
    }

    /// Local name of the element.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Namespace URI of the element.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// True when the element has this local name and namespace.
    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && &*self.ns == ns
    }

    /// The value of an attribute, if present.
    pub fn get_attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }

    /// Sets or replaces an unprefixed (or `xml:`) attribute.
    pub fn set_attr(&mut self, name: &str, value: impl Into<String>) {
        self.set_attr_in(name, None, value.into());
    }

    /// Sets or replaces an attribute whose prefixed name is bound to `ns` (used by the
    /// parser, so that the writer can declare the prefix on this element).
    pub fn set_prefixed_attr(&mut self, name: &str, ns: Arc<str>, value: impl Into<String>) {
        self.set_attr_in(name, Some(ns), value.into());
    }

    fn set_attr_in(&mut self, name: &str, ns: Option<Arc<str>>, value: String) {
        match self.attrs.iter_mut().find(|a| a.name == name) {
            Some(slot) => {
                slot.ns = ns;
                slot.value = value;
            }
            None => self.attrs.push(Attribute {
                name: name.to_owned(),
                ns,
                value,
            }),
        }
    }

    /// Removes an attribute, returning its value.
    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let index = self.attrs.iter().position(|a| a.name == name)?;
        Some(self.attrs.remove(index).value)
    }

    /// All attributes in document order, by their names as written.
    pub fn attrs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attrs
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_str()))
    }

    /// All child nodes.
    pub fn nodes(&self) -> &[Node] {
        &self.children
    }

    /// Child elements, skipping text.
    pub fn children(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|node| match node {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element with this name and namespace.
    pub fn get_child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.children().find(|c| c.is(name, ns))
    }

    /// True when a child with this name and namespace exists.
    pub fn has_child(&self, name: &str, ns: &str) -> bool {
        self.get_child(name, ns).is_some()
    }

    /// Appends a child element.
    pub fn append_child(&mut self, child: Element) {
        self.children.push(Node::Element(child));
    }

    /// Removes the child elements for which `keep` is false; text is kept.
    pub fn retain_children(&mut self, mut keep: impl FnMut(&Element) -> bool) {
        self.children.retain(|node| match node {
            Node::Element(child) => keep(child),
            Node::Text(_) => true,
        });
    }

    /// Appends character data, merged with a directly preceding text node.
    pub fn append_text(&mut self, text: &str) {
        match self.children.last_mut() {
            Some(Node::Text(last)) => last.push_str(text),
            _ => self.children.push(Node::Text(text.to_owned())),
        }
    }

    /// Appends a child node (used by the parser).
    pub fn append_node(&mut self, node: Node) {
        self.children.push(node);
    }

    /// Moves this element and its descendants from namespace `from` to `to` (stanzas
    /// received as `jabber:server` are handled as `jabber:client`).
    pub fn rename_ns(&mut self, from: &str, to: &str) {
        if &*self.ns == from {
            self.ns = to.into();
        }
        for node in &mut self.children {
            if let Node::Element(child) = node {
                child.rename_ns(from, to);
            }
        }
    }

    /// Concatenated character data of the direct children.
    pub fn text_content(&self) -> String {
        self.children
            .iter()
            .filter_map(|node| match node {
                Node::Text(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }

    /// Text of the first child with this name and namespace.
    pub fn child_text(&self, name: &str, ns: &str) -> Option<String> {
        self.get_child(name, ns).map(Element::text_content)
    }

    /// Serializes the element as a top-level stanza of a stream whose content namespace is
    /// `stream_ns` (`jabber:client` or `jabber:server`).
    pub fn to_stream_xml(&self, stream_ns: &str) -> String {
        let mut out = String::with_capacity(256);
        self.write_into(&mut out, stream_parent(self, stream_ns));
        out
    }

    /// Serializes the element as a standalone document fragment (namespace always declared).
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(256);
        self.write_into(&mut out, "");
        out
    }

    /// Serializes a top-level element written with a prefix bound on the stream header
    /// (`stream:features`, `db:result`); its children are written as in a stream whose
    /// content namespace is `content_ns`.
    pub fn to_prefixed_xml(&self, prefix: &str, content_ns: &str) -> String {
        let mut out = String::with_capacity(256);
        out.push('<');
        out.push_str(prefix);
        out.push(':');
        out.push_str(&self.name);
        self.write_attrs_into(&mut out);
        // Always an explicit end tag: stream-level elements are written that way by custom.
        out.push('>');
        for node in &self.children {
            match node {
                Node::Element(e) => e.write_into(&mut out, stream_parent(e, content_ns)),
                Node::Text(t) => escape_text_into(&mut out, t),
            }
        }
        out.push_str("</");
        out.push_str(prefix);
        out.push(':');
        out.push_str(&self.name);
        out.push('>');
        out
    }

    fn write_into(&self, out: &mut String, parent_ns: &str) {
        out.push('<');
        out.push_str(&self.name);
        if &*self.ns != parent_ns {
            out.push_str(" xmlns='");
            escape_into(out, &self.ns);
            out.push('\'');
        }
        self.write_attrs_into(out);
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for node in &self.children {
            match node {
                Node::Element(e) => e.write_into(out, &self.ns),
                Node::Text(t) => escape_text_into(out, t),
            }
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }

    /// Writes the attributes, each prefix other than `xml` declared on this element.
    fn write_attrs_into(&self, out: &mut String) {
        for (index, attr) in self.attrs.iter().enumerate() {
            let Some((prefix, uri)) = self.declaration_for(attr) else {
                continue;
            };
            let declared_before = self.attrs[..index]
                .iter()
                .any(|earlier| self.declaration_for(earlier).map(|(p, _)| p) == Some(prefix));
            if !declared_before {
                out.push_str(" xmlns:");
                out.push_str(prefix);
                out.push_str("='");
                escape_into(out, uri);
                out.push('\'');
            }
        }
        for attr in &self.attrs {
            out.push(' ');
            out.push_str(&attr.name);
            out.push_str("='");
            escape_into(out, &attr.value);
            out.push('\'');
        }
    }

    /// The prefix declaration a prefixed attribute needs, if any.
    fn declaration_for<'a>(&self, attr: &'a Attribute) -> Option<(&'a str, &'a str)> {
        let (prefix, _) = attr.name.split_once(':')?;
        match &attr.ns {
            Some(uri) if prefix != "xml" => Some((prefix, uri)),
            _ => None,
        }
    }
}

/// The namespace an element written at stream level inherits: a stanza-level element in
/// `jabber:client` or `jabber:server` is written in the stream's content namespace, whichever
/// of the two that is, as RFC 6120 §4.8.3 lets servers do.
fn stream_parent<'a>(element: &'a Element, stream_ns: &'a str) -> &'a str {
    if &*element.ns == ns::CLIENT || &*element.ns == ns::SERVER {
        &element.ns
    } else {
        stream_ns
    }
}

/// Escapes an attribute value (single-quoted) into `out`; also safe for character data.
/// Tab, line feed and carriage return are written as character references, since a
/// recipient's attribute-value normalisation would turn them into spaces.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            _ => escape_text_char(out, c),
        }
    }
}

/// Escapes character data into `out`; a carriage return is written as a character
/// reference, since a recipient's end-of-line handling would turn it into a line feed.
pub fn escape_text_into(out: &mut String, text: &str) {
    for c in text.chars() {
        escape_text_char(out, c);
    }
}

fn escape_text_char(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '\'' => out.push_str("&apos;"),
        '"' => out.push_str("&quot;"),
        '\r' => out.push_str("&#13;"),
        _ => out.push(c),
    }
}

/// Escapes a string into a new one.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_namespaces_only_where_they_change() {
        let message = Element::new("message", ns::CLIENT)
            .attr("to", "a@b")
            .child(Element::new("body", ns::CLIENT).text("1 < 2 & 'x'"))
            .child(Element::new("x", "urn:example"));
        assert_eq!(
            message.to_stream_xml(ns::CLIENT),
            "<message to='a@b'><body>1 &lt; 2 &amp; &apos;x&apos;</body><x xmlns='urn:example'/></message>"
        );
    }

    #[test]
    fn standalone_serialization_declares_the_namespace() {
        let e = Element::new("query", "jabber:iq:roster");
        assert_eq!(e.to_xml(), "<query xmlns='jabber:iq:roster'/>");
    }

    #[test]
    fn prefixed_attributes_are_written_with_their_declaration() {
        let mut e = Element::new("x", "urn:x");
        e.set_prefixed_attr("p:key", Arc::from("urn:p"), "v");
        e.set_prefixed_attr("p:other", Arc::from("urn:p"), "w");
        e.set_attr("xml:lang", "en");
        assert_eq!(
            e.to_xml(),
            "<x xmlns='urn:x' xmlns:p='urn:p' p:key='v' p:other='w' xml:lang='en'/>"
        );
    }

    #[test]
    fn whitespace_that_a_parser_would_normalise_is_written_as_references() {
        let e = Element::new("x", "u")
            .attr("a", "1\t2\n3\r")
            .text("line\nnext\r");
        assert_eq!(
            e.to_xml(),
            "<x xmlns='u' a='1&#9;2&#10;3&#13;'>line\nnext&#13;</x>"
        );
        assert_eq!(Element::parse(&e.to_xml()), Ok(e));
    }

    #[test]
    fn retain_children_removes_only_rejected_elements() {
        let mut e = Element::new("x", "u")
            .child(Element::new("a", "u"))
            .text("t")
            .child(Element::new("b", "u"));
        e.retain_children(|c| c.name() != "a");
        assert_eq!(e.to_xml(), "<x xmlns='u'>t<b/></x>");
    }

    #[test]
    fn set_attr_replaces_existing_value() {
        let mut e = Element::new("iq", ns::CLIENT).attr("id", "1");
        e.set_attr("id", "2");
        assert_eq!(e.get_attr("id"), Some("2"));
        assert_eq!(e.attrs().count(), 1);
    }
}
