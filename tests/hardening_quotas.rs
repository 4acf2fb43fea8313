//! Per-account quotas (issue 13, items 4, 11 and 13): pending subscription requests, offline
//! storage with per-sender and strangers' shares, private XML storage, vCard size, and vCard
//! lookups that do not tell unknown accounts from existing ones.

mod common;

use common::{RawClient, TestServer};
use rempart_xep::element::Element;

async fn online(server: &TestServer, user: &str, password: &str, resource: &str) -> RawClient {
    let mut client = RawClient::login(server, user, password, resource).await;
    client.available().await;
    client
}

async fn ping(client: &mut RawClient, id: &str) {
    client
        .iq(
            id,
            &format!("<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"),
        )
        .await;
}

/// Hands the server a stanza as a server-to-server link would (senders need no account).
async fn from_elsewhere(server: &TestServer, xml: &str) {
    server
        .router
        .route(Element::parse(xml).expect("test stanza"))
        .await;
}

#[tokio::test]
async fn six_hundred_pending_subscription_requests_reach_the_user_without_disconnecting_it() {
    let server = TestServer::start().await;
    server.add_user("bob@localhost", "builder").await;
    let requests = 650;
    for n in 0..requests {
        from_elsewhere(
            &server,
            &format!("<presence xmlns='jabber:client' type='subscribe' from='fan{n}@example.test' to='bob@localhost'/>"),
        )
        .await;
    }
    let mut bob = RawClient::login(&server, "bob", "builder", "b").await;
    bob.request_roster().await;
    bob.available().await;
    for n in 0..requests {
        let request = bob
            .expect_stanza(&format!("from='fan{n}@example.test'"))
            .await;
        assert!(request.contains("type='subscribe'"), "{request}");
    }
    ping(&mut bob, "still-there").await;
}

#[tokio::test]
async fn stored_subscription_requests_keep_only_the_address_status_and_nickname() {
    let server = TestServer::start().await;
    server.add_user("bob@localhost", "builder").await;
    let junk = "j".repeat(10_000);
    from_elsewhere(
        &server,
        &format!("<presence xmlns='jabber:client' type='subscribe' from='fan@example.test' to='bob@localhost'><status>hello</status><nick xmlns='http://jabber.org/protocol/nick'>Fan</nick><junk xmlns='urn:example:junk'>{junk}</junk></presence>"),
    )
    .await;
    let mut bob = RawClient::login(&server, "bob", "builder", "b").await;
    bob.request_roster().await;
    bob.available().await;
    let request = bob.expect_stanza("from='fan@example.test'").await;
    assert!(request.contains("<status>hello</status>"), "{request}");
    assert!(
        request.contains("<nick xmlns='http://jabber.org/protocol/nick'>Fan</nick>"),
        "{request}"
    );
    assert!(!request.contains("junk"), "{request}");
}

#[tokio::test]
async fn pending_subscription_requests_are_capped_per_account() {
    let server = TestServer::start_with("[limits]\nmax_pending_subscriptions = 3\n").await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    for n in 0..3 {
        from_elsewhere(
            &server,
            &format!("<presence xmlns='jabber:client' type='subscribe' from='fan{n}@example.test' to='bob@localhost'/>"),
        )
        .await;
    }
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    alice
        .send("<presence type='subscribe' to='bob@localhost'/>")
        .await;
    let error = alice.expect_stanza("type='error'").await;
    assert!(error.contains("<presence"), "{error}");
    assert!(error.contains("from='bob@localhost'"), "{error}");
    assert!(error.contains("<resource-constraint"), "{error}");

    // A contact asking again replaces its request instead of taking another place.
    from_elsewhere(
        &server,
        "<presence xmlns='jabber:client' type='subscribe' from='fan0@example.test' to='bob@localhost'/>",
    )
    .await;
    let mut bob = RawClient::login(&server, "bob", "builder", "b").await;
    bob.request_roster().await;
    bob.available().await;
    for n in 0..3 {
        bob.expect_stanza(&format!("from='fan{n}@example.test'"))
            .await;
    }
    ping(&mut bob, "sync").await;
    assert!(
        !bob.unread().contains("alice@localhost"),
        "a refused request was delivered: {}",
        bob.unread()
    );
}

#[tokio::test]
async fn pending_subscription_requests_are_capped_in_bytes() {
    let server = TestServer::start_with("[limits]\nmax_pending_subscription_bytes = 1024\n").await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    let status = "s".repeat(2000);
    alice
        .send(&format!(
            "<presence type='subscribe' to='bob@localhost'><status>{status}</status></presence>"
        ))
        .await;
    let error = alice.expect_stanza("type='error'").await;
    assert!(error.contains("<resource-constraint"), "{error}");
}

#[tokio::test]
async fn strangers_cannot_fill_the_offline_store_against_contacts() {
    let server = TestServer::start_with(
        "[modules.offline]\nmax_messages = 10\nsender_share_percent = 30\nstranger_share_percent = 50\n",
    )
    .await;
    for (user, password) in [
        ("alice", "wonderland"),
        ("bob", "builder"),
        ("carol", "singer"),
        ("dave", "diver"),
    ] {
        server
            .add_user(&format!("{user}@localhost"), password)
            .await;
    }
    // Alice is in bob's roster; carol and dave are strangers.
    let mut bob = RawClient::login(&server, "bob", "builder", "b").await;
    let added = bob
        .iq(
            "add",
            "<iq type='set' id='add'><query xmlns='jabber:iq:roster'><item jid='alice@localhost'/></query></iq>",
        )
        .await;
    assert!(added.contains("type='result'"), "{added}");
    bob.send("</stream:stream>").await;
    bob.read_to_close().await;

    // One stranger gets 30% of the store: its fourth message bounces.
    let mut carol = online(&server, "carol", "singer", "c").await;
    for n in 1..=4 {
        carol
            .send(&format!(
                "<message to='bob@localhost' type='chat' id='c{n}'><body>{n}</body></message>"
            ))
            .await;
    }
    let error = carol.expect_stanza("id='c4'").await;
    assert!(error.contains("<resource-constraint"), "{error}");
    ping(&mut carol, "carol-sync").await;
    assert!(
        !carol.unread().contains("type='error'"),
        "{}",
        carol.unread()
    );

    // Strangers together get 50%: two more from elsewhere fill it, and dave's first bounces.
    for n in 1..=2 {
        from_elsewhere(
            &server,
            &format!("<message xmlns='jabber:client' type='chat' from='spam@example.test/x' to='bob@localhost' id='s{n}'><body>spam</body></message>"),
        )
        .await;
    }
    let mut dave = online(&server, "dave", "diver", "d").await;
    dave.send("<message to='bob@localhost' type='chat' id='d1'><body>hi</body></message>")
        .await;
    let error = dave.expect_stanza("id='d1'").await;
    assert!(error.contains("<resource-constraint"), "{error}");

    // The contact still gets through.
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    for n in 1..=3 {
        alice
            .send(&format!(
                "<message to='bob@localhost' type='chat' id='a{n}'><body>{n}</body></message>"
            ))
            .await;
    }
    ping(&mut alice, "alice-sync").await;
    assert!(
        !alice.unread().contains("type='error'"),
        "{}",
        alice.unread()
    );
    let mut bob = RawClient::login(&server, "bob", "builder", "b").await;
    bob.send("<presence/>").await;
    for id in ["c1", "c2", "c3", "s1", "s2", "a1", "a2", "a3"] {
        bob.expect_stanza(&format!("id='{id}'")).await;
    }
}

#[tokio::test]
async fn offline_storage_is_capped_in_bytes() {
    let server = TestServer::start_with(
        "[modules.offline]\nmax_bytes = 4000\nsender_share_percent = 100\nstranger_share_percent = 100\n",
    )
    .await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    let body = "b".repeat(1500);
    for n in 1..=3 {
        alice
            .send(&format!(
                "<message to='bob@localhost' type='chat' id='o{n}'><body>{body}</body></message>"
            ))
            .await;
    }
    let error = alice.expect_stanza("type='error'").await;
    assert!(error.contains("id='o3'"), "{error}");
    assert!(error.contains("<resource-constraint"), "{error}");
}

#[tokio::test]
async fn private_storage_is_capped_in_keys_and_bytes() {
    let server =
        TestServer::start_with("[modules.private]\nmax_keys = 2\nmax_bytes = 1000\n").await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    let store = |id: &str, ns: &str, content: &str| {
        format!("<iq type='set' id='{id}'><query xmlns='jabber:iq:private'><data xmlns='{ns}'>{content}</data></query></iq>")
    };
    for (id, ns) in [("p1", "urn:example:one"), ("p2", "urn:example:two")] {
        let reply = alice.iq(id, &store(id, ns, "x")).await;
        assert!(reply.contains("type='result'"), "{reply}");
    }
    let replaced = alice.iq("p3", &store("p3", "urn:example:one", "y")).await;
    assert!(replaced.contains("type='result'"), "{replaced}");
    let third = alice.iq("p4", &store("p4", "urn:example:three", "z")).await;
    assert!(third.contains("<resource-constraint"), "{third}");
    let huge = alice
        .iq("p5", &store("p5", "urn:example:one", &"h".repeat(2000)))
        .await;
    assert!(huge.contains("<not-acceptable"), "{huge}");
    let filling = alice
        .iq("p6", &store("p6", "urn:example:two", &"f".repeat(950)))
        .await;
    assert!(filling.contains("<resource-constraint"), "{filling}");
}

#[tokio::test]
async fn a_vcard_larger_than_the_limit_is_refused() {
    let server = TestServer::start_with("[modules.vcard]\nmax_size = 1000\n").await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    let photo = "A".repeat(2000);
    let reply = alice
        .iq(
            "v1",
            &format!("<iq type='set' id='v1'><vCard xmlns='vcard-temp'><PHOTO><BINVAL>{photo}</BINVAL></PHOTO></vCard></iq>"),
        )
        .await;
    assert!(reply.contains("<not-acceptable"), "{reply}");
    let small = alice
        .iq(
            "v2",
            "<iq type='set' id='v2'><vCard xmlns='vcard-temp'><FN>Alice</FN></vCard></iq>",
        )
        .await;
    assert!(small.contains("type='result'"), "{small}");
}

#[tokio::test]
async fn vcard_lookups_answer_alike_for_unknown_accounts_and_accounts_without_a_vcard() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    let ask =
        |to: &str| format!("<iq type='get' id='vc' to='{to}'><vCard xmlns='vcard-temp'/></iq>");
    let existing = alice.iq("vc", &ask("bob@localhost")).await;
    let unknown = alice.iq("vc", &ask("nobody@localhost")).await;
    assert!(existing.contains("type='error'"), "{existing}");
    assert_eq!(
        existing.replace("bob@localhost", "X"),
        unknown.replace("nobody@localhost", "X"),
        "the answers tell the accounts apart"
    );
}
