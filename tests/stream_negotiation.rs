//! RFC 6120 stream negotiation as a raw client sees it: headers, STARTTLS, SASL, binding,
//! and every stream error the server owes a misbehaving peer.

mod common;

use common::{header, RawClient, TestServer};

async fn error_after_header(server: &TestServer, first_bytes: &str) -> String {
    let mut client = RawClient::connect(server.starttls).await;
    client.send(first_bytes).await;
    client.read_to_close().await
}

#[tokio::test]
async fn unknown_host_gets_host_unknown() {
    let server = TestServer::start().await;
    let reply = error_after_header(&server, &header("nowhere.example")).await;
    assert!(reply.contains("<stream:stream"), "{reply}");
    assert!(reply.contains("<host-unknown"), "{reply}");
    assert!(reply.ends_with("</stream:stream>"), "{reply}");
}

#[tokio::test]
async fn wrong_content_namespace_gets_invalid_namespace() {
    let server = TestServer::start().await;
    let reply = error_after_header(
        &server,
        "<stream:stream to='localhost' version='1.0' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>",
    )
    .await;
    assert!(reply.contains("<invalid-namespace"), "{reply}");
}

#[tokio::test]
async fn wrong_stream_namespace_gets_invalid_namespace() {
    let server = TestServer::start().await;
    let reply = error_after_header(
        &server,
        "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='urn:wrong'>",
    )
    .await;
    assert!(reply.contains("<invalid-namespace"), "{reply}");
}

#[tokio::test]
async fn old_version_gets_unsupported_version() {
    let server = TestServer::start().await;
    let reply = error_after_header(
        &server,
        "<stream:stream to='localhost' version='2.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    )
    .await;
    assert!(reply.contains("<unsupported-version"), "{reply}");
}

#[tokio::test]
async fn doctype_gets_restricted_xml() {
    let server = TestServer::start().await;
    let reply = error_after_header(
        &server,
        "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]><stream:stream to='localhost'>",
    )
    .await;
    assert!(reply.contains("<restricted-xml"), "{reply}");
}

#[tokio::test]
async fn garbage_gets_not_well_formed() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.plaintext).await;
    client.open("localhost").await;
    client.send("<a xmlns='urn:x'></b>").await;
    let reply = client.read_to_close().await;
    assert!(reply.contains("<not-well-formed"), "{reply}");
}

#[tokio::test]
async fn features_require_starttls_first() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.starttls).await;
    let features = client.open("localhost").await;
    assert!(
        features
            .contains("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"),
        "{features}"
    );
    assert!(!features.contains("<mechanisms"), "{features}");
}

#[tokio::test]
async fn auth_before_starttls_is_refused() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.starttls).await;
    client.open("localhost").await;
    client
        .send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>")
        .await;
    let reply = client.read_to_close().await;
    assert!(reply.contains("<policy-violation"), "{reply}");
}

#[tokio::test]
async fn stanza_before_authentication_gets_not_authorized() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.plaintext).await;
    client.open("localhost").await;
    client
        .send("<message to='alice@localhost'><body>hi</body></message>")
        .await;
    let reply = client.read_to_close().await;
    assert!(reply.contains("<not-authorized"), "{reply}");
}

#[tokio::test]
async fn tls_features_offer_scram_plus_and_channel_binding_types_but_not_plain() {
    let server = TestServer::start().await;
    let (client, features) = RawClient::secured(&server).await;
    for mechanism in [
        "SCRAM-SHA-512-PLUS",
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
    ] {
        assert!(
            features.contains(&format!("<mechanism>{mechanism}</mechanism>")),
            "{features}"
        );
    }
    assert!(
        !features.contains("<mechanism>PLAIN</mechanism>"),
        "{features}"
    );
    assert!(
        features.contains("<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>"),
        "{features}"
    );
    assert!(
        features.contains("type='tls-server-end-point'"),
        "{features}"
    );
    assert!(client.tls13, "TLS 1.3 is negotiated with a modern client");
    assert!(features.contains("type='tls-exporter'"), "{features}");
}

#[tokio::test]
async fn scram_sha_256_plus_with_tls_exporter_logs_in() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let (mut client, _) = RawClient::secured(&server).await;
    let outcome = client
        .authenticate("SCRAM-SHA-256-PLUS", "alice", "wonderland")
        .await;
    assert!(outcome.starts_with("<success"), "{outcome}");
    let features = client.open("localhost").await;
    assert!(
        features.contains("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"),
        "{features}"
    );
    assert!(
        features.contains("<optional/>"),
        "session must be optional: {features}"
    );
    assert!(
        features.contains("<c xmlns='http://jabber.org/protocol/caps'"),
        "{features}"
    );
    let jid = client.bind(Some("phone")).await;
    assert_eq!(jid, "alice@localhost/phone");
}

#[tokio::test]
async fn scram_sha_1_logs_in() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let (mut client, _) = RawClient::secured(&server).await;
    let outcome = client
        .authenticate("SCRAM-SHA-1", "alice", "wonderland")
        .await;
    assert!(outcome.starts_with("<success"), "{outcome}");
}

#[tokio::test]
async fn downgrade_is_detected_when_client_says_server_lacks_binding() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let (mut client, _) = RawClient::secured(&server).await;
    // The raw client sends the 'y' flag for non-PLUS SCRAM over TLS: the server did offer
    // -PLUS, so RFC 5802 §6 requires the exchange to fail.
    let outcome = client
        .authenticate_with(
            "SCRAM-SHA-256",
            "alice",
            "wonderland",
            sasl::common::ChannelBinding::Unsupported,
        )
        .await;
    assert!(outcome.starts_with("<failure"), "{outcome}");
    assert!(outcome.contains("<not-authorized/>"), "{outcome}");
}

#[tokio::test]
async fn wrong_password_gets_not_authorized() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let (mut client, _) = RawClient::secured(&server).await;
    let outcome = client
        .authenticate("SCRAM-SHA-256-PLUS", "alice", "looking-glass")
        .await;
    assert!(outcome.contains("<not-authorized/>"), "{outcome}");
}

#[tokio::test]
async fn unknown_user_gets_not_authorized() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::secured(&server).await;
    let outcome = client
        .authenticate("SCRAM-SHA-256-PLUS", "nobody", "whatever")
        .await;
    assert!(outcome.contains("<not-authorized/>"), "{outcome}");
}

#[tokio::test]
async fn repeated_failures_are_rate_limited_even_with_the_right_password() {
    let server = TestServer::start_with(
        "[auth]\nfailures_before_delay = 2\nfailure_delay_secs = 3600\nmax_failure_delay_secs = 3600\n",
    )
    .await;
    server.add_user("alice@localhost", "wonderland").await;
    for _ in 0..2 {
        let (mut client, _) = RawClient::secured(&server).await;
        let outcome = client
            .authenticate("SCRAM-SHA-256-PLUS", "alice", "bad")
            .await;
        assert!(outcome.contains("<not-authorized/>"), "{outcome}");
    }
    // While the delay holds, the right password is refused before any exchange runs.
    let (mut client, _) = RawClient::secured(&server).await;
    let outcome = client
        .authenticate("SCRAM-SHA-256-PLUS", "alice", "wonderland")
        .await;
    assert!(outcome.contains("<temporary-auth-failure/>"), "{outcome}");
}

#[tokio::test]
async fn unoffered_mechanism_gets_invalid_mechanism() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::secured(&server).await;
    client
        .send(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHg=</auth>",
        )
        .await;
    let reply = client.expect("</failure>").await;
    assert!(reply.contains("<invalid-mechanism/>"), "{reply}");
}

#[tokio::test]
async fn direct_tls_with_alpn_reaches_authentication() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut client = RawClient::connect_direct_tls(&server).await;
    let features = client.open("localhost").await;
    assert!(features.contains("SCRAM-SHA-256-PLUS"), "{features}");
    let outcome = client
        .authenticate("SCRAM-SHA-256-PLUS", "alice", "wonderland")
        .await;
    assert!(outcome.starts_with("<success"), "{outcome}");
}

#[tokio::test]
async fn oversized_stanza_gets_policy_violation() {
    let server = TestServer::start_with("[limits]\nmax_stanza_size = 8192\n").await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut client = RawClient::login(&server, "alice", "wonderland", "r").await;
    let big = format!(
        "<message to='alice@localhost'><body>{}</body></message>",
        "x".repeat(100_000)
    );
    client.send_lossy(big.as_bytes()).await;
    let reply = client.read_to_close().await;
    assert!(reply.contains("<policy-violation"), "{reply}");
}

#[tokio::test]
async fn comment_inside_a_stanza_gets_restricted_xml() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut client = RawClient::login(&server, "alice", "wonderland", "r").await;
    client
        .send("<message to='alice@localhost'><!-- hidden --><body>x</body></message>")
        .await;
    let reply = client.read_to_close().await;
    assert!(reply.contains("<restricted-xml"), "{reply}");
}

#[tokio::test]
async fn spoofed_from_gets_invalid_from() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut client = RawClient::login(&server, "alice", "wonderland", "r").await;
    client
        .send("<message from='bob@localhost/x' to='alice@localhost'><body>x</body></message>")
        .await;
    let reply = client.read_to_close().await;
    assert!(reply.contains("<invalid-from"), "{reply}");
}

#[tokio::test]
async fn whitespace_keepalives_are_accepted() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut client = RawClient::login(&server, "alice", "wonderland", "r").await;
    client.send("   \n  ").await;
    let reply = client
        .iq(
            "p1",
            "<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    assert!(reply.contains("type='result'"), "{reply}");
}

#[tokio::test]
async fn closing_the_stream_is_answered_with_a_close() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut client = RawClient::login(&server, "alice", "wonderland", "r").await;
    client.send("</stream:stream>").await;
    let reply = client.read_to_close().await;
    assert!(reply.ends_with("</stream:stream>"), "{reply}");
    assert!(!reply.contains("<stream:error>"), "{reply}");
}

#[tokio::test]
async fn second_login_with_same_resource_replaces_the_first_with_conflict() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut first = RawClient::login(&server, "alice", "wonderland", "desk").await;
    let mut second = RawClient::login(&server, "alice", "wonderland", "desk").await;
    let reply = first.read_to_close().await;
    assert!(reply.contains("<conflict"), "{reply}");
    let pong = second
        .iq(
            "p2",
            "<iq type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    assert!(pong.contains("type='result'"), "{pong}");
}

#[tokio::test]
async fn server_generates_a_resource_when_none_is_requested() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let (mut client, _) = RawClient::secured(&server).await;
    client
        .authenticate("SCRAM-SHA-256-PLUS", "alice", "wonderland")
        .await;
    client.open("localhost").await;
    let jid = client.bind(None).await;
    assert!(jid.starts_with("alice@localhost/") && jid.len() > "alice@localhost/".len());
}

#[tokio::test]
async fn plain_is_offered_over_tls_when_enabled_and_checks_the_password() {
    let server = TestServer::start_with("[auth]\nallow_plain = true\n").await;
    server.add_user("alice@localhost", "wonderland").await;
    let (mut client, features) = RawClient::secured(&server).await;
    assert!(
        features.contains("<mechanism>PLAIN</mechanism>"),
        "{features}"
    );
    client
        .send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHdyb25n</auth>")
        .await;
    let refused = client.expect("</failure>").await;
    assert!(refused.contains("<not-authorized/>"), "{refused}");
    client
        .send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHdvbmRlcmxhbmQ=</auth>")
        .await;
    let accepted = client.expect("</success>").await;
    assert!(accepted.contains("<success"), "{accepted}");
}

#[tokio::test]
async fn plain_is_never_offered_without_tls() {
    let server = TestServer::start_with("[auth]\nallow_plain = true\n").await;
    let mut client = RawClient::connect(server.plaintext).await;
    let features = client.open("localhost").await;
    assert!(
        !features.contains("<mechanism>PLAIN</mechanism>"),
        "{features}"
    );
}

#[tokio::test]
async fn connections_beyond_the_per_address_limit_are_refused() {
    let server = TestServer::start_with("[limits]\nmax_connections_per_address = 1\n").await;
    let mut first = RawClient::connect(server.starttls).await;
    first.open("localhost").await;
    let mut second = RawClient::connect(server.starttls).await;
    second
        .send_lossy(common::header("localhost").as_bytes())
        .await;
    let refused = second.read_to_close().await;
    assert!(
        refused.is_empty(),
        "the second connection gets nothing: {refused}"
    );
}
