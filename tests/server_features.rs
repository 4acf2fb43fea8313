//! XEP-0030 disco, XEP-0115 caps, XEP-0092 version, XEP-0199 ping, XEP-0202 time.

mod common;

use common::{RawClient, TestServer};

async fn alice(server: &TestServer) -> RawClient {
    server.add_user("alice@localhost", "wonderland").await;
    RawClient::login(server, "alice", "wonderland", "a").await
}

#[tokio::test]
async fn server_disco_info_lists_identity_and_module_features() {
    let server = TestServer::start().await;
    let mut client = alice(&server).await;
    let reply = client
        .iq("d1", "<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    assert!(reply.contains("category='server'"), "{reply}");
    assert!(reply.contains("type='im'"), "{reply}");
    for feature in [
        "http://jabber.org/protocol/disco#info",
        "urn:xmpp:ping",
        "urn:xmpp:time",
        "jabber:iq:version",
        "msgoffline",
    ] {
        assert!(
            reply.contains(&format!("var='{feature}'")),
            "{feature} missing: {reply}"
        );
    }
}

#[tokio::test]
async fn caps_node_from_stream_features_answers_disco_info() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let (mut client, _) = RawClient::secured(&server).await;
    client
        .authenticate("SCRAM-SHA-256-PLUS", "alice", "wonderland")
        .await;
    let features = client.open("localhost").await;
    let caps = features
        .split("<c xmlns='http://jabber.org/protocol/caps'")
        .nth(1)
        .expect("caps");
    let node = caps
        .split("node='")
        .nth(1)
        .and_then(|v| v.split('\'').next())
        .expect("node");
    let ver = caps
        .split("ver='")
        .nth(1)
        .and_then(|v| v.split('\'').next())
        .expect("ver");
    client.bind(Some("a")).await;
    let reply = client
        .iq("d2", &format!("<iq type='get' id='d2' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='{node}#{ver}'/></iq>"))
        .await;
    assert!(reply.contains("type='result'"), "{reply}");
    assert!(reply.contains("var='urn:xmpp:ping'"), "{reply}");
}

const CONTACTS: &str = r#"
[modules.contact_info]
abuse = ["mailto:abuse@localhost", "xmpp:abuse@localhost"]
security = ["https://localhost/security"]
"#;

#[tokio::test]
async fn contact_addresses_are_in_the_server_disco_info_as_the_serverinfo_form() {
    let server = TestServer::start_with(CONTACTS).await;
    let mut client = alice(&server).await;
    let reply = client
        .iq("c1", "<iq type='get' id='c1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    assert!(
        reply.contains("<value>http://jabber.org/network/serverinfo</value>"),
        "{reply}"
    );
    assert!(
        reply.contains("<field var='abuse-addresses' type='list-multi'><value>mailto:abuse@localhost</value><value>xmpp:abuse@localhost</value></field>"),
        "{reply}"
    );
    assert!(
        reply.contains("<value>https://localhost/security</value>"),
        "{reply}"
    );
    assert!(!reply.contains("support-addresses"), "{reply}");
}

#[tokio::test]
async fn without_contact_addresses_the_server_disco_info_has_no_form() {
    let server = TestServer::start().await;
    let mut client = alice(&server).await;
    let reply = client
        .iq("c2", "<iq type='get' id='c2' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    assert!(!reply.contains("jabber:x:data"), "{reply}");
}

#[tokio::test]
async fn the_caps_hash_covers_the_contact_addresses_form() {
    let with = caps_ver(&TestServer::start_with(CONTACTS).await).await;
    let without = caps_ver(&TestServer::start().await).await;
    assert_ne!(with, without);
}

/// The `ver` of the caps element the server offers in its stream features.
async fn caps_ver(server: &TestServer) -> String {
    server.add_user("alice@localhost", "wonderland").await;
    let (_client, features) = RawClient::authenticated(server, "alice", "wonderland").await;
    features
        .split("<c xmlns='http://jabber.org/protocol/caps'")
        .nth(1)
        .and_then(|caps| caps.split("ver='").nth(1))
        .and_then(|v| v.split('\'').next())
        .expect("ver")
        .to_owned()
}

#[tokio::test]
async fn account_disco_info_answers_for_the_bare_jid() {
    let server = TestServer::start().await;
    let mut client = alice(&server).await;
    let reply = client
        .iq("d3", "<iq type='get' id='d3' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    assert!(reply.contains("category='account'"), "{reply}");
}

#[tokio::test]
async fn version_names_the_server_without_the_os() {
    let server = TestServer::start().await;
    let mut client = alice(&server).await;
    let reply = client
        .iq(
            "v1",
            "<iq type='get' id='v1' to='localhost'><query xmlns='jabber:iq:version'/></iq>",
        )
        .await;
    assert!(reply.contains("<name>Rempart</name>"), "{reply}");
    assert!(!reply.contains("<os>"), "{reply}");
}

#[tokio::test]
async fn ping_to_server_and_own_account_is_answered() {
    let server = TestServer::start().await;
    let mut client = alice(&server).await;
    for (id, to) in [("p1", "localhost"), ("p2", "alice@localhost")] {
        let reply = client
            .iq(
                id,
                &format!("<iq type='get' id='{id}' to='{to}'><ping xmlns='urn:xmpp:ping'/></iq>"),
            )
            .await;
        assert!(reply.contains("type='result'"), "{reply}");
    }
}

#[tokio::test]
async fn time_is_utc() {
    let server = TestServer::start().await;
    let mut client = alice(&server).await;
    let reply = client
        .iq(
            "t1",
            "<iq type='get' id='t1' to='localhost'><time xmlns='urn:xmpp:time'/></iq>",
        )
        .await;
    assert!(reply.contains("<tzo>+00:00</tzo>"), "{reply}");
    assert!(reply.contains("Z</utc>"), "{reply}");
}

#[tokio::test]
async fn idle_client_is_pinged_by_the_server() {
    let server =
        TestServer::start_with("[limits]\nidle_ping_secs = 1\nping_timeout_secs = 30\n").await;
    let mut client = alice(&server).await;
    let ping = client.expect_stanza("<ping xmlns='urn:xmpp:ping'/>").await;
    assert!(ping.contains("type='get'"), "{ping}");
    assert!(ping.contains("from='localhost'"), "{ping}");
}

#[tokio::test]
async fn client_that_ignores_pings_is_disconnected_with_connection_timeout() {
    let server =
        TestServer::start_with("[limits]\nidle_ping_secs = 1\nping_timeout_secs = 1\n").await;
    let mut client = alice(&server).await;
    let reply = client.read_to_close().await;
    assert!(reply.contains("<connection-timeout"), "{reply}");
}

#[tokio::test]
async fn legacy_session_request_is_answered() {
    let server = TestServer::start().await;
    let mut client = alice(&server).await;
    let reply = client
        .iq(
            "s1",
            "<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
        )
        .await;
    assert!(reply.contains("type='result'"), "{reply}");
}
