//! SIGTERM of the real `rempart` binary while clients and server links are connected: every
//! stream is closed with `<system-shutdown/>` and the process exits with status 0, without
//! waiting for any link's idle timeout.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use common::binary::{add_user, BIN};
use common::federation::{accept_outbound_link, inbound_link, TestCa};
use common::{free_port, RawClient, GUARD};

/// Starts the server and waits for the line saying it serves; its output keeps being read so
/// that it never blocks on a full pipe.
fn start_server(config: &Path) -> tokio::process::Child {
    let mut child = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("server starts");
    let stdout = child
        .stdout
        .take()
        .expect("stdout")
        .into_owned_fd()
        .expect("stdout descriptor");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(std::fs::File::from(stdout))
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("Rempart is serving") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(GUARD).expect("server announces itself");
    child
}

/// A client session over the listener that does not require TLS.
async fn client(port: u16, user: &str, resource: &str) -> RawClient {
    let mut client = RawClient::connect(([127, 0, 0, 1], port).into()).await;
    client.open("a.test").await;
    let outcome = client.authenticate("SCRAM-SHA-256", user, "secret").await;
    assert!(outcome.starts_with("<success"), "{outcome}");
    client.open("a.test").await;
    client.bind(Some(resource)).await;
    client
}

#[tokio::test]
async fn sigterm_closes_every_client_and_server_stream_with_system_shutdown_and_exits_0() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let (c2s_port, s2s_port) = (free_port(), free_port());
    let remote = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let remote_port = remote.local_addr().expect("address").port();
    let config = dir.path().join("rempart.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhosts = [\"a.test\"]\ndata_dir = \"{}\"\n[log]\nlevel = \"warn\"\n{}\n[[listeners]]\nkind = \"c2s\"\naddress = \"127.0.0.1:{c2s_port}\"\nrequire_tls = false\n[[listeners]]\nkind = \"s2s\"\naddress = \"127.0.0.1:{s2s_port}\"\n[s2s]\nname_servers = [\"127.0.0.1:9\"]\ndns_timeout_secs = 1\n{}[s2s.routes]\n\"b.test\" = \"127.0.0.1:{remote_port}\"\n",
            dir.path().join("data").display(),
            ca.serving("a.test", "a.test"),
            ca.trusted(),
        ),
    )
    .expect("config written");
    add_user(&config, "alice@a.test", "secret");
    add_user(&config, "carol@a.test", "secret");
    let mut server = start_server(&config);

    let mut clients = vec![
        client(c2s_port, "alice", "phone").await,
        client(c2s_port, "alice", "laptop").await,
        client(c2s_port, "carol", "desk").await,
    ];
    // An inbound link, proven and carrying a stanza.
    let mut inbound = inbound_link(&ca, s2s_port, "a.test", "peer.test").await;
    inbound
        .send("<message from='pat@peer.test/x' to='alice@a.test/phone' type='chat' id='in1'><body>hi</body></message>")
        .await;
    clients[0].expect_stanza("id='in1'").await;
    // An outbound link, established and carrying a stanza.
    clients[2]
        .send("<message to='bob@b.test' type='chat' id='out1'><body>hi</body></message>")
        .await;
    let mut outbound = accept_outbound_link(&ca, &remote).await;
    outbound.expect("id='out1'").await;

    let pid = server.id().expect("the server runs");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());

    for client in &mut clients {
        let rest = client.read_to_close().await;
        assert!(rest.contains("<system-shutdown"), "client stream: {rest}");
    }
    let rest = inbound.read_to_close().await;
    assert!(rest.contains("<system-shutdown"), "inbound link: {rest}");
    let rest = outbound.read_to_close().await;
    assert!(rest.contains("<system-shutdown"), "outbound link: {rest}");
    let status = tokio::time::timeout(GUARD, server.wait())
        .await
        .expect("the server exits without waiting for idle links")
        .expect("exit status");
    assert_eq!(status.code(), Some(0), "{status}");
}
