//! Opening a stream to another server at one resolved endpoint: TCP, then STARTTLS or TLS
//! from the first byte (XEP-0368), presenting our certificate, and the secured stream's
//! header and features. Authentication comes after, in `authenticate`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stream::{StreamError, StreamErrorCondition, StreamHeader};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use thiserror::Error;
use tokio::io::{split, AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use crate::net::tls::{SniResolver, ALPN_XMPP_SERVER};
use crate::s2s::certificate::{CertificateProblem, DecideAfterHandshake};
use crate::s2s::resolve::{Endpoint, Observer, ResolveError};
use crate::stream::reader::{Incoming, ReadError, ReaderLimits, XmlReader};
use crate::stream::writer::XmlWriter;

/// Any byte stream a server link runs over.
pub trait LinkIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> LinkIo for T {}

/// Reads a peer's stream.
pub type LinkReader = XmlReader<ReadHalf<Box<dyn LinkIo>>>;
/// Writes ours.
pub type LinkWriter = XmlWriter<WriteHalf<Box<dyn LinkIo>>>;

/// A secured stream, its header exchanged.
pub struct OpenStream {
    /// Reads the peer's stream.
    pub reader: LinkReader,
    /// Writes ours.
    pub writer: LinkWriter,
    /// The id the peer gave its stream (dialback keys are bound to it).
    pub peer_stream_id: String,
    /// The stream features the peer offered.
    pub features: Element,
    /// The certificate chain the peer presented, leaf first.
    pub peer_chain: Vec<CertificateDer<'static>>,
}

/// Why a link could not be opened.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The domain could not be resolved.
    #[error("resolving: {0}")]
    Resolve(#[from] ResolveError),
    /// Our policy refuses the domain.
    #[error("federation with {0} is denied by policy")]
    Denied(String),
    /// The peer's certificate does not authenticate it and policy requires that it does.
    #[error("certificate: {0}")]
    Certificate(CertificateProblem),
    /// The peer could not be reached or the connection broke.
    #[error("connecting: {0}")]
    Io(String),
    /// The peer broke the protocol or refused us.
    #[error("protocol: {0}")]
    Protocol(String),
    /// It took too long.
    #[error("timed out")]
    Timeout,
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// Presents one fixed certificate: ours, for the local domain the link is opened from.
#[derive(Debug)]
struct OurCertificate(Arc<CertifiedKey>);

impl ResolvesClientCert for OurCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _schemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The TLS client configurations of links opened from one local domain.
#[derive(Clone)]
pub struct ClientTls {
    starttls: Arc<rustls::ClientConfig>,
    direct: Arc<rustls::ClientConfig>,
}

impl ClientTls {
    /// Configurations presenting `certificate` (none: no client certificate), accepting any
    /// server certificate for policy to judge after the handshake.
    pub fn new(certificate: Option<Arc<CertifiedKey>>) -> Result<ClientTls, rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(DecideAfterHandshake(provider)));
        let starttls = match certificate {
            Some(certificate) => {
                builder.with_client_cert_resolver(Arc::new(OurCertificate(certificate)))
            }
            None => builder.with_no_client_auth(),
        };
        let mut direct = starttls.clone();
        direct.alpn_protocols = vec![ALPN_XMPP_SERVER.to_vec()];
        Ok(ClientTls {
            starttls: Arc::new(starttls),
            direct: Arc::new(direct),
        })
    }

    /// One configuration per served host, presenting that host's certificate.
    pub fn per_host(
        hosts: &[String],
        certificates: &SniResolver,
    ) -> Result<HashMap<String, ClientTls>, rustls::Error> {
        hosts
            .iter()
            .map(|host| Ok((host.clone(), ClientTls::new(certificates.certified(host))?)))
            .collect()
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

fn io(error: impl std::fmt::Display) -> ConnectError {
    ConnectError::Io(error.to_string())
}

/// Sends our header, reads theirs and their features; returns their stream id and features.
async fn exchange_headers(
    reader: &mut LinkReader,
    writer: &mut LinkWriter,
    local: &str,
    remote: &str,
) -> Result<(String, Element), ConnectError> {
    writer
        .write_header(&header(local, remote, None))
        .await
        .map_err(io)?;
    let theirs = reader.read_header().await.map_err(protocol)?;
    if theirs.content_ns != ns::SERVER {
        return Err(protocol("the peer did not open a jabber:server stream"));
    }
    let id = theirs.id.unwrap_or_default();
    match next_element(reader).await? {
        features if features.is("features", ns::STREAM) => Ok((id, features)),
        _ => Err(protocol("expected stream features")),
    }
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

fn split_link(
    io: Box<dyn LinkIo>,
    limits: ReaderLimits,
    write_timeout: Duration,
) -> (LinkReader, LinkWriter) {
    let (read, write) = split(io);
    (
        XmlReader::new(read, limits),
        XmlWriter::with_timeout(write, ns::SERVER, write_timeout),
    )
}

/// Connects to `remote` at `endpoint` as `local` and secures the stream.
pub async fn open(
    endpoint: &Endpoint,
    local: &str,
    remote: &str,
    tls: &ClientTls,
    limits: ReaderLimits,
    write_timeout: Duration,
    observe: Observer<'_>,
) -> Result<OpenStream, ConnectError> {
    let tcp = TcpStream::connect(endpoint.address).await.map_err(io)?;
    observe(
        "connect",
        format!(
            "TCP connection to {} ({}) established",
            endpoint.address, endpoint.host
        ),
    );
    let _ = tcp.set_nodelay(true);
    let (config, plain): (_, Box<dyn LinkIo>) = if endpoint.direct_tls {
        (tls.direct.clone(), Box::new(tcp))
    } else {
        (
            tls.starttls.clone(),
            starttls(tcp, local, remote, limits, write_timeout, observe).await?,
        )
    };
    let name = ServerName::try_from(remote.to_owned()).map_err(protocol)?;
    let secured = tokio_rustls::TlsConnector::from(config)
        .connect(name, plain)
        .await
        .map_err(|e| ConnectError::Io(format!("TLS: {e}")))?;
    let (_, connection) = secured.get_ref();
    let peer_chain: Vec<CertificateDer<'static>> = connection
        .peer_certificates()
        .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    observe(
        "tls",
        format!(
            "{:?}, {:?}, key exchange {:?}, {} certificate(s) presented",
            connection.protocol_version(),
            connection.negotiated_cipher_suite().map(|s| s.suite()),
            connection.negotiated_key_exchange_group().map(|g| g.name()),
            peer_chain.len(),
        ),
    );
    let (mut reader, mut writer) = split_link(Box::new(secured), limits, write_timeout);
    let (peer_stream_id, features) =
        exchange_headers(&mut reader, &mut writer, local, remote).await?;
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
        peer_stream_id,
        features,
        peer_chain,
    })
}

/// The plaintext part before STARTTLS (RFC 7590: server links are encrypted or not used).
async fn starttls(
    tcp: TcpStream,
    local: &str,
    remote: &str,
    limits: ReaderLimits,
    write_timeout: Duration,
    observe: Observer<'_>,
) -> Result<Box<dyn LinkIo>, ConnectError> {
    let (mut reader, mut writer) = split_link(Box::new(tcp), limits, write_timeout);
    let (_, features) = exchange_headers(&mut reader, &mut writer, local, remote).await?;
    observe(
        "stream",
        format!("stream opened, features: {}", feature_names(&features)),
    );
    if !features.has_child("starttls", ns::TLS) {
        return Err(protocol("the peer does not offer STARTTLS"));
    }
    writer
        .write_element(&Element::new("starttls", ns::TLS))
        .await
        .map_err(io)?;
    match next_element(&mut reader).await? {
        proceed if proceed.is("proceed", ns::TLS) => {}
        _ => return Err(protocol("STARTTLS refused")),
    }
    let read = reader.into_inner().map_err(protocol)?;
    Ok(read.unsplit(writer.into_inner()))
}

/// Opens a new stream on the same connection after SASL success (RFC 6120 §6.4.6).
pub async fn restart(
    stream: OpenStream,
    local: &str,
    remote: &str,
) -> Result<OpenStream, ConnectError> {
    let mut reader = stream.reader.restart();
    let mut writer = stream.writer;
    let (peer_stream_id, features) =
        exchange_headers(&mut reader, &mut writer, local, remote).await?;
    Ok(OpenStream {
        reader,
        writer,
        peer_stream_id,
        features,
        peer_chain: stream.peer_chain,
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
