//! Whatever the server acknowledged survives kill -9: roster items, offline messages and PEP
//! items, on each embedded backend, with the real `rempart` binary killed while it is still
//! taking writes and started again on the same data directory.
//!
//! What "acknowledged" means for each write, as a client sees it:
//! - a roster item: the `type='result'` answer to the roster set (RFC 6121 §2.3);
//! - a PEP item: the `type='result'` answer to the publish (XEP-0060 §7.1);
//! - a message to an offline account: the server answers nothing to the sender, so the
//!   acknowledgement is the result of a ping the sender sends right after it. The session
//!   handles its stanzas in order and stores a message before it takes the next stanza, so
//!   the ping's result means every message before it is stored.

mod common;

use std::path::{Path, PathBuf};

use common::binary::{add_user, ServerProcess};
use common::{RawClient, ServerEndpoint};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Writes of each kind acknowledged before the kill.
const ACKNOWLEDGED: usize = 10;
const NODE: &str = "urn:xmpp:test:durability";

fn write_config(dir: &Path, backend: &str) -> PathBuf {
    let path = dir.join("rempart.toml");
    let toml = format!(
        "[server]\nhosts = [\"localhost\"]\ndata_dir = \"{}\"\n\n[storage]\nbackend = \"{backend}\"\n\n[[listeners]]\nkind = \"c2s\"\naddress = \"127.0.0.1:0\"\n\n[s2s]\nname_servers = [\"127.0.0.1:9\"]\n",
        dir.join("data").display()
    );
    std::fs::write(&path, toml).expect("config written");
    path
}

/// Starts the server and says how clients reach it: its first listener, with the
/// certificate it generated for `localhost`.
fn start_server(config: &Path, data: &Path) -> (ServerProcess, ServerEndpoint) {
    let server = ServerProcess::start(config);
    let address = *server.addresses.first().expect("a listener");
    let certificate = CertificateDer::pem_file_iter(data.join("certs").join("localhost.crt"))
        .expect("the server's certificate")
        .filter_map(Result::ok)
        .last()
        .expect("a certificate");
    let endpoint = ServerEndpoint {
        address,
        domain: "localhost".to_owned(),
        certificate,
    };
    (server, endpoint)
}

fn roster_set(id: &str, contact: &str) -> String {
    format!(
        "<iq type='set' id='{id}'><query xmlns='jabber:iq:roster'><item jid='{contact}' name='{contact}'/></query></iq>"
    )
}

fn publish(id: &str, item: &str) -> String {
    format!(
        "<iq type='set' id='{id}'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='{NODE}'><item id='{item}'><entry xmlns='urn:xmpp:test'>{item} payload</entry></item></publish><publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#max_items'><value>max</value></field><field var='pubsub#persist_items'><value>true</value></field></x></publish-options></pubsub></iq>"
    )
}

fn message(body: &str) -> String {
    format!("<message to='bob@localhost' type='chat'><body>{body}</body></message>")
}

async fn ping(client: &mut RawClient, id: &str) {
    let pong = client
        .iq(
            id,
            &format!("<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"),
        )
        .await;
    assert!(pong.contains("type='result'"), "{pong}");
}

async fn acknowledged_writes_survive_kill_9(backend: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = write_config(dir.path(), backend);
    add_user(&config, "alice@localhost", "wonderland");
    add_user(&config, "bob@localhost", "builder");
    let (mut server, endpoint) = start_server(&config, &data);

    let mut alice = RawClient::login_to(&endpoint, "alice", "wonderland", "a").await;
    for n in 0..ACKNOWLEDGED {
        let id = format!("roster{n}");
        let answer = alice
            .iq(&id, &roster_set(&id, &format!("contact{n}@example.test")))
            .await;
        assert!(answer.contains("type='result'"), "{answer}");
    }
    for n in 0..ACKNOWLEDGED {
        let id = format!("publish{n}");
        let answer = alice.iq(&id, &publish(&id, &format!("item{n}"))).await;
        assert!(answer.contains("type='result'"), "{answer}");
    }
    for n in 0..ACKNOWLEDGED {
        alice.send(&message(&format!("acknowledged {n}"))).await;
    }
    ping(&mut alice, "stored").await;
    // More writes in flight, none of them acknowledged, while the server dies.
    for n in 0..ACKNOWLEDGED {
        alice
            .send(&roster_set(
                &format!("late-roster{n}"),
                &format!("late{n}@example.test"),
            ))
            .await;
        alice
            .send(&publish(&format!("late-publish{n}"), &format!("late{n}")))
            .await;
        alice.send(&message(&format!("late {n}"))).await;
    }
    server.kill_9();

    let (_server, endpoint) = start_server(&config, &data);
    let mut alice = RawClient::login_to(&endpoint, "alice", "wonderland", "again").await;
    let roster = alice
        .iq(
            "r1",
            "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
        )
        .await;
    assert!(roster.contains("type='result'"), "{roster}");
    for n in 0..ACKNOWLEDGED {
        assert!(
            roster.contains(&format!("jid='contact{n}@example.test'")),
            "acknowledged roster item {n} lost on {backend}: {roster}"
        );
    }
    let items = alice
        .iq(
            "p1",
            &format!("<iq type='get' id='p1' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{NODE}'/></pubsub></iq>"),
        )
        .await;
    assert!(items.contains("type='result'"), "{items}");
    for n in 0..ACKNOWLEDGED {
        assert!(
            items.contains(&format!("<item id='item{n}'>"))
                && items.contains(&format!("item{n} payload</entry>")),
            "acknowledged PEP item {n} lost on {backend}: {items}"
        );
    }
    let mut bob = RawClient::login_to(&endpoint, "bob", "builder", "b").await;
    bob.send("<presence/>").await;
    for n in 0..ACKNOWLEDGED {
        let delivered = bob
            .expect_stanza(&format!("<body>acknowledged {n}</body>"))
            .await;
        assert!(
            delivered.contains("from='alice@localhost/a'"),
            "{delivered}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_roster_items_offline_messages_and_pep_items_survive_kill_9_on_redb() {
    acknowledged_writes_survive_kill_9("redb").await;
}

#[cfg(feature = "sled")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_roster_items_offline_messages_and_pep_items_survive_kill_9_on_sled() {
    acknowledged_writes_survive_kill_9("sled").await;
}
