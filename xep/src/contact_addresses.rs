//! XEP-0157: Contact Addresses for XMPP Services (1.1.1)
//!
//! Where to report abuse, reach the administrators or ask for support, published as the
//! `http://jabber.org/network/serverinfo` form of the server's disco#info (XEP-0128).

use crate::data_form::{DataForm, Field};
use crate::element::Element;
use crate::ns;

/// The contact addresses of a service, each a URI (`mailto:`, `xmpp:`, `https:` ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactAddresses {
    /// For reports of abusive traffic.
    pub abuse: Vec<String>,
    /// The service administrators.
    pub admin: Vec<String>,
    /// Customer feedback.
    pub feedback: Vec<String>,
    /// Sales and marketing.
    pub sales: Vec<String>,
    /// Security concerns.
    pub security: Vec<String>,
    /// Service status pages.
    pub status: Vec<String>,
    /// Customer support.
    pub support: Vec<String>,
}

impl ContactAddresses {
    /// Every field with its addresses, in the order the registry lists them.
    fn fields(&self) -> [(&'static str, &[String]); 7] {
        [
            ("abuse-addresses", &self.abuse),
            ("admin-addresses", &self.admin),
            ("feedback-addresses", &self.feedback),
            ("sales-addresses", &self.sales),
            ("security-addresses", &self.security),
            ("status-addresses", &self.status),
            ("support-addresses", &self.support),
        ]
    }

    /// True when no address is given: then the server publishes no form.
    pub fn is_empty(&self) -> bool {
        self.fields()
            .iter()
            .all(|(_, addresses)| addresses.is_empty())
    }

    /// The first address that is not a URI, if any (XEP-0157 §3 wants URIs).
    pub fn first_non_uri(&self) -> Option<&str> {
        self.fields()
            .into_iter()
            .flat_map(|(_, addresses)| addresses.iter())
            .map(String::as_str)
            .find(|address| !is_uri(address))
    }

    /// The serverinfo form, with a field for each kind that has addresses.
    pub fn to_form(&self) -> DataForm {
        let fields = self
            .fields()
            .into_iter()
            .filter(|(_, addresses)| !addresses.is_empty())
            .map(|(var, addresses)| Field {
                var: var.to_owned(),
                kind: Some("list-multi".to_owned()),
                values: addresses.to_vec(),
                ..Field::default()
            })
            .collect();
        DataForm {
            kind: "result".to_owned(),
            form_type: Some(ns::SERVER_INFO.to_owned()),
            fields,
        }
    }

    /// The `<x/>` element for the server's disco#info.
    pub fn to_element(&self) -> Element {
        self.to_form().to_element()
    }
}

/// True when `address` starts with a URI scheme (RFC 3986 §3.1) followed by something.
fn is_uri(address: &str) -> bool {
    let Some((scheme, rest)) = address.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !address.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_carries_only_the_kinds_given_under_the_serverinfo_form_type() {
        let addresses = ContactAddresses {
            abuse: vec![
                "mailto:abuse@shakespeare.lit".to_owned(),
                "xmpp:abuse@shakespeare.lit".to_owned(),
            ],
            status: vec!["https://status.shakespeare.lit".to_owned()],
            ..ContactAddresses::default()
        };
        let form = DataForm::parse(&addresses.to_element()).expect("form");
        assert_eq!(form.kind, "result");
        assert_eq!(form.form_type.as_deref(), Some(ns::SERVER_INFO));
        let vars: Vec<&str> = form.fields.iter().map(|f| f.var.as_str()).collect();
        assert_eq!(vars, ["abuse-addresses", "status-addresses"]);
        assert_eq!(form.fields[0].values, addresses.abuse);
    }

    #[test]
    fn no_address_is_empty() {
        assert!(ContactAddresses::default().is_empty());
    }

    #[test]
    fn an_address_without_scheme_is_found_among_uris() {
        let addresses = ContactAddresses {
            admin: vec!["xmpp:admin@example.org".to_owned()],
            support: vec!["support@example.org".to_owned()],
            ..ContactAddresses::default()
        };
        assert_eq!(addresses.first_non_uri(), Some("support@example.org"));
    }

    #[test]
    fn uris_need_a_scheme_and_no_spaces() {
        assert!(is_uri("mailto:abuse@example.org"));
        assert!(is_uri("xmpp:admin@example.org?message"));
        assert!(is_uri("https://example.org/support"));
        assert!(!is_uri("abuse@example.org"));
        assert!(!is_uri("mailto:"));
        assert!(!is_uri("1http://example.org"));
        assert!(!is_uri("mailto:a b@example.org"));
    }
}
