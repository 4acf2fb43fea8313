//! An owned XML element: what the reader produces and what every stanza handler works on.
//!
//! Escaping is done once, here, when an element is written.

use std::fmt::Write as _;

use crate::ns;

/// A child of an element: another element or character data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A nested element.
    Element(Element),
    /// Character data, unescaped.
    Text(String),
}

/// An XML element with its namespace resolved, attributes in document order and children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    name: String,
    ns: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
}

impl Element {
    /// A new empty element in namespace `ns`.
    pub fn new(name: impl Into<String>, ns: impl Into<String>) -> Self {
        Element {
            name: name.into(),
            ns: ns.into(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
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
        self.name == name && self.ns == ns
    }

    /// The value of an attribute, if present.
    pub fn get_attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets or replaces an attribute.
    pub fn set_attr(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.attrs.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.attrs.push((name.to_owned(), value)),
        }
    }

    /// All attributes in document order.
    pub fn attrs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attrs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
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
        if self.ns == from {
            self.ns = to.to_owned();
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
        let parent = if self.ns == ns::CLIENT || self.ns == ns::SERVER {
            self.ns.as_str()
        } else {
            stream_ns
        };
        self.write_into(&mut out, parent);
        out
    }

    /// Serializes the element as a standalone document fragment (namespace always declared).
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(256);
        self.write_into(&mut out, "");
        out
    }

    fn write_into(&self, out: &mut String, parent_ns: &str) {
        out.push('<');
        out.push_str(&self.name);
        if self.ns != parent_ns {
            out.push_str(" xmlns='");
            escape_into(out, &self.ns);
            out.push('\'');
        }
        for (name, value) in &self.attrs {
            let _ = write!(out, " {name}='");
            escape_into(out, value);
            out.push('\'');
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for node in &self.children {
            match node {
                Node::Element(e) => e.write_into(out, &self.ns),
                Node::Text(t) => escape_into(out, t),
            }
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

/// Escapes character data and attribute values (single-quoted) into `out`.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
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
    fn set_attr_replaces_existing_value() {
        let mut e = Element::new("iq", ns::CLIENT).attr("id", "1");
        e.set_attr("id", "2");
        assert_eq!(e.get_attr("id"), Some("2"));
        assert_eq!(e.attrs().count(), 1);
    }
}
