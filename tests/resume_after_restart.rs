//! A phone's XEP-0198 session survives a restart of the real `rempart` binary: after SIGTERM
//! and a new start on the same data directory, `<resume/>` gives `<resumed/>` and every stanza
//! the phone had not acknowledged, and those sent to it while the server was down, exactly once
//! and in order.

mod common;

use std::path::Path;

use common::binary::{add_user, ServerProcess};
use common::{attribute, RawClient, ServerEndpoint};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

const SM: &str = "urn:xmpp:sm:3";

fn write_config(dir: &Path, port: u16) -> std::path::PathBuf {
    let path = dir.join("rempart.toml");
    let toml = format!(
        "[server]\nhosts = [\"localhost\"]\ndata_dir = \"{}\"\n\n[[listeners]]\nkind = \"c2s\"\naddress = \"127.0.0.1:{port}\"\n\n[s2s]\nname_servers = [\"127.0.0.1:9\"]\n",
        dir.join("data").display()
    );
    std::fs::write(&path, toml).expect("config written");
    path
}

/// A data directory with a configuration (plus `extra` TOML) and Alice's and Bob's accounts.
fn deployment(extra: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), common::free_port());
    let toml = std::fs::read_to_string(&config).expect("config") + "\n" + extra;
    std::fs::write(&config, toml).expect("config written");
    add_user(&config, "alice@localhost", "wonderland");
    add_user(&config, "bob@localhost", "builder");
    (dir, config)
}

/// Alice's phone, available, with resumable stream management; returns its SM-ID.
async fn resumable_phone(at: &ServerEndpoint) -> (RawClient, String) {
    let mut alice = RawClient::login_to(at, "alice", "wonderland", "phone").await;
    alice.send("<presence/>").await;
    alice.expect("/>").await;
    alice
        .send(&format!("<enable xmlns='{SM}' resume='true'/>"))
        .await;
    let previd = attribute(&alice.expect("/>").await, "id");
    (alice, previd)
}

fn endpoint(server: &ServerProcess, data: &Path) -> ServerEndpoint {
    let certificate = CertificateDer::pem_file_iter(data.join("certs").join("localhost.crt"))
        .expect("the server's certificate")
        .filter_map(Result::ok)
        .last()
        .expect("a certificate");
    ServerEndpoint {
        address: *server.addresses.first().expect("a listener"),
        domain: "localhost".to_owned(),
        certificate,
    }
}

async fn chat(from: &mut RawClient, id: &str) {
    from.send(&format!(
        "<message to='alice@localhost' type='chat' id='{id}'><body>{id}</body></message>"
    ))
    .await;
}

async fn ping(client: &mut RawClient, id: &str) {
    client
        .iq(
            id,
            &format!("<iq type='get' id='{id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"),
        )
        .await;
}

#[tokio::test]
async fn a_phone_resumes_its_session_after_the_server_restarts() {
    let (dir, config) = deployment("");
    let data = dir.path().join("data");

    let mut server = ServerProcess::start(&config);
    let at = endpoint(&server, &data);
    let (mut alice, previd) = resumable_phone(&at).await;
    let mut bob = RawClient::login_to(&at, "bob", "builder", "desk").await;
    chat(&mut bob, "before-1").await;
    alice.expect_stanza("id='before-1'").await;
    chat(&mut bob, "before-2").await;
    alice.expect_stanza("id='before-2'").await;
    // The phone handled the first message only, then lost its network.
    drop(alice);
    chat(&mut bob, "while-away").await;
    ping(&mut bob, "routed").await;
    server.stop();

    let server = ServerProcess::start(&config);
    let at = endpoint(&server, &data);
    let mut alice = RawClient::authenticated_to(&at, "alice", "wonderland").await;
    alice
        .send(&format!("<resume xmlns='{SM}' previd='{previd}' h='1'/>"))
        .await;
    let resumed = alice.expect("/>").await;
    assert!(resumed.contains("<resumed"), "{resumed}");
    let mut order = Vec::new();
    for _ in 0..2 {
        let stanza = alice.expect_stanza("<body>").await;
        order.push(attribute(&stanza, "id"));
    }
    assert_eq!(order, ["before-2", "while-away"]);

    let mut bob = RawClient::login_to(&at, "bob", "builder", "desk").await;
    chat(&mut bob, "after").await;
    let after = alice.expect_stanza("id='after'").await;
    assert!(after.contains("to='alice@localhost'"), "{after}");
    alice.send(&format!("<a xmlns='{SM}' h='3'/>")).await;
    ping(&mut alice, "done").await;
    assert!(!alice.unread().contains("<body>"), "{}", alice.unread());
    drop(server);
}

#[tokio::test]
async fn a_session_not_resumed_after_the_restart_sends_its_messages_to_offline_storage() {
    let (dir, config) = deployment("[stream_management]\nresume_timeout_secs = 0\n");
    let data = dir.path().join("data");

    let mut server = ServerProcess::start(&config);
    let at = endpoint(&server, &data);
    let (mut alice, _) = resumable_phone(&at).await;
    let mut bob = RawClient::login_to(&at, "bob", "builder", "desk").await;
    chat(&mut bob, "kept").await;
    alice.expect_stanza("id='kept'").await;
    server.stop();

    let server = ServerProcess::start(&config);
    let at = endpoint(&server, &data);
    let mut laptop = RawClient::login_to(&at, "alice", "wonderland", "laptop").await;
    laptop.send("<presence/>").await;
    let kept = laptop.expect_stanza("id='kept'").await;
    assert!(kept.contains("<body>kept</body>"), "{kept}");
    drop(server);
}

#[tokio::test]
async fn a_restored_session_survives_a_crash_before_its_phone_resumes_it() {
    let (dir, config) = deployment("");
    let data = dir.path().join("data");

    let mut server = ServerProcess::start(&config);
    let at = endpoint(&server, &data);
    let (mut alice, previd) = resumable_phone(&at).await;
    let mut bob = RawClient::login_to(&at, "bob", "builder", "desk").await;
    chat(&mut bob, "kept").await;
    alice.expect_stanza("id='kept'").await;
    drop(alice);
    server.stop();

    // Restored (the laptop sees the phone's session available again), then killed before the
    // phone comes back: the saved record must still be there.
    let mut server = ServerProcess::start(&config);
    let at = endpoint(&server, &data);
    let mut laptop = RawClient::login_to(&at, "alice", "wonderland", "laptop").await;
    laptop.send("<presence/>").await;
    laptop.expect_stanza("from='alice@localhost/phone'").await;
    server.kill_9();

    let server = ServerProcess::start(&config);
    let at = endpoint(&server, &data);
    let mut alice = RawClient::authenticated_to(&at, "alice", "wonderland").await;
    alice
        .send(&format!("<resume xmlns='{SM}' previd='{previd}' h='0'/>"))
        .await;
    let resumed = alice.expect("/>").await;
    assert!(resumed.contains("<resumed"), "{resumed}");
    let kept = alice.expect_stanza("<body>").await;
    assert!(kept.contains("id='kept'"), "{kept}");
    drop(server);
}
