//! An independent Rust client (tokio-xmpp from crates.io) logs in and chats.

mod common;

use common::{TestServer, GUARD};
use futures::StreamExt;
use tokio_xmpp::connect::DnsConfig;
use tokio_xmpp::parsers::jid::{BareJid, Jid};
use tokio_xmpp::parsers::message::{Lang, Message, MessageType};
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::xmlstream::Timeouts;
use tokio_xmpp::{Client, Event};

fn client(server: &TestServer, jid: &str, password: &str) -> Client {
    let jid: BareJid = jid.parse().expect("jid");
    Client::new_plaintext(
        jid,
        password.to_owned(),
        DnsConfig::addr(&server.plaintext.to_string()),
        Timeouts::default(),
    )
}

async fn online(client: &mut Client) -> Jid {
    loop {
        match client.next().await.expect("event") {
            Event::Online { bound_jid, .. } => return bound_jid,
            Event::Disconnected(error) => panic!("disconnected: {error}"),
            Event::Stanza(_) => {}
        }
    }
}

#[tokio::test]
async fn tokio_xmpp_clients_log_in_and_exchange_a_message() {
    let _ = tokio_xmpp::rustls::crypto::aws_lc_rs::default_provider().install_default();
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = client(&server, "alice@localhost", "wonderland");
    let mut bob = client(&server, "bob@localhost", "builder");
    tokio::time::timeout(GUARD, async {
        let alice_jid = online(&mut alice).await;
        let bob_jid = online(&mut bob).await;
        assert_eq!(bob_jid.to_bare().as_str(), "bob@localhost");
        bob.send_stanza(Presence::new(PresenceType::None).into())
            .await
            .expect("presence");
        // Wait for bob's own presence to come back, so he is available before alice writes.
        loop {
            if let Event::Stanza(stanza) = bob.next().await.expect("event") {
                if Presence::try_from(stanza).is_ok() {
                    break;
                }
            }
        }
        let mut message = Message::new(Some(Jid::from(bob_jid.to_bare())));
        message.type_ = MessageType::Chat;
        message
            .bodies
            .insert(Lang::default(), "hello from tokio-xmpp".to_owned());
        alice.send_stanza(message.into()).await.expect("send");
        loop {
            if let Event::Stanza(stanza) = bob.next().await.expect("event") {
                if let Ok(message) = Message::try_from(stanza) {
                    assert_eq!(message.from.as_ref(), Some(&alice_jid));
                    let bodies: Vec<&str> = message.bodies.values().map(String::as_str).collect();
                    assert_eq!(
                        bodies,
                        vec!["hello from tokio-xmpp"],
                        "{:?}",
                        message.bodies
                    );
                    break;
                }
            }
        }
    })
    .await
    .expect("the exchange completes");
}
