//! What the Conversations compliance tester checks, asked of Rempart on the wire as a phone
//! client discovers it: stream features after authentication, the server's disco#info, the
//! account's disco#info and the external services. Every check in the scope of the phone
//! features must pass; the report lists them all, so a failure shows every missing one.

mod common;

use common::{RawClient, TestServer};

/// Where a check looks.
#[derive(Debug, Clone, Copy)]
enum Place {
    StreamFeatures,
    ServerDisco,
    AccountDisco,
    ExternalServices,
}

/// One check: what the compliance tester calls it, where it looks, what it must find.
struct Check {
    name: &'static str,
    place: Place,
    needle: &'static str,
}

const CHECKS: &[Check] = &[
    Check {
        name: "XEP-0115: Entity Capabilities",
        place: Place::StreamFeatures,
        needle: "<c xmlns='http://jabber.org/protocol/caps'",
    },
    Check {
        name: "XEP-0163: Personal Eventing Protocol",
        place: Place::AccountDisco,
        needle: "category='pubsub' type='pep'",
    },
    Check {
        name: "Roster Versioning",
        place: Place::StreamFeatures,
        needle: "urn:xmpp:features:rosterver",
    },
    Check {
        name: "XEP-0280: Message Carbons",
        place: Place::ServerDisco,
        needle: "var='urn:xmpp:carbons:2'",
    },
    Check {
        name: "XEP-0191: Blocking Command",
        place: Place::ServerDisco,
        needle: "var='urn:xmpp:blocking'",
    },
    Check {
        name: "XEP-0198: Stream Management",
        place: Place::StreamFeatures,
        needle: "<sm xmlns='urn:xmpp:sm:3'/>",
    },
    Check {
        name: "XEP-0313: Message Archive Management",
        place: Place::AccountDisco,
        needle: "var='urn:xmpp:mam:2'",
    },
    Check {
        name: "XEP-0352: Client State Indication",
        place: Place::StreamFeatures,
        needle: "<csi xmlns='urn:xmpp:csi:0'/>",
    },
    Check {
        name: "XEP-0357: Push Notifications",
        place: Place::AccountDisco,
        needle: "var='urn:xmpp:push:0'",
    },
    Check {
        name: "XEP-0223: Persistent Storage of Private Data via PubSub",
        place: Place::AccountDisco,
        needle: "var='http://jabber.org/protocol/pubsub#publish-options'",
    },
    Check {
        name: "XEP-0398: User Avatar to vCard-Based Avatars Conversion",
        place: Place::AccountDisco,
        needle: "var='urn:xmpp:pep-vcard-conversion:0'",
    },
    Check {
        name: "XEP-0411: Bookmarks Conversion",
        place: Place::AccountDisco,
        needle: "var='urn:xmpp:bookmarks:1#compat'",
    },
    Check {
        name: "XEP-0160: Best Practices for Handling Offline Messages",
        place: Place::ServerDisco,
        needle: "var='msgoffline'",
    },
    Check {
        name: "XEP-0215: External Service Discovery",
        place: Place::ServerDisco,
        needle: "var='urn:xmpp:extdisco:2'",
    },
    Check {
        name: "XEP-0215: STUN and TURN servers announced",
        place: Place::ExternalServices,
        needle: "type='turn'",
    },
    Check {
        name: "XEP-0388: Extensible SASL Profile",
        place: Place::StreamFeatures,
        needle: "<authentication xmlns='urn:xmpp:sasl:2'>",
    },
    Check {
        name: "XEP-0484: Fast Authentication Streamlining Tokens",
        place: Place::StreamFeatures,
        needle: "<fast xmlns='urn:xmpp:fast:0'>",
    },
];

/// A server as a phone-friendly deployment configures it: STUN and TURN for calls.
const CONFIG: &str = "[[modules.external_services.services]]\ntype = \"stun\"\nhost = \"turn.localhost\"\nport = 3478\n[[modules.external_services.services]]\ntype = \"turn\"\nhost = \"turn.localhost\"\nport = 3478\ntransport = \"udp\"\nsecret = \"shared-with-coturn\"\n";

#[tokio::test]
async fn every_phone_check_of_the_compliance_tester_passes() {
    let server = TestServer::start_with(CONFIG).await;
    server.add_user("alice@localhost", "wonderland").await;
    // Before authentication: SASL2 and FAST are offered there.
    let (_, before_auth) = RawClient::secured(&server).await;
    let (mut alice, after_auth) = RawClient::authenticated(&server, "alice", "wonderland").await;
    let features = format!("{before_auth}{after_auth}");
    alice.bind(Some("phone")).await;
    let server_disco = alice
        .iq(
            "d1",
            "<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        )
        .await;
    let account_disco = alice
        .iq(
            "d2",
            "<iq type='get' id='d2' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        )
        .await;
    let services = alice
        .iq(
            "s1",
            "<iq type='get' id='s1' to='localhost'><services xmlns='urn:xmpp:extdisco:2'/></iq>",
        )
        .await;

    let mut report = Vec::new();
    let mut failed = 0;
    for check in CHECKS {
        let seen = match check.place {
            Place::StreamFeatures => &features,
            Place::ServerDisco => &server_disco,
            Place::AccountDisco => &account_disco,
            Place::ExternalServices => &services,
        };
        let passed = seen.contains(check.needle);
        if !passed {
            failed += 1;
        }
        let mark = if passed { "pass" } else { "FAIL" };
        report.push(format!("{mark}  {} ({:?})", check.name, check.place));
    }
    println!(
        "compliance: {} of {} passed\n{}",
        CHECKS.len() - failed,
        CHECKS.len(),
        report.join("\n")
    );
    assert_eq!(failed, 0, "{}", report.join("\n"));
}
