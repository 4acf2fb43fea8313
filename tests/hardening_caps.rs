//! Entity capabilities (XEP-0115) against poisoning and query floods (issue 13, items 8, 13).

mod common;

use common::{RawClient, TestServer};
use rempart_xep::caps::ver_string;
use rempart_xep::disco::{DiscoInfo, Identity};

async fn online(server: &TestServer, user: &str, password: &str, resource: &str) -> RawClient {
    let mut client = RawClient::login(server, user, password, resource).await;
    client.available().await;
    client
}

fn caps_presence(ver: &str) -> String {
    format!("<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://example.test/client' ver='{ver}'/></presence>")
}

/// Waits for the server's disco#info query about `ver` and answers it with `features`.
async fn answer_query(client: &mut RawClient, ver: &str, features: &[&str]) {
    let query = client.expect_stanza(&format!("#{ver}'")).await;
    assert!(query.contains("disco#info"), "{query}");
    let id = query
        .split("id='")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("query id");
    let features: String = features
        .iter()
        .map(|f| format!("<feature var='{}'/>", f.replace('<', "&lt;")))
        .collect();
    client
        .send(&format!(
            "<iq type='result' id='{id}' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='https://example.test/client#{ver}'><identity category='client' type='pc'/>{features}</query></iq>"
        ))
        .await;
}

#[tokio::test]
async fn an_answer_that_hashes_right_only_through_a_separator_in_a_value_is_not_cached() {
    let server = TestServer::start().await;
    server.add_user("mallory@localhost", "mallory").await;
    server.add_user("bob@localhost", "builder").await;
    // The ver of an honest client with two features ...
    let honest = DiscoInfo {
        node: None,
        identities: vec![Identity::new("client", "pc")],
        features: vec!["urn:example:a".into(), "urn:example:b".into()],
        forms: vec![],
    };
    let ver = ver_string(&honest);
    // ... which mallory claims, answering with one feature that hashes alike.
    let mut mallory = online(&server, "mallory", "mallory", "m").await;
    mallory.send(&caps_presence(&ver)).await;
    answer_query(&mut mallory, &ver, &["urn:example:a<urn:example:b"]).await;

    // Had mallory's answer been cached, bob would not be asked.
    let mut bob = online(&server, "bob", "builder", "b").await;
    bob.send(&caps_presence(&ver)).await;
    answer_query(&mut bob, &ver, &["urn:example:a", "urn:example:b"]).await;
}

#[tokio::test]
async fn repeated_presences_with_an_unverifiable_ver_cause_one_query() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    let bogus = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    alice.send(&caps_presence(bogus)).await;
    answer_query(&mut alice, bogus, &["urn:example:a"]).await;
    for _ in 0..3 {
        alice.send(&caps_presence(bogus)).await;
    }
    // A new ver is asked about; queries go out in the order the presences came in, so any
    // new query about the bogus ver would arrive before this one.
    let other = "BBBBBBBBBBBBBBBBBBBBBBBBBBB=";
    alice.send(&caps_presence(other)).await;
    answer_query(&mut alice, other, &["urn:example:b"]).await;
    assert!(
        !alice.unread().contains(&format!("#{bogus}")),
        "asked again: {}",
        alice.unread()
    );
}
