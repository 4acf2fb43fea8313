//! XEP-0402 `#compat`/`#compat-pep` and XEP-0411: bookmarks kept by older clients in private
//! XML storage (XEP-0049/0048) or the XEP-0048 PEP node, and by newer ones as PEP Native
//! Bookmarks, are one set of bookmarks.

mod common;

use common::interests::login_with_interest;
use common::{RawClient, TestServer};

const NATIVE: &str = "urn:xmpp:bookmarks:1";
const LEGACY: &str = "storage:bookmarks";
const MARKER: &str = "urn:test:marker";
const DISABLED: &str = "[modules.bookmarks_conversion]\nenabled = false\n";

fn native_options() -> &'static str {
    "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#persist_items'><value>true</value></field><field var='pubsub#max_items'><value>max</value></field><field var='pubsub#send_last_published_item'><value>never</value></field><field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options>"
}

fn publish(id: &str, node: &str, item_id: &str, payload: &str, options: &str) -> String {
    format!(
        "<iq type='set' id='{id}'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='{node}'><item id='{item_id}'>{payload}</item></publish>{options}</pubsub></iq>"
    )
}

fn private_set(id: &str, storage: &str) -> String {
    format!("<iq type='set' id='{id}'><query xmlns='jabber:iq:private'>{storage}</query></iq>")
}

fn private_get(id: &str) -> String {
    format!("<iq type='get' id='{id}'><query xmlns='jabber:iq:private'><storage xmlns='{LEGACY}'/></query></iq>")
}

fn items_get(id: &str, node: &str) -> String {
    format!("<iq type='get' id='{id}'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{node}'/></pubsub></iq>")
}

const TWO_ROOMS: &str = "<storage xmlns='storage:bookmarks'><url name='Site' url='https://example.org/'/><conference jid='council@conference.example' name='Council' autojoin='true'><nick>Puck</nick><password>oberon</password></conference><conference jid='orchard@conference.example' name='Orchard'/></storage>";
const ONE_ROOM: &str = "<storage xmlns='storage:bookmarks'><url name='Site' url='https://example.org/'/><conference jid='council@conference.example' name='Council' autojoin='true'><nick>Puck</nick><password>oberon</password></conference></storage>";

/// Publishes a marker item and waits for its notification: the session's `+notify`
/// interests are known, and every notification of this account queued before it was sent.
async fn marker(client: &mut RawClient, id: &str) {
    let payload = format!("<m xmlns='urn:test'>{id}</m>");
    let reply = client.iq(id, &publish(id, MARKER, id, &payload, "")).await;
    assert!(reply.contains("type='result'"), "{reply}");
    client.expect_stanza(&payload).await;
}

async fn users(server: &TestServer) {
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
}

fn ok(reply: &str) {
    assert!(reply.contains("type='result'"), "{reply}");
}

#[tokio::test]
async fn account_advertises_bookmark_compatibility() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    let info = alice
        .iq("d1", "<iq type='get' id='d1' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    for feature in [
        "urn:xmpp:bookmarks:1#compat",
        "urn:xmpp:bookmarks:1#compat-pep",
        "urn:xmpp:bookmarks-conversion:0",
    ] {
        assert!(info.contains(&format!("var='{feature}'")), "{info}");
    }
}

#[tokio::test]
async fn private_storage_bookmarks_from_an_old_client_become_native_items() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut modern =
        login_with_interest(&server, "alice", "wonderland", "phone", &[NATIVE, MARKER]).await;
    marker(&mut modern, "m1").await;
    let mut legacy = RawClient::login(&server, "alice", "wonderland", "desktop").await;

    ok(&legacy.iq("s1", &private_set("s1", TWO_ROOMS)).await);

    let event = modern
        .expect_stanza("id='council@conference.example'")
        .await;
    assert!(event.contains("<nick>Puck</nick>"), "{event}");
    let items = modern.iq("i1", &items_get("i1", NATIVE)).await;
    assert!(
        items.contains("<item id='council@conference.example'>"),
        "{items}"
    );
    assert!(
        items.contains("<item id='orchard@conference.example'>"),
        "{items}"
    );
    assert!(items.contains("autojoin='true'"), "{items}");
    assert!(items.contains("<password>oberon</password>"), "{items}");
    assert!(
        !items.contains(" jid="),
        "the room JID is the item id: {items}"
    );
    // Only the owner reads them.
    let config = modern
        .iq("c1", &format!("<iq type='get' id='c1'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='{NATIVE}'/></pubsub></iq>"))
        .await;
    assert!(
        config
            .contains("<option><value>whitelist</value></option><value>whitelist</value></field>"),
        "{config}"
    );
    assert!(config.contains("<value>max</value>"), "{config}");
    let mut bob = RawClient::login(&server, "bob", "builder", "b").await;
    let foreign = bob
        .iq("f1", &format!("<iq type='get' id='f1' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{NATIVE}'/></pubsub></iq>"))
        .await;
    assert!(foreign.contains("type='error'"), "{foreign}");
    // And the XEP-0048 PEP copy holds the same storage.
    let legacy_pep = modern.iq("i2", &items_get("i2", LEGACY)).await;
    assert!(
        legacy_pep.contains("jid='orchard@conference.example'"),
        "{legacy_pep}"
    );
}

#[tokio::test]
async fn a_room_removed_in_private_storage_is_retracted_and_unchanged_rooms_are_not_republished() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut legacy = RawClient::login(&server, "alice", "wonderland", "desktop").await;
    ok(&legacy.iq("s1", &private_set("s1", TWO_ROOMS)).await);
    let mut modern =
        login_with_interest(&server, "alice", "wonderland", "phone", &[NATIVE, MARKER]).await;
    marker(&mut modern, "m1").await;

    ok(&legacy.iq("s2", &private_set("s2", ONE_ROOM)).await);

    let retract = modern.expect_stanza("<retract").await;
    assert!(
        retract.contains("<retract id='orchard@conference.example'/>"),
        "{retract}"
    );
    marker(&mut modern, "m2").await;
    assert!(
        !modern.unread().contains("council@conference.example"),
        "{}",
        modern.unread()
    );
    let items = modern.iq("i1", &items_get("i1", NATIVE)).await;
    assert!(items.contains("council@conference.example"), "{items}");
    assert!(!items.contains("orchard@conference.example"), "{items}");
}

#[tokio::test]
async fn native_bookmarks_from_a_new_client_reach_private_storage() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut legacy = RawClient::login(&server, "alice", "wonderland", "desktop").await;
    ok(&legacy.iq("s1", &private_set("s1", ONE_ROOM)).await);
    let mut modern = RawClient::login(&server, "alice", "wonderland", "phone").await;

    let conference = format!(
        "<conference xmlns='{NATIVE}' name='The Play' autojoin='true'><nick>JC</nick></conference>"
    );
    ok(&modern
        .iq(
            "p1",
            &publish(
                "p1",
                NATIVE,
                "theplay@conference.example",
                &conference,
                native_options(),
            ),
        )
        .await);

    let stored = legacy.iq("g1", &private_get("g1")).await;
    assert!(
        stored.contains("jid='theplay@conference.example'"),
        "{stored}"
    );
    assert!(stored.contains("name='The Play'"), "{stored}");
    assert!(stored.contains("<nick>JC</nick>"), "{stored}");
    assert!(
        stored.contains("jid='council@conference.example'"),
        "{stored}"
    );
    assert!(
        stored.contains("url='https://example.org/'"),
        "URL bookmarks stay: {stored}"
    );

    ok(&modern
        .iq("r1", &format!("<iq type='set' id='r1'><pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='{NATIVE}' notify='true'><item id='theplay@conference.example'/></retract></pubsub></iq>"))
        .await);

    let stored = legacy.iq("g2", &private_get("g2")).await;
    assert!(!stored.contains("theplay@conference.example"), "{stored}");
    assert!(
        stored.contains("jid='council@conference.example'"),
        "{stored}"
    );
}

#[tokio::test]
async fn xep0048_pep_bookmarks_reach_private_storage_and_native_items() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut pep_legacy = RawClient::login(&server, "alice", "wonderland", "old-phone").await;
    let options = native_options().replace(
        "<field var='pubsub#max_items'><value>max</value></field><field var='pubsub#send_last_published_item'><value>never</value></field>",
        "",
    );

    ok(&pep_legacy
        .iq("p1", &publish("p1", LEGACY, "current", TWO_ROOMS, &options))
        .await);

    let mut private_legacy = RawClient::login(&server, "alice", "wonderland", "desktop").await;
    let stored = private_legacy.iq("g1", &private_get("g1")).await;
    assert!(
        stored.contains("jid='orchard@conference.example'"),
        "{stored}"
    );
    let items = private_legacy.iq("i1", &items_get("i1", NATIVE)).await;
    assert!(
        items.contains("<item id='orchard@conference.example'>"),
        "{items}"
    );
}

#[tokio::test]
async fn private_get_answers_from_native_items_newer_than_the_private_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_persistent_with(dir, DISABLED).await;
    users(&server).await;
    let mut client = RawClient::login(&server, "alice", "wonderland", "a").await;
    ok(&client.iq("s1", &private_set("s1", ONE_ROOM)).await);
    let conference = format!("<conference xmlns='{NATIVE}' name='The Play'/>");
    ok(&client
        .iq(
            "p1",
            &publish(
                "p1",
                NATIVE,
                "theplay@conference.example",
                &conference,
                native_options(),
            ),
        )
        .await);
    drop(client);
    let dir = server.stop_keeping_data().await;

    let server = TestServer::start_persistent(dir).await;
    let mut legacy = RawClient::login(&server, "alice", "wonderland", "desktop").await;
    let stored = legacy.iq("g1", &private_get("g1")).await;
    assert!(
        stored.contains("jid='theplay@conference.example'"),
        "{stored}"
    );
    assert!(!stored.contains("council@conference.example"), "{stored}");
    assert!(stored.contains("url='https://example.org/'"), "{stored}");
}

#[tokio::test]
async fn bookmarks_kept_only_in_private_storage_are_in_pep_when_a_client_asks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_persistent_with(dir, DISABLED).await;
    users(&server).await;
    let mut legacy = RawClient::login(&server, "alice", "wonderland", "desktop").await;
    ok(&legacy.iq("s1", &private_set("s1", TWO_ROOMS)).await);
    drop(legacy);
    let dir = server.stop_keeping_data().await;

    let server = TestServer::start_persistent(dir).await;
    let mut modern = RawClient::login(&server, "alice", "wonderland", "phone").await;
    let items = modern.iq("i1", &items_get("i1", NATIVE)).await;
    assert!(
        items.contains("<item id='council@conference.example'>"),
        "{items}"
    );
    assert!(
        items.contains("<item id='orchard@conference.example'>"),
        "{items}"
    );
}
