//! XEP-0398: avatars set through the vCard (XEP-0054/0153, Gajim and older clients) and
//! through PEP (XEP-0084, Conversations and Monal) are one avatar, and available presence
//! carries its hash.

mod common;

use common::interests::login_with_interest;
use common::{RawClient, TestServer};
use rempart_xep::avatar::Avatar;

const DATA: &str = "urn:xmpp:avatar:data";
const METADATA: &str = "urn:xmpp:avatar:metadata";
const MARKER: &str = "urn:test:marker";

fn image(label: &str) -> Avatar {
    Avatar {
        bytes: format!("\u{89}PNG avatar of {label}").into_bytes(),
        mime_type: "image/png".to_owned(),
    }
}

fn open_options() -> &'static str {
    "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#access_model'><value>open</value></field></x></publish-options>"
}

fn publish(id: &str, node: &str, item_id: &str, payload: &str, options: &str) -> String {
    format!(
        "<iq type='set' id='{id}'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='{node}'><item id='{item_id}'>{payload}</item></publish>{options}</pubsub></iq>"
    )
}

fn vcard_with_photo(avatar: &Avatar) -> String {
    format!(
        "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><PHOTO><TYPE>{}</TYPE><BINVAL>{}</BINVAL></PHOTO></vCard>",
        avatar.mime_type,
        avatar.base64()
    )
}

/// Publishes the avatar the way Conversations does: data, then metadata.
async fn publish_pep_avatar(client: &mut RawClient, avatar: &Avatar, options: &str) {
    let id = avatar.id();
    let data = format!("<data xmlns='{DATA}'>{}</data>", avatar.base64());
    let reply = client
        .iq("pd", &publish("pd", DATA, &id, &data, options))
        .await;
    assert!(reply.contains("type='result'"), "{reply}");
    let metadata = format!(
        "<metadata xmlns='{METADATA}'><info id='{id}' bytes='{}' type='{}'/></metadata>",
        avatar.bytes.len(),
        avatar.mime_type
    );
    let reply = client
        .iq("pm", &publish("pm", METADATA, &id, &metadata, options))
        .await;
    assert!(reply.contains("type='result'"), "{reply}");
}

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

async fn vcard_of_alice(reader: &mut RawClient, id: &str) -> String {
    reader
        .iq(
            id,
            &format!(
                "<iq type='get' id='{id}' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>"
            ),
        )
        .await
}

#[tokio::test]
async fn account_advertises_pep_vcard_conversion() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    let info = alice
        .iq("d1", "<iq type='get' id='d1' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    assert!(
        info.contains("var='urn:xmpp:pep-vcard-conversion:0'"),
        "{info}"
    );
}

#[tokio::test]
async fn vcard_photo_from_an_old_client_becomes_the_pep_avatar_new_clients_see() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut modern =
        login_with_interest(&server, "alice", "wonderland", "phone", &[METADATA, MARKER]).await;
    marker(&mut modern, "m1").await;
    let mut legacy = RawClient::login(&server, "alice", "wonderland", "desktop").await;
    let avatar = image("alice");
    let id = avatar.id();

    let set = legacy
        .iq(
            "v1",
            &format!("<iq type='set' id='v1'>{}</iq>", vcard_with_photo(&avatar)),
        )
        .await;
    assert!(set.contains("type='result'"), "{set}");

    let event = modern.expect_stanza(METADATA).await;
    assert!(event.contains(&format!("id='{id}'")), "{event}");
    assert!(event.contains("type='image/png'"), "{event}");
    assert!(
        event.contains(&format!("bytes='{}'", avatar.bytes.len())),
        "{event}"
    );
    // The data node is open: a stranger (a MUC occupant) fetches the image.
    let mut stranger = RawClient::login(&server, "bob", "builder", "b").await;
    let data = stranger
        .iq("g1", &format!("<iq type='get' id='g1' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{DATA}'/></pubsub></iq>"))
        .await;
    assert!(data.contains(&format!("<item id='{id}'>")), "{data}");
    assert!(data.contains(&avatar.base64()), "{data}");
}

#[tokio::test]
async fn pep_avatar_from_a_new_client_is_in_the_vcard_old_clients_read() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut modern =
        login_with_interest(&server, "alice", "wonderland", "phone", &[METADATA, MARKER]).await;
    marker(&mut modern, "m1").await;
    let avatar = image("alice");

    publish_pep_avatar(&mut modern, &avatar, open_options()).await;

    let mut legacy = RawClient::login(&server, "bob", "builder", "desktop").await;
    let vcard = vcard_of_alice(&mut legacy, "v1").await;
    assert!(vcard.contains("<TYPE>image/png</TYPE>"), "{vcard}");
    assert!(
        vcard.contains(&format!("<BINVAL>{}</BINVAL>", avatar.base64())),
        "{vcard}"
    );
    // The copy into the vCard published nothing back: one metadata notification, the
    // client's own, came before the marker.
    modern.expect_stanza(METADATA).await;
    marker(&mut modern, "m2").await;
    assert!(!modern.unread().contains(METADATA), "{}", modern.unread());
}

#[tokio::test]
async fn avatar_restricted_to_contacts_stays_out_of_the_vcard() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "phone").await;

    publish_pep_avatar(&mut alice, &image("alice"), "").await;

    let mut bob = RawClient::login(&server, "bob", "builder", "desktop").await;
    let vcard = vcard_of_alice(&mut bob, "v1").await;
    assert!(!vcard.contains("<PHOTO"), "{vcard}");
}

#[tokio::test]
async fn disabling_the_pep_avatar_removes_the_vcard_photo_and_keeps_the_rest() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut legacy = RawClient::login(&server, "alice", "wonderland", "desktop").await;
    let set = legacy
        .iq(
            "v1",
            &format!(
                "<iq type='set' id='v1'>{}</iq>",
                vcard_with_photo(&image("alice"))
            ),
        )
        .await;
    assert!(set.contains("type='result'"), "{set}");
    let mut modern = RawClient::login(&server, "alice", "wonderland", "phone").await;

    let disable = modern
        .iq(
            "p1",
            &publish(
                "p1",
                METADATA,
                "current",
                &format!("<metadata xmlns='{METADATA}'/>"),
                "",
            ),
        )
        .await;
    assert!(disable.contains("type='result'"), "{disable}");

    let vcard = vcard_of_alice(&mut legacy, "v2").await;
    assert!(!vcard.contains("<PHOTO"), "{vcard}");
    assert!(vcard.contains("<FN>Alice Liddell</FN>"), "{vcard}");
}

#[tokio::test]
async fn available_presence_carries_the_vcard_photo_hash() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut bob = RawClient::online(&server, "bob", "builder", "b").await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    let avatar = image("alice");
    let photo = format!("<photo>{}</photo>", avatar.id());
    alice
        .iq(
            "v1",
            &format!("<iq type='set' id='v1'>{}</iq>", vcard_with_photo(&avatar)),
        )
        .await;

    alice.send("<presence/>").await;
    let own = alice.expect_stanza("<presence").await;
    assert!(own.contains(&photo), "{own}");

    alice.send("<presence to='bob@localhost'/>").await;
    let directed = bob.expect_stanza("from='alice@localhost/a'").await;
    assert!(directed.contains(&photo), "{directed}");

    // A client not ready to tell its avatar says so with an empty photo, which stays.
    alice
        .send("<presence><x xmlns='vcard-temp:x:update'><photo/></x></presence>")
        .await;
    let not_ready = alice.expect_stanza("vcard-temp:x:update").await;
    assert!(!not_ready.contains(&photo), "{not_ready}");
    assert!(not_ready.contains("<photo/>"), "{not_ready}");
}

#[tokio::test]
async fn presence_has_no_photo_hash_without_an_avatar() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    alice
        .iq(
            "v1",
            "<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Alice</FN></vCard></iq>",
        )
        .await;
    alice.send("<presence/>").await;
    let own = alice.expect_stanza("<presence").await;
    assert!(!own.contains("vcard-temp:x:update"), "{own}");
}
