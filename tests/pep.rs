//! XEP-0163 PEP over the one PubSub engine, as OMEMO, avatar, OpenPGP, bookmark and private
//! storage clients use it.

mod common;

use common::interests::login_with_interest;
use common::{RawClient, TestServer};
use rempart_xep::caps::ver_string;
use rempart_xep::disco::{DiscoInfo, Identity};

const DEVICES: &str = "urn:xmpp:omemo:2:devices";
const BUNDLES: &str = "urn:xmpp:omemo:2:bundles";

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

fn publish(id: &str, node: &str, item_id: &str, payload: &str, options: &str) -> String {
    format!(
        "<iq type='set' id='{id}'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='{node}'><item id='{item_id}'>{payload}</item></publish>{options}</pubsub></iq>"
    )
}

fn devices(ids: &[u32]) -> String {
    let mut list = String::from("<devices xmlns='urn:xmpp:omemo:2'>");
    for id in ids {
        list.push_str(&format!("<device id='{id}'/>"));
    }
    list.push_str("</devices>");
    list
}

async fn befriend(server: &TestServer, alice: &mut RawClient, bob: &mut RawClient) {
    let _ = server;
    for (from, to, from_bare, to_bare) in
        [(&mut *alice, &mut *bob, "alice@localhost", "bob@localhost")]
    {
        from.send(&format!("<presence to='{to_bare}' type='subscribe'/>"))
            .await;
        to.expect_stanza("type='subscribe'").await;
        to.send(&format!("<presence to='{from_bare}' type='subscribed'/>"))
            .await;
        from.expect_stanza("type='subscribed'").await;
    }
    bob.send("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    alice.expect_stanza("type='subscribe'").await;
    alice
        .send("<presence to='bob@localhost' type='subscribed'/>")
        .await;
    bob.expect_stanza("type='subscribed'").await;
}

async fn users(server: &TestServer) {
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    server.add_user("eve@localhost", "listener").await;
}

#[tokio::test]
async fn account_advertises_pep_and_publish_options() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    let info = alice
        .iq("d1", "<iq type='get' id='d1' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    assert!(
        info.contains("category='pubsub'") && info.contains("type='pep'"),
        "{info}"
    );
    assert!(
        info.contains("var='http://jabber.org/protocol/pubsub#publish-options'"),
        "{info}"
    );
    assert!(
        info.contains("var='http://jabber.org/protocol/pubsub#auto-create'"),
        "{info}"
    );
}

#[tokio::test]
async fn publish_auto_creates_the_node_with_its_publish_options() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    let options = publish_options(&[("pubsub#access_model", "open"), ("pubsub#max_items", "max")]);
    let reply = alice
        .iq(
            "p1",
            &publish(
                "p1",
                BUNDLES,
                "1001",
                "<bundle xmlns='urn:xmpp:omemo:2'><spk id='1'>AAAA</spk></bundle>",
                &options,
            ),
        )
        .await;
    assert!(reply.contains("type='result'"), "{reply}");
    assert!(reply.contains("<item id='1001'/>"), "{reply}");
    let config = alice
        .iq("c1", &format!("<iq type='get' id='c1'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='{BUNDLES}'/></pubsub></iq>"))
        .await;
    assert!(
        config.contains("<field var='pubsub#access_model' type='list-single'>"),
        "{config}"
    );
    assert!(config.contains("<value>open</value>"), "{config}");
    assert!(
        config.contains("<field var='pubsub#max_items' type='text-single'><value>max</value>"),
        "{config}"
    );
    let again = alice
        .iq(
            "p2",
            &publish(
                "p2",
                BUNDLES,
                "1002",
                "<bundle xmlns='urn:xmpp:omemo:2'/>",
                &options,
            ),
        )
        .await;
    assert!(
        again.contains("type='result'"),
        "same options are met: {again}"
    );
}

#[tokio::test]
async fn conflicting_publish_options_get_precondition_not_met() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    alice
        .iq("p1", &publish("p1", DEVICES, "current", &devices(&[1]), ""))
        .await;
    let reply = alice
        .iq(
            "p2",
            &publish(
                "p2",
                DEVICES,
                "current",
                &devices(&[1]),
                &publish_options(&[("pubsub#access_model", "open")]),
            ),
        )
        .await;
    assert!(reply.contains("type='error'"), "{reply}");
    assert!(reply.contains("<conflict"), "{reply}");
    assert!(
        reply.contains("<precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'/>"),
        "{reply}"
    );
}

#[tokio::test]
async fn owner_reconfigures_then_publish_options_match() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    alice
        .iq("p1", &publish("p1", DEVICES, "current", &devices(&[1]), ""))
        .await;
    let set = alice
        .iq("c2", &format!("<iq type='set' id='c2'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='{DEVICES}'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field><field var='pubsub#access_model'><value>open</value></field></x></configure></pubsub></iq>"))
        .await;
    assert!(set.contains("type='result'"), "{set}");
    let reply = alice
        .iq(
            "p2",
            &publish(
                "p2",
                DEVICES,
                "current",
                &devices(&[1, 2]),
                &publish_options(&[("pubsub#access_model", "open")]),
            ),
        )
        .await;
    assert!(reply.contains("type='result'"), "{reply}");
}

#[tokio::test]
async fn a_non_contact_can_fetch_an_open_bundle_but_not_a_presence_node() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    alice
        .iq(
            "p1",
            &publish(
                "p1",
                BUNDLES,
                "7",
                "<bundle xmlns='urn:xmpp:omemo:2'><ik>KEY</ik></bundle>",
                &publish_options(&[("pubsub#access_model", "open"), ("pubsub#max_items", "max")]),
            ),
        )
        .await;
    alice
        .iq(
            "p2",
            &publish(
                "p2",
                "urn:xmpp:avatar:metadata",
                "x",
                "<metadata xmlns='urn:xmpp:avatar:metadata'/>",
                "",
            ),
        )
        .await;
    let mut eve = RawClient::login(&server, "eve", "listener", "e").await;
    let bundle = eve
        .iq("f1", &format!("<iq type='get' id='f1' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{BUNDLES}'><item id='7'/></items></pubsub></iq>"))
        .await;
    assert!(bundle.contains("<ik>KEY</ik>"), "{bundle}");
    let denied = eve
        .iq("f2", "<iq type='get' id='f2' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:avatar:metadata'/></pubsub></iq>")
        .await;
    assert!(denied.contains("<not-authorized"), "{denied}");
    assert!(
        denied.contains("<presence-subscription-required"),
        "{denied}"
    );
}

#[tokio::test]
async fn missing_node_is_item_not_found() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    let reply = alice
        .iq("f1", "<iq type='get' id='f1' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='nothing'/></pubsub></iq>")
        .await;
    assert!(reply.contains("<item-not-found"), "{reply}");
}

#[tokio::test]
async fn only_the_owner_publishes_to_their_pep() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut eve = RawClient::login(&server, "eve", "listener", "e").await;
    let reply = eve
        .iq("x1", &format!("<iq type='set' id='x1' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='{DEVICES}'><item id='current'>{}</item></publish></pubsub></iq>", devices(&[666])))
        .await;
    assert!(reply.contains("<forbidden"), "{reply}");
}

#[tokio::test]
async fn notifications_go_only_to_resources_that_asked_with_notify() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = login_with_interest(&server, "alice", "wonderland", "a", &[]).await;
    let mut bob = login_with_interest(&server, "bob", "builder", "b", &[DEVICES]).await;
    befriend(&server, &mut alice, &mut bob).await;
    let mut bob_other = login_with_interest(
        &server,
        "bob",
        "builder",
        "other",
        &["urn:xmpp:avatar:metadata"],
    )
    .await;
    alice
        .iq(
            "p1",
            &publish("p1", DEVICES, "current", &devices(&[11, 12]), ""),
        )
        .await;
    let event = bob
        .expect_stanza("http://jabber.org/protocol/pubsub#event")
        .await;
    assert!(event.contains(&format!("node='{DEVICES}'")), "{event}");
    assert!(event.contains("<device id='12'/>"), "{event}");
    assert!(event.contains("from='alice@localhost'"), "{event}");
    alice
        .iq(
            "p2",
            &publish(
                "p2",
                "urn:xmpp:avatar:metadata",
                "av",
                "<metadata xmlns='urn:xmpp:avatar:metadata'/>",
                "",
            ),
        )
        .await;
    // Notifications of one account leave in publication order: once the avatar event is
    // here, a device list event for this resource would have arrived before it.
    bob_other.expect_stanza("urn:xmpp:avatar:metadata").await;
    assert!(
        !bob_other.unread().contains(DEVICES),
        "the other resource never gets the device list: {}",
        bob_other.unread()
    );
}

#[tokio::test]
async fn roster_access_lets_in_only_contacts_in_the_allowed_groups() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    alice.request_roster().await;
    for (id, contact, group) in [("g1", "bob", "Friends"), ("g2", "eve", "Work")] {
        let set = alice
            .iq(id, &format!("<iq type='set' id='{id}'><query xmlns='jabber:iq:roster'><item jid='{contact}@localhost'><group>{group}</group></item></query></iq>"))
            .await;
        assert!(set.contains("type='result'"), "{set}");
    }
    let options = publish_options(&[
        ("pubsub#access_model", "roster"),
        ("pubsub#roster_groups_allowed", "Friends"),
    ]);
    let published = alice
        .iq(
            "p1",
            &publish(
                "p1",
                "urn:xmpp:avatar:metadata",
                "av",
                "<metadata xmlns='urn:xmpp:avatar:metadata'><info id='av' bytes='1' type='image/png'/></metadata>",
                &options,
            ),
        )
        .await;
    assert!(published.contains("type='result'"), "{published}");
    let fetch = "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:avatar:metadata'/></pubsub>";
    let mut bob = RawClient::login(&server, "bob", "builder", "b").await;
    let allowed = bob
        .iq(
            "f1",
            &format!("<iq type='get' id='f1' to='alice@localhost'>{fetch}</iq>"),
        )
        .await;
    assert!(allowed.contains("type='result'"), "{allowed}");
    assert!(allowed.contains("<info id='av'"), "{allowed}");
    let mut eve = RawClient::login(&server, "eve", "listener", "e").await;
    let refused = eve
        .iq(
            "f2",
            &format!("<iq type='get' id='f2' to='alice@localhost'>{fetch}</iq>"),
        )
        .await;
    assert!(refused.contains("type='error'"), "{refused}");
    assert!(refused.contains("<not-authorized"), "{refused}");
    assert!(refused.contains("<not-in-roster-group"), "{refused}");
    assert!(!refused.contains("<info id='av'"), "{refused}");
}

#[tokio::test]
async fn more_last_items_than_the_session_queue_holds_are_all_delivered() {
    let server = TestServer::start_with("[limits]\nsession_queue = 8\n").await;
    users(&server).await;
    let mut alice = login_with_interest(&server, "alice", "wonderland", "a", &[]).await;
    let mut bob = login_with_interest(&server, "bob", "builder", "b", &[]).await;
    befriend(&server, &mut alice, &mut bob).await;
    bob.send("</stream:stream>").await;
    bob.read_to_close().await;
    let nodes: Vec<String> = (0..30).map(|n| format!("urn:test:node{n}")).collect();
    for (n, node) in nodes.iter().enumerate() {
        let id = format!("p{n}");
        let reply = alice
            .iq(
                &id,
                &publish(
                    &id,
                    node,
                    "current",
                    &format!("<n xmlns='urn:test'>{n}</n>"),
                    "",
                ),
            )
            .await;
        assert!(reply.contains("type='result'"), "{reply}");
    }
    let wanted: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let mut bob = login_with_interest(&server, "bob", "builder", "later", &wanted).await;
    for n in 0..30 {
        bob.expect_stanza(&format!("<n xmlns='urn:test'>{n}</n>"))
            .await;
    }
}

#[tokio::test]
async fn last_item_is_delivered_when_an_interested_contact_comes_online() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = login_with_interest(&server, "alice", "wonderland", "a", &[]).await;
    let mut bob = login_with_interest(&server, "bob", "builder", "b", &[]).await;
    befriend(&server, &mut alice, &mut bob).await;
    alice
        .iq(
            "p1",
            &publish("p1", DEVICES, "current", &devices(&[21]), ""),
        )
        .await;
    bob.send("</stream:stream>").await;
    bob.read_to_close().await;
    let mut bob = login_with_interest(&server, "bob", "builder", "later", &[DEVICES]).await;
    let event = bob
        .expect_stanza("http://jabber.org/protocol/pubsub#event")
        .await;
    assert!(event.contains("<device id='21'/>"), "{event}");
    assert!(event.contains("<delay xmlns='urn:xmpp:delay'"), "{event}");
}

#[tokio::test]
async fn retract_purge_and_delete_are_notified() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = login_with_interest(
        &server,
        "alice",
        "wonderland",
        "a",
        &["urn:xmpp:pep-vcard-conversion:0", "urn:test:node"],
    )
    .await;
    let options = publish_options(&[("pubsub#max_items", "10")]);
    alice
        .iq(
            "p1",
            &publish(
                "p1",
                "urn:test:node",
                "one",
                "<x xmlns='urn:test'/>",
                &options,
            ),
        )
        .await;
    alice.expect_stanza("pubsub#event").await;
    alice
        .iq("r1", "<iq type='set' id='r1'><pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='urn:test:node' notify='true'><item id='one'/></retract></pubsub></iq>")
        .await;
    let retract = alice.expect_stanza("pubsub#event").await;
    assert!(retract.contains("<retract id='one'/>"), "{retract}");
    alice
        .iq(
            "p2",
            &publish(
                "p2",
                "urn:test:node",
                "two",
                "<x xmlns='urn:test'/>",
                &options,
            ),
        )
        .await;
    alice.expect_stanza("pubsub#event").await;
    alice
        .iq("u1", "<iq type='set' id='u1'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><purge node='urn:test:node'/></pubsub></iq>")
        .await;
    let purge = alice.expect_stanza("pubsub#event").await;
    assert!(purge.contains("<purge node='urn:test:node'/>"), "{purge}");
    alice
        .iq("x1", "<iq type='set' id='x1'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='urn:test:node'/></pubsub></iq>")
        .await;
    let delete = alice.expect_stanza("pubsub#event").await;
    assert!(
        delete.contains("<delete node='urn:test:node'/>"),
        "{delete}"
    );
    let gone = alice
        .iq("f1", "<iq type='get' id='f1'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:test:node'/></pubsub></iq>")
        .await;
    assert!(gone.contains("<item-not-found"), "{gone}");
}

#[tokio::test]
async fn max_items_keeps_the_newest_and_rsm_pages_them() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    let options = publish_options(&[("pubsub#max_items", "3")]);
    for n in 1..=5 {
        alice
            .iq(
                &format!("p{n}"),
                &publish(
                    &format!("p{n}"),
                    "urn:xmpp:bookmarks:1",
                    &format!("room{n}"),
                    "<conference xmlns='urn:xmpp:bookmarks:1'/>",
                    &options,
                ),
            )
            .await;
    }
    let all = alice
        .iq("f1", "<iq type='get' id='f1'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>")
        .await;
    assert!(!all.contains("room1") && !all.contains("room2"), "{all}");
    assert!(all.contains("room3") && all.contains("room5"), "{all}");
    let page = alice
        .iq("f2", "<iq type='get' id='f2'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/><set xmlns='http://jabber.org/protocol/rsm'><max>1</max><after>room3</after></set></pubsub></iq>")
        .await;
    assert!(
        page.contains("id='room4'") && !page.contains("id='room5'"),
        "{page}"
    );
    assert!(page.contains("<count>3</count>"), "{page}");
    let newest = alice
        .iq("f3", "<iq type='get' id='f3'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1' max_items='1'/></pubsub></iq>")
        .await;
    assert!(
        newest.contains("id='room5'") && !newest.contains("id='room4'"),
        "{newest}"
    );
}

#[tokio::test]
async fn whitelist_private_storage_is_refused_to_contacts_until_made_member() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = login_with_interest(&server, "alice", "wonderland", "a", &[]).await;
    let mut bob = login_with_interest(&server, "bob", "builder", "b", &[]).await;
    befriend(&server, &mut alice, &mut bob).await;
    let options = publish_options(&[
        ("pubsub#access_model", "whitelist"),
        ("pubsub#persist_items", "true"),
    ]);
    alice
        .iq(
            "p1",
            &publish(
                "p1",
                "storage:bookmarks",
                "current",
                "<storage xmlns='storage:bookmarks'/>",
                &options,
            ),
        )
        .await;
    let denied = bob
        .iq("f1", "<iq type='get' id='f1' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='storage:bookmarks'/></pubsub></iq>")
        .await;
    assert!(denied.contains("<not-allowed"), "{denied}");
    assert!(denied.contains("<closed-node"), "{denied}");
    alice
        .iq("a1", "<iq type='set' id='a1'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><affiliations node='storage:bookmarks'><affiliation jid='bob@localhost' affiliation='member'/></affiliations></pubsub></iq>")
        .await;
    let allowed = bob
        .iq("f2", "<iq type='get' id='f2' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='storage:bookmarks'/></pubsub></iq>")
        .await;
    assert!(
        allowed.contains("<storage xmlns='storage:bookmarks'/>"),
        "{allowed}"
    );
}

#[tokio::test]
async fn oversized_item_is_refused_with_payload_too_big() {
    let server = TestServer::start_with("[modules.pep]\nmax_item_size = 1024\n").await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    let big = format!(
        "<data xmlns='urn:xmpp:avatar:data'>{}</data>",
        "A".repeat(4000)
    );
    let reply = alice
        .iq("p1", &publish("p1", "urn:xmpp:avatar:data", "h", &big, ""))
        .await;
    assert!(reply.contains("<payload-too-big"), "{reply}");
}

#[tokio::test]
async fn explicit_subscription_gets_the_last_item_and_later_notifications() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    let options = publish_options(&[("pubsub#access_model", "open")]);
    alice
        .iq(
            "p1",
            &publish(
                "p1",
                "urn:xmpp:openpgp:0:public-keys",
                "k1",
                "<public-keys-list xmlns='urn:xmpp:openpgp:0'/>",
                &options,
            ),
        )
        .await;
    let mut eve = RawClient::login(&server, "eve", "listener", "e").await;
    eve.available().await;
    let reply = eve
        .iq("s1", "<iq type='set' id='s1' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='urn:xmpp:openpgp:0:public-keys' jid='eve@localhost/e'/></pubsub></iq>")
        .await;
    assert!(reply.contains("subscription='subscribed'"), "{reply}");
    let last = eve.expect_stanza("pubsub#event").await;
    assert!(last.contains("id='k1'"), "{last}");
    alice
        .iq(
            "p2",
            &publish(
                "p2",
                "urn:xmpp:openpgp:0:public-keys",
                "k2",
                "<public-keys-list xmlns='urn:xmpp:openpgp:0'/>",
                &options,
            ),
        )
        .await;
    let next = eve.expect_stanza("pubsub#event").await;
    assert!(next.contains("id='k2'"), "{next}");
}

#[tokio::test]
async fn account_disco_items_list_readable_nodes() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    alice
        .iq(
            "p1",
            &publish(
                "p1",
                BUNDLES,
                "1",
                "<bundle xmlns='urn:xmpp:omemo:2'/>",
                &publish_options(&[("pubsub#access_model", "open")]),
            ),
        )
        .await;
    alice
        .iq(
            "p2",
            &publish(
                "p2",
                "secret:node",
                "1",
                "<x xmlns='urn:x'/>",
                &publish_options(&[("pubsub#access_model", "whitelist")]),
            ),
        )
        .await;
    let mut eve = RawClient::login(&server, "eve", "listener", "e").await;
    let items = eve
        .iq("d1", "<iq type='get' id='d1' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        .await;
    assert!(items.contains(&format!("node='{BUNDLES}'")), "{items}");
    assert!(!items.contains("secret:node"), "{items}");
}

#[tokio::test]
async fn published_items_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_persistent(dir).await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    let options = publish_options(&[("pubsub#access_model", "open"), ("pubsub#max_items", "max")]);
    alice
        .iq(
            "p1",
            &publish(
                "p1",
                BUNDLES,
                "31337",
                "<bundle xmlns='urn:xmpp:omemo:2'><ik>PERSISTED</ik></bundle>",
                &options,
            ),
        )
        .await;
    drop(alice);
    let dir = server.stop_keeping_data().await;
    let server = TestServer::start_persistent(dir).await;
    let mut bob = RawClient::login(&server, "bob", "builder", "b").await;
    let fetched = bob
        .iq("f1", &format!("<iq type='get' id='f1' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{BUNDLES}'/></pubsub></iq>"))
        .await;
    assert!(fetched.contains("<ik>PERSISTED</ik>"), "{fetched}");
}

#[tokio::test]
async fn approving_a_subscription_sends_the_new_contact_the_last_items() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = login_with_interest(&server, "alice", "wonderland", "a", &[]).await;
    alice
        .iq(
            "p1",
            &publish("p1", DEVICES, "current", &devices(&[77]), ""),
        )
        .await;
    let mut bob = login_with_interest(&server, "bob", "builder", "b", &[DEVICES]).await;
    bob.send("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    alice.expect_stanza("type='subscribe'").await;
    alice
        .send("<presence to='bob@localhost' type='subscribed'/>")
        .await;
    let event = bob.expect_stanza("pubsub#event").await;
    assert!(event.contains("<device id='77'/>"), "{event}");
}

#[tokio::test]
async fn a_resource_announcing_already_verified_caps_gets_the_last_items_too() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    alice
        .iq(
            "p1",
            &publish("p1", DEVICES, "current", &devices(&[5150]), ""),
        )
        .await;
    let info = DiscoInfo {
        node: None,
        identities: vec![Identity::new("client", "phone").named("Same Client 1.0")],
        features: vec![format!("{DEVICES}+notify")],
        forms: vec![],
    };
    let ver = ver_string(&info);
    let presence = format!(
        "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='urn:same' ver='{ver}'/></presence>"
    );
    let answer = |id: &str| {
        format!("<iq type='result' id='{id}' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='urn:same#{ver}'><identity category='client' type='phone' name='Same Client 1.0'/><feature var='{DEVICES}+notify'/></query></iq>")
    };
    let mut first = RawClient::login(&server, "alice", "wonderland", "first").await;
    first.send(&presence).await;
    let query = first.expect_stanza("disco#info").await;
    let id = query
        .split("id='")
        .nth(1)
        .and_then(|v| v.split('\'').next())
        .expect("id")
        .to_owned();
    first.send(&answer(&id)).await;
    let event = first.expect_stanza("pubsub#event").await;
    assert!(event.contains("<device id='5150'/>"), "{event}");
    let mut second = RawClient::login(&server, "alice", "wonderland", "second").await;
    second.send(&presence).await;
    let event = second.expect_stanza("pubsub#event").await;
    assert!(
        event.contains("<device id='5150'/>"),
        "the cached caps must still bring the last item: {event}"
    );
    drop(alice);
}

#[tokio::test]
async fn a_new_caps_version_is_queried_once_for_all_the_resources_announcing_it() {
    let server = TestServer::start().await;
    users(&server).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    alice
        .iq(
            "p1",
            &publish("p1", DEVICES, "current", &devices(&[8080]), ""),
        )
        .await;
    let info = DiscoInfo {
        node: None,
        identities: vec![Identity::new("client", "pc").named("Popular Client 2.0")],
        features: vec![format!("{DEVICES}+notify")],
        forms: vec![],
    };
    let ver = ver_string(&info);
    let presence = format!(
        "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='urn:popular' ver='{ver}'/></presence>"
    );
    let mut first = RawClient::login(&server, "alice", "wonderland", "first").await;
    first.send(&presence).await;
    let query = first.expect_stanza("disco#info").await;
    let mut second = RawClient::login(&server, "alice", "wonderland", "second").await;
    second.send(&presence).await;
    second.expect_stanza("from='alice@localhost/second'").await;
    let id = query
        .split("id='")
        .nth(1)
        .and_then(|v| v.split('\'').next())
        .expect("id")
        .to_owned();
    first
        .send(&format!("<iq type='result' id='{id}' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='urn:popular#{ver}'><identity category='client' type='pc' name='Popular Client 2.0'/><feature var='{DEVICES}+notify'/></query></iq>"))
        .await;
    let event = second.expect_stanza("pubsub#event").await;
    assert!(event.contains("<device id='8080'/>"), "{event}");
    assert!(
        !second.unread().contains("disco#info"),
        "asked twice: {}",
        second.unread()
    );
    first.expect_stanza("pubsub#event").await;
}
