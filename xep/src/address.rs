//! Addresses from peers: a JID is accepted only in a form that survives printing.
//!
//! The server stamps, stores and compares JIDs by their printed form; the `jid` crate
//! normalises a few inputs differently on a second parse (`㍺` prints as `IU`, which parses
//! as `iu`), so such an address would name one entity when checked and another once sent on.

use jid::Jid;
use thiserror::Error;

/// Why an address was refused (`jid-malformed`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressError {
    /// Not a JID at all.
    #[error("not a JID: {0}")]
    Invalid(String),
    /// A JID whose printed form parses to another JID.
    #[error("the JID does not keep its form when printed")]
    Unstable,
}

/// Parses a JID from a peer, refusing one whose printed form would parse differently.
pub fn parse_address(text: &str) -> Result<Jid, AddressError> {
    let jid = Jid::new(text).map_err(|error| AddressError::Invalid(error.to_string()))?;
    match Jid::new(&jid.to_string()) {
        Ok(again) if again == jid => Ok(jid),
        _ => Err(AddressError::Unstable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_addresses_are_accepted_in_their_normal_form() {
        let jid = parse_address("Alice@Example.ORG/phone").expect("valid");
        assert_eq!(jid.to_string(), "alice@example.org/phone");
    }

    #[test]
    fn an_address_that_changes_when_printed_is_refused() {
        assert_eq!(parse_address("user@\u{337A}"), Err(AddressError::Unstable));
        assert!(matches!(parse_address("@"), Err(AddressError::Invalid(_))));
    }
}
