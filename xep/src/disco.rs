//! XEP-0030: Service Discovery payloads.

use crate::element::Element;
use crate::ns;

/// An identity of an entity (category/type/name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Identity {
    /// Category, e.g. `server`, `account`, `pubsub`.
    pub category: String,
    /// Type within the category, e.g. `im`, `registered`, `pep`.
    pub kind: String,
    /// Language of the name, if any.
    pub lang: Option<String>,
    /// Human-readable name.
    pub name: Option<String>,
}

impl Identity {
    /// An identity without name or language.
    pub fn new(category: &str, kind: &str) -> Self {
        Identity {
            category: category.to_owned(),
            kind: kind.to_owned(),
            lang: None,
            name: None,
        }
    }

    /// Adds a name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }
}

/// The content of a disco#info result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoInfo {
    /// The node queried, if any.
    pub node: Option<String>,
    /// Identities, at least one.
    pub identities: Vec<Identity>,
    /// Feature vars.
    pub features: Vec<String>,
    /// Extended information forms (XEP-0128).
    pub forms: Vec<Element>,
}

impl DiscoInfo {
    /// The `<query xmlns='…disco#info'/>` element.
    pub fn to_element(&self) -> Element {
        let mut query = Element::new("query", ns::DISCO_INFO).attr_opt("node", self.node.clone());
        for identity in &self.identities {
            query.append_child(
                Element::new("identity", ns::DISCO_INFO)
                    .attr("category", identity.category.clone())
                    .attr("type", identity.kind.clone())
                    .attr_opt("xml:lang", identity.lang.clone())
                    .attr_opt("name", identity.name.clone()),
            );
        }
        for feature in &self.features {
            query
                .append_child(Element::new("feature", ns::DISCO_INFO).attr("var", feature.clone()));
        }
        for form in &self.forms {
            query.append_child(form.clone());
        }
        query
    }

    /// Reads a disco#info query element.
    pub fn from_element(query: &Element) -> DiscoInfo {
        let identities = query
            .children()
            .filter(|c| c.is("identity", ns::DISCO_INFO))
            .map(|c| Identity {
                category: c.get_attr("category").unwrap_or_default().to_owned(),
                kind: c.get_attr("type").unwrap_or_default().to_owned(),
                lang: c.get_attr("xml:lang").map(str::to_owned),
                name: c.get_attr("name").map(str::to_owned),
            })
            .collect();
        let features = query
            .children()
            .filter(|c| c.is("feature", ns::DISCO_INFO))
            .filter_map(|c| c.get_attr("var").map(str::to_owned))
            .collect();
        let forms = query
            .children()
            .filter(|c| c.is("x", ns::DATA_FORMS))
            .cloned()
            .collect();
        DiscoInfo {
            node: query.get_attr("node").map(str::to_owned),
            identities,
            features,
            forms,
        }
    }
}

/// One item of a disco#items result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoItem {
    /// The item's JID.
    pub jid: String,
    /// Optional node.
    pub node: Option<String>,
    /// Optional name.
    pub name: Option<String>,
}

/// The `<query xmlns='…disco#items'/>` element.
pub fn items_query(node: Option<String>, items: &[DiscoItem]) -> Element {
    let mut query = Element::new("query", ns::DISCO_ITEMS).attr_opt("node", node);
    for item in items {
        query.append_child(
            Element::new("item", ns::DISCO_ITEMS)
                .attr("jid", item.jid.clone())
                .attr_opt("node", item.node.clone())
                .attr_opt("name", item.name.clone()),
        );
    }
    query
}
