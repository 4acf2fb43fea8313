//! Inbound server streams: STARTTLS or TLS from the first byte (XEP-0368), the peer's
//! certificate judged for the domain it claims — SASL EXTERNAL (XEP-0178) when valid —, Server
//! Dialback for domains policy lets prove themselves that way (keys verified with their
//! authoritative server), answers to verification requests for our own domains, and stanzas
//! accepted only from domains proven on this stream, only for domains served here.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::sasl::{mechanisms, SaslFailure};
use rempart_xep::stanza::{Condition, StanzaError, StanzaKind};
use rempart_xep::stream::{features, StreamError, StreamErrorCondition};
use rustls::pki_types::CertificateDer;
use tokio::io::split;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, timeout, timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, Instrument};

use crate::net::tls::TlsContext;
use crate::s2s::connect::{header, invalid_from, stream_id, LinkIo, LinkReader, LinkWriter};
use crate::s2s::local::LocalServer;
use crate::s2s::{Policy, S2s, Verification};
use crate::stream::reader::{Incoming, ReadError, XmlReader};
use crate::stream::writer::XmlWriter;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// What every inbound server connection shares.
pub struct InboundContext {
    /// The server-to-server service.
    pub s2s: Arc<S2s>,
    /// The server the links belong to.
    pub local: Arc<dyn LocalServer>,
    /// TLS configurations.
    pub tls: TlsContext,
    /// Time allowed from connect to an authenticated stream.
    pub negotiation_timeout: Duration,
    /// Cancelled on shutdown.
    pub shutdown: CancellationToken,
}

type Reader = LinkReader;
type Writer = LinkWriter;

/// Serves one inbound server connection to its end; `direct_tls` when TLS starts at once.
pub async fn serve(ctx: Arc<InboundContext>, tcp: TcpStream, peer: SocketAddr, direct_tls: bool) {
    let conn = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
    let span = info_span!("s2s", conn, %peer, dir = "in");
    async move {
        let s2s = ctx.s2s.clone();
        let deadline = ctx.negotiation_timeout;
        let secured = tokio::select! {
            secured = timeout(deadline, secure(&ctx, &s2s, tcp, direct_tls)) => secured,
            () = ctx.shutdown.cancelled() => return,
        };
        let Ok(Ok(stream)) = secured else {
            debug!("inbound stream ended before it was secured");
            return;
        };
        if let Err(error) = receive(&ctx, &s2s, stream).await {
            debug!(%error, "inbound stream ended");
        }
    }
    .instrument(span)
    .await
}

struct Stream {
    reader: Reader,
    writer: Writer,
    local: String,
    id: String,
    /// The domain the peer's header claims, if any.
    claimed: Option<String>,
    /// The certificate chain the peer presented.
    peer_chain: Vec<CertificateDer<'static>>,
    /// Whether SASL EXTERNAL was offered on the current stream.
    external_offered: bool,
}

fn open(io: Box<dyn LinkIo>, s2s: &S2s) -> (Reader, Writer) {
    let (read, write) = split(io);
    (
        XmlReader::new(read, s2s.limits()),
        XmlWriter::with_timeout(write, ns::SERVER, s2s.write_timeout()),
    )
}

/// What the peer's header said, once answered.
struct Opened {
    local: String,
    id: String,
    claimed: Option<String>,
}

/// Reads the peer's header and answers it.
async fn open_stream(
    ctx: &InboundContext,
    s2s: &S2s,
    reader: &mut Reader,
    writer: &mut Writer,
) -> Result<Opened, StreamError> {
    let theirs = reader.read_header().await.map_err(|e| match e {
        ReadError::Stream(error) => error,
        ReadError::Closed(reason) => {
            StreamError::with_text(StreamErrorCondition::UndefinedCondition, reason)
        }
    })?;
    let local = theirs
        .to
        .clone()
        .filter(|to| ctx.local.is_local_domain(to))
        .unwrap_or_else(|| ctx.local.default_host());
    let id = stream_id();
    let claimed = theirs.from.clone();
    let ours = header(
        &local,
        claimed.as_deref().unwrap_or_default(),
        Some(id.clone()),
    );
    let write = writer.write_header(&ours).await;
    if write.is_err() {
        return Err(StreamError::new(StreamErrorCondition::UndefinedCondition));
    }
    if theirs.content_ns != ns::SERVER {
        return Err(StreamError::with_text(
            StreamErrorCondition::InvalidNamespace,
            "server streams use jabber:server",
        ));
    }
    if !theirs.version_is_supported() {
        return Err(StreamError::new(StreamErrorCondition::UnsupportedVersion));
    }
    if !theirs
        .to
        .as_deref()
        .is_some_and(|to| ctx.local.is_local_domain(to))
    {
        return Err(StreamError::with_text(
            StreamErrorCondition::HostUnknown,
            "that domain is not served here",
        ));
    }
    if claimed
        .as_deref()
        .is_some_and(|from| s2s.policy(from) == Policy::Deny)
    {
        return Err(StreamError::with_text(
            StreamErrorCondition::PolicyViolation,
            "federation with that domain is not allowed here",
        ));
    }
    Ok(Opened { local, id, claimed })
}

/// Opens the stream, answering with a stream error when the header is refused.
async fn open_or_refuse(
    ctx: &InboundContext,
    s2s: &S2s,
    reader: &mut Reader,
    writer: &mut Writer,
) -> Result<Opened, StreamError> {
    match open_stream(ctx, s2s, reader, writer).await {
        Ok(opened) => Ok(opened),
        Err(error) => {
            let _ = writer.write_stream_error(&error).await;
            Err(error)
        }
    }
}

/// The plaintext part before STARTTLS: header, features, `<starttls/>`, `<proceed/>`.
async fn starttls(
    ctx: &InboundContext,
    s2s: &S2s,
    tcp: TcpStream,
) -> Result<Box<dyn LinkIo>, StreamError> {
    let (mut reader, mut writer) = open(Box::new(tcp), s2s);
    open_or_refuse(ctx, s2s, &mut reader, &mut writer).await?;
    let starttls = Element::new("starttls", ns::TLS).child(Element::new("required", ns::TLS));
    let offered = writer.write_element(&features(vec![starttls])).await;
    let request = reader.next().await;
    match (offered, request) {
        (Ok(()), Ok(Incoming::Element(element))) if element.is("starttls", ns::TLS) => {}
        _ => {
            let error = StreamError::with_text(
                StreamErrorCondition::PolicyViolation,
                "STARTTLS is required",
            );
            let _ = writer.write_stream_error(&error).await;
            return Err(error);
        }
    }
    let proceed = writer
        .write_element(&Element::new("proceed", ns::TLS))
        .await;
    let read = reader
        .into_inner()
        .map_err(|_| StreamError::new(StreamErrorCondition::PolicyViolation))?;
    proceed.map_err(|_| StreamError::new(StreamErrorCondition::UndefinedCondition))?;
    Ok(read.unsplit(writer.into_inner()))
}

/// TLS (after STARTTLS or at once), the secured stream's header and its features.
async fn secure(
    ctx: &InboundContext,
    s2s: &S2s,
    tcp: TcpStream,
    direct_tls: bool,
) -> Result<Stream, StreamError> {
    let _ = tcp.set_nodelay(true);
    let (config, plain): (_, Box<dyn LinkIo>) = if direct_tls {
        (ctx.tls.s2s_direct.clone(), Box::new(tcp))
    } else {
        (ctx.tls.s2s_starttls.clone(), starttls(ctx, s2s, tcp).await?)
    };
    let tls = tokio_rustls::TlsAcceptor::from(config)
        .accept(plain)
        .await
        .map_err(|_| StreamError::new(StreamErrorCondition::UndefinedCondition))?;
    let peer_chain: Vec<CertificateDer<'static>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let (mut reader, mut writer) = open(Box::new(tls), s2s);
    let opened = open_or_refuse(ctx, s2s, &mut reader, &mut writer).await?;
    let mut stream = Stream {
        reader,
        writer,
        local: opened.local,
        id: opened.id,
        claimed: opened.claimed,
        peer_chain,
        external_offered: false,
    };
    // XEP-0178: EXTERNAL is offered when the certificate names the domain the header claims.
    stream.external_offered = stream
        .claimed
        .as_deref()
        .is_some_and(|domain| s2s.anchors.verify(&stream.peer_chain, domain).is_ok());
    offer_features(&mut stream).await?;
    Ok(stream)
}

async fn offer_features(stream: &mut Stream) -> Result<(), StreamError> {
    let mut offered = Vec::new();
    if stream.external_offered {
        offered.push(mechanisms(["EXTERNAL"]));
    }
    offered.push(
        Element::new("dialback", ns::DIALBACK_FEATURE)
            .child(Element::new("errors", ns::DIALBACK_FEATURE)),
    );
    stream
        .writer
        .write_element(&features(offered))
        .await
        .map_err(|_| StreamError::new(StreamErrorCondition::UndefinedCondition))
}

/// Handles `<auth mechanism='EXTERNAL'/>`: the authorization identity, when given, must be
/// the domain the header claimed and the certificate names. Returns the proven domain.
async fn sasl_external(stream: &mut Stream, auth: &Element) -> Result<Option<String>, StreamError> {
    let requested = match auth.text_content().as_str() {
        "" | "=" => stream.claimed.clone(),
        encoded => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
    };
    let refusal = if !stream.external_offered || auth.get_attr("mechanism") != Some("EXTERNAL") {
        Some(SaslFailure::InvalidMechanism)
    } else if requested.is_none() || requested != stream.claimed {
        Some(SaslFailure::InvalidAuthzid)
    } else {
        None
    };
    let answer = match refusal {
        Some(failure) => failure.to_element(),
        None => Element::new("success", ns::SASL),
    };
    stream
        .writer
        .write_element(&answer)
        .await
        .map_err(|_| StreamError::new(StreamErrorCondition::UndefinedCondition))?;
    Ok(if refusal.is_none() { requested } else { None })
}

/// How a dialback request for `from` is judged before asking its authoritative server.
fn judge_dialback(
    s2s: &S2s,
    peer_chain: &[CertificateDer<'static>],
    from: &str,
) -> Option<Verification> {
    match s2s.policy(from) {
        Policy::Deny => Some(Verification::Error(Condition::PolicyViolation)),
        // XEP-0344: a certificate valid for the domain already proves it.
        _ if s2s.anchors.verify(peer_chain, from).is_ok() => Some(Verification::Valid),
        Policy::RequireValidCert => Some(Verification::Error(Condition::NotAuthorized)),
        Policy::Dialback => None,
    }
}

/// Refuses a verification the stream may not start now: a second one for a pair already
/// being verified (`conflict`), or one beyond the per-stream limit (`resource-constraint`,
/// XEP-0220 §2.4).
fn refuse_verification(
    s2s: &S2s,
    verifying: &HashSet<(String, String)>,
    from: &str,
    to: &str,
) -> Option<Verification> {
    if verifying.contains(&(from.to_owned(), to.to_owned())) {
        Some(Verification::Error(Condition::Conflict))
    } else if verifying.len() >= s2s.config.max_dialback_per_stream {
        Some(Verification::Error(Condition::ResourceConstraint))
    } else {
        None
    }
}

/// What the reader task passes on.
type Read = Result<Incoming, ReadError>;

/// A dialback request judged: (remote domain, local domain, verdict).
type Judged = (String, String, Verification);

/// What the start of the authenticated part found.
#[derive(Default)]
struct Start {
    /// The domain SASL EXTERNAL proved, if any.
    external: Option<String>,
    /// The first thing read that was not SASL, to handle next.
    pending: Option<Read>,
}

/// SASL EXTERNAL, when offered, comes before anything else (XEP-0178) and restarts the
/// stream; the stream is handed back, with a stream error to send when it failed.
async fn external_phase(
    ctx: &InboundContext,
    s2s: &S2s,
    mut stream: Stream,
    prove_by: Instant,
) -> (Stream, Result<Start, StreamError>) {
    while stream.external_offered {
        let read = tokio::select! {
            read = timeout_at(prove_by, stream.reader.next()) => read,
            () = ctx.shutdown.cancelled() => {
                let error = StreamError::new(StreamErrorCondition::SystemShutdown);
                return (stream, Err(error));
            }
        };
        let read = match read {
            Ok(read) => read,
            Err(_) => {
                let error = StreamError::new(StreamErrorCondition::ConnectionTimeout);
                return (stream, Err(error));
            }
        };
        let auth = match read {
            Ok(Incoming::Whitespace) => continue,
            Ok(Incoming::Element(auth)) if auth.is("auth", ns::SASL) => auth,
            other => {
                let start = Start {
                    external: None,
                    pending: Some(other),
                };
                return (stream, Ok(start));
            }
        };
        let domain = match sasl_external(&mut stream, &auth).await {
            Ok(Some(domain)) => domain,
            Ok(None) => continue,
            Err(error) => return (stream, Err(error)),
        };
        info!(remote = %domain, "authenticated with SASL EXTERNAL");
        // RFC 6120 §6.4.6: a new stream on the same connection, without SASL now.
        stream.reader = stream.reader.restart();
        stream.external_offered = false;
        let reopened = match open_or_refuse(ctx, s2s, &mut stream.reader, &mut stream.writer).await
        {
            Ok(opened) => opened,
            Err(error) => return (stream, Err(error)),
        };
        stream.local = reopened.local;
        stream.id = reopened.id;
        if let Err(error) = offer_features(&mut stream).await {
            return (stream, Err(error));
        }
        let start = Start {
            external: Some(domain),
            pending: None,
        };
        return (stream, Ok(start));
    }
    (stream, Ok(Start::default()))
}

/// Passes on everything the peer sends; quick-xml's read is not cancel-safe, so it runs in a
/// task of its own rather than in a `select!` arm.
async fn read_all(mut reader: Reader, reads: mpsc::Sender<Read>) {
    loop {
        let read = reader.next().await;
        let last = !matches!(read, Ok(Incoming::Element(_) | Incoming::Whitespace));
        if reads.send(read).await.is_err() || last {
            return;
        }
    }
}

/// The authenticated part of the stream: dialback requests, judged concurrently so a slow
/// authoritative server delays nothing else, and stanzas.
async fn receive(ctx: &InboundContext, s2s: &Arc<S2s>, stream: Stream) -> Result<(), StreamError> {
    // (remote domain, local domain) pairs proven on this stream.
    let mut proven: HashSet<(String, String)> = HashSet::new();
    // A peer proves a domain within the negotiation time, then may stay while it is not idle.
    let prove_by = Instant::now() + ctx.negotiation_timeout;
    let idle = Duration::from_secs(s2s.config.idle_timeout_secs);
    let (mut stream, start) = external_phase(ctx, s2s, stream, prove_by).await;
    let Start {
        external,
        mut pending,
    } = match start {
        Ok(start) => start,
        Err(error) => return fail(&mut stream.writer, error).await,
    };
    if let Some(domain) = external {
        record_proof(s2s, &mut proven, domain, stream.local.clone());
    }
    let Stream {
        reader,
        mut writer,
        local,
        id,
        peer_chain,
        ..
    } = stream;
    let (reads_tx, mut reads) = mpsc::channel::<Read>(16);
    let reader_task = tokio::spawn(read_all(reader, reads_tx));
    let mut verifications: JoinSet<Judged> = JoinSet::new();
    // The (remote domain, local domain) pairs whose verification is in flight.
    let mut verifying: HashSet<(String, String)> = HashSet::new();
    let outcome = loop {
        let wait_until = if proven.is_empty() {
            prove_by
        } else {
            Instant::now() + idle
        };
        let read = match pending.take() {
            Some(read) => read,
            None => tokio::select! {
                read = reads.recv() => match read {
                    Some(read) => read,
                    None => break Ok(()),
                },
                () = ctx.shutdown.cancelled() => {
                    let error = StreamError::new(StreamErrorCondition::SystemShutdown);
                    break fail(&mut writer, error).await;
                }
                Some(judged) = verifications.join_next() => {
                    let Ok((from, to, verification)) = judged else { continue };
                    verifying.remove(&(from.clone(), to.clone()));
                    if answer_dialback(&mut writer, &from, &to, verification).await.is_err() {
                        break Ok(());
                    }
                    if verification == Verification::Valid {
                        record_proof(s2s, &mut proven, from, to);
                    }
                    continue;
                }
                () = sleep_until(wait_until) => {
                    let error = StreamError::new(StreamErrorCondition::ConnectionTimeout);
                    break fail(&mut writer, error).await;
                }
            },
        };
        let element = match read {
            Ok(Incoming::Element(element)) => element,
            Ok(Incoming::Whitespace) => continue,
            Ok(Incoming::StreamEnd) => {
                // What the peer's domains told us expires before our close confirms the end.
                release_domains(ctx, s2s, std::mem::take(&mut proven)).await;
                let _ = writer.close().await;
                break Ok(());
            }
            Err(ReadError::Stream(error)) => break fail(&mut writer, error).await,
            Err(ReadError::Closed(_)) => break Ok(()),
        };
        if element.is("auth", ns::SASL) {
            // Only at the start, and only once.
            let refused = SaslFailure::InvalidMechanism.to_element();
            if writer.write_element(&refused).await.is_err() {
                break Ok(());
            }
            continue;
        }
        if element.is("result", ns::DIALBACK) {
            let (Some(from), Some(to)) = (element.get_attr("from"), element.get_attr("to")) else {
                break fail(
                    &mut writer,
                    StreamError::new(StreamErrorCondition::ImproperAddressing),
                )
                .await;
            };
            if !ctx.local.is_local_domain(to) {
                break fail(
                    &mut writer,
                    StreamError::new(StreamErrorCondition::HostUnknown),
                )
                .await;
            }
            let (from, to) = (from.to_owned(), to.to_owned());
            let judged = judge_dialback(s2s, &peer_chain, &from)
                .or_else(|| refuse_verification(s2s, &verifying, &from, &to));
            match judged {
                Some(verification) => {
                    if answer_dialback(&mut writer, &from, &to, verification)
                        .await
                        .is_err()
                    {
                        break Ok(());
                    }
                    if verification == Verification::Valid {
                        record_proof(s2s, &mut proven, from, to);
                    }
                }
                None => {
                    let Some(slot) = s2s.verification_slot() else {
                        let refusal = Verification::Error(Condition::ResourceConstraint);
                        if answer_dialback(&mut writer, &from, &to, refusal)
                            .await
                            .is_err()
                        {
                            break Ok(());
                        }
                        continue;
                    };
                    verifying.insert((from.clone(), to.clone()));
                    let (s2s, id, key) = (s2s.clone(), id.clone(), element.text_content());
                    verifications.spawn(async move {
                        let verification = s2s.verify_with_authority(&to, &from, &id, &key).await;
                        drop(slot);
                        (from, to, verification)
                    });
                }
            }
            continue;
        }
        if element.is("verify", ns::DIALBACK) {
            let from = element.get_attr("from").unwrap_or_default();
            let to = element.get_attr("to").unwrap_or_default();
            let id = element.get_attr("id").unwrap_or_default();
            let valid = ctx.local.is_local_domain(to)
                && s2s.secret().verify(from, to, id, &element.text_content());
            let answer = Element::new("verify", ns::DIALBACK)
                .attr("from", to)
                .attr("to", from)
                .attr("id", id)
                .attr("type", if valid { "valid" } else { "invalid" });
            if writer.write_element(&answer).await.is_err() {
                break Ok(());
            }
            continue;
        }
        if element.is("error", ns::STREAM) {
            // RFC 6120 §4.9: a stream error is final; close without answering with another.
            debug!("the peer sent a stream error");
            let _ = writer.close().await;
            break Ok(());
        }
        if StanzaKind::of(&element).is_none() {
            let error = StreamError::new(StreamErrorCondition::UnsupportedStanzaType);
            break fail(&mut writer, error).await;
        }
        let address = |attr: &str| {
            element
                .get_attr(attr)
                .and_then(|v| rempart_xep::address::parse_address(v).ok())
        };
        let (Some(from), Some(to)) = (address("from"), address("to")) else {
            let error = StreamError::new(StreamErrorCondition::ImproperAddressing);
            break fail(&mut writer, error).await;
        };
        let (from_domain, to_domain) = (from.domain().as_str(), to.domain().as_str());
        if !ctx.local.is_local_domain(to_domain) {
            let error = StreamError::new(StreamErrorCondition::HostUnknown);
            break fail(&mut writer, error).await;
        }
        // Each (sender domain, our domain) pair is proven on its own, service domains too.
        let authorised = proven
            .iter()
            .any(|(remote, ours)| remote == from_domain && ours == to_domain);
        if !authorised {
            break fail(&mut writer, invalid_from()).await;
        }
        let mut stanza = element;
        stanza.rename_ns(ns::SERVER, ns::CLIENT);
        debug!(id = stanza.get_attr("id"), %local, "stanza from a remote server");
        ctx.local.route_from_remote(stanza).await;
    };
    reader_task.abort();
    verifications.abort_all();
    release_domains(ctx, s2s, proven).await;
    outcome
}

/// Uncounts the stream from the live ones of each remote domain proven on it; a domain left
/// without any is announced as disconnected.
async fn release_domains(ctx: &InboundContext, s2s: &S2s, proven: HashSet<(String, String)>) {
    let remote_domains: HashSet<String> = proven.into_iter().map(|(remote, _)| remote).collect();
    for domain in remote_domains {
        if s2s.inbound_ended(&domain) {
            ctx.local.remote_domain_disconnected(&domain).await;
        }
    }
}

/// Adds a proven pair, counting the stream among the live ones of its remote domain.
fn record_proof(s2s: &S2s, proven: &mut HashSet<(String, String)>, remote: String, local: String) {
    if !proven.iter().any(|(known, _)| *known == remote) {
        s2s.inbound_proven(&remote);
    }
    proven.insert((remote, local));
}

/// Answers a dialback request with the verdict (errors as XEP-0220 §2.5 describes).
async fn answer_dialback(
    writer: &mut Writer,
    from: &str,
    to: &str,
    verification: Verification,
) -> std::io::Result<()> {
    info!(remote = from, ?verification, "dialback verification");
    let answer = Element::new("result", ns::DIALBACK)
        .attr("from", to)
        .attr("to", from);
    let answer = match verification {
        Verification::Valid => answer.attr("type", "valid"),
        Verification::Invalid => answer.attr("type", "invalid"),
        Verification::Error(condition) => answer
            .attr("type", "error")
            .child(StanzaError::new(condition).to_element()),
    };
    writer.write_element(&answer).await
}

async fn fail(writer: &mut Writer, error: StreamError) -> Result<(), StreamError> {
    let _ = writer.write_stream_error(&error).await;
    Err(error)
}
