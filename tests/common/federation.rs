//! Two servers federating on loopback: configuration pieces, a test certificate authority,
//! and a pair of servers with a user on each.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{free_port, RawClient, TestServer, GUARD};

pub fn s2s_config(own_port: u16, routes: &[(&str, u16)]) -> String {
    s2s_config_with(own_port, routes, &Side::default())
}

/// What one server of a pair adds to its configuration.
#[derive(Default)]
pub struct Side {
    /// Lines of its `[s2s]` section.
    pub s2s: String,
    /// Its `[tls]` section.
    pub tls: String,
    /// The name its certificate is for, when not its domain.
    pub tls_name: Option<String>,
}

pub fn s2s_config_with(own_port: u16, routes: &[(&str, u16)], side: &Side) -> String {
    let mut toml = format!(
        "{}\n[[listeners]]\nkind = \"s2s\"\naddress = \"127.0.0.1:{own_port}\"\n[s2s]\nconnect_timeout_secs = 10\n{}\n[s2s.routes]\n",
        side.tls, side.s2s
    );
    for (domain, port) in routes {
        toml.push_str(&format!("\"{domain}\" = \"127.0.0.1:{port}\"\n"));
    }
    toml
}

/// A certificate authority for the test, trusted by the servers that name it.
pub struct TestCa {
    dir: tempfile::TempDir,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let certificate = params.self_signed(&key).expect("CA certificate");
        std::fs::write(dir.path().join("ca.pem"), certificate.pem()).expect("CA written");
        TestCa {
            dir,
            issuer: rcgen::Issuer::new(params, key),
            pem: certificate.pem(),
        }
    }

    /// A root store holding this authority, for test peers checking a server's certificate.
    pub fn roots(&self) -> rustls::RootCertStore {
        use rustls::pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        let der = rustls::pki_types::CertificateDer::from_pem_slice(self.pem.as_bytes())
            .expect("the authority's certificate");
        roots.add(der).expect("root");
        roots
    }

    /// The `[s2s]` line trusting this authority.
    pub fn trusted(&self) -> String {
        format!(
            "trust_anchors = [\"{}\"]\n",
            self.dir.path().join("ca.pem").display()
        )
    }

    /// A certificate of this authority naming `name`, with its key.
    pub fn identity(
        &self,
        name: &str,
    ) -> (
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) {
        let key = rcgen::KeyPair::generate().expect("key");
        let certificate = rcgen::CertificateParams::new(vec![name.to_owned()])
            .expect("params")
            .signed_by(&key, &self.issuer)
            .expect("certificate");
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
        (vec![certificate.der().clone()], der.into())
    }

    /// A `[tls]` section serving `host` with a certificate of this authority naming `name`.
    pub fn serving(&self, host: &str, name: &str) -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let certificate = rcgen::CertificateParams::new(vec![name.to_owned()])
            .expect("params")
            .signed_by(&key, &self.issuer)
            .expect("certificate");
        let cert_path = self.dir.path().join(format!("{host}.crt"));
        let key_path = self.dir.path().join(format!("{host}.key"));
        // The chain file holds the leaf, then the authority (as "fullchain" files do).
        std::fs::write(&cert_path, certificate.pem() + &self.pem).expect("certificate written");
        std::fs::write(&key_path, key.serialize_pem()).expect("key written");
        format!(
            "[tls]\ncertificates = [{{ host = \"{host}\", cert = \"{}\", key = \"{}\" }}]\n",
            cert_path.display(),
            key_path.display()
        )
    }
}

/// Two servers, a.test and b.test, routed to each other, with alice on a and bob on b.
pub async fn pair() -> (TestServer, TestServer, RawClient, RawClient) {
    pair_configured(&Side::default(), &Side::default()).await
}

/// Like `pair`, each server with its own additions.
pub async fn pair_configured(
    side_a: &Side,
    side_b: &Side,
) -> (TestServer, TestServer, RawClient, RawClient) {
    let (port_a, port_b) = (free_port(), free_port());
    let a = TestServer::start_domain(
        "a.test",
        &s2s_config_with(
            port_a,
            &[("b.test", port_b), ("down.test", free_port())],
            side_a,
        ),
    )
    .await;
    let mut b = TestServer::start_domain(
        "b.test",
        &s2s_config_with(
            port_b,
            &[("a.test", port_a), ("pubsub.a.test", port_a)],
            side_b,
        ),
    )
    .await;
    if let Some(name) = &side_b.tls_name {
        b.tls_name = name.clone();
    }
    a.add_user("alice@a.test", "wonderland").await;
    b.add_user("bob@b.test", "builder").await;
    let alice = RawClient::online(&a, "alice", "wonderland", "r").await;
    let bob = RawClient::online(&b, "bob", "builder", "r").await;
    (a, b, alice, bob)
}

/// Sends a chat message and returns the first stanza that comes back with its id.
pub async fn chat(from: &mut RawClient, to: &str, id: &str) -> String {
    from.send(&format!(
        "<message to='{to}' type='chat' id='{id}'><body>{id}</body></message>"
    ))
    .await;
    from.expect_stanza(&format!("id='{id}'")).await
}

/// Mutual presence subscriptions between alice@a.test and bob@b.test.
pub async fn befriend(alice: &mut RawClient, bob: &mut RawClient) {
    alice
        .send("<presence to='bob@b.test' type='subscribe'/>")
        .await;
    bob.expect_stanza("type='subscribe'").await;
    bob.send("<presence to='alice@a.test' type='subscribed'/>")
        .await;
    alice.expect_stanza("type='subscribed'").await;
    bob.send("<presence to='alice@a.test' type='subscribe'/>")
        .await;
    alice.expect_stanza("type='subscribe'").await;
    alice
        .send("<presence to='bob@b.test' type='subscribed'/>")
        .await;
    bob.expect_stanza("type='subscribed'").await;
}

/// The opening header of a server stream to `to` (from `from` when given), declaring the
/// dialback namespace as XEP-0220 §2.1 requires.
pub fn server_header(to: &str, from: Option<&str>) -> String {
    let from = from.map(|f| format!(" from='{f}'")).unwrap_or_default();
    format!(
        "<?xml version='1.0'?><stream:stream to='{to}'{from} version='1.0' xmlns='jabber:server' xmlns:db='jabber:server:dialback' xmlns:stream='http://etherx.jabber.org/streams'>"
    )
}

/// A raw XML stream over any transport, read into a buffer searched for substrings.
pub struct Wire<S> {
    /// The transport.
    pub io: S,
    buffer: String,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    pub fn new(io: S) -> Self {
        Wire {
            io,
            buffer: String::new(),
        }
    }

    pub async fn send(&mut self, xml: &str) {
        self.io.write_all(xml.as_bytes()).await.expect("write");
        self.io.flush().await.expect("flush");
    }

    /// Waits until `needle` arrives; returns everything up to and including it.
    pub async fn expect(&mut self, needle: &str) -> String {
        tokio::time::timeout(GUARD, async {
            loop {
                if let Some(at) = self.buffer.find(needle) {
                    return self.buffer.drain(..at + needle.len()).collect();
                }
                let mut chunk = vec![0u8; 8192];
                let n = self.io.read(&mut chunk).await.unwrap_or(0);
                assert!(
                    n > 0,
                    "closed while waiting for {needle:?}: {}",
                    self.buffer
                );
                self.buffer.push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {needle:?}: {}", self.buffer))
    }

    /// Reads until the peer closes; returns what was not consumed.
    pub async fn read_to_close(&mut self) -> String {
        tokio::time::timeout(GUARD, async {
            loop {
                let mut chunk = vec![0u8; 8192];
                match self.io.read(&mut chunk).await {
                    Ok(0) | Err(_) => return std::mem::take(&mut self.buffer),
                    Ok(n) => self.buffer.push_str(&String::from_utf8_lossy(&chunk[..n])),
                }
            }
        })
        .await
        .expect("the stream is closed")
    }
}

/// The remote end of the server's outbound link to b.test: STARTTLS, then dialback answered
/// as valid.
pub async fn accept_outbound_link(
    ca: &TestCa,
    listener: &tokio::net::TcpListener,
) -> Wire<tokio_rustls::server::TlsStream<TcpStream>> {
    const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='b.test' to='a.test' version='1.0'";
    let (tcp, _) = tokio::time::timeout(GUARD, listener.accept())
        .await
        .expect("the server connects in time")
        .expect("accept");
    let mut plain = Wire::new(tcp);
    plain.expect("<stream:stream").await;
    plain.expect(">").await;
    plain
        .send(&format!("{HEADER} id='plain'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>"))
        .await;
    plain.expect("<starttls").await;
    plain.expect("/>").await;
    plain
        .send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await;
    let (chain, key) = ca.identity("b.test");
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate");
    let tls = tokio_rustls::TlsAcceptor::from(Arc::new(config))
        .accept(plain.io)
        .await
        .expect("TLS");
    let mut link = Wire::new(tls);
    link.expect("<stream:stream").await;
    link.expect(">").await;
    link.send(&format!("{HEADER} id='secured'><stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>"))
        .await;
    link.expect("</db:result>").await;
    link.send("<db:result from='b.test' to='a.test' type='valid'/>")
        .await;
    link
}

/// An inbound server stream from `remote` to `local` at `port`, `remote` proven by a
/// certificate of `ca` in answer to its dialback request (XEP-0344).
pub async fn inbound_link(
    ca: &TestCa,
    port: u16,
    local: &str,
    remote: &str,
) -> Wire<tokio_rustls::client::TlsStream<TcpStream>> {
    let opening = server_header(local, Some(remote));
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut plain = Wire::new(tcp);
    plain.send(&opening).await;
    plain.expect("</stream:features>").await;
    plain
        .send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await;
    plain.expect("<proceed").await;
    plain.expect("/>").await;
    let (chain, key) = ca.identity(remote);
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(ca.roots())
        .with_client_auth_cert(chain, key)
        .expect("client certificate");
    let name = rustls::pki_types::ServerName::try_from(local.to_owned()).expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, plain.io)
        .await
        .expect("TLS");
    let mut link = Wire::new(tls);
    link.send(&opening).await;
    link.expect("</stream:features>").await;
    link.send(&format!(
        "<db:result from='{remote}' to='{local}'>00</db:result>"
    ))
    .await;
    link.expect("type='valid'").await;
    link
}
