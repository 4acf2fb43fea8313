//! XEP-0388 SASL2 with XEP-0386 Bind 2 on the wire: one round trip from TLS to a bound,
//! stream-managed session, and inline resumption.

mod common;

use common::{attribute, text_of, RawClient, TestServer};

const SM: &str = "urn:xmpp:sm:3";
const AGENT: &str = "<user-agent id='3c9d1f9e-1111-4c1e-9d3e-0123456789ab'><software>Phone</software><device>Pixel</device></user-agent>";

async fn server() -> TestServer {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    server
}

#[tokio::test]
async fn sasl2_is_offered_over_tls_with_bind2_and_resumption_inline() {
    let server = server().await;
    let (_client, features) = RawClient::secured(&server).await;
    assert!(
        features.contains("<authentication xmlns='urn:xmpp:sasl:2'>"),
        "{features}"
    );
    assert!(
        features.contains("<mechanism>SCRAM-SHA-256-PLUS</mechanism>"),
        "{features}"
    );
    assert!(
        features.contains("<bind xmlns='urn:xmpp:bind:0'>"),
        "{features}"
    );
    assert!(
        features.contains(&format!("<feature var='{SM}'/>")),
        "{features}"
    );
}

#[tokio::test]
async fn sasl2_without_bind_authenticates_and_offers_binding_on_the_same_stream() {
    let server = server().await;
    let (mut client, _) = RawClient::secured(&server).await;
    let success = client
        .authenticate_sasl2("alice", "wonderland", AGENT)
        .await;
    assert!(success.contains("<success"), "{success}");
    assert_eq!(
        text_of(&success, "authorization-identifier"),
        "alice@localhost"
    );
    let features = client.expect("</stream:features>").await;
    assert!(
        features.contains("urn:ietf:params:xml:ns:xmpp-bind"),
        "{features}"
    );
    assert_eq!(client.bind(Some("legacy")).await, "alice@localhost/legacy");
}

#[tokio::test]
async fn bind2_binds_a_stable_resource_with_stream_management_in_one_round_trip() {
    let server = server().await;
    let inline = format!(
        "{AGENT}<bind xmlns='urn:xmpp:bind:0'><tag>Phone</tag><enable xmlns='{SM}' resume='true'/></bind>"
    );
    let (mut first, _) = RawClient::secured(&server).await;
    let success = first
        .authenticate_sasl2("alice", "wonderland", &inline)
        .await;
    assert!(
        success.contains("<bound xmlns='urn:xmpp:bind:0'>"),
        "{success}"
    );
    assert!(success.contains("<enabled"), "{success}");
    assert!(success.contains("resume='true'"), "{success}");
    let jid = text_of(&success, "authorization-identifier");
    assert!(jid.starts_with("alice@localhost/Phone."), "{jid}");

    // The session works at once: no stream restart, no features, no bind IQ.
    let pong = first
        .iq(
            "p1",
            "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    assert!(pong.contains("type='result'"), "{pong}");

    // The same installation gets the same resource the next time.
    let (mut second, _) = RawClient::secured(&server).await;
    let again = second
        .authenticate_sasl2("alice", "wonderland", &inline)
        .await;
    assert_eq!(text_of(&again, "authorization-identifier"), jid);
}

#[tokio::test]
async fn a_session_is_resumed_inline_with_sasl2_and_gets_what_it_missed() {
    let server = server().await;
    let inline = format!(
        "{AGENT}<bind xmlns='urn:xmpp:bind:0'><tag>Phone</tag><enable xmlns='{SM}' resume='true'/></bind>"
    );
    let (mut phone, _) = RawClient::secured(&server).await;
    let success = phone
        .authenticate_sasl2("alice", "wonderland", &inline)
        .await;
    let previd = attribute(success.split("<enabled").nth(1).expect("enabled"), "id");
    let jid = text_of(&success, "authorization-identifier");
    phone.send("<presence/>").await;
    phone.expect_stanza(&format!("from='{jid}'")).await;
    drop(phone);

    let mut bob = RawClient::login(&server, "bob", "builder", "desk").await;
    bob.send(&format!(
        "<message to='{jid}' type='chat' id='missed'><body>missed</body></message>"
    ))
    .await;
    bob.iq(
        "p1",
        "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;

    let (mut phone, _) = RawClient::secured(&server).await;
    let resume = format!("{AGENT}<resume xmlns='{SM}' previd='{previd}' h='1'/>");
    let success = phone
        .authenticate_sasl2("alice", "wonderland", &resume)
        .await;
    assert!(success.contains("<resumed"), "{success}");
    assert_eq!(text_of(&success, "authorization-identifier"), jid);
    let missed = phone.expect_stanza("id='missed'").await;
    assert!(missed.contains("<body>missed</body>"), "{missed}");
}

#[tokio::test]
async fn a_failed_inline_resumption_still_authenticates_and_may_bind_inline() {
    let server = server().await;
    let inline = format!(
        "{AGENT}<resume xmlns='{SM}' previd='gone' h='0'/><bind xmlns='urn:xmpp:bind:0'><tag>Phone</tag></bind>"
    );
    let (mut client, _) = RawClient::secured(&server).await;
    let success = client
        .authenticate_sasl2("alice", "wonderland", &inline)
        .await;
    assert!(
        success.contains("<failed xmlns='urn:xmpp:sm:3'"),
        "{success}"
    );
    assert!(success.contains("<item-not-found"), "{success}");
    assert!(success.contains("<bound"), "{success}");
}

#[tokio::test]
async fn a_wrong_password_over_sasl2_fails_with_not_authorized() {
    let server = server().await;
    let (mut client, _) = RawClient::secured(&server).await;
    let b64 = "biwsbj1hbGljZSxyPWFiY2RlZmdoaWprbG1ub3A=";
    client
        .send(&format!(
            "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-256'><initial-response>{b64}</initial-response></authenticate>"
        ))
        .await;
    let challenge = client.expect("</challenge>").await;
    assert!(
        challenge.contains("<challenge xmlns='urn:xmpp:sasl:2'>"),
        "{challenge}"
    );
    client
        .send("<response xmlns='urn:xmpp:sasl:2'>Yz1iaXdzLHI9YWJjZGVmZ2hpamtsbW5vcCxwPWJhZA==</response>")
        .await;
    let failure = client.expect("</failure>").await;
    assert!(
        failure.contains("<failure xmlns='urn:xmpp:sasl:2'>"),
        "{failure}"
    );
    assert!(failure.contains("<not-authorized"), "{failure}");
}

#[tokio::test]
async fn a_malformed_authenticate_fails_without_ending_the_stream() {
    let server = server().await;
    let (mut client, _) = RawClient::secured(&server).await;
    client.send("<authenticate xmlns='urn:xmpp:sasl:2'/>").await;
    let failure = client.expect("</failure>").await;
    assert!(failure.contains("<malformed-request"), "{failure}");
    let success = client.authenticate_sasl2("alice", "wonderland", "").await;
    assert!(success.contains("<success"), "{success}");
}

/// Logs in with a FAST token: `HT-SHA-256-NONE` or `-EXPR`, one round trip.
async fn fast_login(
    server: &TestServer,
    mechanism: &str,
    token: &str,
    agent: &str,
    fast: &str,
) -> String {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let (mut client, _) = RawClient::secured(server).await;
    let binding = match mechanism {
        "HT-SHA-256-EXPR" => client.exporter.clone().expect("TLS 1.3"),
        _ => Vec::new(),
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes()).expect("key");
    mac.update(b"Initiator");
    mac.update(&binding);
    let mut response = b"alice\0".to_vec();
    response.extend(mac.finalize().into_bytes());
    let b64 = base64::engine::general_purpose::STANDARD;
    client
        .send(&format!(
            "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='{mechanism}'><initial-response>{}</initial-response>{agent}{fast}</authenticate>",
            b64.encode(response)
        ))
        .await;
    let answer = client.expect(">").await;
    let end = if answer.contains("<success") {
        "</success>"
    } else {
        "</failure>"
    };
    let answer = format!("{answer}{}", client.expect(end).await);
    if answer.contains("<success") {
        let mut responder = Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes()).expect("key");
        responder.update(b"Responder");
        responder.update(&binding);
        let expected = b64.encode(responder.finalize().into_bytes());
        assert_eq!(
            text_of(&answer, "additional-data"),
            expected,
            "server proof"
        );
    }
    answer
}

/// A password login over SASL2 that asks for a FAST token; returns the token.
async fn token_for(server: &TestServer, mechanism: &str) -> String {
    let (mut client, features) = RawClient::secured(server).await;
    assert!(
        features.contains("<fast xmlns='urn:xmpp:fast:0'>"),
        "{features}"
    );
    assert!(
        features.contains(&format!("<mechanism>{mechanism}</mechanism>")),
        "{features}"
    );
    let request =
        format!("{AGENT}<request-token xmlns='urn:xmpp:fast:0' mechanism='{mechanism}'/>");
    let success = client
        .authenticate_sasl2("alice", "wonderland", &request)
        .await;
    assert!(
        success.contains("<token xmlns='urn:xmpp:fast:0'"),
        "{success}"
    );
    assert!(success.contains(" expiry='"), "{success}");
    attribute(success.split("<token").nth(1).expect("token"), "token")
}

#[tokio::test]
async fn a_fast_token_logs_the_device_in_again_without_its_password() {
    let server = server().await;
    let token = token_for(&server, "HT-SHA-256-NONE").await;
    let bind = "<bind xmlns='urn:xmpp:bind:0'><tag>Phone</tag></bind>";
    let success = fast_login(
        &server,
        "HT-SHA-256-NONE",
        &token,
        &format!("{AGENT}{bind}"),
        "<fast xmlns='urn:xmpp:fast:0' count='1'/>",
    )
    .await;
    assert!(success.contains("<success"), "{success}");
    assert!(success.contains("<bound"), "{success}");
}

#[tokio::test]
async fn a_fast_token_bound_to_the_tls_exporter_logs_in() {
    let server = server().await;
    let token = token_for(&server, "HT-SHA-256-EXPR").await;
    let success = fast_login(
        &server,
        "HT-SHA-256-EXPR",
        &token,
        AGENT,
        "<fast xmlns='urn:xmpp:fast:0'/>",
    )
    .await;
    assert!(success.contains("<success"), "{success}");
}

#[tokio::test]
async fn a_fast_token_fails_for_another_device_another_mechanism_or_a_wrong_secret() {
    let server = server().await;
    let token = token_for(&server, "HT-SHA-256-NONE").await;
    let other_device = "<user-agent id='aaaaaaaa-0000-4000-8000-000000000000'/>";
    let fast = "<fast xmlns='urn:xmpp:fast:0'/>";
    for (mechanism, secret, agent) in [
        ("HT-SHA-256-NONE", token.as_str(), other_device),
        ("HT-SHA-256-EXPR", token.as_str(), AGENT),
        ("HT-SHA-256-NONE", "not-the-token", AGENT),
    ] {
        let failure = fast_login(&server, mechanism, secret, agent, fast).await;
        assert!(
            failure.contains("<not-authorized"),
            "{mechanism} {agent}: {failure}"
        );
    }
}

#[tokio::test]
async fn an_invalidated_fast_token_no_longer_logs_in() {
    let server = server().await;
    let token = token_for(&server, "HT-SHA-256-NONE").await;
    let logout = "<fast xmlns='urn:xmpp:fast:0' invalidate='true'/>";
    let success = fast_login(&server, "HT-SHA-256-NONE", &token, AGENT, logout).await;
    assert!(success.contains("<success"), "{success}");
    assert!(!success.contains("<token"), "{success}");
    let failure = fast_login(
        &server,
        "HT-SHA-256-NONE",
        &token,
        AGENT,
        "<fast xmlns='urn:xmpp:fast:0'/>",
    )
    .await;
    assert!(failure.contains("<not-authorized"), "{failure}");
}

#[tokio::test]
async fn an_admin_lists_the_devices_of_an_account_and_a_revoked_one_cannot_use_its_token() {
    use rempart::admin::{execute, AdminRequest};
    let server = server().await;
    let token = token_for(&server, "HT-SHA-256-NONE").await;
    let listed = execute(
        AdminRequest::DeviceList {
            jid: "alice@localhost".into(),
        },
        &server.router.accounts,
        Some(&server.router),
    )
    .await;
    assert!(listed.ok, "{}", listed.message);
    assert_eq!(listed.users.len(), 1, "{:?}", listed.users);
    assert!(
        listed.users[0].starts_with("3c9d1f9e-1111-4c1e-9d3e-0123456789ab\tPhone\tPixel"),
        "{:?}",
        listed.users
    );
    let revoked = execute(
        AdminRequest::DeviceRevoke {
            jid: "alice@localhost".into(),
            device: "3c9d1f9e-1111-4c1e-9d3e-0123456789ab".into(),
        },
        &server.router.accounts,
        Some(&server.router),
    )
    .await;
    assert!(revoked.ok, "{}", revoked.message);
    let failure = fast_login(
        &server,
        "HT-SHA-256-NONE",
        &token,
        AGENT,
        "<fast xmlns='urn:xmpp:fast:0'/>",
    )
    .await;
    assert!(failure.contains("<not-authorized"), "{failure}");
}

#[tokio::test]
async fn carbons_turned_on_inline_with_bind2_copy_messages_to_the_new_session() {
    let server = server().await;
    let (mut phone, features) = RawClient::secured(&server).await;
    assert!(
        features.contains("<feature var='urn:xmpp:carbons:2'/>"),
        "{features}"
    );
    let inline = format!(
        "{AGENT}<bind xmlns='urn:xmpp:bind:0'><tag>Phone</tag><enable xmlns='urn:xmpp:carbons:2'/></bind>"
    );
    let success = phone
        .authenticate_sasl2("alice", "wonderland", &inline)
        .await;
    assert!(success.contains("<bound"), "{success}");
    phone.send("<presence/>").await;
    let jid = text_of(&success, "authorization-identifier");
    phone.expect_stanza(&format!("from='{jid}'")).await;
    let mut laptop = RawClient::login(&server, "alice", "wonderland", "laptop").await;
    laptop.available().await;
    let mut bob = RawClient::login(&server, "bob", "builder", "desk").await;
    bob.send("<message to='alice@localhost/laptop' type='chat' id='c1'><body>to the laptop</body></message>")
        .await;
    let copy = phone
        .expect_stanza("<received xmlns='urn:xmpp:carbons:2'>")
        .await;
    assert!(copy.contains("id='c1'"), "{copy}");
}
