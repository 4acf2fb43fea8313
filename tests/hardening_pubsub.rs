//! PubSub and PEP under hostile use: who may create nodes on the pubsub service, how many
//! subscriptions a node takes, how much an account's PEP stores, and changes of one node
//! racing each other.

mod common;

use common::federation::pair;
use common::{RawClient, TestServer};

const PUBSUB: &str = "http://jabber.org/protocol/pubsub";

fn publish_options(fields: &[(&str, &str)]) -> String {
    let mut form = String::from("<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>");
    for (var, value) in fields {
        form.push_str(&format!(
            "<field var='{var}'><value>{value}</value></field>"
        ));
    }
    form.push_str("</x></publish-options>");
    form
}

/// A publish to the sender's own PEP.
fn pep_publish(id: &str, node: &str, item_id: &str, payload: &str, options: &str) -> String {
    format!(
        "<iq type='set' id='{id}'><pubsub xmlns='{PUBSUB}'><publish node='{node}'><item id='{item_id}'>{payload}</item></publish>{options}</pubsub></iq>"
    )
}

/// A subscription of `jid` to `node` of `service`.
fn subscribe(id: &str, service: &str, node: &str, jid: &str) -> String {
    format!(
        "<iq type='set' id='{id}' to='{service}'><pubsub xmlns='{PUBSUB}'><subscribe node='{node}' jid='{jid}'/></pubsub></iq>"
    )
}

fn create(id: &str, service: &str, node: &str) -> String {
    format!(
        "<iq type='set' id='{id}' to='{service}'><pubsub xmlns='{PUBSUB}'><create node='{node}'/></pubsub></iq>"
    )
}

/// A payload of `size` bytes of XML.
fn payload_of(size: usize) -> String {
    let open = "<data xmlns='urn:test:blob'>";
    let close = "</data>";
    format!(
        "{open}{}{close}",
        "A".repeat(size - open.len() - close.len())
    )
}

#[tokio::test]
async fn users_of_other_servers_cannot_create_nodes_on_the_pubsub_service() {
    let (_a, _b, mut alice, mut bob) = pair().await;
    let refused = bob.iq("c1", &create("c1", "pubsub.a.test", "spam")).await;
    assert!(refused.contains("type='error'"), "{refused}");
    assert!(refused.contains("<forbidden"), "{refused}");
    let auto_create = bob
        .iq("p1", &format!("<iq type='set' id='p1' to='pubsub.a.test'><pubsub xmlns='{PUBSUB}'><publish node='spam2'><item id='x'><entry xmlns='urn:test:news'>spam</entry></item></publish></pubsub></iq>"))
        .await;
    assert!(auto_create.contains("<forbidden"), "{auto_create}");
    let local = alice.iq("c2", &create("c2", "pubsub.a.test", "news")).await;
    assert!(local.contains("type='result'"), "{local}");
}

#[tokio::test]
async fn with_admins_only_the_listed_jids_create_nodes() {
    let server = TestServer::start_with(
        "[modules.pubsub]\nnode_creation = \"admins\"\nadmins = [\"alice@localhost\"]\n",
    )
    .await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    let mut bob = RawClient::login(&server, "bob", "builder", "b").await;
    let refused = bob
        .iq("c1", &create("c1", "pubsub.localhost", "board"))
        .await;
    assert!(refused.contains("<forbidden"), "{refused}");
    let allowed = alice
        .iq("c2", &create("c2", "pubsub.localhost", "board"))
        .await;
    assert!(allowed.contains("type='result'"), "{allowed}");
}

#[test]
fn an_unknown_node_creation_policy_fails_the_configuration() {
    let config = rempart::config::Config::from_toml(
        "[server]\nhosts = [\"localhost\"]\n[modules.pubsub]\nnode_creation = \"everyone\"\n",
    )
    .expect("the sections parse");
    let error =
        rempart::modules::ModulesConfig::of(&config).expect_err("an unknown policy is refused");
    assert!(error.to_string().contains("everyone"), "{error}");
}

#[tokio::test]
async fn subscriptions_to_an_open_node_are_capped_per_subscriber_and_per_node() {
    let server = TestServer::start_with(
        "[modules.pep]\nmax_subscriptions_per_jid = 2\nmax_subscriptions_per_node = 3\n",
    )
    .await;
    for (user, password) in [
        ("alice", "wonderland"),
        ("eve", "listener"),
        ("bob", "builder"),
        ("carol", "secret"),
    ] {
        server
            .add_user(&format!("{user}@localhost"), password)
            .await;
    }
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    let bundle = "urn:xmpp:omemo:2:bundles";
    let published = alice
        .iq(
            "p1",
            &pep_publish(
                "p1",
                bundle,
                "1",
                "<bundle xmlns='urn:xmpp:omemo:2'/>",
                &publish_options(&[("pubsub#access_model", "open")]),
            ),
        )
        .await;
    assert!(published.contains("type='result'"), "{published}");
    let mut eve = RawClient::login(&server, "eve", "listener", "e").await;
    for (id, resource) in [("s1", "e1"), ("s2", "e2")] {
        let accepted = eve
            .iq(
                id,
                &subscribe(
                    id,
                    "alice@localhost",
                    bundle,
                    &format!("eve@localhost/{resource}"),
                ),
            )
            .await;
        assert!(accepted.contains("subscription='subscribed'"), "{accepted}");
    }
    let again = eve
        .iq(
            "s3",
            &subscribe("s3", "alice@localhost", bundle, "eve@localhost/e1"),
        )
        .await;
    assert!(
        again.contains("subscription='subscribed'"),
        "renewing a subscription takes no new room: {again}"
    );
    let third = eve
        .iq(
            "s4",
            &subscribe("s4", "alice@localhost", bundle, "eve@localhost/e3"),
        )
        .await;
    assert!(third.contains("type='error'"), "{third}");
    assert!(third.contains("<policy-violation"), "{third}");
    assert!(third.contains("<too-many-subscriptions"), "{third}");
    let mut bob = RawClient::login(&server, "bob", "builder", "b").await;
    let last_room = bob
        .iq(
            "s5",
            &subscribe("s5", "alice@localhost", bundle, "bob@localhost"),
        )
        .await;
    assert!(
        last_room.contains("subscription='subscribed'"),
        "{last_room}"
    );
    let mut carol = RawClient::login(&server, "carol", "secret", "c").await;
    let full = carol
        .iq(
            "s6",
            &subscribe("s6", "alice@localhost", bundle, "carol@localhost"),
        )
        .await;
    assert!(full.contains("<policy-violation"), "{full}");
    assert!(full.contains("<too-many-subscriptions"), "{full}");
}

#[tokio::test]
async fn pep_storage_is_capped_per_account_in_bytes() {
    let server = TestServer::start_with(
        "[modules.pep]\nmax_bytes_per_account = 4000\nmax_item_size = 2000\n",
    )
    .await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    for (id, node) in [("p1", "urn:test:one"), ("p2", "urn:test:two")] {
        let accepted = alice
            .iq(id, &pep_publish(id, node, "current", &payload_of(1500), ""))
            .await;
        assert!(accepted.contains("type='result'"), "{accepted}");
    }
    let over = alice
        .iq(
            "p3",
            &pep_publish("p3", "urn:test:three", "current", &payload_of(1500), ""),
        )
        .await;
    assert!(over.contains("type='error'"), "{over}");
    assert!(over.contains("<not-acceptable"), "{over}");
    assert!(over.contains("<payload-too-big"), "{over}");
    let replaced = alice
        .iq(
            "p4",
            &pep_publish("p4", "urn:test:one", "current", &payload_of(1800), ""),
        )
        .await;
    assert!(
        replaced.contains("type='result'"),
        "replacing an item frees its bytes: {replaced}"
    );
    let retracted = alice
        .iq("r1", &format!("<iq type='set' id='r1'><pubsub xmlns='{PUBSUB}'><retract node='urn:test:two'><item id='current'/></retract></pubsub></iq>"))
        .await;
    assert!(retracted.contains("type='result'"), "{retracted}");
    let fits_again = alice
        .iq(
            "p5",
            &pep_publish("p5", "urn:test:three", "current", &payload_of(1500), ""),
        )
        .await;
    assert!(fits_again.contains("type='result'"), "{fits_again}");
}

#[tokio::test]
async fn omemo_bundles_of_many_devices_fit_the_default_pep_quota() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    let options = publish_options(&[
        ("pubsub#access_model", "open"),
        ("pubsub#persist_items", "true"),
        ("pubsub#max_items", "max"),
    ]);
    let key = "B".repeat(44);
    let mut devices = String::from("<devices xmlns='urn:xmpp:omemo:2'>");
    for device in 1..=20 {
        let mut prekeys = String::new();
        for id in 1..=100 {
            prekeys.push_str(&format!("<pk id='{id}'>{key}</pk>"));
        }
        let bundle = format!("<bundle xmlns='urn:xmpp:omemo:2'><spk id='1'>{key}</spk><spks>{}</spks><ik>{key}</ik><prekeys>{prekeys}</prekeys></bundle>", "S".repeat(88));
        let id = format!("b{device}");
        let reply = alice
            .iq(
                &id,
                &pep_publish(
                    &id,
                    "urn:xmpp:omemo:2:bundles",
                    &device.to_string(),
                    &bundle,
                    &options,
                ),
            )
            .await;
        assert!(reply.contains("type='result'"), "device {device}: {reply}");
        devices.push_str(&format!("<device id='{device}'/>"));
    }
    devices.push_str("</devices>");
    let reply = alice
        .iq(
            "d1",
            &pep_publish(
                "d1",
                "urn:xmpp:omemo:2:devices",
                "current",
                &devices,
                &options,
            ),
        )
        .await;
    assert!(reply.contains("type='result'"), "{reply}");
}

#[tokio::test]
async fn an_owners_lock_down_racing_subscribes_is_kept_and_no_subscription_is_lost() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let users: Vec<String> = (0..12).map(|n| format!("user{n}")).collect();
    for user in &users {
        server
            .add_user(&format!("{user}@localhost"), "secret")
            .await;
    }
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    let mut clients = Vec::new();
    for user in &users {
        clients.push(RawClient::login(&server, user, "secret", "r").await);
    }
    for round in 0..3 {
        let node = format!("board{round}");
        let created = alice.iq("c", &create("c", "pubsub.localhost", &node)).await;
        assert!(created.contains("type='result'"), "{created}");
        // Everyone asks at once; the owner locks the node down and makes user0 a member
        // in the middle of it.
        for (n, client) in clients.iter_mut().enumerate() {
            if n == users.len() / 2 {
                alice
                    .send(&format!("<iq type='set' id='lock{round}' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='{node}'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field><field var='pubsub#access_model'><value>whitelist</value></field></x></configure></pubsub></iq>"))
                    .await;
                alice
                    .send(&format!("<iq type='set' id='member{round}' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><affiliations node='{node}'><affiliation jid='user0@localhost' affiliation='member'/></affiliations></pubsub></iq>"))
                    .await;
            }
            let jid = client.jid.clone();
            client
                .send(&subscribe(
                    &format!("s{round}"),
                    "pubsub.localhost",
                    &node,
                    &jid,
                ))
                .await;
        }
        let locked = alice.expect_stanza(&format!("id='lock{round}'")).await;
        assert!(locked.contains("type='result'"), "{locked}");
        let member = alice.expect_stanza(&format!("id='member{round}'")).await;
        assert!(member.contains("type='result'"), "{member}");
        let mut subscribed = Vec::new();
        for client in &mut clients {
            let reply = client.expect_stanza(&format!("id='s{round}'")).await;
            if reply.contains("subscription='subscribed'") {
                subscribed.push(client.jid.clone());
            } else {
                assert!(reply.contains("<closed-node"), "{reply}");
            }
        }
        let config = alice
            .iq("g", &format!("<iq type='get' id='g' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='{node}'/></pubsub></iq>"))
            .await;
        assert!(
            config.contains("<value>whitelist</value>"),
            "a racing subscribe undid the lock-down: {config}"
        );
        let affiliations = alice
            .iq("af", &format!("<iq type='get' id='af' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><affiliations node='{node}'/></pubsub></iq>"))
            .await;
        assert!(
            affiliations.contains("jid='user0@localhost' affiliation='member'"),
            "a racing subscribe undid the affiliation change: {affiliations}"
        );
        let list = alice
            .iq("l", &format!("<iq type='get' id='l' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><subscriptions node='{node}'/></pubsub></iq>"))
            .await;
        for jid in &subscribed {
            assert!(
                list.contains(&format!("jid='{jid}'")),
                "the acknowledged subscription of {jid} was lost: {list}"
            );
        }
        assert_eq!(
            list.matches("<subscription ").count(),
            subscribed.len(),
            "only acknowledged subscriptions are stored: {list}"
        );
    }
}

#[tokio::test]
async fn notifications_to_a_gone_subscriber_send_nothing_back_to_the_publisher() {
    let server = TestServer::start().await;
    for (user, password) in [
        ("alice", "wonderland"),
        ("bob", "builder"),
        ("eve", "listener"),
    ] {
        server
            .add_user(&format!("{user}@localhost"), password)
            .await;
    }
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    let node = "urn:xmpp:openpgp:0:public-keys";
    let options = publish_options(&[("pubsub#access_model", "open")]);
    let key = |id: &str| {
        pep_publish(
            id,
            node,
            id,
            "<public-keys-list xmlns='urn:xmpp:openpgp:0'/>",
            &options,
        )
    };
    alice.iq("k1", &key("k1")).await;
    let mut eve = RawClient::login(&server, "eve", "listener", "e").await;
    let subscribed = eve
        .iq(
            "s1",
            &subscribe("s1", "alice@localhost", node, "eve@localhost/e"),
        )
        .await;
    assert!(
        subscribed.contains("subscription='subscribed'"),
        "{subscribed}"
    );
    eve.send("</stream:stream>").await;
    eve.read_to_close().await;
    let mut bob = RawClient::login(&server, "bob", "builder", "b").await;
    let subscribed = bob
        .iq(
            "s2",
            &subscribe("s2", "alice@localhost", node, "bob@localhost/b"),
        )
        .await;
    assert!(
        subscribed.contains("subscription='subscribed'"),
        "{subscribed}"
    );
    let published = alice.iq("k2", &key("k2")).await;
    assert!(published.contains("type='result'"), "{published}");
    // A remote subscriber's server answering a notification with an error: it goes to the
    // publisher's bare JID, where error messages are dropped.
    server
        .router
        .route(
            rempart_xep::element::Element::parse(&format!("<message xmlns='jabber:client' type='error' from='eve@remote.test/x' to='alice@localhost'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='{node}'/></event><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"))
                .expect("an error message"),
        )
        .await;
    alice.iq("k3", &key("k3")).await;
    // Notifications of one account leave in publication order: once bob has the third,
    // the second went to everyone it could reach.
    bob.expect_stanza("id='k3'").await;
    let ping = alice
        .iq(
            "ping",
            "<iq type='get' id='ping' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    assert!(ping.contains("type='result'"), "{ping}");
    assert!(
        !alice.unread().contains("type='error'"),
        "nothing about a failed notification reaches the publisher: {}",
        alice.unread()
    );
}
