//! XEP-0191 blocking command on the wire: Alice on two resources (desk and phone), Bob, and
//! Carol on the server's other domain.

mod common;

use common::{RawClient, TestServer};

const BLOCKING: &str = "urn:xmpp:blocking";

async fn users(server: &TestServer) {
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
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

/// Proves `needle` never reached `client`: the `sender` session handled all it sent (it
/// works in order), then the client's own round trip drained what was queued for it.
async fn assert_not_received(sender: &mut RawClient, client: &mut RawClient, needle: &str) {
    sync(sender, "sender-sync").await;
    sync(client, "client-sync").await;
    assert!(!client.unread().contains(needle), "{}", client.unread());
}

async fn fetch_blocklist(client: &mut RawClient) -> String {
    let reply = client
        .iq(
            "bl",
            &format!("<iq type='get' id='bl'><blocklist xmlns='{BLOCKING}'/></iq>"),
        )
        .await;
    assert!(reply.contains("type='result'"), "{reply}");
    reply
}

async fn block(client: &mut RawClient, jid: &str) {
    let reply = client
        .iq(
            "b1",
            &format!(
                "<iq type='set' id='b1'><block xmlns='{BLOCKING}'><item jid='{jid}'/></block></iq>"
            ),
        )
        .await;
    assert!(reply.contains("type='result'"), "{reply}");
}

async fn unblock(client: &mut RawClient, items: &str) {
    let reply = client
        .iq(
            "u1",
            &format!("<iq type='set' id='u1'><unblock xmlns='{BLOCKING}'>{items}</unblock></iq>"),
        )
        .await;
    assert!(reply.contains("type='result'"), "{reply}");
}

/// `from` asks `to` for a subscription and `to` approves it.
async fn subscribe(from: &mut RawClient, to: &mut RawClient, from_bare: &str, to_bare: &str) {
    from.send(&format!("<presence to='{to_bare}' type='subscribe'/>"))
        .await;
    to.expect_stanza("type='subscribe'").await;
    to.send(&format!("<presence to='{from_bare}' type='subscribed'/>"))
        .await;
    from.expect_stanza("type='subscribed'").await;
}

/// Alice and Bob online, each subscribed to the other's presence.
async fn contacts(server: &TestServer) -> (RawClient, RawClient) {
    users(server).await;
    let mut alice = RawClient::online(server, "alice", "wonderland", "desk").await;
    let mut bob = RawClient::online(server, "bob", "builder", "home").await;
    subscribe(&mut alice, &mut bob, "alice@localhost", "bob@localhost").await;
    subscribe(&mut bob, &mut alice, "bob@localhost", "alice@localhost").await;
    alice.expect_stanza("from='bob@localhost/home'").await;
    bob.expect_stanza("from='alice@localhost/desk'").await;
    (alice, bob)
}

#[tokio::test]
async fn the_server_advertises_blocking() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "desk").await;
    let info = alice
        .iq(
            "d1",
            "<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        )
        .await;
    assert!(info.contains(&format!("var='{BLOCKING}'")), "{info}");
}

#[tokio::test]
async fn the_blocklist_starts_empty_and_lists_what_was_blocked() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "desk").await;
    let empty = fetch_blocklist(&mut alice).await;
    assert!(
        empty.contains(&format!("<blocklist xmlns='{BLOCKING}'/>")),
        "{empty}"
    );
    block(&mut alice, "bob@localhost").await;
    block(&mut alice, "evil.example").await;
    let listed = fetch_blocklist(&mut alice).await;
    assert!(listed.contains("<item jid='bob@localhost'/>"), "{listed}");
    assert!(listed.contains("<item jid='evil.example'/>"), "{listed}");
}

#[tokio::test]
async fn the_blocklist_outlives_the_session() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "desk").await;
    block(&mut alice, "bob@localhost").await;
    alice.send("</stream:stream>").await;
    alice.read_to_close().await;
    let mut again = RawClient::login(&server, "alice", "wonderland", "desk").await;
    let listed = fetch_blocklist(&mut again).await;
    assert!(listed.contains("<item jid='bob@localhost'/>"), "{listed}");
}

#[tokio::test]
async fn block_and_unblock_are_pushed_to_resources_that_fetched_the_blocklist_only() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut desk = RawClient::login(&server, "alice", "wonderland", "desk").await;
    let mut phone = RawClient::login(&server, "alice", "wonderland", "phone").await;
    fetch_blocklist(&mut desk).await;
    block(&mut phone, "bob@localhost").await;
    let push = desk.expect_stanza("<block").await;
    assert!(push.contains("type='set'"), "{push}");
    assert!(push.contains("to='alice@localhost/desk'"), "{push}");
    assert!(push.contains("<item jid='bob@localhost'/>"), "{push}");
    unblock(&mut phone, "<item jid='bob@localhost'/>").await;
    let push = desk.expect_stanza("<unblock").await;
    assert!(push.contains("<item jid='bob@localhost'/>"), "{push}");
    sync(&mut phone, "phone-sync").await;
    assert!(!phone.unread().contains(BLOCKING), "{}", phone.unread());
}

#[tokio::test]
async fn unblocking_everyone_empties_the_list_and_pushes_an_empty_unblock() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut desk = RawClient::login(&server, "alice", "wonderland", "desk").await;
    block(&mut desk, "bob@localhost").await;
    block(&mut desk, "evil.example").await;
    fetch_blocklist(&mut desk).await;
    unblock(&mut desk, "").await;
    let push = desk.expect_stanza("<unblock").await;
    assert!(
        push.contains(&format!("<unblock xmlns='{BLOCKING}'/>")),
        "{push}"
    );
    let empty = fetch_blocklist(&mut desk).await;
    assert!(!empty.contains("<item"), "{empty}");
}

#[tokio::test]
async fn a_block_without_items_is_a_bad_request() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "desk").await;
    let reply = alice
        .iq(
            "e1",
            &format!("<iq type='set' id='e1'><block xmlns='{BLOCKING}'/></iq>"),
        )
        .await;
    assert!(reply.contains("type='error'"), "{reply}");
    assert!(reply.contains("<bad-request"), "{reply}");
}

#[tokio::test]
async fn a_malformed_jid_is_refused_as_jid_malformed() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "desk").await;
    let reply = alice
        .iq(
            "e2",
            &format!(
                "<iq type='set' id='e2'><block xmlns='{BLOCKING}'><item jid='@'/></block></iq>"
            ),
        )
        .await;
    assert!(reply.contains("<jid-malformed"), "{reply}");
    let listed = fetch_blocklist(&mut alice).await;
    assert!(!listed.contains("<item"), "{listed}");
}

#[tokio::test]
async fn another_user_cannot_read_a_blocklist() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut bob = RawClient::login(&server, "bob", "builder", "home").await;
    let reply = bob
        .iq(
            "e3",
            &format!(
                "<iq type='get' id='e3' to='alice@localhost'><blocklist xmlns='{BLOCKING}'/></iq>"
            ),
        )
        .await;
    assert!(reply.contains("type='error'"), "{reply}");
    assert!(!reply.contains("<item"), "{reply}");
}

#[tokio::test]
async fn a_block_past_the_limit_is_refused() {
    let server = TestServer::start_with("[modules.blocking]\nmax_items = 2\n").await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "desk").await;
    block(&mut alice, "one.example").await;
    let reply = alice
        .iq(
            "e4",
            &format!("<iq type='set' id='e4'><block xmlns='{BLOCKING}'><item jid='two.example'/><item jid='three.example'/></block></iq>"),
        )
        .await;
    assert!(reply.contains("<resource-constraint"), "{reply}");
    let listed = fetch_blocklist(&mut alice).await;
    assert!(!listed.contains("two.example"), "{listed}");
}

#[tokio::test]
async fn a_message_to_a_blocked_jid_bounces_as_not_acceptable_blocked() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::online(&server, "alice", "wonderland", "desk").await;
    let mut bob = RawClient::online(&server, "bob", "builder", "home").await;
    block(&mut alice, "bob@localhost").await;
    alice
        .send("<message to='bob@localhost' type='chat' id='m1'><body>psst</body></message>")
        .await;
    let error = alice.expect_stanza("id='m1'").await;
    assert!(error.contains("type='error'"), "{error}");
    assert!(error.contains("<not-acceptable"), "{error}");
    assert!(
        error.contains("<blocked xmlns='urn:xmpp:blocking:errors'/>"),
        "{error}"
    );
    assert_not_received(&mut alice, &mut bob, "psst").await;
}

#[tokio::test]
async fn an_iq_to_a_blocked_jid_bounces_as_not_acceptable_blocked() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::online(&server, "alice", "wonderland", "desk").await;
    let mut bob = RawClient::online(&server, "bob", "builder", "home").await;
    block(&mut alice, "bob@localhost").await;
    let error = alice
        .iq(
            "q1",
            "<iq type='get' id='q1' to='bob@localhost/home'><query xmlns='jabber:iq:version'/></iq>",
        )
        .await;
    assert!(error.contains("<not-acceptable"), "{error}");
    assert!(
        error.contains("<blocked xmlns='urn:xmpp:blocking:errors'/>"),
        "{error}"
    );
    assert_not_received(&mut alice, &mut bob, "id='q1'").await;
}

#[tokio::test]
async fn a_message_from_a_blocked_jid_is_refused_as_service_unavailable() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::online(&server, "alice", "wonderland", "desk").await;
    let mut bob = RawClient::online(&server, "bob", "builder", "home").await;
    block(&mut alice, "bob@localhost").await;
    bob.send("<message to='alice@localhost' type='chat' id='m2'><body>hello?</body></message>")
        .await;
    let error = bob.expect_stanza("id='m2'").await;
    assert!(error.contains("type='error'"), "{error}");
    assert!(error.contains("<service-unavailable"), "{error}");
    assert!(!error.contains("blocked"), "{error}");
    assert_not_received(&mut bob, &mut alice, "hello?").await;
}

#[tokio::test]
async fn an_iq_from_a_blocked_jid_is_refused_as_service_unavailable() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::online(&server, "alice", "wonderland", "desk").await;
    let mut bob = RawClient::online(&server, "bob", "builder", "home").await;
    block(&mut alice, "bob@localhost").await;
    let error = bob
        .iq(
            "q2",
            "<iq type='get' id='q2' to='alice@localhost/desk'><query xmlns='jabber:iq:version'/></iq>",
        )
        .await;
    assert!(error.contains("<service-unavailable"), "{error}");
    assert_not_received(&mut bob, &mut alice, "id='q2'").await;
}

#[tokio::test]
async fn a_domain_item_blocks_everyone_on_that_domain() {
    let server = TestServer::start().await;
    users(&server).await;
    server.add_user("carol@example.test", "secret").await;
    let mut alice = RawClient::online(&server, "alice", "wonderland", "desk").await;
    let mut carol = RawClient::login_at(&server, "example.test", "carol", "secret", "laptop").await;
    let mut bob = RawClient::online(&server, "bob", "builder", "home").await;
    block(&mut alice, "example.test").await;
    carol
        .send("<message to='alice@localhost' type='chat' id='m3'><body>from carol</body></message>")
        .await;
    let error = carol.expect_stanza("id='m3'").await;
    assert!(error.contains("<service-unavailable"), "{error}");
    bob.send("<message to='alice@localhost' type='chat' id='m4'><body>from bob</body></message>")
        .await;
    let delivered = alice.expect_stanza("id='m4'").await;
    assert!(delivered.contains("from bob"), "{delivered}");
    assert!(!alice.unread().contains("from carol"), "{}", alice.unread());
}

#[tokio::test]
async fn blocking_a_contact_sends_it_unavailable_and_stops_presence_both_ways() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = contacts(&server).await;
    block(&mut alice, "bob@localhost").await;
    let gone = bob.expect_stanza("type='unavailable'").await;
    assert!(gone.contains("from='alice@localhost/desk'"), "{gone}");
    alice.send("<presence><show>away</show></presence>").await;
    alice.expect_stanza("<show>away</show>").await;
    assert_not_received(&mut alice, &mut bob, "<show>away</show>").await;
    bob.send("<presence><show>dnd</show></presence>").await;
    bob.expect_stanza("<show>dnd</show>").await;
    assert_not_received(&mut bob, &mut alice, "<show>dnd</show>").await;
}

#[tokio::test]
async fn unblocking_a_contact_sends_current_presence_and_lets_messages_through() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = contacts(&server).await;
    block(&mut alice, "bob@localhost").await;
    bob.expect_stanza("type='unavailable'").await;
    unblock(&mut alice, "<item jid='bob@localhost'/>").await;
    let back = bob.expect_stanza("from='alice@localhost/desk'").await;
    assert!(back.contains("<presence"), "{back}");
    assert!(!back.contains("type="), "{back}");
    bob.send(
        "<message to='alice@localhost' type='chat' id='m5'><body>welcome back</body></message>",
    )
    .await;
    let delivered = alice.expect_stanza("id='m5'").await;
    assert!(delivered.contains("welcome back"), "{delivered}");
}

#[tokio::test]
async fn a_subscription_request_from_a_blocked_jid_is_dropped_silently() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::online(&server, "alice", "wonderland", "desk").await;
    let mut bob = RawClient::online(&server, "bob", "builder", "home").await;
    block(&mut alice, "bob@localhost").await;
    bob.send("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    bob.expect_stanza("ask='subscribe'").await;
    assert_not_received(&mut bob, &mut alice, "type='subscribe'").await;
    sync(&mut bob, "bob-again").await;
    assert!(!bob.unread().contains("type='error'"), "{}", bob.unread());
}
