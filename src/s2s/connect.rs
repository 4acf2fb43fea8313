//! Opening an authenticated-to-be stream to another server: TCP to its route, stream header,
//! STARTTLS. Dialback then proves our identity on it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stream::{StreamError, StreamErrorCondition, StreamHeader};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use thiserror::Error;
use tokio::io::{split, AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::stream::reader::{Incoming, ReadError, ReaderLimits, XmlReader};
use crate::stream::writer::XmlWriter;

/// Any byte stream a server link runs over.
pub trait LinkIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> LinkIo for T {}

/// Both halves of an open stream.
pub struct OpenStream {
    /// Reads the peer's stream.
    pub reader: XmlReader<ReadHalf<Box<dyn LinkIo>>>,
    /// Writes ours.
    pub writer: XmlWriter<WriteHalf<Box<dyn LinkIo>>>,
    /// The id the peer gave its stream (dialback keys are bound to it).
    pub peer_stream_id: String,
}

/// Why a link could not be opened.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// No route is configured for the domain.
    #[error("no route to {0}")]
    NoRoute(String),
    /// The peer could not be reached in time or refused.
    #[error("connecting: {0}")]
    Io(String),
    /// The peer broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// It took too long.
    #[error("timed out")]
    Timeout,
}

/// Accepts any certificate: on these links identity is proven by dialback (XEP-0220), and
/// certificate verification with SASL EXTERNAL is not implemented yet.
#[derive(Debug)]
struct DialbackAuthenticates(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for DialbackAuthenticates {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS client configuration of server links.
pub fn client_tls() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map(|builder| {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(DialbackAuthenticates(provider)))
                .with_no_client_auth()
        });
    match config {
        Ok(config) => Arc::new(config),
        Err(_) => Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        ),
    }
}

/// Our stream header towards `remote`.
pub fn header(local: &str, remote: &str, id: Option<String>) -> StreamHeader {
    StreamHeader {
        from: Some(local.to_owned()),
        to: Some(remote.to_owned()),
        id,
        version: Some("1.0".to_owned()),
        lang: None,
        content_ns: ns::SERVER.to_owned(),
    }
}

fn protocol(error: impl std::fmt::Display) -> ConnectError {
    ConnectError::Protocol(error.to_string())
}

async fn exchange_headers(
    reader: &mut XmlReader<ReadHalf<Box<dyn LinkIo>>>,
    writer: &mut XmlWriter<WriteHalf<Box<dyn LinkIo>>>,
    local: &str,
    remote: &str,
) -> Result<(String, Element), ConnectError> {
    writer
        .write_header(&header(local, remote, None))
        .await
        .map_err(|e| ConnectError::Io(e.to_string()))?;
    let theirs = reader.read_header().await.map_err(protocol)?;
    if theirs.content_ns != ns::SERVER {
        return Err(protocol("the peer did not open a jabber:server stream"));
    }
    let id = theirs.id.unwrap_or_default();
    match reader.next().await.map_err(protocol)? {
        Incoming::Element(features) if features.is("features", ns::STREAM) => Ok((id, features)),
        _ => Err(protocol("expected stream features")),
    }
}

/// Receives a description of each step of opening a link (for `rempart s2s check`).
pub type Observer<'a> = &'a mut (dyn FnMut(&str, String) + Send);

/// Connects to `remote` at `address` as `local`, negotiating TLS when offered.
pub async fn open(
    address: SocketAddr,
    local: &str,
    remote: &str,
    limits: ReaderLimits,
    within: Duration,
) -> Result<OpenStream, ConnectError> {
    open_observed(address, local, remote, limits, within, &mut |_, _| {}).await
}

/// Like [`open`], telling `observe` what each step found.
pub async fn open_observed(
    address: SocketAddr,
    local: &str,
    remote: &str,
    limits: ReaderLimits,
    within: Duration,
    observe: Observer<'_>,
) -> Result<OpenStream, ConnectError> {
    timeout(within, open_inner(address, local, remote, limits, observe))
        .await
        .map_err(|_| ConnectError::Timeout)?
}

fn feature_names(features: &Element) -> String {
    let names: Vec<String> = features
        .children()
        .map(|f| format!("{} ({})", f.name(), f.ns()))
        .collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

async fn open_inner(
    address: SocketAddr,
    local: &str,
    remote: &str,
    limits: ReaderLimits,
    observe: Observer<'_>,
) -> Result<OpenStream, ConnectError> {
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| ConnectError::Io(e.to_string()))?;
    observe(
        "connect",
        format!("TCP connection to {address} established"),
    );
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn LinkIo> = Box::new(tcp);
    let (read, write) = split(io);
    let mut reader = XmlReader::new(read, limits);
    let mut writer = XmlWriter::new(write, ns::SERVER);
    let (_, features) = exchange_headers(&mut reader, &mut writer, local, remote).await?;
    observe(
        "stream",
        format!("stream opened, features: {}", feature_names(&features)),
    );
    if !features.has_child("starttls", ns::TLS) {
        // RFC 7590: server links are encrypted or not used.
        return Err(protocol("the peer does not offer STARTTLS"));
    }
    writer
        .write_element(&Element::new("starttls", ns::TLS))
        .await
        .map_err(|e| ConnectError::Io(e.to_string()))?;
    match reader.next().await.map_err(protocol)? {
        Incoming::Element(proceed) if proceed.is("proceed", ns::TLS) => {}
        _ => return Err(protocol("STARTTLS refused")),
    }
    let read = reader.into_inner().map_err(protocol)?;
    let plain = read.unsplit(writer.into_inner());
    let name = ServerName::try_from(remote.to_owned()).map_err(protocol)?;
    let tls = tokio_rustls::TlsConnector::from(client_tls())
        .connect(name, plain)
        .await
        .map_err(|e| ConnectError::Io(format!("TLS: {e}")))?;
    let (_, connection) = tls.get_ref();
    observe(
        "tls",
        format!(
            "{:?}, {:?}, key exchange {:?}, {} certificate(s) presented",
            connection.protocol_version(),
            connection.negotiated_cipher_suite().map(|s| s.suite()),
            connection.negotiated_key_exchange_group().map(|g| g.name()),
            connection.peer_certificates().map_or(0, <[_]>::len),
        ),
    );
    let io: Box<dyn LinkIo> = Box::new(tls);
    let (read, write) = split(io);
    let mut reader = XmlReader::new(read, limits);
    let mut writer = XmlWriter::new(write, ns::SERVER);
    let (id, features) = exchange_headers(&mut reader, &mut writer, local, remote).await?;
    observe(
        "stream",
        format!(
            "secured stream opened, features: {}",
            feature_names(&features)
        ),
    );
    Ok(OpenStream {
        reader,
        writer,
        peer_stream_id: id,
    })
}

/// A fresh stream id.
pub fn stream_id() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 16)
}

/// Reads the next element, skipping whitespace; stream errors and closes become errors.
pub async fn next_element<R: AsyncRead + Unpin>(
    reader: &mut XmlReader<R>,
) -> Result<Element, ConnectError> {
    loop {
        match reader.next().await {
            Ok(Incoming::Element(element)) => {
                if element.is("error", ns::STREAM) {
                    return Err(protocol(format!(
                        "stream error from peer: {}",
                        element.to_xml()
                    )));
                }
                return Ok(element);
            }
            Ok(Incoming::Whitespace) => continue,
            Ok(Incoming::StreamEnd) => return Err(protocol("the peer closed its stream")),
            Err(ReadError::Stream(error)) => return Err(protocol(error)),
            Err(ReadError::Closed(reason)) => return Err(ConnectError::Io(reason)),
        }
    }
}

/// The stream error for a peer that used a `from` it did not prove.
pub fn invalid_from() -> StreamError {
    StreamError::with_text(
        StreamErrorCondition::InvalidFrom,
        "that domain was not authenticated on this stream",
    )
}
