//! Server-to-server hardening as a hostile peer sees it: dialback verifications are limited
//! per stream and per server and never reach private addresses, a link's queue is bounded in
//! bytes, server connections have their own limit, and a peer that stops reading loses its
//! connection instead of holding it forever.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::federation::{accept_outbound_link, inbound_link, server_header, TestCa};
use common::{free_port, RawClient, TestServer, GUARD};
use rempart_xep::caps::ver_string;
use rempart_xep::disco::{DiscoInfo, Identity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server for b.test with an s2s listener on `port` and `extra` configuration.
async fn b_test(port: u16, extra: &str) -> TestServer {
    let config = format!("[[listeners]]\nkind = \"s2s\"\naddress = \"127.0.0.1:{port}\"\n{extra}");
    TestServer::start_domain("b.test", &config).await
}

/// An inbound server stream to b.test through STARTTLS, its features read, claiming `from`.
async fn server_stream(server: &TestServer, port: u16, from: Option<&str>) -> RawClient {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let opening = server_header("b.test", from);
    let mut peer = RawClient::connect(address).await;
    peer.send(&opening).await;
    peer.expect("</stream:features>").await;
    let mut peer = peer.starttls(server).await;
    peer.send(&opening).await;
    peer.expect("</stream:features>").await;
    peer
}

/// A listener that accepts connections and never says anything: an authoritative server that
/// keeps verifications pending.
async fn silent_authority() -> (tokio::net::TcpListener, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    (listener, port)
}

#[tokio::test]
async fn a_second_dialback_request_for_a_pair_being_verified_gets_conflict() {
    let port = free_port();
    let (authority, authority_port) = silent_authority().await;
    let server = b_test(
        port,
        &format!("[s2s]\nconnect_timeout_secs = 60\n[s2s.routes]\n\"x.test\" = \"127.0.0.1:{authority_port}\"\n"),
    )
    .await;
    let mut peer = server_stream(&server, port, Some("x.test")).await;
    peer.send("<db:result from='x.test' to='b.test'>0123456789abcdef</db:result>")
        .await;
    let (_held, _) = authority.accept().await.expect("b.test asks the authority");
    peer.send("<db:result from='x.test' to='b.test'>0123456789abcdef</db:result>")
        .await;
    let answer = peer.expect("</db:result>").await;
    assert!(answer.contains("type='error'"), "{answer}");
    assert!(answer.contains("<conflict"), "{answer}");
}

#[tokio::test]
async fn dialback_requests_beyond_the_per_stream_limit_get_resource_constraint() {
    let port = free_port();
    let (authority, authority_port) = silent_authority().await;
    let server = b_test(
        port,
        &format!("[s2s]\nconnect_timeout_secs = 60\nmax_dialback_per_stream = 1\n[s2s.routes]\n\"x.test\" = \"127.0.0.1:{authority_port}\"\n\"y.test\" = \"127.0.0.1:{authority_port}\"\n"),
    )
    .await;
    let mut peer = server_stream(&server, port, None).await;
    peer.send("<db:result from='x.test' to='b.test'>0123456789abcdef</db:result>")
        .await;
    let (_held, _) = authority.accept().await.expect("b.test asks the authority");
    peer.send("<db:result from='y.test' to='b.test'>0123456789abcdef</db:result>")
        .await;
    let answer = peer.expect("</db:result>").await;
    assert!(answer.contains("from='b.test' to='y.test'"), "{answer}");
    assert!(answer.contains("type='error'"), "{answer}");
    assert!(answer.contains("<resource-constraint"), "{answer}");
}

#[tokio::test]
async fn dialback_requests_beyond_the_server_limit_get_resource_constraint() {
    let port = free_port();
    let (authority, authority_port) = silent_authority().await;
    let server = b_test(
        port,
        &format!("[s2s]\nconnect_timeout_secs = 60\nmax_dialback_pending = 1\n[s2s.routes]\n\"x.test\" = \"127.0.0.1:{authority_port}\"\n\"y.test\" = \"127.0.0.1:{authority_port}\"\n"),
    )
    .await;
    let mut first = server_stream(&server, port, None).await;
    first
        .send("<db:result from='x.test' to='b.test'>0123456789abcdef</db:result>")
        .await;
    let (_held, _) = authority.accept().await.expect("b.test asks the authority");
    let mut second = server_stream(&server, port, None).await;
    second
        .send("<db:result from='y.test' to='b.test'>0123456789abcdef</db:result>")
        .await;
    let answer = second.expect("</db:result>").await;
    assert!(answer.contains("type='error'"), "{answer}");
    assert!(answer.contains("<resource-constraint"), "{answer}");
}

#[tokio::test]
async fn dialback_for_a_private_address_is_refused_without_connecting() {
    let port = free_port();
    // 127.0.0.1 is an IP literal domain on loopback, outside any route.
    let server = b_test(port, "").await;
    let mut peer = server_stream(&server, port, None).await;
    peer.send("<db:result from='127.0.0.1' to='b.test'>0123456789abcdef</db:result>")
        .await;
    let answer = peer.expect("</db:result>").await;
    assert!(answer.contains("type='error'"), "{answer}");
    assert!(answer.contains("<policy-violation"), "{answer}");
}

#[tokio::test]
async fn private_addresses_are_reached_when_the_switch_allows_them() {
    let port = free_port();
    let server = b_test(port, "[s2s]\nallow_private_addresses = true\n").await;
    let mut peer = server_stream(&server, port, None).await;
    // Nothing listens on port 5269 of this loopback address: the attempt is made and fails.
    peer.send("<db:result from='127.83.91.7' to='b.test'>0123456789abcdef</db:result>")
        .await;
    let answer = peer.expect("</db:result>").await;
    assert!(answer.contains("<remote-server-not-found"), "{answer}");
}

#[tokio::test]
async fn stanzas_beyond_the_queue_byte_limit_bounce_with_resource_constraint() {
    let (authority, remote_port) = silent_authority().await;
    let server = TestServer::start_domain(
        "a.test",
        &format!("[s2s]\nconnect_timeout_secs = 60\nmax_queue_bytes = 4096\n[s2s.routes]\n\"slow.test\" = \"127.0.0.1:{remote_port}\"\n"),
    )
    .await;
    server.add_user("alice@a.test", "wonderland").await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "r").await;
    alice
        .send("<message to='bob@slow.test' type='chat' id='q1'><body>first</body></message>")
        .await;
    // The link is connecting (the remote accepts and says nothing): q1 waits in its queue.
    let (_held, _) = authority.accept().await.expect("a.test connects");
    let big = "x".repeat(5000);
    alice
        .send(&format!(
            "<message to='bob@slow.test' type='chat' id='q2'><body>{big}</body></message>"
        ))
        .await;
    let bounce = alice.expect_stanza("id='q2'").await;
    assert!(bounce.contains("type='error'"), "{bounce}");
    assert!(bounce.contains("<resource-constraint"), "{bounce}");
}

#[tokio::test]
async fn server_connections_have_their_own_limit_and_leave_clients_their_places() {
    let port = free_port();
    let server = b_test(port, "[limits]\nmax_s2s_connections = 1\n").await;
    let _first = server_stream(&server, port, None).await;
    // The second server connection is closed without a stream header.
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut refused = RawClient::connect(address).await;
    refused
        .send_lossy(server_header("b.test", None).as_bytes())
        .await;
    let reply = refused.read_to_close().await;
    assert!(!reply.contains("<stream:stream"), "{reply}");
    // Clients still get in.
    server.add_user("bob@b.test", "builder").await;
    RawClient::login(&server, "bob", "builder", "r").await;
}

#[tokio::test]
async fn an_inbound_server_stream_that_stops_reading_loses_its_connection() {
    let port = free_port();
    let server = b_test(
        port,
        "[limits]\nmax_s2s_connections = 1\n[s2s]\nwrite_timeout_secs = 1\n",
    )
    .await;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    // A small receive window makes the server's answers back up quickly.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("receive buffer");
    let tcp = socket.connect(address).await.expect("connect");
    let tls = starttls_without_reading_more(tcp, &server).await;
    let (_unread, mut write) = tokio::io::split(tls);
    // Verification requests the server answers, sent by a task that does not care whether
    // they are read: the connection's answers are never read.
    let flood = tokio::spawn(async move {
        let request = "<db:verify from='x.test' to='b.test' id='i'>0123456789abcdef</db:verify>";
        let batch = request.repeat(100);
        for _ in 0..2000 {
            if write.write_all(batch.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    // The only server slot comes free once the server gives up writing to the flooder.
    let freed = tokio::time::timeout(GUARD, async {
        let mut retry = tokio::time::interval(std::time::Duration::from_millis(100));
        loop {
            retry.tick().await;
            let mut probe = TcpStream::connect(address).await.expect("connect");
            let _ = probe
                .write_all(server_header("b.test", None).as_bytes())
                .await;
            let mut reply = vec![0u8; 512];
            if let Ok(n) = probe.read(&mut reply).await {
                if String::from_utf8_lossy(&reply[..n]).contains("<stream:stream") {
                    return;
                }
            }
        }
    })
    .await;
    flood.abort();
    assert!(freed.is_ok(), "the stalled connection kept its slot");
}

#[tokio::test]
async fn an_outbound_link_to_a_peer_that_stops_reading_is_dropped_and_its_stanzas_bounce() {
    let ca = TestCa::new();
    // The peer's small receive window makes our writes back up quickly.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("receive buffer");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind");
    let remote = socket.listen(16).expect("listen");
    let remote_port = remote.local_addr().expect("address").port();
    let server = TestServer::start_domain(
        "a.test",
        &format!("[s2s]\nwrite_timeout_secs = 1\nmax_queue_bytes = 67108864\n[s2s.routes]\n\"b.test\" = \"127.0.0.1:{remote_port}\"\n"),
    )
    .await;
    server.add_user("alice@a.test", "wonderland").await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "r").await;
    alice
        .send("<message to='bob@b.test' type='chat' id='m0'><body>hello</body></message>")
        .await;
    let mut peer = accept_outbound_link(&ca, &remote).await;
    peer.expect("id='m0'").await;
    // Megabytes more than the socket buffers hold, which the peer never reads.
    let body = "x".repeat(200 * 1024);
    for n in 0..40 {
        alice
            .send(&format!(
                "<message to='bob@b.test' type='chat' id='big{n}'><body>{body}</body></message>"
            ))
            .await;
    }
    let bounce = alice.expect_stanza("<remote-server-not-found").await;
    assert!(bounce.contains("type='error'"), "{bounce}");
}

/// A remote client that wants OMEMO device list notifications.
fn notify_client() -> DiscoInfo {
    DiscoInfo {
        node: None,
        identities: vec![Identity::new("client", "pc").named("Remote Client")],
        features: vec!["urn:xmpp:omemo:2:devices+notify".to_owned()],
        forms: vec![],
    }
}

#[tokio::test]
async fn remote_pep_interests_expire_when_the_remote_link_ends() {
    let ca = TestCa::new();
    let port = free_port();
    let remote = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let remote_port = remote.local_addr().expect("address").port();
    let server = TestServer::start_domain(
        "a.test",
        &format!(
            "{}[[listeners]]\nkind = \"s2s\"\naddress = \"127.0.0.1:{port}\"\n[s2s]\n{}[s2s.routes]\n\"b.test\" = \"127.0.0.1:{remote_port}\"\n",
            ca.serving("a.test", "a.test"),
            ca.trusted()
        ),
    )
    .await;
    server.add_user("alice@a.test", "wonderland").await;
    let mut alice = RawClient::online(&server, "alice", "wonderland", "r").await;
    let published = alice
        .iq("p1", "<iq type='set' id='p1'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:omemo:2:devices'><item id='current'><devices xmlns='urn:xmpp:omemo:2'><device id='1'/></devices></item></publish></pubsub></iq>")
        .await;
    assert!(published.contains("type='result'"), "{published}");
    // pat@b.test subscribes to alice's presence over an inbound link from b.test.
    let mut inbound = inbound_link(&ca, port, "a.test", "b.test").await;
    inbound
        .send("<presence from='pat@b.test' to='alice@a.test' type='subscribe'/>")
        .await;
    alice.expect_stanza("type='subscribe'").await;
    alice
        .send("<presence to='pat@b.test' type='subscribed'/>")
        .await;
    let mut outbound = accept_outbound_link(&ca, &remote).await;
    outbound.expect("type='subscribed'").await;
    // pat's client announces +notify for device lists; a.test asks what its caps mean.
    let ver = ver_string(&notify_client());
    let presence = format!("<presence from='pat@b.test/phone' to='alice@a.test'><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='urn:test:remote' ver='{ver}'/></presence>");
    inbound.send(&presence).await;
    let asked = outbound
        .expect("http://jabber.org/protocol/disco#info")
        .await;
    let query = &asked[asked.rfind("<iq").expect("a disco query")..];
    let id = query
        .split(" id='")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the query's id");
    inbound
        .send(&format!("<iq type='result' id='{id}' from='pat@b.test/phone' to='a.test'><query xmlns='http://jabber.org/protocol/disco#info' node='urn:test:remote#{ver}'><identity category='client' type='pc' name='Remote Client'/><feature var='urn:xmpp:omemo:2:devices+notify'/></query></iq>"))
        .await;
    // Interests known: the last item goes to pat's resource.
    outbound.expect("<device id='1'/>").await;
    // b.test's link ends; later it comes back and pat's client repeats the same presence.
    inbound.send("</stream:stream>").await;
    inbound.read_to_close().await;
    let mut inbound = inbound_link(&ca, port, "a.test", "b.test").await;
    inbound.send(&presence).await;
    // What the old link told a.test expired with it: the presence counts as new, and the last
    // item is sent again.
    outbound.expect("<device id='1'/>").await;
}

/// STARTTLS on a server stream, reading only what the handshake needs.
async fn starttls_without_reading_more(
    mut tcp: TcpStream,
    server: &TestServer,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    tcp.write_all(server_header("b.test", None).as_bytes())
        .await
        .expect("header");
    read_until(&mut tcp, "</stream:features>").await;
    tcp.write_all(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await
        .expect("starttls");
    read_until(&mut tcp, "/>").await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.certificate.clone()).expect("root");
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("b.test").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS");
    tls.write_all(server_header("b.test", None).as_bytes())
        .await
        .expect("header");
    read_until(&mut tls, "</stream:features>").await;
    tls
}

/// Reads byte by byte until `needle`, so that nothing after it is consumed.
async fn read_until<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, needle: &str) {
    let mut seen = Vec::new();
    tokio::time::timeout(GUARD, async {
        while !seen.ends_with(needle.as_bytes()) {
            let byte = stream.read_u8().await.expect("the server answers");
            seen.push(byte);
        }
    })
    .await
    .expect("the server answers in time");
}
