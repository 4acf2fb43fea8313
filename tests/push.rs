//! XEP-0357 push notifications on the wire: a fake app server, logged in as
//! `pusher@localhost/app`, receives the publish IQs.

mod common;

use common::{RawClient, TestServer};

const PUSH: &str = "urn:xmpp:push:0";
const CSI: &str = "urn:xmpp:csi:0";
const NO_PACING: &str = "[modules.push]\nmin_interval_secs = 0\n";

/// Alice's phone (available), Bob at his desk, and the app server.
struct Parties {
    _server: TestServer,
    phone: RawClient,
    bob: RawClient,
    pusher: RawClient,
}

async fn parties(config: &str) -> Parties {
    let server = TestServer::start_with(config).await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    server.add_user("pusher@localhost", "apns").await;
    let mut phone = RawClient::login(&server, "alice", "wonderland", "phone").await;
    phone.available().await;
    let mut bob = RawClient::login(&server, "bob", "builder", "desk").await;
    bob.available().await;
    let pusher = RawClient::login(&server, "pusher", "apns", "app").await;
    Parties {
        _server: server,
        phone,
        bob,
        pusher,
    }
}

/// A ping round trip: everything the server sent the client before it is now buffered.
async fn ping(client: &mut RawClient, id: &str) {
    client
        .iq(
            id,
            &format!("<iq type='get' id='{id}'><ping xmlns='urn:xmpp:ping'/></iq>"),
        )
        .await;
}

async fn enable(phone: &mut RawClient, node: &str) -> String {
    phone
        .iq(
            "enable",
            &format!("<iq type='set' id='enable'><enable xmlns='{PUSH}' jid='pusher@localhost/app' node='{node}'/></iq>"),
        )
        .await
}

async fn go_inactive(phone: &mut RawClient) {
    phone.send(&format!("<inactive xmlns='{CSI}'/>")).await;
    ping(phone, "csi").await;
}

async fn bob_writes(bob: &mut RawClient, id: &str, body: &str) {
    bob.send(&format!(
        "<message to='alice@localhost' type='chat' id='{id}'><body>{body}</body></message>"
    ))
    .await;
}

/// Bob's round trip proves his message was routed (and any notification queued for the
/// app server); the app server's own round trip then brings that notification in.
async fn settle(parties: &mut Parties) {
    ping(&mut parties.bob, "bob-settle").await;
    ping(&mut parties.pusher, "pusher-settle").await;
}

/// The id of a notification IQ.
fn id_of(iq: &str) -> &str {
    iq.split("id='")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("an id")
}

#[tokio::test]
async fn an_inactive_phone_gets_a_notification_with_count_and_sender_but_no_body() {
    let mut parties = parties(NO_PACING).await;
    let enabled = parties
        .phone
        .iq(
            "enable",
            &format!(
                "<iq type='set' id='enable'><enable xmlns='{PUSH}' jid='pusher@localhost/app' node='n1'>\
                 <x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
                 <field var='secret'><value>app-secret</value></field></x></enable></iq>"
            ),
        )
        .await;
    assert!(enabled.contains("type='result'"), "{enabled}");
    go_inactive(&mut parties.phone).await;
    bob_writes(&mut parties.bob, "m1", "a private matter").await;
    let notification = parties.pusher.expect_stanza(PUSH).await;
    assert!(notification.contains("type='set'"), "{notification}");
    assert!(
        notification.contains("from='alice@localhost'"),
        "{notification}"
    );
    assert!(
        notification.contains("<publish node='n1'>"),
        "{notification}"
    );
    assert!(
        notification.contains("urn:xmpp:push:summary"),
        "{notification}"
    );
    assert!(
        notification.contains("<field var='message-count'><value>1</value></field>"),
        "{notification}"
    );
    assert!(
        notification.contains("<field var='last-message-sender'><value>bob@localhost/desk</value>"),
        "{notification}"
    );
    assert!(
        !notification.contains("last-message-body"),
        "{notification}"
    );
    assert!(!notification.contains("a private matter"), "{notification}");
    assert!(notification.contains("<publish-options>"), "{notification}");
    assert!(
        notification.contains("<value>app-secret</value>"),
        "{notification}"
    );
    let id = id_of(&notification);
    parties
        .pusher
        .send(&format!(
            "<iq type='result' to='alice@localhost' id='{id}'/>"
        ))
        .await;
    bob_writes(&mut parties.bob, "m2", "again").await;
    let second = parties.pusher.expect_stanza(PUSH).await;
    assert!(
        second.contains("<field var='message-count'><value>2</value></field>"),
        "{second}"
    );
}

#[tokio::test]
async fn an_active_phone_gets_the_message_and_no_notification_is_sent() {
    let mut parties = parties(NO_PACING).await;
    enable(&mut parties.phone, "n1").await;
    bob_writes(&mut parties.bob, "m1", "hello").await;
    parties.phone.expect_stanza("id='m1'").await;
    settle(&mut parties).await;
    assert!(
        !parties.pusher.unread().contains(PUSH),
        "{}",
        parties.pusher.unread()
    );
}

#[tokio::test]
async fn the_body_is_sent_only_when_the_configuration_allows_it() {
    let mut parties = parties("[modules.push]\nmin_interval_secs = 0\ninclude_body = true\n").await;
    enable(&mut parties.phone, "n1").await;
    go_inactive(&mut parties.phone).await;
    bob_writes(&mut parties.bob, "m1", "see you at noon").await;
    let notification = parties.pusher.expect_stanza(PUSH).await;
    assert!(
        notification
            .contains("<field var='last-message-body'><value>see you at noon</value></field>"),
        "{notification}"
    );
}

#[tokio::test]
async fn a_message_stored_offline_sends_a_notification() {
    let mut parties = parties(NO_PACING).await;
    enable(&mut parties.phone, "n1").await;
    parties.phone.send("</stream:stream>").await;
    parties.phone.read_to_close().await;
    bob_writes(&mut parties.bob, "m1", "are you there?").await;
    let notification = parties.pusher.expect_stanza(PUSH).await;
    assert!(
        notification.contains("<publish node='n1'>"),
        "{notification}"
    );
}

#[tokio::test]
async fn after_disable_no_notification_is_sent() {
    let mut parties = parties(NO_PACING).await;
    enable(&mut parties.phone, "n1").await;
    let disabled = parties
        .phone
        .iq(
            "disable",
            &format!("<iq type='set' id='disable'><disable xmlns='{PUSH}' jid='pusher@localhost/app' node='n1'/></iq>"),
        )
        .await;
    assert!(disabled.contains("type='result'"), "{disabled}");
    go_inactive(&mut parties.phone).await;
    bob_writes(&mut parties.bob, "m1", "hello").await;
    settle(&mut parties).await;
    assert!(
        !parties.pusher.unread().contains(PUSH),
        "{}",
        parties.pusher.unread()
    );
}

/// The app server answers the first notification with an error of `error_type`; returns
/// whether a second message still notifies.
async fn notifies_after_an_error_of_type(error_type: &str) -> bool {
    let mut parties = parties(NO_PACING).await;
    enable(&mut parties.phone, "n1").await;
    go_inactive(&mut parties.phone).await;
    bob_writes(&mut parties.bob, "m1", "first").await;
    let notification = parties.pusher.expect_stanza(PUSH).await;
    let id = id_of(&notification).to_owned();
    parties
        .pusher
        .send(&format!(
            "<iq type='error' to='alice@localhost' id='{id}'><error type='{error_type}'>\
             <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        ))
        .await;
    // The app server's own ping proves the server handled its error first.
    ping(&mut parties.pusher, "after-error").await;
    bob_writes(&mut parties.bob, "m2", "second").await;
    settle(&mut parties).await;
    parties.pusher.unread().contains(PUSH)
}

#[tokio::test]
async fn an_error_from_the_app_server_disables_the_registration() {
    assert!(!notifies_after_an_error_of_type("cancel").await);
}

#[tokio::test]
async fn a_wait_error_from_the_app_server_keeps_the_registration() {
    assert!(notifies_after_an_error_of_type("wait").await);
}

#[tokio::test]
async fn messages_within_the_interval_send_no_second_notification_at_once() {
    let mut parties = parties("[modules.push]\nmin_interval_secs = 3600\n").await;
    enable(&mut parties.phone, "n1").await;
    go_inactive(&mut parties.phone).await;
    bob_writes(&mut parties.bob, "m1", "first").await;
    parties.pusher.expect_stanza(PUSH).await;
    bob_writes(&mut parties.bob, "m2", "second").await;
    settle(&mut parties).await;
    assert!(
        !parties.pusher.unread().contains(PUSH),
        "{}",
        parties.pusher.unread()
    );
}

#[tokio::test]
async fn only_the_account_itself_may_enable_push() {
    let mut parties = parties(NO_PACING).await;
    let refused = parties
        .bob
        .iq(
            "steal",
            &format!("<iq type='set' id='steal' to='alice@localhost'><enable xmlns='{PUSH}' jid='pusher@localhost/app' node='n1'/></iq>"),
        )
        .await;
    assert!(refused.contains("type='error'"), "{refused}");
    assert!(refused.contains("<forbidden"), "{refused}");
}

#[tokio::test]
async fn registrations_beyond_the_limit_are_refused_but_one_may_be_renewed() {
    let mut parties = parties("[modules.push]\nmax_registrations = 1\n").await;
    assert!(enable(&mut parties.phone, "n1")
        .await
        .contains("type='result'"));
    let second = enable(&mut parties.phone, "n2").await;
    assert!(second.contains("<policy-violation"), "{second}");
    assert!(enable(&mut parties.phone, "n1")
        .await
        .contains("type='result'"));
}

#[tokio::test]
async fn the_account_advertises_push_support() {
    let mut parties = parties("").await;
    let info = parties
        .phone
        .iq(
            "info",
            "<iq type='get' id='info' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        )
        .await;
    assert!(info.contains(&format!("var='{PUSH}'")), "{info}");
}
