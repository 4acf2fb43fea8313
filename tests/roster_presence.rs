//! RFC 6121 rosters and presence as two raw clients see them.

mod common;

use common::{RawClient, TestServer};

async fn two_users(server: &TestServer) -> (RawClient, RawClient) {
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let alice = RawClient::online(server, "alice", "wonderland", "a").await;
    let bob = RawClient::online(server, "bob", "builder", "b").await;
    (alice, bob)
}

/// alice subscribes to bob and bob approves; returns when alice sees bob's presence.
async fn subscribe(alice: &mut RawClient, bob: &mut RawClient, alice_bare: &str, bob_bare: &str) {
    alice
        .send(&format!("<presence to='{bob_bare}' type='subscribe'/>"))
        .await;
    let push = alice.expect_stanza("ask='subscribe'").await;
    assert!(push.contains(&format!("jid='{bob_bare}'")), "{push}");
    let request = bob.expect_stanza("type='subscribe'").await;
    assert!(
        request.contains(&format!("from='{alice_bare}'")),
        "{request}"
    );
    bob.send(&format!("<presence to='{alice_bare}' type='subscribed'/>"))
        .await;
    let approved = alice.expect_stanza("type='subscribed'").await;
    assert!(
        approved.contains(&format!("from='{bob_bare}'")),
        "{approved}"
    );
}

#[tokio::test]
async fn empty_roster_has_a_version() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    let reply = alice
        .iq(
            "r1",
            "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
        )
        .await;
    assert!(reply.contains("type='result'"), "{reply}");
    assert!(reply.contains("ver='"), "{reply}");
}

#[tokio::test]
async fn roster_set_is_pushed_and_returned_with_versioning() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    let first = alice
        .iq(
            "r1",
            "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
        )
        .await;
    let old_ver = first
        .split("ver='")
        .nth(1)
        .and_then(|v| v.split('\'').next())
        .unwrap()
        .to_owned();
    alice
        .send("<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='juliet@example.test' name='Juliet'><group>Friends</group></item></query></iq>")
        .await;
    let push = alice.expect("</iq>").await;
    assert!(push.contains("type='set'"), "{push}");
    assert!(push.contains("jid='juliet@example.test'"), "{push}");
    assert!(push.contains("subscription='none'"), "{push}");
    let result = alice.expect_stanza("id='s1'").await;
    assert!(result.contains("type='result'"), "{result}");
    let unchanged = alice
        .iq(
            "r2",
            "<iq type='get' id='r2'><query xmlns='jabber:iq:roster' ver='nope'/></iq>",
        )
        .await;
    assert!(unchanged.contains("<group>Friends</group>"), "{unchanged}");
    assert!(
        !unchanged.contains(&format!("ver='{old_ver}'")),
        "version must change: {unchanged}"
    );
    let new_ver = unchanged
        .split("ver='")
        .nth(1)
        .and_then(|v| v.split('\'').next())
        .unwrap()
        .to_owned();
    let empty = alice
        .iq(
            "r3",
            &format!(
                "<iq type='get' id='r3'><query xmlns='jabber:iq:roster' ver='{new_ver}'/></iq>"
            ),
        )
        .await;
    assert!(
        !empty.contains("<item"),
        "same version means no items: {empty}"
    );
}

#[tokio::test]
async fn roster_set_with_two_items_is_a_bad_request() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    let reply = alice
        .iq("s2", "<iq type='set' id='s2'><query xmlns='jabber:iq:roster'><item jid='a@example.test'/><item jid='b@example.test'/></query></iq>")
        .await;
    assert!(reply.contains("<bad-request"), "{reply}");
}

#[tokio::test]
async fn removing_an_unknown_item_is_item_not_found() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    let reply = alice
        .iq("s3", "<iq type='set' id='s3'><query xmlns='jabber:iq:roster'><item jid='x@example.test' subscription='remove'/></query></iq>")
        .await;
    assert!(reply.contains("<item-not-found"), "{reply}");
}

#[tokio::test]
async fn mutual_subscription_ends_in_both_and_presence_flows() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&server).await;
    subscribe(&mut alice, &mut bob, "alice@localhost", "bob@localhost").await;
    let presence = alice.expect_stanza("from='bob@localhost/b'").await;
    assert!(presence.contains("<presence"), "{presence}");
    subscribe(&mut bob, &mut alice, "bob@localhost", "alice@localhost").await;
    let roster = alice
        .iq(
            "r9",
            "<iq type='get' id='r9'><query xmlns='jabber:iq:roster'/></iq>",
        )
        .await;
    assert!(roster.contains("jid='bob@localhost'"), "{roster}");
    assert!(roster.contains("subscription='both'"), "{roster}");
    bob.send("<presence><show>away</show></presence>").await;
    let update = alice.expect_stanza("<show>away</show>").await;
    assert!(update.contains("from='bob@localhost/b'"), "{update}");
}

#[tokio::test]
async fn contact_going_offline_is_broadcast_as_unavailable() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&server).await;
    subscribe(&mut alice, &mut bob, "alice@localhost", "bob@localhost").await;
    bob.send("</stream:stream>").await;
    let gone = alice.expect_stanza("type='unavailable'").await;
    assert!(gone.contains("from='bob@localhost/b'"), "{gone}");
}

#[tokio::test]
async fn login_probes_contacts_for_their_presence() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&server).await;
    subscribe(&mut alice, &mut bob, "alice@localhost", "bob@localhost").await;
    alice.send("</stream:stream>").await;
    alice.read_to_close().await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "again").await;
    alice.send("<presence/>").await;
    let probed = alice.expect_stanza("from='bob@localhost/b'").await;
    assert!(probed.contains("<presence"), "{probed}");
}

#[tokio::test]
async fn pre_approved_subscription_is_accepted_without_asking() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&server).await;
    bob.send("<presence to='alice@localhost' type='subscribed'/>")
        .await;
    let push = bob.expect_stanza("approved='true'").await;
    assert!(push.contains("jid='alice@localhost'"), "{push}");
    alice
        .send("<presence to='bob@localhost' type='subscribe'/>")
        .await;
    let approved = alice.expect_stanza("type='subscribed'").await;
    assert!(approved.contains("from='bob@localhost'"), "{approved}");
}

#[tokio::test]
async fn pending_subscription_request_is_redelivered_at_login() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    alice
        .iq(
            "r0",
            "<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>",
        )
        .await;
    alice.available().await;
    alice
        .send("<presence to='bob@localhost' type='subscribe'/>")
        .await;
    alice.expect_stanza("ask='subscribe'").await;
    let mut bob = RawClient::login(&server, "bob", "builder", "b").await;
    bob.send("<presence/>").await;
    let request = bob.expect_stanza("type='subscribe'").await;
    assert!(request.contains("from='alice@localhost'"), "{request}");
}

#[tokio::test]
async fn unsubscribed_cancels_the_contacts_subscription() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&server).await;
    subscribe(&mut alice, &mut bob, "alice@localhost", "bob@localhost").await;
    bob.send("<presence to='alice@localhost' type='unsubscribed'/>")
        .await;
    let cancelled = alice.expect_stanza("type='unsubscribed'").await;
    assert!(cancelled.contains("from='bob@localhost'"), "{cancelled}");
    let roster = alice
        .iq(
            "r5",
            "<iq type='get' id='r5'><query xmlns='jabber:iq:roster'/></iq>",
        )
        .await;
    assert!(roster.contains("subscription='none'"), "{roster}");
}

#[tokio::test]
async fn removing_a_contact_unsubscribes_both_ways() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&server).await;
    subscribe(&mut alice, &mut bob, "alice@localhost", "bob@localhost").await;
    subscribe(&mut bob, &mut alice, "bob@localhost", "alice@localhost").await;
    alice
        .send("<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>")
        .await;
    let removal = alice.expect_stanza("subscription='remove'").await;
    assert!(removal.contains("jid='bob@localhost'"), "{removal}");
    let result = alice.expect_stanza("id='rm'").await;
    assert!(result.contains("type='result'"), "{result}");
    // RFC 6121 §2.5.2: alice's server cancels both subscriptions on her behalf.
    let unsubscribe = bob.expect_stanza("type='unsubscribe'").await;
    assert!(
        unsubscribe.contains("from='alice@localhost'"),
        "{unsubscribe}"
    );
    let unsubscribed = bob.expect_stanza("type='unsubscribed'").await;
    assert!(
        unsubscribed.contains("from='alice@localhost'"),
        "{unsubscribed}"
    );
    let bob_push = bob.expect_stanza("subscription='none'").await;
    assert!(bob_push.contains("jid='alice@localhost'"), "{bob_push}");
    let alice_roster = alice
        .iq(
            "r6",
            "<iq type='get' id='r6'><query xmlns='jabber:iq:roster'/></iq>",
        )
        .await;
    assert!(alice_roster.contains("type='result'"), "{alice_roster}");
    assert!(
        !alice_roster.contains("bob@localhost"),
        "alice's roster no longer has bob: {alice_roster}"
    );
    let bob_roster = bob
        .iq(
            "r7",
            "<iq type='get' id='r7'><query xmlns='jabber:iq:roster'/></iq>",
        )
        .await;
    assert!(bob_roster.contains("type='result'"), "{bob_roster}");
    let item = bob_roster
        .split("<item ")
        .find(|item| item.contains("jid='alice@localhost'"))
        .unwrap_or_else(|| panic!("bob keeps alice, without subscription: {bob_roster}"));
    assert!(item.contains("subscription='none'"), "{bob_roster}");
    assert!(
        !item.contains("ask="),
        "no request is left pending: {bob_roster}"
    );
}

#[tokio::test]
async fn directed_presence_reaches_a_non_contact_and_is_undone_on_logout() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&server).await;
    alice.send("<presence to='bob@localhost/b'/>").await;
    let directed = bob.expect_stanza("from='alice@localhost/a'").await;
    assert!(directed.contains("<presence"), "{directed}");
    alice.send("</stream:stream>").await;
    let gone = bob.expect_stanza("type='unavailable'").await;
    assert!(gone.contains("from='alice@localhost/a'"), "{gone}");
}

#[tokio::test]
async fn subscription_requests_reach_only_resources_that_asked_for_the_roster() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&server).await;
    let mut quiet = RawClient::login(&server, "bob", "builder", "quiet").await;
    quiet.available().await;
    alice
        .send("<presence to='bob@localhost' type='subscribe'/>")
        .await;
    bob.expect_stanza("type='subscribe'").await;
    let pong = quiet
        .iq(
            "q1",
            "<iq type='get' id='q1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    assert!(pong.contains("type='result'"), "{pong}");
    assert!(
        !quiet.unread().contains("type='subscribe'"),
        "{}",
        quiet.unread()
    );
}
