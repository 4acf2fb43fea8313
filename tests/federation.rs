//! Server-to-server links between two Rempart servers on loopback: dialback over STARTTLS,
//! routing of messages, presence subscriptions and PEP queries, refusal of unproven domains.

mod common;

use common::federation::{
    befriend, chat, pair, pair_configured, s2s_config, s2s_config_with, server_header, Side, TestCa,
};
use common::{free_port, RawClient, TestServer};

#[tokio::test]
async fn chat_crosses_to_the_other_server_and_back() {
    let (_a, _b, mut alice, mut bob) = pair().await;
    alice
        .send("<message to='bob@b.test' type='chat' id='x1'><body>hello from a</body></message>")
        .await;
    let received = bob.expect_stanza("id='x1'").await;
    assert!(received.contains("from='alice@a.test/r'"), "{received}");
    assert!(received.contains("<body>hello from a</body>"), "{received}");
    bob.send(
        "<message to='alice@a.test/r' type='chat' id='x2'><body>hello from b</body></message>",
    )
    .await;
    let answer = alice.expect_stanza("id='x2'").await;
    assert!(answer.contains("from='bob@b.test/r'"), "{answer}");
}

#[tokio::test]
async fn presence_subscription_works_across_servers() {
    let (_a, _b, mut alice, mut bob) = pair().await;
    alice
        .send("<presence to='bob@b.test' type='subscribe'/>")
        .await;
    let request = bob.expect_stanza("type='subscribe'").await;
    assert!(request.contains("from='alice@a.test'"), "{request}");
    bob.send("<presence to='alice@a.test' type='subscribed'/>")
        .await;
    let approved = alice.expect_stanza("type='subscribed'").await;
    assert!(approved.contains("from='bob@b.test'"), "{approved}");
    let presence = alice.expect_stanza("from='bob@b.test/r'").await;
    assert!(presence.starts_with("<presence"), "{presence}");
    let roster = alice
        .iq(
            "r1",
            "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
        )
        .await;
    assert!(
        roster.contains("jid='bob@b.test'") && roster.contains("subscription='to'"),
        "{roster}"
    );
}

#[tokio::test]
async fn omemo_bundle_is_fetched_from_the_other_server() {
    let (_a, _b, mut alice, mut bob) = pair().await;
    alice
        .iq("p1", "<iq type='set' id='p1'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:omemo:2:bundles'><item id='9'><bundle xmlns='urn:xmpp:omemo:2'><ik>REMOTEKEY</ik></bundle></item></publish><publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#access_model'><value>open</value></field></x></publish-options></pubsub></iq>")
        .await;
    let fetched = bob
        .iq("f1", "<iq type='get' id='f1' to='alice@a.test'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:omemo:2:bundles'><item id='9'/></items></pubsub></iq>")
        .await;
    assert!(fetched.contains("type='result'"), "{fetched}");
    assert!(fetched.contains("<ik>REMOTEKEY</ik>"), "{fetched}");
}

#[tokio::test]
async fn unrouted_domain_bounces_with_remote_server_not_found() {
    let (_a, _b, mut alice, _bob) = pair().await;
    alice
        .send("<message to='someone@nowhere.test' type='chat' id='n1'><body>?</body></message>")
        .await;
    let error = alice.expect_stanza("id='n1'").await;
    assert!(error.contains("<remote-server-not-found"), "{error}");
}

#[tokio::test]
async fn an_undeliverable_headline_comes_back_to_nobody() {
    let (_a, _b, mut alice, _bob) = pair().await;
    alice
        .send("<message to='someone@down.test' type='headline' id='h1'><event xmlns='http://jabber.org/protocol/pubsub#event'/></message>")
        .await;
    alice
        .send("<message to='someone@down.test' type='chat' id='h2'><body>?</body></message>")
        .await;
    // Both wait on the same link and bounce in order: the chat's error comes after any
    // error the headline would have caused.
    let error = alice.expect_stanza("id='h2'").await;
    assert!(error.contains("<remote-server-not-found"), "{error}");
    assert!(!alice.unread().contains("id='h1'"), "{}", alice.unread());
}

#[tokio::test]
async fn unreachable_server_bounces_queued_stanzas() {
    let (_a, _b, mut alice, _bob) = pair().await;
    alice
        .send("<message to='someone@down.test' type='chat' id='d1'><body>?</body></message>")
        .await;
    let error = alice.expect_stanza("id='d1'").await;
    assert!(error.contains("type='error'"), "{error}");
    assert!(error.contains("<remote-server-not-found"), "{error}");
}

#[tokio::test]
async fn stanza_from_an_unproven_domain_gets_invalid_from() {
    let port = free_port();
    let server = TestServer::start_domain("b.test", &s2s_config(port, &[])).await;
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut peer = RawClient::connect(address).await;
    peer.send(&server_header("b.test", None)).await;
    peer.expect("</stream:features>").await;
    let mut peer = peer.starttls(&server).await;
    peer.send(&server_header("b.test", None)).await;
    let features = peer.expect("</stream:features>").await;
    assert!(
        features.contains("urn:xmpp:features:dialback"),
        "{features}"
    );
    peer.send("<message from='mallory@a.test/x' to='bob@b.test' type='chat'><body>trust me</body></message>")
        .await;
    let reply = peer.read_to_close().await;
    assert!(reply.contains("<invalid-from"), "{reply}");
}

#[tokio::test]
async fn server_stream_to_a_foreign_domain_gets_host_unknown() {
    let port = free_port();
    let _server = TestServer::start_domain("b.test", &s2s_config(port, &[])).await;
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut peer = RawClient::connect(address).await;
    peer.send(&server_header("c.test", None)).await;
    let reply = peer.read_to_close().await;
    assert!(reply.contains("<host-unknown"), "{reply}");
}

#[tokio::test]
async fn s2s_check_reports_each_step_of_a_working_link() {
    let port = free_port();
    let _server = TestServer::start_domain("b.test", &s2s_config(port, &[])).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("a.toml");
    std::fs::write(
        &config,
        format!("[server]\nhosts = [\"a.test\"]\ndata_dir = \"{}\"\n[s2s]\nname_servers = [\"127.0.0.1:9\"]\n[s2s.routes]\n\"b.test\" = \"127.0.0.1:{port}\"\n", dir.path().display()),
    )
    .expect("config written");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_rempart"))
        .arg("--config")
        .arg(&config)
        .args(["s2s", "check", "b.test"])
        .output()
        .await
        .expect("runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("b.test is routed to 127.0.0.1"), "{report}");
    assert!(report.contains("tls: Some(TLSv1_3)"), "{report}");
    assert!(
        report.contains("X25519MLKEM768"),
        "post-quantum key exchange expected: {report}"
    );
    assert!(
        report.contains("dialback (urn:xmpp:features:dialback)"),
        "{report}"
    );
    let unrouted = tokio::process::Command::new(env!("CARGO_BIN_EXE_rempart"))
        .arg("--config")
        .arg(&config)
        .args(["s2s", "check", "nowhere.test"])
        .output()
        .await
        .expect("runs");
    assert!(!unrouted.status.success());
    assert!(String::from_utf8_lossy(&unrouted.stdout).contains("FAILED"));
}

#[tokio::test]
async fn dialback_with_an_unreachable_authority_is_answered_with_an_error() {
    let port = free_port();
    let server =
        TestServer::start_domain("b.test", &s2s_config(port, &[("a.test", free_port())])).await;
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut peer = RawClient::connect(address).await;
    let opening = server_header("b.test", None);
    peer.send(&opening).await;
    peer.expect("</stream:features>").await;
    let mut peer = peer.starttls(&server).await;
    peer.send(&opening).await;
    peer.expect("</stream:features>").await;
    peer.send("<db:result from='a.test' to='b.test'>0123456789abcdef</db:result>")
        .await;
    let answer = peer.expect("</db:result>").await;
    assert!(answer.contains("type='error'"), "{answer}");
    assert!(answer.contains("<remote-server-not-found"), "{answer}");
}

#[tokio::test]
async fn a_peer_stream_error_is_not_answered_with_another() {
    let port = free_port();
    let server = TestServer::start_domain("b.test", &s2s_config(port, &[])).await;
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut peer = RawClient::connect(address).await;
    let opening = server_header("b.test", None);
    peer.send(&opening).await;
    peer.expect("</stream:features>").await;
    let mut peer = peer.starttls(&server).await;
    peer.send(&opening).await;
    peer.expect("</stream:features>").await;
    peer.send("<stream:error><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>")
        .await;
    let reply = peer.read_to_close().await;
    assert!(!reply.contains("<stream:error>"), "{reply}");
    assert!(reply.contains("</stream:stream>"), "{reply}");
}

#[tokio::test]
async fn valid_certificates_satisfy_the_strict_policy_for_chat_roster_and_omemo() {
    let ca = TestCa::new();
    let strict = format!("{}default_policy = \"require-valid-cert\"\n", ca.trusted());
    let side_a = Side {
        s2s: strict.clone(),
        tls: ca.serving("a.test", "a.test"),
        ..Side::default()
    };
    let side_b = Side {
        s2s: strict,
        tls: ca.serving("b.test", "b.test"),
        ..Side::default()
    };
    let (_a, _b, mut alice, mut bob) = pair_configured(&side_a, &side_b).await;
    alice
        .send("<message to='bob@b.test' type='chat' id='v1'><body>certified</body></message>")
        .await;
    let received = bob.expect_stanza("id='v1'").await;
    assert!(received.contains("<body>certified</body>"), "{received}");
    bob.send("<message to='alice@a.test' type='chat' id='v2'><body>likewise</body></message>")
        .await;
    let answer = alice.expect_stanza("id='v2'").await;
    assert!(answer.contains("<body>likewise</body>"), "{answer}");
    // A mutual subscription, then each fetches the other's OMEMO device list.
    befriend(&mut alice, &mut bob).await;
    let roster = alice
        .iq(
            "r2",
            "<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>",
        )
        .await;
    assert!(roster.contains("subscription='both'"), "{roster}");
    for (client, id, device) in [(&mut alice, "a", 12), (&mut bob, "b", 10)] {
        client
            .iq(&format!("pub-{id}"), &format!("<iq type='set' id='pub-{id}'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:omemo:2:devices'><item id='current'><devices xmlns='urn:xmpp:omemo:2'><device id='{}'/></devices></item></publish></pubsub></iq>", device))
            .await;
    }
    let bobs = alice
        .iq("f-a", "<iq type='get' id='f-a' to='bob@b.test'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:omemo:2:devices'/></pubsub></iq>")
        .await;
    assert!(bobs.contains("<device id='10'/>"), "{bobs}");
    let alices = bob
        .iq("f-b", "<iq type='get' id='f-b' to='alice@a.test'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:omemo:2:devices'/></pubsub></iq>")
        .await;
    assert!(alices.contains("<device id='12'/>"), "{alices}");
}

#[tokio::test]
async fn s2s_check_authenticates_with_sasl_external_when_certificates_are_valid() {
    let ca = TestCa::new();
    let port = free_port();
    let side_b = Side {
        s2s: ca.trusted(),
        tls: ca.serving("b.test", "b.test"),
        ..Side::default()
    };
    let _server = TestServer::start_domain("b.test", &s2s_config_with(port, &[], &side_b)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("a.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhosts = [\"a.test\"]\ndata_dir = \"{}\"\n{}[s2s]\n{}name_servers = [\"127.0.0.1:9\"]\n[s2s.routes]\n\"b.test\" = \"127.0.0.1:{port}\"\n",
            dir.path().display(),
            ca.serving("a.test", "a.test"),
            ca.trusted()
        ),
    )
    .expect("config written");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_rempart"))
        .arg("--config")
        .arg(&config)
        .args(["s2s", "check", "b.test"])
        .output()
        .await
        .expect("runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("certificate: valid for b.test"), "{report}");
    assert!(report.contains("SASL EXTERNAL succeeded"), "{report}");
}

#[tokio::test]
async fn a_certificate_naming_another_domain_is_refused_under_the_strict_policy() {
    let ca = TestCa::new();
    let side_a = Side {
        s2s: format!(
            "{}[s2s.policies]\n\"b.test\" = \"require-valid-cert\"\n",
            ca.trusted()
        ),
        tls: ca.serving("a.test", "a.test"),
        ..Side::default()
    };
    let side_b = Side {
        s2s: ca.trusted(),
        tls: ca.serving("b.test", "other.test"),
        tls_name: Some("other.test".to_owned()),
    };
    let (_a, _b, mut alice, mut bob) = pair_configured(&side_a, &side_b).await;
    let outbound = chat(&mut alice, "bob@b.test", "w1").await;
    assert!(outbound.contains("type='error'"), "{outbound}");
    assert!(outbound.contains("<remote-server-not-found"), "{outbound}");
    // b.test cannot prove itself to a.test either: its dialback request is refused.
    let inbound = chat(&mut bob, "alice@a.test", "w2").await;
    assert!(inbound.contains("type='error'"), "{inbound}");
    assert!(inbound.contains("<remote-server-not-found"), "{inbound}");
}

#[tokio::test]
async fn a_denied_domain_is_refused_both_ways() {
    let side_a = Side {
        s2s: "[s2s.policies]\n\"b.test\" = \"deny\"\n".to_owned(),
        ..Side::default()
    };
    let (_a, _b, mut alice, mut bob) = pair_configured(&side_a, &Side::default()).await;
    let outbound = chat(&mut alice, "bob@b.test", "d1").await;
    assert!(outbound.contains("<policy-violation"), "{outbound}");
    let inbound = chat(&mut bob, "alice@a.test", "d2").await;
    assert!(inbound.contains("type='error'"), "{inbound}");
    assert!(inbound.contains("<remote-server-not-found"), "{inbound}");
}

#[tokio::test]
async fn a_closed_federation_reaches_only_listed_domains() {
    let side_a = Side {
        s2s: "allowlist_only = true\n[s2s.policies]\n\"b.test\" = \"dialback\"\n".to_owned(),
        ..Side::default()
    };
    let (_a, _b, mut alice, mut bob) = pair_configured(&side_a, &Side::default()).await;
    let unlisted = chat(&mut alice, "someone@down.test", "c1").await;
    assert!(unlisted.contains("<policy-violation"), "{unlisted}");
    alice
        .send("<message to='bob@b.test' type='chat' id='c2'><body>listed</body></message>")
        .await;
    let received = bob.expect_stanza("id='c2'").await;
    assert!(received.contains("<body>listed</body>"), "{received}");
}

#[tokio::test]
async fn servers_connect_with_direct_tls_on_the_xmpp_server_protocol() {
    let port = free_port();
    let extra = format!(
        "[[listeners]]\nkind = \"s2s-direct-tls\"\naddress = \"127.0.0.1:{port}\"\n[s2s.routes]\n\"a.test\" = \"127.0.0.1:{}\"\n",
        free_port()
    );
    let server = TestServer::start_domain("b.test", &extra).await;
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut peer = RawClient::connect_direct_tls_at(&server, address, b"xmpp-server").await;
    peer.send(&server_header("b.test", Some("a.test"))).await;
    let features = peer.expect("</stream:features>").await;
    assert!(
        features.contains("urn:xmpp:features:dialback"),
        "{features}"
    );
    assert!(!features.contains("starttls"), "{features}");
    assert!(
        !features.contains("EXTERNAL"),
        "no certificate, no EXTERNAL: {features}"
    );
    peer.send(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>YS50ZXN0</auth>",
    )
    .await;
    let refused = peer.expect("</failure>").await;
    assert!(refused.contains("<invalid-mechanism"), "{refused}");
}

#[tokio::test]
async fn a_remote_user_subscribes_to_the_pubsub_service_and_is_notified() {
    let (_a, _b, mut alice, mut bob) = pair().await;
    alice
        .iq("p1", "<iq type='set' id='p1' to='pubsub.a.test'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='news'><item id='n1'><entry xmlns='urn:test:news'>first</entry></item></publish></pubsub></iq>")
        .await;
    let subscribed = bob
        .iq("s1", "<iq type='set' id='s1' to='pubsub.a.test'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='news' jid='bob@b.test/r'/></pubsub></iq>")
        .await;
    assert!(
        subscribed.contains("subscription='subscribed'"),
        "{subscribed}"
    );
    alice
        .iq("p2", "<iq type='set' id='p2' to='pubsub.a.test'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='news'><item id='n2'><entry xmlns='urn:test:news'>second</entry></item></publish></pubsub></iq>")
        .await;
    let event = bob
        .expect_stanza("<entry xmlns='urn:test:news'>second")
        .await;
    assert!(event.contains("from='pubsub.a.test'"), "{event}");
}

#[tokio::test]
async fn a_spoofed_from_on_a_stream_authenticated_with_sasl_external_is_rejected() {
    let ca = TestCa::new();
    let port = free_port();
    let side = Side {
        s2s: ca.trusted(),
        tls: ca.serving("b.test", "b.test"),
        ..Side::default()
    };
    let server = TestServer::start_domain("b.test", &s2s_config_with(port, &[], &side)).await;
    server.add_user("bob@b.test", "builder").await;
    let mut bob = RawClient::login(&server, "bob", "builder", "r").await;
    bob.available().await;
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let opening = server_header("b.test", Some("a.test"));
    let mut peer = RawClient::connect(address).await;
    peer.send(&opening).await;
    peer.expect("</stream:features>").await;
    let (chain, key) = ca.identity("a.test");
    let mut peer = peer.starttls_presenting(&server, chain, key).await;
    peer.send(&opening).await;
    let features = peer.expect("</stream:features>").await;
    assert!(
        features.contains("<mechanism>EXTERNAL</mechanism>"),
        "{features}"
    );
    // Another domain than the certificate's and the header's is refused; then the right one.
    peer.send(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>Yy50ZXN0</auth>",
    )
    .await;
    let refused = peer.expect("</failure>").await;
    assert!(refused.contains("<invalid-authzid"), "{refused}");
    peer.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
        .await;
    peer.expect("<success").await;
    peer.send(&opening).await;
    let restarted = peer.expect("</stream:features>").await;
    assert!(!restarted.contains("EXTERNAL"), "{restarted}");
    peer.send("<message from='carol@a.test/x' to='bob@b.test' type='chat' id='ok'><body>proven</body></message>")
        .await;
    let delivered = bob.expect_stanza("id='ok'").await;
    assert!(delivered.contains("from='carol@a.test/x'"), "{delivered}");
    peer.send("<message from='mallory@c.test/x' to='bob@b.test' type='chat'><body>spoofed</body></message>")
        .await;
    let reply = peer.read_to_close().await;
    assert!(reply.contains("<invalid-from"), "{reply}");
}

/// Reads from `io` into `buffer` until `pattern` appears; returns what came up to it.
async fn read_until<R: tokio::io::AsyncRead + Unpin>(
    io: &mut R,
    buffer: &mut String,
    pattern: &str,
) -> String {
    use tokio::io::AsyncReadExt as _;
    let read = async {
        loop {
            if let Some(at) = buffer.find(pattern) {
                let upto: String = buffer.drain(..at + pattern.len()).collect();
                return upto;
            }
            let mut chunk = [0u8; 4096];
            let n = io.read(&mut chunk).await.expect("read");
            assert!(
                n > 0,
                "closed while waiting for {pattern:?}; got {buffer:?}"
            );
            buffer.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {pattern:?}; got {buffer:?}"))
}

#[tokio::test]
async fn a_second_local_domain_piggybacks_on_the_established_link() {
    use tokio::io::AsyncWriteExt as _;
    let peer = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let peer_port = peer.local_addr().expect("address").port();
    let extra = format!("[s2s]\n[s2s.routes]\n\"b.test\" = \"127.0.0.1:{peer_port}\"\n");
    let server = TestServer::start_domains(&["a.test", "a2.test"], &extra).await;
    server.add_user("alice@a.test", "wonderland").await;
    server.add_user("carol@a2.test", "carroll").await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "r").await;
    alice
        .send("<message to='bob@b.test' type='chat' id='m1'><body>from a</body></message>")
        .await;
    // The test plays b.test: STARTTLS, then dialback answered without asking a.test.
    let (tcp, _) = peer.accept().await.expect("a.test connects");
    let mut tcp = tcp;
    let mut buffer = String::new();
    let header = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='b.test' to='a.test' id='b-stream' version='1.0'>";
    read_until(&mut tcp, &mut buffer, ">").await;
    read_until(&mut tcp, &mut buffer, ">").await;
    tcp.write_all(format!("{header}<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>").as_bytes())
        .await
        .expect("write");
    read_until(&mut tcp, &mut buffer, "<starttls").await;
    read_until(&mut tcp, &mut buffer, "/>").await;
    tcp.write_all(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await
        .expect("write");
    let key = rcgen::KeyPair::generate().expect("key");
    let certificate = rcgen::CertificateParams::new(vec!["b.test".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .expect("TLS configuration");
    let mut tls = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
        .accept(tcp)
        .await
        .expect("TLS");
    let mut buffer = String::new();
    read_until(&mut tls, &mut buffer, "<stream:stream").await;
    read_until(&mut tls, &mut buffer, ">").await;
    tls.write_all(format!("{header}<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>").as_bytes())
        .await
        .expect("write");
    let first = read_until(&mut tls, &mut buffer, "</db:result>").await;
    assert!(first.contains("from='a.test'"), "{first}");
    tls.write_all(b"<db:result from='b.test' to='a.test' type='valid'/>")
        .await
        .expect("write");
    let message = read_until(&mut tls, &mut buffer, "</message>").await;
    assert!(message.contains("from='alice@a.test/r'"), "{message}");
    let mut carol = RawClient::login_at(&server, "a2.test", "carol", "carroll", "r").await;
    carol
        .send("<message to='bob@b.test' type='chat' id='m2'><body>from a2</body></message>")
        .await;
    let second = read_until(&mut tls, &mut buffer, "</db:result>").await;
    assert!(
        second.contains("from='a2.test'") && second.contains("to='b.test'"),
        "a2.test is proven on the same stream: {second}"
    );
    tls.write_all(b"<db:result from='b.test' to='a2.test' type='valid'/>")
        .await
        .expect("write");
    let message = read_until(&mut tls, &mut buffer, "</message>").await;
    assert!(message.contains("from='carol@a2.test/r'"), "{message}");
}

#[tokio::test]
async fn an_inbound_stream_that_proves_nothing_is_closed_with_connection_timeout() {
    let port = free_port();
    let extra = format!(
        "[limits]\nnegotiation_timeout_secs = 1\n{}",
        s2s_config(port, &[])
    );
    let server = TestServer::start_domain("b.test", &extra).await;
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut peer = RawClient::connect(address).await;
    let opening = server_header("b.test", None);
    peer.send(&opening).await;
    peer.expect("</stream:features>").await;
    let mut peer = peer.starttls(&server).await;
    peer.send(&opening).await;
    peer.expect("</stream:features>").await;
    let reply = peer.read_to_close().await;
    assert!(reply.contains("<connection-timeout"), "{reply}");
}

#[tokio::test]
async fn a_slow_authoritative_server_delays_nothing_else_on_the_stream() {
    let port = free_port();
    let authority = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let authority_port = authority.local_addr().expect("address").port();
    let extra = format!(
        "[[listeners]]\nkind = \"s2s\"\naddress = \"127.0.0.1:{port}\"\n[s2s]\nconnect_timeout_secs = 30\n[s2s.routes]\n\"x.test\" = \"127.0.0.1:{authority_port}\"\n"
    );
    let server = TestServer::start_domain("b.test", &extra).await;
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let opening = server_header("b.test", Some("x.test"));
    let mut peer = RawClient::connect(address).await;
    peer.send(&opening).await;
    peer.expect("</stream:features>").await;
    let mut peer = peer.starttls(&server).await;
    peer.send(&opening).await;
    peer.expect("</stream:features>").await;
    peer.send("<db:result from='x.test' to='b.test'>0123456789abcdef</db:result>")
        .await;
    // b.test asks x.test's authority, which accepts the connection and says nothing.
    let (held, _) = authority.accept().await.expect("b.test asks the authority");
    peer.send("<db:verify from='x.test' to='b.test' id='other'>0123</db:verify>")
        .await;
    let verify = peer.expect("</db:verify>").await;
    assert!(
        verify.contains("type='invalid'") && !verify.contains("<db:result"),
        "answered while the other request waits: {verify}"
    );
    drop(held);
    let result = peer.expect("</db:result>").await;
    assert!(result.contains("type='error'"), "{result}");
}

#[tokio::test]
async fn a_domain_proven_with_sasl_external_does_not_cover_our_service_domains() {
    let ca = TestCa::new();
    let port = free_port();
    let side = Side {
        s2s: ca.trusted(),
        tls: ca.serving("b.test", "b.test"),
        ..Side::default()
    };
    let server = TestServer::start_domain("b.test", &s2s_config_with(port, &[], &side)).await;
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let opening = server_header("b.test", Some("a.test"));
    let mut peer = RawClient::connect(address).await;
    peer.send(&opening).await;
    peer.expect("</stream:features>").await;
    let (chain, key) = ca.identity("a.test");
    let mut peer = peer.starttls_presenting(&server, chain, key).await;
    peer.send(&opening).await;
    peer.expect("</stream:features>").await;
    peer.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
        .await;
    peer.expect("<success").await;
    peer.send(&opening).await;
    peer.expect("</stream:features>").await;
    // (a.test, b.test) is proven; (a.test, pubsub.b.test) needs a dialback request of its own.
    peer.send("<iq from='carol@a.test/x' to='pubsub.b.test' type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    let reply = peer.read_to_close().await;
    assert!(reply.contains("<invalid-from"), "{reply}");
}

#[tokio::test]
async fn a_forged_dialback_key_is_refused_by_the_authoritative_server() {
    let (port_a, port_b) = (free_port(), free_port());
    let _a = TestServer::start_domain("a.test", &s2s_config(port_a, &[])).await;
    let b = TestServer::start_domain("b.test", &s2s_config(port_b, &[("a.test", port_a)])).await;
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port_b));
    let opening = server_header("b.test", None);
    let mut peer = RawClient::connect(address).await;
    peer.send(&opening).await;
    peer.expect("</stream:features>").await;
    let mut peer = peer.starttls(&b).await;
    peer.send(&opening).await;
    peer.expect("</stream:features>").await;
    // Not a.test's key: b.test asks a.test, which says so.
    peer.send("<db:result from='a.test' to='b.test'>deadbeef</db:result>")
        .await;
    let answer = peer.expect("</db:result>").await;
    assert!(answer.contains("type='invalid'"), "{answer}");
    peer.send("<message from='mallory@a.test/x' to='bob@b.test' type='chat'><body>forged</body></message>")
        .await;
    let reply = peer.read_to_close().await;
    assert!(reply.contains("<invalid-from"), "{reply}");
}
