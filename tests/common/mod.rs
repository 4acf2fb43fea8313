//! Test harness: an in-process server on 127.0.0.1:0 with the memory backend, and a raw
//! XML client (rustls + the independent `sasl` crate) for exact wire behaviour.
#![allow(dead_code)]

pub mod binary;
pub mod federation;
pub mod interests;
pub mod socket_options;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rempart::config::Config;
use rempart::router::Router;
use rempart::storage::Storage;
use rempart::Server;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use sasl::client::mechanisms::Scram;
use sasl::client::Mechanism;
use sasl::common::scram::{Sha1, Sha256};
use sasl::common::ChannelBinding;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Guard against a hung test; not a performance assertion.
pub const GUARD: Duration = Duration::from_secs(20);

/// A running in-process server.
pub struct TestServer {
    /// The server's first domain.
    pub domain: String,
    /// STARTTLS listener (TLS required).
    pub starttls: SocketAddr,
    /// Direct TLS listener.
    pub direct_tls: SocketAddr,
    /// Listener that does not require TLS (for the plaintext tokio-xmpp connector).
    pub plaintext: SocketAddr,
    /// The router.
    pub router: Arc<Router>,
    /// The name clients check the server's certificate against (its first domain unless a
    /// test serves a certificate for another name).
    pub tls_name: String,
    /// The server's certificate for its first domain.
    pub certificate: CertificateDer<'static>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// A server for `localhost` with default settings.
    pub async fn start() -> TestServer {
        Self::start_with("").await
    }

    /// A server whose configuration adds `extra` TOML (sections other than server/listeners).
    pub async fn start_with(extra: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, "localhost", LOCAL_HOSTS, extra, Storage::memory()).await
    }

    /// A server on the redb store of `dir`, which survives `stop` for a restart.
    pub async fn start_persistent(dir: tempfile::TempDir) -> TestServer {
        Self::start_persistent_with(dir, "").await
    }

    /// Like `start_persistent`, with `extra` TOML as in `start_with`.
    pub async fn start_persistent_with(dir: tempfile::TempDir, extra: &str) -> TestServer {
        let storage = Storage::open(
            rempart::storage::BackendKind::Redb,
            &dir.path().join("data"),
        )
        .expect("redb store");
        Self::start_in(dir, "localhost", LOCAL_HOSTS, extra, storage).await
    }

    /// A server for `domain` alone (federation tests run two of them).
    pub async fn start_domain(domain: &str, extra: &str) -> TestServer {
        Self::start_domains(&[domain], extra).await
    }

    /// A server for `domains`, the first one being its `domain`.
    pub async fn start_domains(domains: &[&str], extra: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let hosts: Vec<String> = domains.iter().map(|d| format!("\"{d}\"")).collect();
        Self::start_in(dir, domains[0], &hosts.join(", "), extra, Storage::memory()).await
    }

    async fn start_in(
        dir: tempfile::TempDir,
        domain: &str,
        hosts: &str,
        extra: &str,
        storage: Storage,
    ) -> TestServer {
        let extra = loopback_dns_only(extra);
        let toml = format!(
            r#"
[server]
hosts = [{hosts}]
data_dir = "{}"
[storage]
backend = "memory"
[[listeners]]
kind = "c2s"
address = "127.0.0.1:0"
[[listeners]]
kind = "c2s-direct-tls"
address = "127.0.0.1:0"
[[listeners]]
kind = "c2s"
address = "127.0.0.1:0"
require_tls = false
{extra}
"#,
            dir.path().display()
        );
        let config = Config::from_toml(&toml).expect("test config");
        let server = Server::build_with_storage(config, storage, false)
            .await
            .expect("server builds");
        let addrs = server.local_addrs();
        let router = server.router();
        let certificate_path = router
            .config
            .tls
            .certificates
            .iter()
            .find(|c| c.host == domain)
            .map(|c| c.cert.clone())
            .unwrap_or_else(|| dir.path().join("certs").join(format!("{domain}.crt")));
        // Clients trust the chain's last certificate: the self-signed one, or the authority.
        let certificate = CertificateDer::pem_file_iter(certificate_path)
            .expect("the server's certificate")
            .filter_map(Result::ok)
            .last()
            .expect("a certificate");
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            server.run(token).await.expect("server runs");
        });
        TestServer {
            domain: domain.to_owned(),
            tls_name: domain.to_owned(),
            starttls: addrs[0],
            direct_tls: addrs[1],
            plaintext: addrs[2],
            router,
            certificate,
            shutdown,
            task,
            _dir: dir,
        }
    }

    /// Creates an account.
    pub async fn add_user(&self, jid: &str, password: &str) {
        let bare = jid::BareJid::new(jid).expect("jid");
        self.router
            .accounts
            .create(&bare, password)
            .await
            .expect("account created");
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) {
        self.stop_keeping_data().await;
    }

    /// Stops the server and hands back its directory, for a restart on the same data.
    pub async fn stop_keeping_data(self) -> tempfile::TempDir {
        self.shutdown.cancel();
        tokio::time::timeout(GUARD, self.task)
            .await
            .expect("server stops")
            .expect("server task");
        drop(self.router);
        self._dir
    }

    fn tls_connector(&self, alpn: Option<&[u8]>) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.certificate.clone()).expect("root");
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        if let Some(alpn) = alpn {
            config.alpn_protocols = vec![alpn.to_vec()];
        }
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// The client's transport.
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A raw XML client that reads into a text buffer and waits for substrings.
pub struct RawClient {
    io: Conn,
    buffer: String,
    /// The TLS protocol version, once TLS is up.
    pub tls13: bool,
    /// Channel binding data (tls-exporter) when TLS 1.3 is up.
    pub exporter: Option<Vec<u8>>,
    /// The bound JID after `login`.
    pub jid: String,
}

/// A port for a test listener, unique within this process and outside the kernel's
/// ephemeral range (32768–60999 by default), so that no listener bound to port 0 can take it
/// between now and its use.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Each process gets its own block of 100 ports in 20000–31999.
    let block = 20000 + (std::process::id() % 120) as u16 * 100;
    loop {
        let port = block + NEXT.fetch_add(1, Ordering::Relaxed) % 100;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The value of `name='…'` in the first element of `xml` that has it.
pub fn attribute(xml: &str, name: &str) -> String {
    let marker = format!(" {name}='");
    let start = xml
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {xml}"))
        + marker.len();
    xml[start..]
        .split('\'')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The text of the first `<element>…</element>` in `xml`.
pub fn text_of(xml: &str, element: &str) -> String {
    xml.split(&format!("<{element}>"))
        .nth(1)
        .and_then(|rest| rest.split(&format!("</{element}>")).next())
        .unwrap_or_else(|| panic!("no {element} in {xml}"))
        .to_owned()
}

/// Opening header for `to`.
pub fn header(to: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream to='{to}' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    )
}

impl RawClient {
    /// A plain TCP connection.
    pub async fn connect(addr: SocketAddr) -> RawClient {
        Self::over_tcp(TcpStream::connect(addr).await.expect("connect"))
    }

    /// A client over an established plain TCP connection.
    pub fn over_tcp(tcp: TcpStream) -> RawClient {
        RawClient {
            io: Conn::Plain(tcp),
            buffer: String::new(),
            tls13: false,
            exporter: None,
            jid: String::new(),
        }
    }

    /// A direct TLS connection (XEP-0368) with ALPN `xmpp-client`.
    pub async fn connect_direct_tls(server: &TestServer) -> RawClient {
        Self::connect_direct_tls_at(server, server.direct_tls, b"xmpp-client").await
    }

    /// A direct TLS connection to `address` of `server` with ALPN `alpn`.
    pub async fn connect_direct_tls_at(
        server: &TestServer,
        address: SocketAddr,
        alpn: &[u8],
    ) -> RawClient {
        let tcp = TcpStream::connect(address).await.expect("connect");
        let connector = server.tls_connector(Some(alpn));
        let name = ServerName::try_from(server.tls_name.clone()).expect("name");
        let tls = connector.connect(name, tcp).await.expect("tls");
        let (tls13, exporter) = tls_info(tls.get_ref().1);
        RawClient {
            io: Conn::Tls(Box::new(tls)),
            buffer: String::new(),
            tls13,
            exporter,
            jid: String::new(),
        }
    }

    /// Sends raw XML.
    pub async fn send(&mut self, xml: &str) {
        self.io.write_all(xml.as_bytes()).await.expect("write");
        self.io.flush().await.expect("flush");
    }

    /// Sends raw XML, tolerating a peer that already closed.
    pub async fn send_lossy(&mut self, xml: &[u8]) {
        let _ = self.io.write_all(xml).await;
        let _ = self.io.flush().await;
    }

    /// Waits until `needle` arrives; returns everything up to and including it.
    pub async fn expect(&mut self, needle: &str) -> String {
        let found = tokio::time::timeout(GUARD, async {
            loop {
                if let Some(at) = self.buffer.find(needle) {
                    let end = at + needle.len();
                    let taken: String = self.buffer.drain(..end).collect();
                    return taken;
                }
                let mut chunk = vec![0u8; 8192];
                let n = self.io.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    panic!(
                        "connection closed while waiting for {needle:?}; got {:?}",
                        self.buffer
                    );
                }
                self.buffer.push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        })
        .await;
        match found {
            Ok(text) => text,
            Err(_) => panic!("timed out waiting for {needle:?}; got {:?}", self.buffer),
        }
    }

    /// Waits for the first complete stanza containing `needle`; returns that stanza's text
    /// and drops everything before its end from the buffer.
    pub async fn expect_stanza(&mut self, needle: &str) -> String {
        let found = tokio::time::timeout(GUARD, async {
            loop {
                if let Some(stanza) = self.take_stanza_with(needle) {
                    return stanza;
                }
                let mut chunk = vec![0u8; 8192];
                let n = self.io.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    panic!(
                        "connection closed while waiting for {needle:?}; got {:?}",
                        self.buffer
                    );
                }
                self.buffer.push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        })
        .await;
        match found {
            Ok(text) => text,
            Err(_) => panic!(
                "timed out waiting for a stanza with {needle:?}; got {:?}",
                self.buffer
            ),
        }
    }

    /// Removes and returns the first complete stanza containing `needle`, leaving every
    /// other stanza in the buffer for later expectations.
    fn take_stanza_with(&mut self, needle: &str) -> Option<String> {
        let mut from = 0;
        loop {
            let rest = &self.buffer[from..];
            let (at, tag) = ["<message", "<presence", "<iq"]
                .iter()
                .filter_map(|tag| rest.find(tag).map(|at| (at, *tag)))
                .min()?;
            let begin = from + at;
            let name = &tag[1..];
            let open_end = begin + self.buffer[begin..].find('>')?;
            let end = if self.buffer[..open_end].ends_with('/') {
                open_end + 1
            } else {
                let close = format!("</{name}>");
                open_end + self.buffer[open_end..].find(&close)? + close.len()
            };
            let stanza = self.buffer[begin..end].to_owned();
            if stanza.contains(needle) {
                self.buffer.replace_range(begin..end, "");
                return Some(stanza);
            }
            from = end;
        }
    }

    /// What arrived but no expectation consumed yet.
    pub fn unread(&self) -> &str {
        &self.buffer
    }

    /// Reads until the server closes the connection; returns all that was not consumed.
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
        .expect("server closes the connection")
    }

    /// Opens a stream and waits for the features.
    pub async fn open(&mut self, to: &str) -> String {
        self.send(&header(to)).await;
        self.expect("</stream:features>").await
    }

    /// STARTTLS on a plain connection whose features were just read.
    pub async fn starttls(self, server: &TestServer) -> RawClient {
        let connector = server.tls_connector(None);
        self.starttls_with(server, connector).await
    }

    /// STARTTLS presenting a client certificate, as a server does on a server link.
    pub async fn starttls_presenting(
        self,
        server: &TestServer,
        chain: Vec<CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> RawClient {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(server.certificate.clone()).expect("root");
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .expect("client certificate");
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        self.starttls_with(server, connector).await
    }

    async fn starttls_with(
        mut self,
        server: &TestServer,
        connector: tokio_rustls::TlsConnector,
    ) -> RawClient {
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        self.expect("<proceed").await;
        self.expect("/>").await;
        let Conn::Plain(tcp) = self.io else {
            panic!("STARTTLS on a TLS connection");
        };
        let name = ServerName::try_from(server.tls_name.clone()).expect("name");
        let tls = connector.connect(name, tcp).await.expect("tls handshake");
        let (tls13, exporter) = tls_info(tls.get_ref().1);
        RawClient {
            io: Conn::Tls(Box::new(tls)),
            buffer: String::new(),
            tls13,
            exporter,
            jid: String::new(),
        }
    }

    /// Runs SASL with `mechanism` (`SCRAM-SHA-1`, `SCRAM-SHA-256` or `SCRAM-SHA-256-PLUS`);
    /// returns the server's final element text (`<success…` or `<failure…`).
    pub async fn authenticate(&mut self, mechanism: &str, user: &str, password: &str) -> String {
        let binding = match (mechanism.ends_with("-PLUS"), &self.exporter) {
            (true, Some(data)) => ChannelBinding::TlsExporter(data.clone()),
            (true, None) => panic!("no channel binding available"),
            (false, _) => ChannelBinding::None,
        };
        self.authenticate_with(mechanism, user, password, binding)
            .await
    }

    /// Runs SASL with an explicit channel-binding choice (`Unsupported` sends the `y` flag).
    pub async fn authenticate_with(
        &mut self,
        mechanism: &str,
        user: &str,
        password: &str,
        binding: ChannelBinding,
    ) -> String {
        let mut client: Box<dyn Mechanism> = if mechanism.starts_with("SCRAM-SHA-256") {
            Box::new(Scram::<Sha256>::new(user, password.to_owned(), binding).expect("scram"))
        } else {
            Box::new(Scram::<Sha1>::new(user, password.to_owned(), binding).expect("scram"))
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let initial = b64.encode(client.initial());
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{mechanism}'>{initial}</auth>"
        ))
        .await;
        loop {
            let text = self.expect(">").await;
            if text.contains("<challenge") {
                let body = self.expect("</challenge>").await;
                let data = b64
                    .decode(body.trim_end_matches("</challenge>"))
                    .expect("challenge base64");
                let response = client.response(&data).expect("client accepts challenge");
                self.send(&format!(
                    "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
                    b64.encode(response)
                ))
                .await;
            } else if text.contains("<success") {
                let body = self.expect("</success>").await;
                let data = b64
                    .decode(body.trim_end_matches("</success>"))
                    .expect("success base64");
                client.success(&data).expect("server signature verifies");
                return format!("<success>{body}");
            } else if text.contains("<failure") {
                let body = self.expect("</failure>").await;
                return format!("<failure>{body}");
            }
        }
    }

    /// Runs SCRAM-SHA-256-PLUS over SASL2 (XEP-0388), with `inline` XML (user agent, Bind 2,
    /// resumption) inside `<authenticate/>`; returns the whole `<success/>` (after checking the
    /// server's signature) or `<failure/>`.
    pub async fn authenticate_sasl2(&mut self, user: &str, password: &str, inline: &str) -> String {
        let binding = ChannelBinding::TlsExporter(self.exporter.clone().expect("TLS 1.3"));
        let mut client = Scram::<Sha256>::new(user, password.to_owned(), binding).expect("scram");
        let b64 = base64::engine::general_purpose::STANDARD;
        self.send(&format!(
            "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-256-PLUS'><initial-response>{}</initial-response>{inline}</authenticate>",
            b64.encode(client.initial())
        ))
        .await;
        loop {
            let text = self.expect(">").await;
            if text.contains("<challenge") {
                let body = self.expect("</challenge>").await;
                let data = b64
                    .decode(body.trim_end_matches("</challenge>"))
                    .expect("challenge base64");
                let response = client.response(&data).expect("client accepts challenge");
                self.send(&format!(
                    "<response xmlns='urn:xmpp:sasl:2'>{}</response>",
                    b64.encode(response)
                ))
                .await;
            } else if text.contains("<success") {
                let body = self.expect("</success>").await;
                let data = body
                    .split("<additional-data>")
                    .nth(1)
                    .and_then(|rest| rest.split("</additional-data>").next())
                    .expect("additional data");
                let data = b64.decode(data).expect("additional data base64");
                client.success(&data).expect("server signature verifies");
                return format!("{text}{body}");
            } else if text.contains("<failure") {
                let body = self.expect("</failure>").await;
                return format!("{text}{body}");
            }
        }
    }

    /// Binds a resource after authentication; returns the bound JID.
    pub async fn bind(&mut self, resource: Option<&str>) -> String {
        let request = match resource {
            Some(r) => format!("<resource>{r}</resource>"),
            None => String::new(),
        };
        self.send(&format!(
            "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>{request}</bind></iq>"
        ))
        .await;
        let reply = self.expect("</iq>").await;
        let jid = reply
            .split("<jid>")
            .nth(1)
            .and_then(|rest| rest.split("</jid>").next())
            .unwrap_or_else(|| panic!("no jid in {reply}"))
            .to_owned();
        self.jid = jid.clone();
        jid
    }

    /// A connection through STARTTLS, with the features of the secured stream.
    pub async fn secured(server: &TestServer) -> (RawClient, String) {
        Self::secured_at(server, &server.domain).await
    }

    /// Like `secured`, with streams opened to `host`, one of the server's domains.
    pub async fn secured_at(server: &TestServer, host: &str) -> (RawClient, String) {
        let mut client = RawClient::connect(server.starttls).await;
        client.open(host).await;
        let mut client = client.starttls(server).await;
        let features = client.open(host).await;
        (client, features)
    }

    /// STARTTLS, SCRAM-SHA-256-PLUS, bind: a ready session for `user` on the server's domain.
    pub async fn login(
        server: &TestServer,
        user: &str,
        password: &str,
        resource: &str,
    ) -> RawClient {
        Self::login_at(server, &server.domain, user, password, resource).await
    }

    /// STARTTLS and SCRAM-SHA-256-PLUS without binding: a stream ready to bind or resume,
    /// with the features offered after authentication.
    pub async fn authenticated(
        server: &TestServer,
        user: &str,
        password: &str,
    ) -> (RawClient, String) {
        let (mut client, _) = RawClient::secured(server).await;
        let outcome = client
            .authenticate("SCRAM-SHA-256-PLUS", user, password)
            .await;
        assert!(outcome.starts_with("<success"), "login failed: {outcome}");
        let features = client.open(&server.domain).await;
        (client, features)
    }

    /// Like `login`, for an account of `host`, one of the server's domains.
    pub async fn login_at(
        server: &TestServer,
        host: &str,
        user: &str,
        password: &str,
        resource: &str,
    ) -> RawClient {
        let (mut client, _) = RawClient::secured_at(server, host).await;
        let outcome = client
            .authenticate("SCRAM-SHA-256-PLUS", user, password)
            .await;
        assert!(outcome.starts_with("<success"), "login failed: {outcome}");
        client.open(host).await;
        client.bind(Some(resource)).await;
        client
    }

    /// Asks for the roster, which makes the session interested in roster pushes and
    /// presence (RFC 6121 §2.1.2, §4.2).
    pub async fn request_roster(&mut self) {
        self.iq(
            "r0",
            "<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>",
        )
        .await;
    }

    /// A session that asked for its roster and is available: a user as clients present it.
    pub async fn online(
        server: &TestServer,
        user: &str,
        password: &str,
        resource: &str,
    ) -> RawClient {
        let mut client = RawClient::login(server, user, password, resource).await;
        client.request_roster().await;
        client.available().await;
        client
    }

    /// Sends initial presence and waits for its reflection.
    pub async fn available(&mut self) {
        self.send("<presence/>").await;
        let jid = self.jid.clone();
        self.expect(&format!("from='{jid}'")).await;
        self.expect(">").await;
    }

    /// Sends an IQ and returns its answer; other stanzas stay buffered.
    pub async fn iq(&mut self, id: &str, xml: &str) -> String {
        self.send(xml).await;
        self.expect_stanza(&format!("id='{id}'")).await
    }
}

fn tls_info(connection: &rustls::ClientConnection) -> (bool, Option<Vec<u8>>) {
    let tls13 = connection.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
    let exporter = tls13.then(|| {
        connection
            .export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None)
            .expect("exporter")
    });
    (tls13, exporter)
}

/// The hosts of the default test server.
const LOCAL_HOSTS: &str = "\"localhost\", \"example.test\"";

/// Points the server's DNS resolver at a loopback port where nothing answers, so that no test
/// ever sends a query off the machine (domains tests reach are in `[s2s.routes]`).
fn loopback_dns_only(extra: &str) -> String {
    const NAME_SERVERS: &str = "name_servers = [\"127.0.0.1:9\"]\ndns_timeout_secs = 1\n";
    if extra.contains("name_servers") {
        extra.to_owned()
    } else if extra.contains("[s2s]\n") {
        extra.replacen("[s2s]\n", &format!("[s2s]\n{NAME_SERVERS}"), 1)
    } else {
        format!("{extra}\n[s2s]\n{NAME_SERVERS}")
    }
}

/// A server run as its own `rempart` process: where it listens and the certificate it serves.
pub struct ServerEndpoint {
    /// Its STARTTLS c2s listener.
    pub address: SocketAddr,
    /// The domain its clients log in to.
    pub domain: String,
    /// The certificate it serves for `domain` (clients trust it alone).
    pub certificate: CertificateDer<'static>,
}

impl RawClient {
    /// STARTTLS, SCRAM-SHA-256-PLUS, bind: a ready session on a server run as its own process.
    pub async fn login_to(
        server: &ServerEndpoint,
        user: &str,
        password: &str,
        resource: &str,
    ) -> RawClient {
        let mut client = Self::authenticated_to(server, user, password).await;
        client.bind(Some(resource)).await;
        client
    }

    /// STARTTLS and SCRAM-SHA-256-PLUS to a server process, without binding: a stream ready
    /// to bind or resume.
    pub async fn authenticated_to(
        server: &ServerEndpoint,
        user: &str,
        password: &str,
    ) -> RawClient {
        let mut client = RawClient::connect(server.address).await;
        client.open(&server.domain).await;
        client
            .send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        client.expect("<proceed").await;
        client.expect("/>").await;
        let Conn::Plain(tcp) = client.io else {
            panic!("STARTTLS on a TLS connection");
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.add(server.certificate.clone()).expect("root");
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = ServerName::try_from(server.domain.clone()).expect("name");
        let tls = connector.connect(name, tcp).await.expect("tls handshake");
        let (tls13, exporter) = tls_info(tls.get_ref().1);
        let mut client = RawClient {
            io: Conn::Tls(Box::new(tls)),
            buffer: String::new(),
            tls13,
            exporter,
            jid: String::new(),
        };
        client.open(&server.domain).await;
        let outcome = client
            .authenticate("SCRAM-SHA-256-PLUS", user, password)
            .await;
        assert!(outcome.starts_with("<success"), "login failed: {outcome}");
        client.open(&server.domain).await;
        client
    }
}
