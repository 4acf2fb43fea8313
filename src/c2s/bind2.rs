//! XEP-0386 Bind 2: the resource a device gets.

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

/// The longest part of a client's tag kept in its resource.
const MAX_TAG: usize = 32;

/// The resource for a Bind 2 request: the client's tag (cleaned) and a suffix that is stable
/// for one installation (derived from its user-agent id), so a device that binds again gets
/// the same resource back and replaces its own stale session, never another device's.
pub fn resource(tag: Option<&str>, user_agent_id: Option<&str>) -> String {
    let tag: String = tag
        .unwrap_or("xmpp")
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(MAX_TAG)
        .collect();
    let tag = if tag.is_empty() {
        "xmpp".to_owned()
    } else {
        tag
    };
    let suffix = match user_agent_id {
        Some(id) => {
            let digest = Sha256::digest(id.as_bytes());
            digest[..4].iter().map(|b| format!("{b:02x}")).collect()
        }
        None => Alphanumeric.sample_string(&mut rand::rng(), 8),
    };
    format!("{tag}.{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_installation_always_gets_the_same_resource() {
        let first = resource(Some("Conversations"), Some("d4565fa7"));
        assert_eq!(first, resource(Some("Conversations"), Some("d4565fa7")));
        assert!(first.starts_with("Conversations."), "{first}");
        assert_ne!(first, resource(Some("Conversations"), Some("another")));
    }

    #[test]
    fn a_tag_is_cleaned_and_a_missing_one_replaced() {
        assert!(resource(Some("a/b c"), Some("x")).starts_with("abc."));
        assert!(resource(None, None).starts_with("xmpp."));
        assert!(resource(Some("//"), None).starts_with("xmpp."));
    }
}
