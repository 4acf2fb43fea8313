//! XEP-0115: Entity Capabilities verification strings.

use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::disco::DiscoInfo;
use crate::element::Element;
use crate::ns;

/// The node advertised in the server's own caps.
pub const SERVER_NODE: &str = "https://rempart.im";

/// A data form reduced to what the hash covers: FORM_TYPE and sorted (var, values) fields.
type FormDigest = (String, Vec<(String, Vec<String>)>);

/// Computes the SHA-1 verification string of XEP-0115 §5.1.
pub fn ver_string(info: &DiscoInfo) -> String {
    let mut s = String::new();
    let mut identities: Vec<String> = info
        .identities
        .iter()
        .map(|i| {
            format!(
                "{}/{}/{}/{}",
                i.category,
                i.kind,
                i.lang.as_deref().unwrap_or(""),
                i.name.as_deref().unwrap_or("")
            )
        })
        .collect();
    identities.sort();
    for identity in identities {
        s.push_str(&identity);
        s.push('<');
    }
    let mut features = info.features.clone();
    features.sort();
    for feature in features {
        s.push_str(&feature);
        s.push('<');
    }
    let mut forms: Vec<FormDigest> = info
        .forms
        .iter()
        .map(|form| {
            let mut form_type = String::new();
            let mut fields = Vec::new();
            for field in form.children().filter(|c| c.is("field", ns::DATA_FORMS)) {
                let var = field.get_attr("var").unwrap_or_default().to_owned();
                let mut values: Vec<String> = field
                    .children()
                    .filter(|c| c.is("value", ns::DATA_FORMS))
                    .map(Element::text_content)
                    .collect();
                if var == "FORM_TYPE" {
                    form_type = values.first().cloned().unwrap_or_default();
                } else {
                    values.sort();
                    fields.push((var, values));
                }
            }
            fields.sort();
            (form_type, fields)
        })
        .collect();
    forms.sort();
    for (form_type, fields) in forms {
        s.push_str(&form_type);
        s.push('<');
        for (var, values) in fields {
            s.push_str(&var);
            s.push('<');
            for value in values {
                s.push_str(&value);
                s.push('<');
            }
        }
    }
    base64::engine::general_purpose::STANDARD.encode(Sha1::digest(s.as_bytes()))
}

/// The `<c/>` element advertising capabilities.
pub fn caps_element(node: &str, ver: &str) -> Element {
    Element::new("c", ns::CAPS)
        .attr("hash", "sha-1")
        .attr("node", node)
        .attr("ver", ver)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disco::Identity;

    #[test]
    fn matches_the_simple_example_of_the_specification() {
        let info = DiscoInfo {
            node: None,
            identities: vec![Identity::new("client", "pc").named("Exodus 0.9.1")],
            features: vec![
                "http://jabber.org/protocol/caps".into(),
                "http://jabber.org/protocol/disco#info".into(),
                "http://jabber.org/protocol/disco#items".into(),
                "http://jabber.org/protocol/muc".into(),
            ],
            forms: vec![],
        };
        assert_eq!(ver_string(&info), "QgayPKawpkPSDYmwT/WM94uAlu0=");
    }
}
