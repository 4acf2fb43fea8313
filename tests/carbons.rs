//! XEP-0280 message carbons on the wire: Alice on two resources (desk and phone) and Bob.

mod common;

use common::{RawClient, TestServer};

const CARBONS: &str = "urn:xmpp:carbons:2";

/// Alice's desk and phone with carbons enabled, and Bob; all available.
async fn alice_twice_and_bob() -> (TestServer, RawClient, RawClient, RawClient) {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut desk = RawClient::online(&server, "alice", "wonderland", "desk").await;
    let mut phone = RawClient::online(&server, "alice", "wonderland", "phone").await;
    enable(&mut desk).await;
    enable(&mut phone).await;
    let bob = RawClient::online(&server, "bob", "builder", "home").await;
    (server, desk, phone, bob)
}

async fn enable(client: &mut RawClient) {
    let reply = client
        .iq(
            "on",
            &format!("<iq type='set' id='on'><enable xmlns='{CARBONS}'/></iq>"),
        )
        .await;
    assert!(reply.contains("type='result'"), "{reply}");
}

/// A ping round trip: everything the server sent this client before it has arrived.
async fn sync(client: &mut RawClient, id: &str) {
    let reply = client
        .iq(
            id,
            &format!("<iq type='get' id='{id}'><ping xmlns='urn:xmpp:ping'/></iq>"),
        )
        .await;
    assert!(reply.contains("type='result'"), "{reply}");
}

/// Proves that no carbon reached `client`: the `sender`'s stanzas were all handled (its
/// session works in order), then the client's own round trip drained what was queued for it.
async fn assert_no_carbon(sender: &mut RawClient, client: &mut RawClient) {
    sync(sender, "sender-sync").await;
    sync(client, "client-sync").await;
    assert!(!client.unread().contains(CARBONS), "{}", client.unread());
}

#[tokio::test]
async fn the_server_advertises_carbons_and_the_copy_rules() {
    let (_server, mut desk, _phone, _bob) = alice_twice_and_bob().await;
    let info = desk
        .iq(
            "d1",
            "<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        )
        .await;
    assert!(info.contains(&format!("var='{CARBONS}'")), "{info}");
    assert!(info.contains("var='urn:xmpp:carbons:rules:0'"), "{info}");
}

#[tokio::test]
async fn enabling_or_disabling_twice_is_no_error() {
    let (_server, mut desk, _phone, _bob) = alice_twice_and_bob().await;
    enable(&mut desk).await;
    for id in ["off1", "off2"] {
        let reply = desk
            .iq(
                id,
                &format!("<iq type='set' id='{id}'><disable xmlns='{CARBONS}'/></iq>"),
            )
            .await;
        assert!(reply.contains("type='result'"), "{reply}");
    }
}

#[tokio::test]
async fn another_user_cannot_enable_carbons_for_an_account() {
    let (_server, _desk, _phone, mut bob) = alice_twice_and_bob().await;
    let reply = bob
        .iq(
            "x1",
            &format!(
                "<iq type='set' id='x1' to='alice@localhost'><enable xmlns='{CARBONS}'/></iq>"
            ),
        )
        .await;
    assert!(reply.contains("type='error'"), "{reply}");
    assert!(reply.contains("<not-allowed"), "{reply}");
}

#[tokio::test]
async fn an_enable_get_is_a_bad_request() {
    let (_server, mut desk, _phone, _bob) = alice_twice_and_bob().await;
    let reply = desk
        .iq(
            "g1",
            &format!("<iq type='get' id='g1'><enable xmlns='{CARBONS}'/></iq>"),
        )
        .await;
    assert!(reply.contains("<bad-request"), "{reply}");
}

#[tokio::test]
async fn a_message_to_one_resource_is_copied_to_the_other_as_received() {
    let (_server, mut desk, mut phone, mut bob) = alice_twice_and_bob().await;
    bob.send(
        "<message to='alice@localhost/desk' type='chat' id='m1'><body>hello desk</body></message>",
    )
    .await;
    let original = desk.expect_stanza("id='m1'").await;
    assert!(!original.contains(CARBONS), "{original}");
    let copy = phone.expect_stanza("<received").await;
    assert!(copy.contains("from='alice@localhost'"), "{copy}");
    assert!(copy.contains("to='alice@localhost/phone'"), "{copy}");
    assert!(copy.contains("type='chat'"), "{copy}");
    assert!(
        copy.contains("<forwarded xmlns='urn:xmpp:forward:0'>"),
        "{copy}"
    );
    assert!(copy.contains("from='bob@localhost/home'"), "{copy}");
    assert!(copy.contains("<body>hello desk</body>"), "{copy}");
    assert_no_carbon(&mut bob, &mut desk).await;
}

#[tokio::test]
async fn a_message_sent_from_one_resource_is_copied_to_the_others_as_sent() {
    let (_server, mut desk, mut phone, mut bob) = alice_twice_and_bob().await;
    desk.send(
        "<message to='bob@localhost' type='chat' id='m2'><body>from my desk</body></message>",
    )
    .await;
    let delivered = bob.expect_stanza("id='m2'").await;
    assert!(delivered.contains("from my desk"), "{delivered}");
    let copy = phone.expect_stanza("<sent").await;
    assert!(copy.contains("from='alice@localhost'"), "{copy}");
    assert!(copy.contains("to='alice@localhost/phone'"), "{copy}");
    assert!(copy.contains("from='alice@localhost/desk'"), "{copy}");
    assert!(copy.contains("to='bob@localhost'"), "{copy}");
    sync(&mut desk, "s1").await;
    assert!(!desk.unread().contains(CARBONS), "{}", desk.unread());
}

#[tokio::test]
async fn a_resource_that_did_not_enable_carbons_gets_no_copies() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut desk = RawClient::online(&server, "alice", "wonderland", "desk").await;
    let mut phone = RawClient::online(&server, "alice", "wonderland", "phone").await;
    let mut bob = RawClient::online(&server, "bob", "builder", "home").await;
    bob.send("<message to='alice@localhost/desk' type='chat' id='m3'><body>hi</body></message>")
        .await;
    desk.expect_stanza("id='m3'").await;
    desk.send("<message to='bob@localhost' type='chat' id='m4'><body>hi</body></message>")
        .await;
    bob.expect_stanza("id='m4'").await;
    assert_no_carbon(&mut desk, &mut phone).await;
}

#[tokio::test]
async fn disabling_carbons_stops_the_copies() {
    let (_server, mut desk, mut phone, mut bob) = alice_twice_and_bob().await;
    let reply = phone
        .iq(
            "off",
            &format!("<iq type='set' id='off'><disable xmlns='{CARBONS}'/></iq>"),
        )
        .await;
    assert!(reply.contains("type='result'"), "{reply}");
    bob.send("<message to='alice@localhost/desk' type='chat' id='m5'><body>hi</body></message>")
        .await;
    desk.expect_stanza("id='m5'").await;
    assert_no_carbon(&mut bob, &mut phone).await;
}

#[tokio::test]
async fn a_message_to_the_bare_jid_reaching_every_resource_is_not_copied() {
    let (_server, mut desk, mut phone, mut bob) = alice_twice_and_bob().await;
    bob.send("<message to='alice@localhost' type='chat' id='m6'><body>both</body></message>")
        .await;
    desk.expect_stanza("id='m6'").await;
    phone.expect_stanza("id='m6'").await;
    assert_no_carbon(&mut bob, &mut phone).await;
    sync(&mut desk, "d-sync").await;
    assert!(!desk.unread().contains(CARBONS), "{}", desk.unread());
}

#[tokio::test]
async fn a_private_message_is_delivered_but_not_copied() {
    let (_server, mut desk, mut phone, mut bob) = alice_twice_and_bob().await;
    desk.send(&format!(
        "<message to='bob@localhost/home' type='chat' id='p1'><body>secret</body><private xmlns='{CARBONS}'/><no-copy xmlns='urn:xmpp:hints'/></message>"
    ))
    .await;
    let delivered = bob.expect_stanza("id='p1'").await;
    assert!(delivered.contains("<body>secret</body>"), "{delivered}");
    assert_no_carbon(&mut desk, &mut phone).await;
    bob.send(&format!(
        "<message to='alice@localhost/desk' type='chat' id='p2'><body>secret too</body><private xmlns='{CARBONS}'/></message>"
    ))
    .await;
    desk.expect_stanza("id='p2'").await;
    assert_no_carbon(&mut bob, &mut phone).await;
}

#[tokio::test]
async fn a_no_copy_hint_alone_prevents_copies() {
    let (_server, mut desk, mut phone, mut bob) = alice_twice_and_bob().await;
    desk.send("<message to='bob@localhost' type='chat' id='n1'><body>once</body><no-copy xmlns='urn:xmpp:hints'/></message>")
        .await;
    bob.expect_stanza("id='n1'").await;
    assert_no_carbon(&mut desk, &mut phone).await;
}

#[tokio::test]
async fn headline_groupchat_and_bodiless_normal_messages_are_not_copied() {
    let (_server, mut desk, mut phone, mut bob) = alice_twice_and_bob().await;
    desk.send("<message to='bob@localhost' type='headline' id='h1'><body>news</body></message>")
        .await;
    bob.expect_stanza("id='h1'").await;
    desk.send("<message to='bob@localhost' id='n2'><x xmlns='urn:example:data'/></message>")
        .await;
    bob.expect_stanza("id='n2'").await;
    desk.send("<message to='bob@localhost' type='groupchat' id='g1'><body>all</body></message>")
        .await;
    desk.expect_stanza("id='g1'").await;
    assert_no_carbon(&mut desk, &mut phone).await;
}

#[tokio::test]
async fn a_chat_state_in_a_normal_message_is_copied() {
    let (_server, mut desk, mut phone, mut bob) = alice_twice_and_bob().await;
    desk.send("<message to='bob@localhost' id='cs1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
        .await;
    bob.expect_stanza("id='cs1'").await;
    let copy = phone.expect_stanza("<sent").await;
    assert!(copy.contains("id='cs1'"), "{copy}");
}

#[tokio::test]
async fn an_error_is_copied_only_when_it_answers_a_copied_message() {
    let (_server, mut desk, mut phone, mut bob) = alice_twice_and_bob().await;
    desk.send("<message to='bob@localhost/home' type='chat' id='e1'><body>are you there?</body></message>")
        .await;
    bob.expect_stanza("id='e1'").await;
    phone.expect_stanza("<sent").await;
    bob.send("<message to='alice@localhost/desk' type='error' id='unrelated'><error type='cancel'><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
        .await;
    desk.expect_stanza("id='unrelated'").await;
    assert_no_carbon(&mut bob, &mut phone).await;
    bob.send("<message to='alice@localhost/desk' type='error' id='e1'><error type='cancel'><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
        .await;
    desk.expect_stanza("id='e1'").await;
    let copy = phone.expect_stanza("<received").await;
    assert!(copy.contains("type='error'"), "{copy}");
    assert!(copy.contains("id='e1'"), "{copy}");
}

#[tokio::test]
async fn a_forged_carbon_from_another_user_is_stripped_and_not_copied_as_one() {
    let (_server, mut desk, mut phone, mut bob) = alice_twice_and_bob().await;
    bob.send(&format!(
        "<message to='alice@localhost/desk' type='chat' id='f1'><body>outer</body>\
         <received xmlns='{CARBONS}'><forwarded xmlns='urn:xmpp:forward:0'>\
         <message xmlns='jabber:client' from='carol@localhost/x' to='alice@localhost' type='chat'><body>forged words</body></message>\
         </forwarded></received></message>"
    ))
    .await;
    let delivered = desk.expect_stanza("id='f1'").await;
    assert!(delivered.contains("<body>outer</body>"), "{delivered}");
    assert!(!delivered.contains(CARBONS), "{delivered}");
    assert!(!delivered.contains("forged words"), "{delivered}");
    let copy = phone.expect_stanza("<received").await;
    assert_eq!(copy.matches("<received").count(), 1, "{copy}");
    assert!(!copy.contains("forged words"), "{copy}");
}

#[tokio::test]
async fn a_carbon_a_client_sends_is_never_copied_and_reaches_others_stripped() {
    let (_server, mut desk, mut phone, mut bob) = alice_twice_and_bob().await;
    desk.send(&format!(
        "<message to='bob@localhost/home' type='chat' id='f2'><body>wrapped</body>\
         <sent xmlns='{CARBONS}'><forwarded xmlns='urn:xmpp:forward:0'>\
         <message xmlns='jabber:client' from='bob@localhost/home' to='carol@localhost' type='chat'><body>never said</body></message>\
         </forwarded></sent></message>"
    ))
    .await;
    let delivered = bob.expect_stanza("id='f2'").await;
    assert!(!delivered.contains(CARBONS), "{delivered}");
    assert!(!delivered.contains("never said"), "{delivered}");
    assert_no_carbon(&mut desk, &mut phone).await;
}
