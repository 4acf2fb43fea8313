//! The session actor: one task per bound client stream. It owns the writer, a bounded inbox
//! fed by the router, and the stream state; the XML reader runs in its own task.

use std::sync::Arc;
use std::time::Duration;

use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stanza::{iq_result, IqType};
use rempart_xep::stream::{StreamError, StreamErrorCondition};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};
use tracing::{debug, info};

use crate::c2s::negotiation::Bound;
use crate::c2s::C2sContext;
use crate::router::{SessionCommand, SessionHandle};
use crate::stream::reader::{Incoming, ReadError, XmlReader};
use crate::stream::writer::XmlWriter;

/// Elements buffered between the reader task and the actor.
const READER_QUEUE: usize = 8;

/// Why the actor stopped.
enum Exit {
    /// Write this stream error, then close.
    Error(StreamError),
    /// The client closed its stream: close ours.
    ClientClosed,
    /// The connection is gone or unwritable.
    Gone,
}

/// Runs a bound session until its stream ends.
pub async fn run(ctx: Arc<C2sContext>, bound: Bound) {
    let Bound {
        reader,
        mut writer,
        handle,
        mut inbox,
        overflow,
        host,
    } = bound;
    let (reader_tx, mut from_reader) = mpsc::channel(READER_QUEUE);
    let reader_task = tokio::spawn(read_loop(reader, reader_tx));
    let limits = &ctx.router.config.limits;
    let idle = Duration::from_secs(limits.idle_ping_secs);
    let ping_timeout = Duration::from_secs(limits.ping_timeout_secs);
    let write_timeout = Duration::from_secs(limits.write_timeout_secs);
    let mut deadline = Instant::now() + idle;
    let mut ping_id: Option<String> = None;
    let mut pings = 0u64;
    // A stanza whose write failed: the client never got it whole, so it is routed again.
    let mut unwritten: Option<Element> = None;

    let exit = loop {
        tokio::select! {
            incoming = from_reader.recv() => {
                deadline = Instant::now() + idle;
                match incoming {
                    Some(Ok(Incoming::Element(element))) => {
                        if is_reply_to(&element, ping_id.as_deref()) {
                            ping_id = None;
                            continue;
                        }
                        if let Some(reply) = answer_session_iq(&element) {
                            if write(&mut writer, &reply, write_timeout).await.is_err() {
                                break Exit::Gone;
                            }
                            continue;
                        }
                        if let Err(error) = ctx.router.handle_from_client(&handle, element).await {
                            break Exit::Error(error);
                        }
                    }
                    Some(Ok(Incoming::Whitespace)) => {}
                    Some(Ok(Incoming::StreamEnd)) => break Exit::ClientClosed,
                    Some(Err(ReadError::Stream(error))) => break Exit::Error(error),
                    Some(Err(ReadError::Closed(reason))) => {
                        debug!(reason, "connection closed");
                        break Exit::Gone;
                    }
                    None => break Exit::Gone,
                }
            }
            command = inbox.recv() => match command {
                Some(SessionCommand::Stanza { stanza, cost }) => {
                    handle.taken(cost);
                    if write(&mut writer, &stanza, write_timeout).await.is_err() {
                        unwritten = Some(stanza);
                        break Exit::Gone;
                    }
                }
                Some(SessionCommand::Close(error)) => break Exit::Error(error),
                None => break Exit::Gone,
            },
            () = sleep_until(deadline) => {
                if ping_id.is_some() {
                    break Exit::Error(StreamError::with_text(
                        StreamErrorCondition::ConnectionTimeout,
                        "no answer to ping",
                    ));
                }
                pings += 1;
                let id = format!("rempart-ping-{pings}");
                let ping = Element::new("iq", ns::CLIENT)
                    .attr("type", "get")
                    .attr("id", id.clone())
                    .attr("from", host.clone())
                    .attr("to", handle.jid.to_string())
                    .child(Element::new("ping", ns::PING));
                if write(&mut writer, &ping, write_timeout).await.is_err() {
                    break Exit::Gone;
                }
                ping_id = Some(id);
                deadline = Instant::now() + ping_timeout;
            }
            () = overflow.cancelled() => {
                break Exit::Error(StreamError::with_text(
                    StreamErrorCondition::ResourceConstraint,
                    "too slow to receive its stanzas",
                ));
            }
            () = ctx.shutdown.cancelled() => {
                break Exit::Error(StreamError::new(StreamErrorCondition::SystemShutdown));
            }
        }
    };

    ctx.router.unregister_session(&handle).await;
    let leftovers = unwritten
        .into_iter()
        .filter(|stanza| stanza.name() != "presence")
        .chain(drain(&mut inbox));
    // Rerouted before the stream closes, so that a client reconnecting at once finds them
    // stored offline (or gets them live) instead of racing their storage.
    for stanza in leftovers {
        ctx.router.route(stanza).await;
    }
    finish(&mut writer, exit, write_timeout, &handle).await;
    reader_task.abort();
}

/// Closes the inbox and takes what was queued but never written, so that messages routed
/// to a closing session are delivered elsewhere or stored offline instead of lost.
fn drain(inbox: &mut mpsc::Receiver<SessionCommand>) -> Vec<Element> {
    inbox.close();
    let mut leftovers = Vec::new();
    while let Ok(command) = inbox.try_recv() {
        if let SessionCommand::Stanza { stanza, .. } = command {
            if stanza.name() != "presence" {
                leftovers.push(stanza);
            }
        }
    }
    leftovers
}

/// Forwards what the reader produces; ends at the first error or at stream end.
async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: XmlReader<R>,
    tx: mpsc::Sender<Result<Incoming, ReadError>>,
) {
    loop {
        let item = reader.next().await;
        let last = !matches!(item, Ok(Incoming::Element(_)) | Ok(Incoming::Whitespace));
        if tx.send(item).await.is_err() || last {
            return;
        }
    }
}

async fn write<W: AsyncWrite + Unpin>(
    writer: &mut XmlWriter<W>,
    stanza: &Element,
    limit: Duration,
) -> Result<(), ()> {
    match timeout(limit, writer.write_element(stanza)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

async fn finish<W: AsyncWrite + Unpin>(
    writer: &mut XmlWriter<W>,
    exit: Exit,
    limit: Duration,
    handle: &SessionHandle,
) {
    match exit {
        Exit::Error(error) => {
            info!(
                condition = error.condition.as_str(),
                "closing session with a stream error"
            );
            let _ = timeout(limit, writer.write_stream_error(&error)).await;
        }
        Exit::ClientClosed => {
            debug!(jid = %handle.jid, "client closed its stream");
            let _ = timeout(limit, writer.close()).await;
        }
        Exit::Gone => {}
    }
}

/// True when the element answers the server's outstanding ping.
fn is_reply_to(element: &Element, ping_id: Option<&str>) -> bool {
    ping_id.is_some()
        && element.is("iq", ns::CLIENT)
        && element.get_attr("id") == ping_id
        && matches!(IqType::of(element), Some(IqType::Result | IqType::Error))
}

/// The legacy `<session/>` establishment (RFC 3921) is a no-op answered directly.
fn answer_session_iq(element: &Element) -> Option<Element> {
    if element.is("iq", ns::CLIENT)
        && IqType::of(element) == Some(IqType::Set)
        && element.has_child("session", ns::SESSION)
    {
        Some(iq_result(element, None))
    } else {
        None
    }
}
