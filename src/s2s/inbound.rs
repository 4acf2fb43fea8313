//! Inbound server streams: STARTTLS, then dialback — we verify peers' keys with their
//! authoritative server and answer verification requests for our own domains — and stanzas
//! accepted only from domains proven on this stream, only for domains served here.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stanza::{StanzaError, StanzaKind};
use rempart_xep::stream::{features, StreamError, StreamErrorCondition};
use tokio::io::{split, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::{debug, info, info_span, Instrument};

use crate::c2s::C2sContext;
use crate::s2s::connect::{header, invalid_from, stream_id, LinkIo};
use crate::s2s::{S2s, Verification};
use crate::stream::reader::{Incoming, ReadError, XmlReader};
use crate::stream::writer::XmlWriter;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

type Reader = XmlReader<ReadHalf<Box<dyn LinkIo>>>;
type Writer = XmlWriter<WriteHalf<Box<dyn LinkIo>>>;

/// Serves one inbound server connection to its end.
pub async fn serve(ctx: Arc<C2sContext>, tcp: TcpStream, peer: SocketAddr) {
    let conn = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
    let span = info_span!("s2s", conn, %peer, dir = "in");
    async move {
        let s2s = ctx.router.s2s().clone();
        let deadline = ctx.negotiation_timeout();
        let secured = timeout(deadline, secure(&ctx, &s2s, tcp)).await;
        let Ok(Ok(stream)) = secured else {
            debug!("inbound stream ended before TLS");
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
}

fn open(io: Box<dyn LinkIo>, s2s: &S2s) -> (Reader, Writer) {
    let (read, write) = split(io);
    (
        XmlReader::new(read, s2s.limits()),
        XmlWriter::new(write, ns::SERVER),
    )
}

/// Reads the peer's header and answers; returns our local domain and stream id.
async fn open_stream(
    ctx: &C2sContext,
    reader: &mut Reader,
    writer: &mut Writer,
) -> Result<(String, String), StreamError> {
    let theirs = reader.read_header().await.map_err(|e| match e {
        ReadError::Stream(error) => error,
        ReadError::Closed(reason) => {
            StreamError::with_text(StreamErrorCondition::UndefinedCondition, reason)
        }
    })?;
    let local = theirs
        .to
        .clone()
        .filter(|to| ctx.router.config.serves(to))
        .unwrap_or_else(|| ctx.router.hosts().first().cloned().unwrap_or_default());
    let id = stream_id();
    let ours = header(
        &local,
        theirs.from.as_deref().unwrap_or_default(),
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
        .is_some_and(|to| ctx.router.config.serves(to))
    {
        return Err(StreamError::with_text(
            StreamErrorCondition::HostUnknown,
            "that domain is not served here",
        ));
    }
    Ok((local, id))
}

/// Header, STARTTLS, header again.
async fn secure(ctx: &C2sContext, s2s: &S2s, tcp: TcpStream) -> Result<Stream, StreamError> {
    let _ = tcp.set_nodelay(true);
    let (mut reader, mut writer) = open(Box::new(tcp), s2s);
    if let Err(error) = open_stream(ctx, &mut reader, &mut writer).await {
        let _ = writer.write_stream_error(&error).await;
        return Err(error);
    }
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
    let plain = read.unsplit(writer.into_inner());
    proceed.map_err(|_| StreamError::new(StreamErrorCondition::UndefinedCondition))?;
    let tls = tokio_rustls::TlsAcceptor::from(ctx.tls.starttls.clone())
        .accept(plain)
        .await
        .map_err(|_| StreamError::new(StreamErrorCondition::UndefinedCondition))?;
    let (mut reader, mut writer) = open(Box::new(tls), s2s);
    let (local, id) = match open_stream(ctx, &mut reader, &mut writer).await {
        Ok(opened) => opened,
        Err(error) => {
            let _ = writer.write_stream_error(&error).await;
            return Err(error);
        }
    };
    let dialback = Element::new("dialback", ns::DIALBACK_FEATURE)
        .child(Element::new("errors", ns::DIALBACK_FEATURE));
    writer
        .write_element(&features(vec![dialback]))
        .await
        .map_err(|_| StreamError::new(StreamErrorCondition::UndefinedCondition))?;
    Ok(Stream {
        reader,
        writer,
        local,
        id,
    })
}

/// The authenticated part of the stream: dialback requests and stanzas.
async fn receive(ctx: &C2sContext, s2s: &S2s, mut stream: Stream) -> Result<(), StreamError> {
    // (remote domain, local domain) pairs proven with dialback on this stream.
    let mut proven: HashSet<(String, String)> = HashSet::new();
    loop {
        let incoming = match stream.reader.next().await {
            Ok(incoming) => incoming,
            Err(ReadError::Stream(error)) => return fail(&mut stream.writer, error).await,
            Err(ReadError::Closed(_)) => return Ok(()),
        };
        let element = match incoming {
            Incoming::Whitespace => continue,
            Incoming::StreamEnd => {
                let _ = stream.writer.close().await;
                return Ok(());
            }
            Incoming::Element(element) => element,
        };
        if element.is("result", ns::DIALBACK) {
            let (Some(from), Some(to)) = (element.get_attr("from"), element.get_attr("to")) else {
                return fail(
                    &mut stream.writer,
                    StreamError::new(StreamErrorCondition::ImproperAddressing),
                )
                .await;
            };
            if !ctx.router.config.serves(to) {
                return fail(
                    &mut stream.writer,
                    StreamError::new(StreamErrorCondition::HostUnknown),
                )
                .await;
            }
            let verification = s2s
                .verify_with_authority(to, from, &stream.id, &element.text_content())
                .await;
            info!(remote = from, ?verification, "dialback verification");
            let answer = Element::new("result", ns::DIALBACK)
                .attr("from", to)
                .attr("to", from);
            let answer = match verification {
                Verification::Valid => answer.attr("type", "valid"),
                Verification::Invalid => answer.attr("type", "invalid"),
                Verification::Unreachable(condition) => answer
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
            let valid = ctx.router.config.serves(to)
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
        let served =
            ctx.router.config.serves(&to_domain) || ctx.router.is_service_domain(&to_domain);
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
