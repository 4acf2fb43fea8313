//! One simulated client: TCP from a chosen source address, STARTTLS, SCRAM, bind, roster,
//! presence; or in-band registration (XEP-0077) to provision accounts on the peers.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rempart_xep::{ns, Element};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::scram::{Mechanism, SaltedCache, ScramClient};
use crate::xml::XmlIn;

/// The encrypted connection of a logged-in session.
pub type Tls = TlsStream<TcpStream>;
/// Inbound half of a session.
pub type SessionReader = XmlIn<ReadHalf<Tls>>;
/// Outbound half of a session.
pub type SessionWriter = WriteHalf<Tls>;

/// The resource every simulated client binds.
pub const RESOURCE: &str = "load";

/// Where and how to connect; shared by all simulated clients.
pub struct Target {
    /// The server's c2s (STARTTLS) address.
    pub addr: SocketAddr,
    /// The XMPP domain.
    pub domain: String,
    /// SCRAM variant to use.
    pub mechanism: Mechanism,
    /// TLS client setup.
    pub tls: TlsConnector,
    /// Salted passwords already computed.
    pub cache: SaltedCache,
    /// What the first TLS handshake negotiated, for the report.
    pub tls_summary: OnceLock<String>,
}

/// Where a login failed, for the error counts in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// TCP connect.
    Connect,
    /// Stream header, features, STARTTLS and the TLS handshake.
    Tls,
    /// SASL.
    Auth,
    /// Resource binding.
    Bind,
    /// Roster fetch and initial presence.
    Roster,
    /// In-band registration.
    Register,
    /// The whole login or registration took longer than allowed.
    Timeout,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connect",
            Stage::Tls => "tls",
            Stage::Auth => "auth",
            Stage::Bind => "bind",
            Stage::Roster => "roster",
            Stage::Register => "register",
            Stage::Timeout => "timeout",
        })
    }
}

/// A failed login or registration, with where it failed.
#[derive(Debug)]
pub struct StageError {
    /// The stage that failed.
    pub stage: Stage,
    /// Why.
    pub error: anyhow::Error,
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:#}", self.stage, self.error)
    }
}

trait AtStage<T> {
    fn at(self, stage: Stage) -> Result<T, StageError>;
}

impl<T> AtStage<T> for Result<T> {
    fn at(self, stage: Stage) -> Result<T, StageError> {
        self.map_err(|error| StageError { stage, error })
    }
}

/// A logged-in session, split for its reader task and its driver.
pub struct Session {
    /// Inbound stanzas.
    pub reader: SessionReader,
    /// Outbound stanzas.
    pub writer: SessionWriter,
}

/// Builds the TLS client: TLS 1.2/1.3, X25519 only, no session resumption, and no
/// certificate check (the servers use a self-signed certificate; skipping the signature check
/// also keeps the load generator's cost per handshake low).
pub fn tls_connector() -> Result<TlsConnector> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    // The same group on every server: OpenSSL 3.0 (Prosody, ejabberd) has no post-quantum
    // hybrid, which rustls would otherwise prefer against Rempart.
    provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
    let schemes = provider
        .signature_verification_algorithms
        .supported_schemes();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { schemes }))
        .with_no_client_auth();
    // Every login pays a full handshake, as a client connecting for the first time would,
    // whichever server issues session tickets.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(TlsConnector::from(Arc::new(config)))
}

#[derive(Debug)]
struct AcceptAnyCertificate {
    schemes: Vec<SignatureScheme>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

/// Writes one piece of XML and flushes it.
pub async fn send<W: AsyncWrite + Unpin>(writer: &mut W, xml: &str) -> Result<()> {
    writer.write_all(xml.as_bytes()).await?;
    writer.flush().await?;
    Ok(())
}

fn stream_header(domain: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' xml:lang='en' \
         xmlns='{}' xmlns:stream='{}'>",
        ns::CLIENT,
        ns::STREAM
    )
}

async fn connect_tcp(target: &Target, source: Option<IpAddr>) -> Result<TcpStream> {
    let socket = match target.addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("binding {ip}"))?;
    }
    let stream = socket.connect(target.addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Connects, negotiates STARTTLS and returns the encrypted stream's halves and features.
async fn open_tls(
    target: &Target,
    source: Option<IpAddr>,
) -> Result<(SessionReader, SessionWriter, Element), StageError> {
    let tcp = connect_tcp(target, source).await.at(Stage::Connect)?;
    let mut plain = XmlIn::new(tcp);
    let negotiate = async {
        send(plain.get_mut(), &stream_header(&target.domain)).await?;
        plain.header().await?;
        let features = plain.expect_element().await?;
        if !features.has_child("starttls", ns::TLS) {
            bail!("server does not offer STARTTLS");
        }
        send(plain.get_mut(), &format!("<starttls xmlns='{}'/>", ns::TLS)).await?;
        let answer = plain.expect_element().await?;
        if !answer.is("proceed", ns::TLS) {
            bail!("STARTTLS refused: <{}>", answer.name());
        }
        let tcp = plain.into_inner()?;
        let name = ServerName::try_from(target.domain.clone()).context("server name")?;
        let tls = target
            .tls
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        if target.tls_summary.get().is_none() {
            let (_, connection) = tls.get_ref();
            let summary = format!(
                "{} {} {}",
                connection
                    .protocol_version()
                    .and_then(|v| v.as_str())
                    .unwrap_or("?"),
                connection
                    .negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite()))
                    .unwrap_or_default(),
                connection
                    .negotiated_key_exchange_group()
                    .map(|g| format!("{:?}", g.name()))
                    .unwrap_or_default(),
            );
            let _ = target.tls_summary.set(summary);
        }
        let (read, mut write) = tokio::io::split(tls);
        send(&mut write, &stream_header(&target.domain)).await?;
        let mut reader = XmlIn::new(read);
        reader.header().await?;
        let features = reader.expect_element().await?;
        Ok((reader, write, features))
    };
    negotiate.await.at(Stage::Tls)
}

/// Waits for the IQ answer with `id`, skipping anything else the server sends meanwhile.
async fn await_iq(reader: &mut SessionReader, id: &str) -> Result<Element> {
    loop {
        let element = reader.expect_element().await?;
        if element.name() == "iq" && element.get_attr("id") == Some(id) {
            if element.get_attr("type") == Some("result") {
                return Ok(element);
            }
            let condition = element
                .get_child("error", ns::CLIENT)
                .and_then(|e| e.children().next().map(|c| c.name().to_owned()))
                .unwrap_or_else(|| "unknown".into());
            bail!("iq {id} failed: {condition}");
        }
    }
}

/// Logs `user` in: STARTTLS, SCRAM, bind, roster get, initial presence.
pub async fn login(
    target: &Target,
    user: &str,
    password: &str,
    source: Option<IpAddr>,
) -> Result<Session, StageError> {
    let (mut reader, mut writer, features) = open_tls(target, source).await?;
    let mechanism = target.mechanism;
    let auth = async {
        let offered = features
            .get_child("mechanisms", ns::SASL)
            .map(|m| {
                m.children()
                    .any(|c| c.text_content().trim() == mechanism.name())
            })
            .unwrap_or(false);
        if !offered {
            bail!("server does not offer {}", mechanism.name());
        }
        let mut scram = ScramClient::new(mechanism, user, password);
        send(
            &mut writer,
            &format!(
                "<auth xmlns='{}' mechanism='{}'>{}</auth>",
                ns::SASL,
                mechanism.name(),
                B64.encode(scram.client_first())
            ),
        )
        .await?;
        let challenge = reader.expect_element().await?;
        if !challenge.is("challenge", ns::SASL) {
            bail!("SASL: expected a challenge, got <{}>", challenge.name());
        }
        let server_first = String::from_utf8(B64.decode(challenge.text_content().trim())?)?;
        let client_final = scram.client_final(&server_first, &target.cache)?;
        send(
            &mut writer,
            &format!(
                "<response xmlns='{}'>{}</response>",
                ns::SASL,
                B64.encode(client_final)
            ),
        )
        .await?;
        loop {
            let answer = reader.expect_element().await?;
            let data = String::from_utf8(B64.decode(answer.text_content().trim())?)?;
            if answer.is("success", ns::SASL) {
                if !data.is_empty() {
                    scram.verify_server_final(&data)?;
                }
                return Ok(());
            } else if answer.is("challenge", ns::SASL) {
                scram.verify_server_final(&data)?;
                send(&mut writer, &format!("<response xmlns='{}'/>", ns::SASL)).await?;
            } else {
                let condition = answer
                    .children()
                    .map(|c| c.name().to_owned())
                    .find(|n| n != "text")
                    .unwrap_or_default();
                bail!("SASL failure: {condition}");
            }
        }
    };
    auth.await.at(Stage::Auth)?;
    let bind = async {
        let mut reader = reader.restart();
        send(&mut writer, &stream_header(&target.domain)).await?;
        reader.header().await?;
        let features = reader.expect_element().await?;
        if !features.has_child("bind", ns::BIND) {
            bail!("server does not offer resource binding");
        }
        send(
            &mut writer,
            &format!(
                "<iq type='set' id='bind1'><bind xmlns='{}'><resource>{RESOURCE}</resource></bind></iq>",
                ns::BIND
            ),
        )
        .await?;
        await_iq(&mut reader, "bind1").await?;
        let session_required = features
            .get_child("session", ns::SESSION)
            .map(|s| !s.has_child("optional", ns::SESSION))
            .unwrap_or(false);
        if session_required {
            send(
                &mut writer,
                &format!(
                    "<iq type='set' id='sess1'><session xmlns='{}'/></iq>",
                    ns::SESSION
                ),
            )
            .await?;
            await_iq(&mut reader, "sess1").await?;
        }
        Ok(reader)
    };
    let mut reader = bind.await.at(Stage::Bind)?;
    let roster = async {
        send(
            &mut writer,
            &format!(
                "<iq type='get' id='roster1'><query xmlns='{}'/></iq>",
                ns::ROSTER
            ),
        )
        .await?;
        await_iq(&mut reader, "roster1").await?;
        send(&mut writer, "<presence/>").await?;
        Ok(())
    };
    roster.await.at(Stage::Roster)?;
    Ok(Session { reader, writer })
}

/// Whether a registration created the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// The account is new.
    Created,
    /// It existed already (`conflict`).
    Existed,
}

/// Creates `user` by in-band registration (XEP-0077) over STARTTLS.
pub async fn register(
    target: &Target,
    user: &str,
    password: &str,
    source: Option<IpAddr>,
) -> Result<Registered, StageError> {
    let (mut reader, mut writer, _features) = open_tls(target, source).await?;
    let run = async {
        send(
            &mut writer,
            &format!(
                "<iq type='set' id='reg1'><query xmlns='jabber:iq:register'>\
                 <username>{user}</username><password>{password}</password></query></iq>"
            ),
        )
        .await?;
        let outcome = match await_iq(&mut reader, "reg1").await {
            Ok(_) => Registered::Created,
            Err(error) if error.to_string().ends_with("conflict") => Registered::Existed,
            Err(error) => return Err(error),
        };
        let _ = send(&mut writer, "</stream:stream>").await;
        let _ = writer.shutdown().await;
        Ok(outcome)
    };
    run.await.map_err(|e| anyhow!("{e:#}")).at(Stage::Register)
}
