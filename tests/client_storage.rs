//! XEP-0049 private XML storage and XEP-0054 vcard-temp, which desktop clients use.

mod common;

use common::{RawClient, TestServer};

async fn two(server: &TestServer) -> (RawClient, RawClient) {
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    (
        RawClient::login(server, "alice", "wonderland", "a").await,
        RawClient::login(server, "bob", "builder", "b").await,
    )
}

#[tokio::test]
async fn private_xml_is_stored_and_returned_to_its_owner_only() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = two(&server).await;
    let stored = alice
        .iq("s1", "<iq type='set' id='s1'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'><conference jid='room@muc.example' autojoin='true'/></storage></query></iq>")
        .await;
    assert!(stored.contains("type='result'"), "{stored}");
    let fetched = alice
        .iq("g1", "<iq type='get' id='g1'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>")
        .await;
    assert!(fetched.contains("jid='room@muc.example'"), "{fetched}");
    let empty = alice
        .iq("g2", "<iq type='get' id='g2'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query></iq>")
        .await;
    assert!(
        empty.contains("<prefs xmlns='urn:example:prefs'/>"),
        "{empty}"
    );
    assert!(empty.contains("type='result'"), "{empty}");
    let foreign = bob
        .iq("g3", "<iq type='get' id='g3' to='alice@localhost'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>")
        .await;
    assert!(foreign.contains("<forbidden"), "{foreign}");
}

#[tokio::test]
async fn vcard_is_set_by_its_owner_and_read_by_others() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = two(&server).await;
    let set = alice
        .iq(
            "v1",
            "<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Alice Liddell</FN></vCard></iq>",
        )
        .await;
    assert!(set.contains("type='result'"), "{set}");
    let read = bob
        .iq(
            "v2",
            "<iq type='get' id='v2' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>",
        )
        .await;
    assert!(read.contains("<FN>Alice Liddell</FN>"), "{read}");
    let overwrite = bob
        .iq("v3", "<iq type='set' id='v3' to='alice@localhost'><vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard></iq>")
        .await;
    assert!(overwrite.contains("<forbidden"), "{overwrite}");
}
