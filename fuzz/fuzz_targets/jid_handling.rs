//! JIDs as the server handles them from peers: addresses it parses, stamps and compares, the
//! account a SASL username names, and the full JID a bound resource makes.

#![no_main]

use jid::{BareJid, FullJid, Jid};
use libfuzzer_sys::fuzz_target;
use rempart::sasl::claimed_username;
use rempart_xep::address::parse_address;

/// The domain the fuzzed usernames and resources are joined with.
const HOST: &str = "example.org";

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    address_is_canonical(text);
    sasl_username_names_a_local_account(input);
    bound_resource_keeps_the_account(text);
});

/// The router stamps `from` with `jid.to_string()` and compares parsed JIDs, so an address
/// the server accepts from a peer must print in a form that parses back to the same JID, and
/// its bare and full forms must agree.
fn address_is_canonical(text: &str) {
    let Ok(jid) = parse_address(text) else {
        return;
    };
    let printed = jid.to_string();
    let reparsed = Jid::new(&printed)
        .unwrap_or_else(|error| panic!("{text:?} prints as {printed:?}, which fails: {error}"));
    assert_eq!(jid, reparsed, "{text:?} does not survive printing");
    assert_eq!(printed, reparsed.to_string());
    let bare = jid.to_bare();
    assert_eq!(BareJid::new(&bare.to_string()).as_ref(), Ok(&bare));
    assert_eq!(bare.domain(), jid.domain());
    assert_eq!(bare.node(), jid.node());
    match jid.try_as_full() {
        Ok(full) => {
            assert_eq!(FullJid::new(&printed).as_ref(), Ok(full));
            assert!(BareJid::new(&printed).is_err());
        }
        Err(_) => {
            assert!(FullJid::new(&printed).is_err());
            assert_eq!(BareJid::new(&printed).as_ref(), Ok(&bare));
        }
    }
}

/// c2s negotiation turns the SASL username into `<username>@<host>`: whatever the client
/// sends, that must be an account of the host it connected to, never another domain.
fn sasl_username_names_a_local_account(message: &[u8]) {
    for mechanism in ["SCRAM-SHA-256", "PLAIN"] {
        let Some(claim) = claimed_username(mechanism, message) else {
            continue;
        };
        let Ok(user) = BareJid::new(&format!("{}@{HOST}", claim.username)) else {
            continue;
        };
        assert_eq!(
            user.domain().as_str(),
            HOST,
            "{:?} escapes the host",
            claim.username
        );
        assert!(
            user.node().is_some(),
            "{:?} names the host itself",
            claim.username
        );
    }
}

/// Resource binding builds `<account>/<resource>` from the client's resource: the result must
/// stay the account that authenticated.
fn bound_resource_keeps_the_account(resource: &str) {
    let user = BareJid::new("juliet@example.org").expect("valid account");
    let Ok(full) = FullJid::new(&format!("{user}/{resource}")) else {
        return;
    };
    assert_eq!(
        full.to_bare(),
        user,
        "resource {resource:?} changed the account"
    );
}
