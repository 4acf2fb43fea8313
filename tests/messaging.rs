//! RFC 6121 §8.5 message delivery, XEP-0160 offline storage and IQ routing.

mod common;

use common::{RawClient, TestServer};

async fn online(server: &TestServer, user: &str, password: &str, resource: &str) -> RawClient {
    let mut client = RawClient::login(server, user, password, resource).await;
    client.available().await;
    client
}

#[tokio::test]
async fn chat_to_a_bare_jid_reaches_the_online_resource() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    let mut bob = online(&server, "bob", "builder", "b").await;
    alice
        .send("<message to='bob@localhost' type='chat' id='m1'><body>hello &amp; welcome</body></message>")
        .await;
    let received = bob.expect_stanza("id='m1'").await;
    assert!(received.contains("from='alice@localhost/a'"), "{received}");
    assert!(
        received.contains("<body>hello &amp; welcome</body>"),
        "{received}"
    );
}

#[tokio::test]
async fn chat_goes_to_the_highest_priority_resource_only() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    let mut low = RawClient::login(&server, "bob", "builder", "low").await;
    low.send("<presence><priority>1</priority></presence>")
        .await;
    low.expect_stanza("from='bob@localhost/low'").await;
    let mut high = RawClient::login(&server, "bob", "builder", "high").await;
    high.send("<presence><priority>5</priority></presence>")
        .await;
    high.expect_stanza("from='bob@localhost/high'").await;
    alice
        .send("<message to='bob@localhost' type='chat' id='m1'><body>first</body></message>")
        .await;
    alice
        .send("<message to='bob@localhost/low' type='chat' id='m2'><body>second</body></message>")
        .await;
    let at_high = high.expect_stanza("<body>").await;
    assert!(at_high.contains("id='m1'"), "{at_high}");
    let at_low = low.expect_stanza("<body>").await;
    assert!(
        at_low.contains("id='m2'"),
        "the low resource only gets what is addressed to it: {at_low}"
    );
}

#[tokio::test]
async fn message_to_an_unknown_account_bounces_with_service_unavailable() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    alice
        .send("<message to='ghost@localhost' type='chat' id='g1'><body>boo</body></message>")
        .await;
    let error = alice.expect_stanza("id='g1'").await;
    assert!(error.contains("type='error'"), "{error}");
    assert!(error.contains("<service-unavailable"), "{error}");
}

#[tokio::test]
async fn message_to_a_remote_domain_bounces_until_federation_exists() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    alice
        .send(
            "<message to='someone@elsewhere.example' type='chat' id='r1'><body>hi</body></message>",
        )
        .await;
    let error = alice.expect_stanza("id='r1'").await;
    assert!(error.contains("<remote-server-not-found"), "{error}");
}

#[tokio::test]
async fn malformed_to_gets_jid_malformed() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    alice
        .send("<message to='a@b@c' type='chat' id='j1'><body>hi</body></message>")
        .await;
    let error = alice.expect_stanza("id='j1'").await;
    assert!(error.contains("<jid-malformed"), "{error}");
}

#[tokio::test]
async fn offline_messages_are_delivered_in_order_with_delay_on_next_login() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    for n in 1..=3 {
        alice
            .send(&format!(
                "<message to='bob@localhost' type='chat' id='o{n}'><body>note {n}</body></message>"
            ))
            .await;
    }
    alice
        .iq(
            "sync",
            "<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    let mut bob = RawClient::login(&server, "bob", "builder", "b").await;
    bob.send("<presence/>").await;
    for n in 1..=3 {
        let message = bob.expect_stanza("<body>").await;
        assert!(message.contains(&format!("id='o{n}'")), "order: {message}");
        assert!(
            message.contains(&format!("<body>note {n}</body>")),
            "{message}"
        );
        assert!(
            message.contains("<delay xmlns='urn:xmpp:delay' from='localhost' stamp='"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn encrypted_message_without_body_is_stored_byte_exactly() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    let payload = "<encrypted xmlns='urn:xmpp:omemo:2'><header sid='42'><keys jid='bob@localhost'><key rid='7' kex='true'>AbC+/=</key></keys></header><payload>ZZZ=</payload></encrypted><store xmlns='urn:xmpp:hints'/>";
    alice
        .send(&format!(
            "<message to='bob@localhost' type='chat' id='e1'>{payload}</message>"
        ))
        .await;
    alice
        .iq(
            "sync",
            "<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    let mut bob = RawClient::login(&server, "bob", "builder", "b").await;
    bob.send("<presence/>").await;
    let message = bob.expect_stanza("id='e1'").await;
    assert!(message.contains(payload), "{message}");
}

#[tokio::test]
async fn full_offline_storage_answers_resource_constraint() {
    let server = TestServer::start_with("[modules.offline]\nmax_messages = 2\n").await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    for n in 1..=3 {
        alice
            .send(&format!(
                "<message to='bob@localhost' type='chat' id='f{n}'><body>{n}</body></message>"
            ))
            .await;
    }
    let error = alice.expect_stanza("id='f3'").await;
    assert!(error.contains("type='error'"), "{error}");
    assert!(error.contains("<resource-constraint"), "{error}");
}

#[tokio::test]
async fn chat_states_alone_are_not_stored_offline() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    alice
        .send("<message to='bob@localhost' type='chat' id='c1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
        .await;
    alice
        .send("<message to='bob@localhost' type='chat' id='c2'><body>real</body></message>")
        .await;
    alice
        .iq(
            "sync",
            "<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    let mut bob = RawClient::login(&server, "bob", "builder", "b").await;
    bob.send("<presence/>").await;
    let first = bob.expect_stanza("<message").await;
    assert!(
        first.contains("id='c2'"),
        "the chat state must not be stored: {first}"
    );
}

#[tokio::test]
async fn iq_to_an_unknown_namespace_gets_service_unavailable() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    let reply = alice
        .iq(
            "u1",
            "<iq type='get' id='u1' to='localhost'><query xmlns='urn:example:unknown'/></iq>",
        )
        .await;
    assert!(reply.contains("type='error'"), "{reply}");
    assert!(reply.contains("<service-unavailable"), "{reply}");
}

#[tokio::test]
async fn iq_results_are_never_answered() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    alice
        .send("<iq type='result' id='stray' to='localhost'/>")
        .await;
    let reply = alice
        .iq(
            "after",
            "<iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    assert!(reply.contains("id='after'"), "{reply}");
    assert!(reply.contains("type='result'"), "{reply}");
    // The session handles its stanzas in order, so an answer to `stray` would have been
    // written before the ping's result: everything that came before it is still unread.
    assert!(
        !alice.unread().contains('<'),
        "nothing but the ping's result may arrive: {}",
        alice.unread()
    );
}

#[tokio::test]
async fn iq_between_full_jids_is_routed_and_answered() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    let mut bob = online(&server, "bob", "builder", "b").await;
    alice
        .send("<iq type='get' id='v1' to='bob@localhost/b'><query xmlns='jabber:iq:version'/></iq>")
        .await;
    let request = bob.expect_stanza("id='v1'").await;
    assert!(request.contains("from='alice@localhost/a'"), "{request}");
    bob.send("<iq type='result' id='v1' to='alice@localhost/a'><query xmlns='jabber:iq:version'><name>Bob</name></query></iq>")
        .await;
    let answer = alice.expect_stanza("id='v1'").await;
    assert!(answer.contains("<name>Bob</name>"), "{answer}");
}

#[tokio::test]
async fn iq_to_an_offline_full_jid_gets_service_unavailable() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    let reply = alice
        .iq("x1", "<iq type='get' id='x1' to='bob@localhost/gone'><query xmlns='jabber:iq:version'/></iq>")
        .await;
    assert!(reply.contains("<service-unavailable"), "{reply}");
}

#[tokio::test]
async fn more_offline_messages_than_the_session_queue_holds_are_all_delivered() {
    let server = TestServer::start_with("[limits]\nsession_queue = 8\n").await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = online(&server, "alice", "wonderland", "a").await;
    for n in 1..=40 {
        alice
            .send(&format!(
                "<message to='bob@localhost' type='chat' id='q{n}'><body>{n}</body></message>"
            ))
            .await;
    }
    alice
        .iq(
            "sync",
            "<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    let mut bob = RawClient::login(&server, "bob", "builder", "b").await;
    bob.send("<presence/>").await;
    for n in 1..=40 {
        let message = bob.expect_stanza("<body>").await;
        assert!(message.contains(&format!("id='q{n}'")), "{message}");
    }
}
