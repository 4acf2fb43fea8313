//! XEP-0115: Entity Capabilities verification strings.

use base64::Engine as _;
use sha1::{Digest, Sha1};
use thiserror::Error;

use crate::disco::DiscoInfo;
use crate::element::Element;
use crate::ns;

/// The node advertised in the server's own caps.
pub const SERVER_NODE: &str = "https://rempart.im";

/// A data form reduced to what the hash covers: FORM_TYPE and sorted (var, values) fields.
type FormDigest = (String, Vec<(String, Vec<String>)>);

/// Why a disco#info answer does not verify an announced `ver` (XEP-0115 §5.4).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CapsError {
    /// Two identities have the same category/type/lang/name.
    #[error("an identity is listed twice")]
    DuplicateIdentity,
    /// Two features have the same name.
    #[error("a feature is listed twice")]
    DuplicateFeature,
    /// Two forms have the same FORM_TYPE, or one FORM_TYPE has different values.
    #[error("a FORM_TYPE is ambiguous")]
    AmbiguousForm,
    /// A factor contains `<`, the separator of the hashed string, which would let two
    /// different answers hash alike.
    #[error("a value contains '<'")]
    Separator,
    /// The answer is well-formed but hashes to another `ver`.
    #[error("the verification string does not match")]
    Mismatch,
}

/// Computes the SHA-1 verification string of XEP-0115 §5.1 (for what this server announces;
/// use [`verify`] for what others announce).
pub fn ver_string(info: &DiscoInfo) -> String {
    let forms: Vec<FormDigest> = info.forms.iter().map(form_digest).collect();
    hash(info, forms)
}

/// Checks that `info` is a well-formed answer (§5.4: no duplicate identity, feature or
/// FORM_TYPE, no `<` in any hashed value) whose SHA-1 verification string is `ver`.
pub fn verify(info: &DiscoInfo, ver: &str) -> Result<(), CapsError> {
    let mut identities: Vec<[&str; 4]> = info
        .identities
        .iter()
        .map(|i| {
            [
                i.category.as_str(),
                i.kind.as_str(),
                i.lang.as_deref().unwrap_or(""),
                i.name.as_deref().unwrap_or(""),
            ]
        })
        .collect();
    if identities
        .iter()
        .flatten()
        .any(|factor| factor.contains('<'))
    {
        return Err(CapsError::Separator);
    }
    identities.sort_unstable();
    if identities.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(CapsError::DuplicateIdentity);
    }
    let mut features: Vec<&str> = info.features.iter().map(String::as_str).collect();
    if features.iter().any(|feature| feature.contains('<')) {
        return Err(CapsError::Separator);
    }
    features.sort_unstable();
    if features.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(CapsError::DuplicateFeature);
    }
    let mut forms = Vec::new();
    for form in &info.forms {
        if let Some(digest) = hashed_form(form)? {
            forms.push(digest);
        }
    }
    let mut form_types: Vec<&str> = forms.iter().map(|(t, _)| t.as_str()).collect();
    form_types.sort_unstable();
    if form_types.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(CapsError::AmbiguousForm);
    }
    let separator_in_form = forms.iter().any(|(form_type, fields)| {
        form_type.contains('<')
            || fields.iter().any(|(var, values)| {
                var.contains('<') || values.iter().any(|value| value.contains('<'))
            })
    });
    if separator_in_form {
        return Err(CapsError::Separator);
    }
    if hash(info, forms) == ver {
        Ok(())
    } else {
        Err(CapsError::Mismatch)
    }
}

/// The digest of a form the hash covers, `None` for a form §5.4 says to ignore (no
/// FORM_TYPE, or one that is not hidden), an error when its FORM_TYPE is ambiguous.
fn hashed_form(form: &Element) -> Result<Option<FormDigest>, CapsError> {
    let form_type = form
        .children()
        .find(|c| c.is("field", ns::DATA_FORMS) && c.get_attr("var") == Some("FORM_TYPE"));
    let Some(form_type) = form_type else {
        return Ok(None);
    };
    let mut values: Vec<String> = form_type
        .children()
        .filter(|c| c.is("value", ns::DATA_FORMS))
        .map(Element::text_content)
        .collect();
    values.dedup();
    if values.len() > 1 {
        return Err(CapsError::AmbiguousForm);
    }
    if form_type.get_attr("type") != Some("hidden") {
        return Ok(None);
    }
    Ok(Some(form_digest(form)))
}

/// A form reduced to its FORM_TYPE and sorted fields.
fn form_digest(form: &Element) -> FormDigest {
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
}

/// The base64 SHA-1 of the string S of §5.1 over the identities, features and `forms`.
fn hash(info: &DiscoInfo, mut forms: Vec<FormDigest>) -> String {
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
        assert_eq!(verify(&info, "QgayPKawpkPSDYmwT/WM94uAlu0="), Ok(()));
    }

    fn exodus() -> DiscoInfo {
        DiscoInfo {
            node: None,
            identities: vec![Identity::new("client", "pc").named("Exodus 0.9.1")],
            features: vec!["http://jabber.org/protocol/muc".into()],
            forms: vec![],
        }
    }

    #[test]
    fn a_duplicate_feature_makes_the_answer_invalid_even_when_the_hash_matches() {
        let mut info = exodus();
        info.features.push("http://jabber.org/protocol/muc".into());
        let ver = ver_string(&info);
        assert_eq!(verify(&info, &ver), Err(CapsError::DuplicateFeature));
    }

    #[test]
    fn a_duplicate_identity_makes_the_answer_invalid() {
        let mut info = exodus();
        info.identities.push(info.identities[0].clone());
        let ver = ver_string(&info);
        assert_eq!(verify(&info, &ver), Err(CapsError::DuplicateIdentity));
    }

    #[test]
    fn a_separator_inside_a_value_is_refused() {
        // Without the check, feature "a<b" hashes exactly like features "a" and "b".
        let mut joined = exodus();
        joined.features = vec!["a<b".into()];
        let mut split = exodus();
        split.features = vec!["a".into(), "b".into()];
        assert_eq!(ver_string(&joined), ver_string(&split));
        assert_eq!(
            verify(&joined, &ver_string(&split)),
            Err(CapsError::Separator)
        );
        let mut name = exodus();
        name.identities[0].name = Some("Exodus<muc".into());
        assert_eq!(verify(&name, &ver_string(&name)), Err(CapsError::Separator));
    }

    #[test]
    fn a_mismatching_ver_is_refused() {
        assert_eq!(verify(&exodus(), "bogus"), Err(CapsError::Mismatch));
    }

    #[test]
    fn the_complex_example_of_the_specification_verifies() {
        let query = Element::parse(concat!(
            "<query xmlns='http://jabber.org/protocol/disco#info'>",
            "<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>",
            "<identity xml:lang='el' category='client' name='\u{3a8} 0.11' type='pc'/>",
            "<feature var='http://jabber.org/protocol/caps'/>",
            "<feature var='http://jabber.org/protocol/disco#info'/>",
            "<feature var='http://jabber.org/protocol/disco#items'/>",
            "<feature var='http://jabber.org/protocol/muc'/>",
            "<x xmlns='jabber:x:data' type='result'>",
            "<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>",
            "<field var='ip_version' type='text-multi'><value>ipv4</value><value>ipv6</value></field>",
            "<field var='os'><value>Mac</value></field>",
            "<field var='os_version'><value>10.5.1</value></field>",
            "<field var='software'><value>Psi</value></field>",
            "<field var='software_version'><value>0.11</value></field>",
            "</x></query>"
        ))
        .expect("xml");
        let info = DiscoInfo::from_element(&query);
        assert_eq!(verify(&info, "q07IKJEyjvHSyhy//CH0CxmKi8w="), Ok(()));
        let mut twice = info.clone();
        twice.forms.push(info.forms[0].clone());
        assert_eq!(
            verify(&twice, "q07IKJEyjvHSyhy//CH0CxmKi8w="),
            Err(CapsError::AmbiguousForm)
        );
    }
}
