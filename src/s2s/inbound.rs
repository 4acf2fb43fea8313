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
use tokio::time::{timeout, timeout_at, Instant};
use tracing::{debug, info, info_span, Instrument};

use crate::c2s::C2sContext;
use crate::s2s::connect::{header, invalid_from, stream_id, LinkIo, LinkReader, LinkWriter};
use crate::s2s::{Policy, S2s, Verification};
use crate::stream::reader::{Incoming, ReadError, XmlReader};
use crate::stream::writer::XmlWriter;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

type Reader = LinkReader;
type Writer = LinkWriter;

/// Serves one inbound server connection to its end; `direct_tls` when TLS starts at once.
pub async fn serve(ctx: Arc<C2sContext>, tcp: TcpStream, peer: SocketAddr, direct_tls: bool) {
    let conn = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
    let span = info_span!("s2s", conn, %peer, dir = "in");
    async move {
        let s2s = ctx.router.s2s().clone();
        let deadline = ctx.negotiation_timeout();
        let secured = timeout(deadline, secure(&ctx, &s2s, tcp, direct_tls)).await;
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
        XmlWriter::new(write, ns::SERVER),
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
    ctx: &C2sContext,
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
        .filter(|to| ctx.router.is_local_domain(to))
        .unwrap_or_else(|| ctx.router.hosts().first().cloned().unwrap_or_default());
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
        .is_some_and(|to| ctx.router.is_local_domain(to))
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
    ctx: &C2sContext,
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
    ctx: &C2sContext,
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
    ctx: &C2sContext,
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
fn judge_dialback(s2s: &S2s, stream: &Stream, from: &str) -> Option<Verification> {
    match s2s.policy(from) {
        Policy::Deny => Some(Verification::Error(Condition::PolicyViolation)),
        // XEP-0344: a certificate valid for the domain already proves it.
        _ if s2s.anchors.verify(&stream.peer_chain, from).is_ok() => Some(Verification::Valid),
        Policy::RequireValidCert => Some(Verification::Error(Condition::NotAuthorized)),
        Policy::Dialback => None,
    }
}

/// The authenticated part of the stream: dialback requests and stanzas.
async fn receive(ctx: &C2sContext, s2s: &S2s, mut stream: Stream) -> Result<(), StreamError> {
    // (remote domain, local domain) pairs proven on this stream.
    let mut proven: HashSet<(String, String)> = HashSet::new();
    // A peer proves a domain within the negotiation time, then may stay while it is not idle.
    // A read cut short by the timeout is never resumed: the stream is closed.
    let prove_by = Instant::now() + ctx.negotiation_timeout();
    let idle = Duration::from_secs(s2s.config.idle_timeout_secs);
    loop {
        let wait_until = if proven.is_empty() {
            prove_by
        } else {
            Instant::now() + idle
        };
        let incoming = match timeout_at(wait_until, stream.reader.next()).await {
            Ok(Ok(incoming)) => incoming,
            Ok(Err(ReadError::Stream(error))) => return fail(&mut stream.writer, error).await,
            Ok(Err(ReadError::Closed(_))) => return Ok(()),
            Err(_) => {
                let error = StreamError::new(StreamErrorCondition::ConnectionTimeout);
                return fail(&mut stream.writer, error).await;
            }
        };
        let element = match incoming {
            Incoming::Whitespace => continue,
            Incoming::StreamEnd => {
                let _ = stream.writer.close().await;
                return Ok(());
            }
            Incoming::Element(element) => element,
        };
        if element.is("auth", ns::SASL) {
            let Some(domain) = sasl_external(&mut stream, &element).await? else {
                continue;
            };
            info!(remote = %domain, "authenticated with SASL EXTERNAL");
            proven.insert((domain, stream.local.clone()));
            // RFC 6120 §6.4.6: a new stream on the same connection, without SASL this time.
            stream.reader = stream.reader.restart();
            let opened = open_or_refuse(ctx, s2s, &mut stream.reader, &mut stream.writer).await?;
            stream.local = opened.local;
            stream.id = opened.id;
            stream.external_offered = false;
            offer_features(&mut stream).await?;
            continue;
        }
        if element.is("result", ns::DIALBACK) {
            let (Some(from), Some(to)) = (element.get_attr("from"), element.get_attr("to")) else {
                return fail(
                    &mut stream.writer,
                    StreamError::new(StreamErrorCondition::ImproperAddressing),
                )
                .await;
            };
            if !ctx.router.is_local_domain(to) {
                return fail(
                    &mut stream.writer,
                    StreamError::new(StreamErrorCondition::HostUnknown),
                )
                .await;
            }
            let verification = match judge_dialback(s2s, &stream, from) {
                Some(verification) => verification,
                None => {
                    s2s.verify_with_authority(to, from, &stream.id, &element.text_content())
                        .await
                }
            };
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
            if stream.writer.write_element(&answer).await.is_err() {
                return Ok(());
            }
            if verification == Verification::Valid {
                proven.insert((from.to_owned(), to.to_owned()));
            }
            continue;
        }
        if element.is("verify", ns::DIALBACK) {
            let from = element.get_attr("from").unwrap_or_default();
            let to = element.get_attr("to").unwrap_or_default();
            let id = element.get_attr("id").unwrap_or_default();
            let valid = ctx.router.is_local_domain(to)
                && s2s.secret().verify(from, to, id, &element.text_content());
            let answer = Element::new("verify", ns::DIALBACK)
                .attr("from", to)
                .attr("to", from)
                .attr("id", id)
                .attr("type", if valid { "valid" } else { "invalid" });
            if stream.writer.write_element(&answer).await.is_err() {
                return Ok(());
            }
            continue;
        }
        if element.is("error", ns::STREAM) {
            // RFC 6120 §4.9: a stream error is final; close without answering with another.
            debug!("the peer sent a stream error");
            let _ = stream.writer.close().await;
            return Ok(());
        }
        if StanzaKind::of(&element).is_none() {
            let error = StreamError::new(StreamErrorCondition::UnsupportedStanzaType);
            return fail(&mut stream.writer, error).await;
        }
        let domain_of = |attr: &str| {
            element
                .get_attr(attr)
                .and_then(|value| jid::Jid::new(value).ok())
                .map(|j| j.domain().to_string())
        };
        let (Some(from_domain), Some(to_domain)) = (domain_of("from"), domain_of("to")) else {
            let error = StreamError::new(StreamErrorCondition::ImproperAddressing);
            return fail(&mut stream.writer, error).await;
        };
        let served = ctx.router.is_local_domain(&to_domain);
        if !served {
            let error = StreamError::new(StreamErrorCondition::HostUnknown);
            return fail(&mut stream.writer, error).await;
        }
        // A service domain of ours (pubsub.<host>) is reached under the host it belongs to.
        let authorised = proven.iter().any(|(remote, local)| {
            *remote == from_domain
                && (*local == to_domain || to_domain.ends_with(&format!(".{local}")))
        });
        if !authorised {
            return fail(&mut stream.writer, invalid_from()).await;
        }
        let mut stanza = element;
        stanza.rename_ns(ns::SERVER, ns::CLIENT);
        debug!(id = stanza.get_attr("id"), local = %stream.local, "stanza from a remote server");
        ctx.router.route(stanza).await;
    }
}

async fn fail(writer: &mut Writer, error: StreamError) -> Result<(), StreamError> {
    let _ = writer.write_stream_error(&error).await;
    Err(error)
}
