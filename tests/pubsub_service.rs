//! XEP-0060 generic publish-subscribe service on pubsub.<host>.

mod common;

use common::{RawClient, TestServer};

fn publish(id: &str, node: &str, item: &str, body: &str) -> String {
    format!(
        "<iq type='set' id='{id}' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='{node}'><item id='{item}'><entry xmlns='urn:test:news'>{body}</entry></item></publish></pubsub></iq>"
    )
}

async fn two_users(server: &TestServer) -> (RawClient, RawClient) {
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = RawClient::login(server, "alice", "wonderland", "a").await;
    let mut bob = RawClient::login(server, "bob", "builder", "b").await;
    alice.available().await;
    bob.available().await;
    (alice, bob)
}

#[tokio::test]
async fn service_is_discoverable_from_the_server() {
    let server = TestServer::start().await;
    let (mut alice, _) = two_users(&server).await;
    let items = alice
        .iq("d1", "<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        .await;
    assert!(items.contains("jid='pubsub.localhost'"), "{items}");
    let info = alice
        .iq("d2", "<iq type='get' id='d2' to='pubsub.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    assert!(
        info.contains("category='pubsub'") && info.contains("type='service'"),
        "{info}"
    );
    assert!(
        info.contains("var='http://jabber.org/protocol/pubsub#publish-options'"),
        "{info}"
    );
}

#[tokio::test]
async fn creator_owns_the_node_and_subscribers_are_notified() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&server).await;
    let first = alice.iq("p1", &publish("p1", "news", "n1", "first")).await;
    assert!(first.contains("type='result'"), "{first}");
    let subscribed = bob
        .iq("s1", "<iq type='set' id='s1' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='news' jid='bob@localhost/b'/></pubsub></iq>")
        .await;
    assert!(
        subscribed.contains("subscription='subscribed'"),
        "{subscribed}"
    );
    let last = bob.expect_stanza("pubsub#event").await;
    assert!(last.contains("first"), "{last}");
    alice.iq("p2", &publish("p2", "news", "n2", "second")).await;
    let event = bob.expect_stanza("pubsub#event").await;
    assert!(event.contains("from='pubsub.localhost'"), "{event}");
    assert!(event.contains("second"), "{event}");
    let affiliations = alice
        .iq("a1", "<iq type='get' id='a1' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><affiliations node='news'/></pubsub></iq>")
        .await;
    assert!(
        affiliations.contains("jid='alice@localhost' affiliation='owner'"),
        "{affiliations}"
    );
}

#[tokio::test]
async fn strangers_cannot_publish_until_made_publisher() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&server).await;
    alice
        .iq("p1", &publish("p1", "board", "x", "by alice"))
        .await;
    let refused = bob.iq("p2", &publish("p2", "board", "y", "by bob")).await;
    assert!(refused.contains("<forbidden"), "{refused}");
    alice
        .iq("a1", "<iq type='set' id='a1' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><affiliations node='board'><affiliation jid='bob@localhost' affiliation='publisher'/></affiliations></pubsub></iq>")
        .await;
    let accepted = bob.iq("p3", &publish("p3", "board", "y", "by bob")).await;
    assert!(accepted.contains("type='result'"), "{accepted}");
    let denied_delete = bob
        .iq("x1", "<iq type='set' id='x1' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='board'/></pubsub></iq>")
        .await;
    assert!(denied_delete.contains("<forbidden"), "{denied_delete}");
}

#[tokio::test]
async fn deleting_a_node_notifies_subscribers() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = two_users(&server).await;
    let created = alice
        .iq("c1", "<iq type='set' id='c1' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='events'/></pubsub></iq>")
        .await;
    assert!(created.contains("type='result'"), "{created}");
    let duplicate = alice
        .iq("c2", "<iq type='set' id='c2' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='events'/></pubsub></iq>")
        .await;
    assert!(duplicate.contains("<conflict"), "{duplicate}");
    bob.iq("s1", "<iq type='set' id='s1' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='events' jid='bob@localhost'/></pubsub></iq>")
        .await;
    alice
        .iq("x1", "<iq type='set' id='x1' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='events'/></pubsub></iq>")
        .await;
    let deleted = bob.expect_stanza("pubsub#event").await;
    assert!(deleted.contains("<delete node='events'/>"), "{deleted}");
}

#[tokio::test]
async fn message_to_the_service_is_refused() {
    let server = TestServer::start().await;
    let (mut alice, _) = two_users(&server).await;
    alice
        .send("<message to='pubsub.localhost' type='chat' id='m1'><body>hi</body></message>")
        .await;
    let error = alice.expect_stanza("id='m1'").await;
    assert!(error.contains("<service-unavailable"), "{error}");
}
