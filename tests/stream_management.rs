//! XEP-0198 stream management on the wire: acknowledgements, resumption after a dropped
//! connection, and what happens to stanzas a client never acknowledged.

mod common;

use common::{attribute, RawClient, TestServer};

const SM: &str = "urn:xmpp:sm:3";

async fn two_users() -> TestServer {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    server
}

/// Alice's phone: available, stream management enabled with resumption; returns the SM-ID.
async fn phone(server: &TestServer) -> (RawClient, String) {
    let mut alice = RawClient::login(server, "alice", "wonderland", "phone").await;
    alice.available().await;
    alice
        .send(&format!("<enable xmlns='{SM}' resume='true'/>"))
        .await;
    let enabled = alice.expect("/>").await;
    assert!(enabled.contains("<enabled"), "{enabled}");
    assert!(enabled.contains("resume='true'"), "{enabled}");
    (alice, attribute(&enabled, "id"))
}

async fn chat(from: &mut RawClient, to: &str, id: &str) {
    from.send(&format!(
        "<message to='{to}' type='chat' id='{id}'><body>{id}</body></message>"
    ))
    .await;
}

/// Resumes `previd` as Alice on a new connection, acknowledging `h` stanzas.
async fn resume(server: &TestServer, previd: &str, h: u32) -> (RawClient, String) {
    let (mut client, features) = RawClient::authenticated(server, "alice", "wonderland").await;
    assert!(
        features.contains(&format!("<sm xmlns='{SM}'")),
        "{features}"
    );
    client
        .send(&format!("<resume xmlns='{SM}' previd='{previd}' h='{h}'/>"))
        .await;
    let answer = client.expect("/>").await;
    (client, answer)
}

#[tokio::test]
async fn stream_management_is_offered_after_authentication() {
    let server = two_users().await;
    let (_client, features) = RawClient::authenticated(&server, "alice", "wonderland").await;
    assert!(
        features.contains(&format!("<sm xmlns='{SM}'/>")),
        "{features}"
    );
}

#[tokio::test]
async fn enabling_twice_is_an_unexpected_request() {
    let server = two_users().await;
    let (mut alice, _) = phone(&server).await;
    alice.send(&format!("<enable xmlns='{SM}'/>")).await;
    let failed = alice.expect("</failed>").await;
    assert!(failed.contains("<unexpected-request"), "{failed}");
}

#[tokio::test]
async fn an_ack_request_is_answered_with_the_stanzas_handled() {
    let server = two_users().await;
    let (mut alice, _) = phone(&server).await;
    alice
        .iq(
            "p1",
            "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    alice.send(&format!("<r xmlns='{SM}'/>")).await;
    let answer = alice.expect(&format!("<a xmlns='{SM}'")).await;
    let rest = alice.expect("/>").await;
    assert_eq!(attribute(&format!("{answer}{rest}"), "h"), "1");
}

#[tokio::test]
async fn stanzas_for_a_dropped_phone_arrive_once_and_in_order_after_resuming() {
    let server = two_users().await;
    let mut bob = RawClient::login(&server, "bob", "builder", "desk").await;
    bob.available().await;
    let (mut alice, previd) = phone(&server).await;
    chat(&mut bob, "alice@localhost", "m1").await;
    alice.expect_stanza("id='m1'").await;
    chat(&mut bob, "alice@localhost", "m2").await;
    alice.expect_stanza("id='m2'").await;
    // The phone handled m1 only, then its network went away without closing the stream.
    drop(alice);
    chat(&mut bob, "alice@localhost/phone", "m3").await;
    chat(&mut bob, "alice@localhost", "m4").await;
    // The ping proves the server routed m3 and m4 before the phone comes back.
    bob.iq(
        "p1",
        "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;

    let (mut alice, resumed) = resume(&server, &previd, 1).await;
    assert!(resumed.contains("<resumed"), "{resumed}");
    assert_eq!(attribute(&resumed, "previd"), previd);
    let mut order = Vec::new();
    for _ in 0..3 {
        let stanza = alice.expect_stanza("<body>").await;
        order.push(attribute(&stanza, "id"));
    }
    assert_eq!(order, ["m2", "m3", "m4"]);
    alice.send(&format!("<a xmlns='{SM}' h='4'/>")).await;
    alice
        .iq(
            "p2",
            "<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    assert!(!alice.unread().contains("<body>"), "{}", alice.unread());
}

#[tokio::test]
async fn a_resumed_session_keeps_its_resource_and_presence() {
    let server = two_users().await;
    let mut bob = RawClient::login(&server, "bob", "builder", "desk").await;
    bob.available().await;
    let (alice, previd) = phone(&server).await;
    drop(alice);
    let (mut alice, resumed) = resume(&server, &previd, 0).await;
    assert!(resumed.contains("<resumed"), "{resumed}");
    chat(&mut bob, "alice@localhost/phone", "after").await;
    let stanza = alice.expect_stanza("id='after'").await;
    assert!(stanza.contains("to='alice@localhost/phone'"), "{stanza}");
}

#[tokio::test]
async fn an_unknown_session_cannot_be_resumed_and_the_client_may_still_bind() {
    let server = two_users().await;
    let (mut client, answer) = resume(&server, "no-such-session", 0).await;
    let answer = if answer.contains("</failed>") {
        answer
    } else {
        format!("{answer}{}", client.expect("</failed>").await)
    };
    assert!(answer.contains("<failed"), "{answer}");
    assert!(answer.contains("<item-not-found"), "{answer}");
    let jid = client.bind(Some("fresh")).await;
    assert_eq!(jid, "alice@localhost/fresh");
}

#[tokio::test]
async fn another_account_cannot_resume_a_session() {
    let server = two_users().await;
    let (alice, previd) = phone(&server).await;
    drop(alice);
    let (mut bob, _) = RawClient::authenticated(&server, "bob", "builder").await;
    bob.send(&format!("<resume xmlns='{SM}' previd='{previd}' h='0'/>"))
        .await;
    let failed = bob.expect("</failed>").await;
    assert!(failed.contains("<item-not-found"), "{failed}");
    let (_alice, resumed) = resume(&server, &previd, 0).await;
    assert!(resumed.contains("<resumed"), "{resumed}");
}

#[tokio::test]
async fn a_late_resume_learns_how_many_stanzas_the_ended_session_handled() {
    let server = two_users().await;
    let (mut alice, previd) = phone(&server).await;
    alice
        .iq(
            "p1",
            "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    alice
        .iq(
            "p2",
            "<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    alice.send("</stream:stream>").await;
    alice.read_to_close().await;
    let (mut client, answer) = resume(&server, &previd, 0).await;
    let answer = if answer.contains("</failed>") {
        answer
    } else {
        format!("{answer}{}", client.expect("</failed>").await)
    };
    assert!(answer.contains("<failed"), "{answer}");
    assert_eq!(attribute(&answer, "h"), "2");
}

#[tokio::test]
async fn acknowledging_more_than_was_sent_ends_the_stream() {
    let server = two_users().await;
    let (mut alice, _) = phone(&server).await;
    alice.send(&format!("<a xmlns='{SM}' h='5'/>")).await;
    let closed = alice.read_to_close().await;
    assert!(closed.contains("<undefined-condition"), "{closed}");
    assert!(closed.contains("<handled-count-too-high"), "{closed}");
    assert!(closed.contains("h='5'"), "{closed}");
}

#[tokio::test]
async fn unacknowledged_messages_of_a_session_not_resumed_go_to_offline_storage() {
    let server = TestServer::start_with("[stream_management]\nresume_timeout_secs = 0\n").await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut bob = RawClient::login(&server, "bob", "builder", "desk").await;
    bob.available().await;
    let (mut alice, _) = phone(&server).await;
    chat(&mut bob, "alice@localhost", "kept").await;
    alice.expect_stanza("id='kept'").await;
    drop(alice);
    let mut laptop = RawClient::login(&server, "alice", "wonderland", "laptop").await;
    laptop.available().await;
    let stanza = laptop.expect_stanza("id='kept'").await;
    assert!(stanza.contains("<body>kept</body>"), "{stanza}");
}

#[tokio::test]
async fn enabling_without_resume_gives_no_session_id() {
    let server = two_users().await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "phone").await;
    alice.available().await;
    alice.send(&format!("<enable xmlns='{SM}'/>")).await;
    let enabled = alice.expect("/>").await;
    assert!(!enabled.contains("resume="), "{enabled}");
    assert!(!enabled.contains(" id="), "{enabled}");
}

#[tokio::test]
async fn a_client_that_syncs_from_the_archive_does_not_get_its_unacknowledged_messages_offline_again(
) {
    let server = two_users().await;
    let mut bob = RawClient::login(&server, "bob", "builder", "desk").await;
    bob.available().await;
    let mut phone = RawClient::login(&server, "alice", "wonderland", "phone").await;
    phone.available().await;
    phone.send(&format!("<enable xmlns='{SM}'/>")).await;
    phone.expect("/>").await;
    let fin = phone
        .iq(
            "q1",
            "<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:2'/></iq>",
        )
        .await;
    assert!(fin.contains("type='result'"), "{fin}");
    chat(&mut bob, "alice@localhost", "archived").await;
    let delivered = phone.expect_stanza("id='archived'").await;
    assert!(delivered.contains("<stanza-id"), "{delivered}");
    // The phone closes without acknowledging the message.
    phone.send("</stream:stream>").await;
    phone.read_to_close().await;

    let mut laptop = RawClient::login(&server, "alice", "wonderland", "laptop").await;
    laptop.available().await;
    laptop
        .iq(
            "p1",
            "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    assert!(
        !laptop.unread().contains("id='archived'"),
        "{}",
        laptop.unread()
    );
    laptop
        .iq(
            "q2",
            "<iq type='set' id='q2'><query xmlns='urn:xmpp:mam:2'/></iq>",
        )
        .await;
    assert!(
        laptop.unread().contains("<body>archived</body>"),
        "{}",
        laptop.unread()
    );
}

#[tokio::test]
async fn unacknowledged_messages_of_a_client_that_never_read_the_archive_are_stored_offline() {
    let server = two_users().await;
    let mut bob = RawClient::login(&server, "bob", "builder", "desk").await;
    bob.available().await;
    let mut phone = RawClient::login(&server, "alice", "wonderland", "phone").await;
    phone.available().await;
    phone.send(&format!("<enable xmlns='{SM}'/>")).await;
    phone.expect("/>").await;
    chat(&mut bob, "alice@localhost", "rerouted").await;
    phone.expect_stanza("id='rerouted'").await;
    phone.send("</stream:stream>").await;
    phone.read_to_close().await;
    let mut laptop = RawClient::login(&server, "alice", "wonderland", "laptop").await;
    laptop.available().await;
    let stored = laptop.expect_stanza("id='rerouted'").await;
    assert!(stored.contains("<body>rerouted</body>"), "{stored}");
}
