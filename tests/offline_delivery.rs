//! Offline delivery (XEP-0160) and slow consumers: what a client that stops reading, a
//! negative-priority resource and a client logging in twice see.

mod common;

use std::collections::BTreeSet;

use common::{RawClient, TestServer};
use rempart::storage::ArchiveStore;

/// Size of the body of each flood message: large enough that a few hundred of them overflow
/// the kernel's socket buffers, small enough to stay far below the stanza limit.
const FLOOD_BODY: usize = 16 * 1024;
/// Most messages a flood sends before the test gives up on seeing the victim dropped.
const FLOOD_MAX: usize = 600;

async fn ping(client: &mut RawClient, id: &str) {
    client
        .iq(
            id,
            &format!("<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"),
        )
        .await;
}

/// The `id='m…'` numbers of the messages in `text`.
fn message_ids(text: &str) -> Vec<usize> {
    text.match_indices("<message")
        .filter_map(|(at, _)| {
            let rest = &text[at..];
            let start = rest.find("id='m")? + "id='m".len();
            let end = start + rest[start..].find('\'')?;
            rest[start..end].parse().ok()
        })
        .collect()
}

/// Alice floods bob's full JID (bob has stopped reading) until the server gives up on bob's
/// session: messages for it then go to offline storage. Returns how many were sent.
async fn flood_until_offline(server: &TestServer, alice: &mut RawClient) -> usize {
    let offline: ArchiveStore<String> = server.router.storage.archive("localhost", "offline");
    let body = "x".repeat(FLOOD_BODY);
    let mut sent = 0;
    while sent < FLOOD_MAX {
        for _ in 0..10 {
            sent += 1;
            alice
                .send(&format!(
                    "<message to='bob@localhost/b' type='chat' id='m{sent}'><body>{body}</body></message>"
                ))
                .await;
        }
        // The server handles alice's stanzas in order: after the answer, every message
        // above was delivered to bob's inbox or stored.
        ping(alice, &format!("sync{sent}")).await;
        if offline.count("bob").await.expect("offline count") > 0 {
            return sent;
        }
    }
    panic!("{sent} messages of {FLOOD_BODY} bytes never made the server drop the stalled session");
}

/// Bob stops reading while alice floods him: his stream ends with `resource-constraint`, and
/// every message reaches him exactly once, on that connection or from offline storage.
async fn stalled_reader_is_dropped_and_loses_nothing(limits: &str) {
    let config = format!(
        "{limits}\n[modules.offline]\nmax_messages = 10000\nmax_bytes = 100000000\nsender_share_percent = 100\n"
    );
    let server = TestServer::start_with(&config).await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    alice.available().await;
    let mut bob = RawClient::login(&server, "bob", "builder", "b").await;
    bob.available().await;

    let sent = flood_until_offline(&server, &mut alice).await;

    let first = bob.read_to_close().await;
    assert!(
        first.contains("<resource-constraint"),
        "stream error: {}",
        &first[first.len().saturating_sub(300)..]
    );
    let mut received: Vec<usize> = message_ids(&first);

    let mut bob = RawClient::login(&server, "bob", "builder", "b").await;
    bob.send("<presence/>").await;
    let missing: BTreeSet<usize> = (1..=sent).filter(|n| !received.contains(n)).collect();
    assert!(!missing.is_empty(), "the overflow stored nothing offline");
    for n in &missing {
        let message = bob.expect_stanza(&format!("id='m{n}'")).await;
        assert!(message.contains("urn:xmpp:delay"), "not from storage: {n}");
        received.push(*n);
    }
    received.sort_unstable();
    assert_eq!(received, (1..=sent).collect::<Vec<_>>(), "lost or doubled");
    ping(&mut bob, "after").await;
    assert!(
        !bob.unread().contains("<message"),
        "delivered twice: {}",
        bob.unread()
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_with_resource_constraint_and_its_messages_are_stored(
) {
    // A small inbox in stanzas, a large one in bytes: the stanza count trips first.
    stalled_reader_is_dropped_and_loses_nothing(
        "[limits]\nsession_queue = 8\nsession_queue_bytes = 100000000\nwrite_timeout_secs = 600\n",
    )
    .await;
}

#[tokio::test]
async fn a_few_huge_queued_stanzas_also_make_a_slow_consumer() {
    // The stanza count alone (512) is never reached by the flood: only the byte limit trips.
    stalled_reader_is_dropped_and_loses_nothing(
        "[limits]\nsession_queue = 512\nsession_queue_bytes = 65536\nwrite_timeout_secs = 600\n",
    )
    .await;
}

#[tokio::test]
async fn a_negative_priority_resource_leaves_offline_messages_to_a_later_positive_one() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    alice.available().await;
    for n in 1..=3 {
        alice
            .send(&format!(
                "<message to='bob@localhost' type='chat' id='m{n}'><body>{n}</body></message>"
            ))
            .await;
    }
    ping(&mut alice, "stored").await;

    let mut shy = RawClient::login(&server, "bob", "builder", "shy").await;
    shy.send("<presence><priority>-1</priority></presence>")
        .await;
    shy.expect_stanza("from='bob@localhost/shy'").await;

    let mut main = RawClient::login(&server, "bob", "builder", "main").await;
    main.send("<presence><priority>1</priority></presence>")
        .await;
    for n in 1..=3 {
        let message = main.expect_stanza(&format!("id='m{n}'")).await;
        assert!(message.contains("urn:xmpp:delay"), "{message}");
    }
    ping(&mut shy, "shy-sync").await;
    assert!(
        !shy.unread().contains("<message"),
        "the negative-priority resource got stored messages: {}",
        shy.unread()
    );
}

#[tokio::test]
async fn offline_messages_are_delivered_once_and_not_again_at_the_next_login() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "a").await;
    alice.available().await;
    for n in 1..=3 {
        alice
            .send(&format!(
                "<message to='bob@localhost' type='chat' id='m{n}'><body>{n}</body></message>"
            ))
            .await;
    }
    ping(&mut alice, "stored").await;

    let mut bob = RawClient::login(&server, "bob", "builder", "b").await;
    bob.send("<presence/>").await;
    for n in 1..=3 {
        bob.expect_stanza(&format!("id='m{n}'")).await;
    }
    bob.send("</stream:stream>").await;
    bob.read_to_close().await;

    // One new message while bob is away: delivery goes in storage order, so any of the first
    // three still stored would arrive before it.
    alice
        .send("<message to='bob@localhost' type='chat' id='m4'><body>4</body></message>")
        .await;
    ping(&mut alice, "stored-again").await;
    let mut bob = RawClient::login(&server, "bob", "builder", "b").await;
    bob.send("<presence/>").await;
    bob.expect_stanza("id='m4'").await;
    let before_m4 = message_ids(bob.unread());
    assert!(before_m4.is_empty(), "redelivered: {before_m4:?}");
}
