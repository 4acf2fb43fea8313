//! XEP-0352 client state indication on the wire: what waits while a phone is inactive.

mod common;

use common::{RawClient, TestServer};

const CSI: &str = "urn:xmpp:csi:0";

async fn pair() -> (TestServer, RawClient, RawClient) {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "phone").await;
    alice.available().await;
    let mut bob = RawClient::login(&server, "bob", "builder", "desk").await;
    bob.available().await;
    (server, alice, bob)
}

async fn presence(bob: &mut RawClient, status: &str) {
    bob.send(&format!(
        "<presence to='alice@localhost/phone' id='{status}'><status>{status}</status></presence>"
    ))
    .await;
}

#[tokio::test]
async fn client_state_indication_is_offered_after_authentication() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let (_client, features) = RawClient::authenticated(&server, "alice", "wonderland").await;
    assert!(
        features.contains(&format!("<csi xmlns='{CSI}'/>")),
        "{features}"
    );
}

#[tokio::test]
async fn an_inactive_client_gets_only_the_latest_presence_of_a_contact_with_the_next_message() {
    let (_server, mut alice, mut bob) = pair().await;
    alice.send(&format!("<inactive xmlns='{CSI}'/>")).await;
    // Alice's own ping proves the server read <inactive/> before Bob's presences arrive.
    alice
        .iq(
            "p0",
            "<iq type='get' id='p0'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    presence(&mut bob, "first").await;
    presence(&mut bob, "second").await;
    bob.send(
        "<message to='alice@localhost' type='chat' id='typing'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
    )
    .await;
    bob.send("<message to='alice@localhost' type='chat' id='m1'><body>hi</body></message>")
        .await;
    let before_message = alice.expect("id='m1'").await;
    assert!(!before_message.contains("first"), "{before_message}");
    let second = before_message
        .find("id='second'")
        .expect("the latest presence");
    let typing = before_message.find("id='typing'").expect("the chat state");
    assert!(second < typing, "{before_message}");
}

#[tokio::test]
async fn becoming_active_delivers_what_waited() {
    let (_server, mut alice, mut bob) = pair().await;
    alice.send(&format!("<inactive xmlns='{CSI}'/>")).await;
    alice
        .iq(
            "p0",
            "<iq type='get' id='p0'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    presence(&mut bob, "waiting").await;
    bob.iq(
        "p1",
        "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;
    alice.send(&format!("<active xmlns='{CSI}'/>")).await;
    let presence = alice.expect_stanza("id='waiting'").await;
    assert!(presence.contains("<status>waiting</status>"), "{presence}");
}

#[tokio::test]
async fn an_unknown_client_state_ends_the_stream() {
    let (_server, mut alice, _bob) = pair().await;
    alice.send(&format!("<sleepy xmlns='{CSI}'/>")).await;
    let closed = alice.read_to_close().await;
    assert!(closed.contains("<unsupported-stanza-type"), "{closed}");
}
