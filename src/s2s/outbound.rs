//! One outbound link: connect, authenticate, then write queued stanzas until idle. Once
//! established, the link may carry stanzas of our other domains to the same peer
//! (piggybacking, XEP-0220 §2.7 multiplexing): each is proven with dialback on the stream
//! before its first stanza. Whatever cannot be sent bounces to its sender.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stanza::Condition;
use rempart_xep::stream::{StreamError, StreamErrorCondition};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::s2s::authenticate::{self, External};
use crate::s2s::connect::{self, ConnectError, OpenStream};
use crate::s2s::local::LocalServer;
use crate::s2s::queue::QueueReceiver;
use crate::s2s::resolve::ResolveError;
use crate::s2s::S2s;

/// Where a link goes.
pub struct Target {
    /// Our domain.
    pub local: String,
    /// Theirs.
    pub remote: String,
    /// The link's id in the pool.
    pub link: u64,
    /// What the pool may route over it besides `local`'s stanzas.
    pub sharing: Arc<Sharing>,
}

/// Whether a link takes stanzas of other local domains, shared between the pool and the link.
#[derive(Default)]
pub struct Sharing {
    /// Established, and the peer offers dialback on the stream.
    open: AtomicBool,
    /// Local domains the peer refused on this stream.
    refused: Mutex<HashSet<String>>,
}

impl Sharing {
    /// Whether stanzas from `local` may be routed over this link.
    pub fn accepts(&self, local: &str) -> bool {
        self.open.load(Ordering::Relaxed)
            && !self
                .refused
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(local)
    }

    fn refuse(&self, local: &str) {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(local.to_owned());
    }
}

/// Runs a link to its end.
pub async fn run(
    local: Arc<dyn LocalServer>,
    s2s: Arc<S2s>,
    target: Target,
    mut queue: QueueReceiver,
) {
    let span = info_span!("s2s", local = %target.local, remote = %target.remote, dir = "out");
    async move {
        // DNS lookups, connection attempts and authentication all stop at shutdown.
        let established = tokio::select! {
            established = timeout(s2s.connect_timeout(), establish(&s2s, &target)) => established,
            () = s2s.shutdown.cancelled() => Ok(Err(ConnectError::ShuttingDown)),
        };
        let failure = match established {
            Ok(Ok(stream)) => {
                pump(local.as_ref(), &s2s, &target, stream, &mut queue).await;
                Condition::RemoteServerNotFound
            }
            Ok(Err(
                ConnectError::Denied(_) | ConnectError::Resolve(ResolveError::NotPublic(_)),
            )) => Condition::PolicyViolation,
            Ok(Err(ConnectError::ShuttingDown)) => Condition::RemoteServerTimeout,
            Ok(Err(error)) => {
                warn!(%error, "link failed");
                Condition::RemoteServerNotFound
            }
            Err(_) => {
                warn!("link timed out");
                Condition::RemoteServerTimeout
            }
        };
        s2s.forget(target.link);
        queue.close();
        while let Some(stanza) = queue.try_recv() {
            local.bounce(&stanza, failure);
        }
    }
    .instrument(span)
    .await
}

async fn establish(s2s: &S2s, target: &Target) -> Result<OpenStream, ConnectError> {
    let (local, remote) = (target.local.as_str(), target.remote.as_str());
    let mut log = |step: &str, detail: String| debug!(step, "{detail}");
    let stream = s2s.open_link(local, remote, &mut log).await?;
    authenticate::judge_certificate(s2s, &stream, remote, &mut log)?;
    match authenticate::sasl_external(stream, local, remote, &mut log).await? {
        External::Succeeded(stream) => {
            info!("authenticated with SASL EXTERNAL");
            Ok(stream)
        }
        External::NotDone(mut stream) => {
            authenticate::dialback(s2s, &mut stream, local, remote).await?;
            info!("authenticated with dialback");
            Ok(stream)
        }
    }
}

/// Writes queued stanzas; ends when idle, when the peer closes, on a write error, or at
/// shutdown (with `system-shutdown`).
async fn pump(
    local: &dyn LocalServer,
    s2s: &S2s,
    target: &Target,
    stream: OpenStream,
    queue: &mut QueueReceiver,
) {
    let OpenStream {
        mut reader,
        mut writer,
        peer_stream_id,
        features,
        ..
    } = stream;
    // The reader runs in its own task (quick-xml's read is not cancel-safe) and passes on
    // dialback answers; the channel closes when the peer does.
    let (answers_tx, mut answers) = mpsc::channel::<Element>(8);
    let watcher = tokio::spawn(async move {
        while let Ok(element) = connect::next_element(&mut reader).await {
            if element.is("result", ns::DIALBACK) && answers_tx.send(element).await.is_err() {
                break;
            }
        }
    });
    let mut proven = HashSet::from([target.local.clone()]);
    if features.has_child("dialback", ns::DIALBACK_FEATURE) {
        target.sharing.open.store(true, Ordering::Relaxed);
    }
    let idle = Duration::from_secs(s2s.config.idle_timeout_secs);
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    let mut shutting_down = false;
    loop {
        tokio::select! {
            () = s2s.shutdown.cancelled() => {
                shutting_down = true;
                break;
            }
            stanza = queue.recv() => {
                let Some(stanza) = stanza else { break };
                idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                // `S2s::send` validated the sender's address: only its domain is needed here.
                let domain = stanza.get_attr("from").map(domain_part).unwrap_or_default();
                if !proven.contains(domain) {
                    let domain = domain.to_owned();
                    let proof = prove(s2s, target, &peer_stream_id, &domain, &mut writer, &mut answers);
                    if let Err(error) = proof.await {
                        info!(%domain, %error, "piggybacked domain refused");
                        target.sharing.refuse(&domain);
                        s2s.forget_pair(&domain, &target.remote, target.link);
                        local.bounce(&stanza, Condition::RemoteServerTimeout);
                        continue;
                    }
                    info!(%domain, "piggybacked domain authenticated with dialback");
                    proven.insert(domain);
                }
                if let Err(error) = writer.write_element(&stanza).await {
                    debug!(%error, "write failed");
                    local.bounce(&stanza, Condition::RemoteServerNotFound);
                    break;
                }
            }
            answer = answers.recv() => {
                if answer.is_none() {
                    debug!("peer closed the link");
                    break;
                }
            }
            () = &mut idle_timer => {
                debug!("idle link closed");
                break;
            }
        }
    }
    target.sharing.open.store(false, Ordering::Relaxed);
    if shutting_down {
        let error = StreamError::new(StreamErrorCondition::SystemShutdown);
        let _ = writer.write_stream_error(&error).await;
    } else {
        let _ = writer.close().await;
    }
    watcher.abort();
}

/// The domain of a valid JID: without the local part and the resource.
fn domain_part(jid: &str) -> &str {
    let bare = jid.split_once('/').map_or(jid, |(bare, _)| bare);
    bare.rsplit_once('@').map_or(bare, |(_, domain)| domain)
}

/// Proves a further local `domain` on the established stream with dialback (XEP-0220 §2.7):
/// its stanzas wait in the queue meanwhile.
async fn prove(
    s2s: &S2s,
    target: &Target,
    peer_stream_id: &str,
    domain: &str,
    writer: &mut connect::LinkWriter,
    answers: &mut mpsc::Receiver<Element>,
) -> Result<(), ConnectError> {
    if !target.sharing.accepts(domain) {
        return Err(ConnectError::Protocol("not offered on this stream".into()));
    }
    let request = authenticate::dialback_request(s2s, domain, &target.remote, peer_stream_id);
    writer
        .write_element(&request)
        .await
        .map_err(|e| ConnectError::Io(e.to_string()))?;
    let deadline = tokio::time::Instant::now() + s2s.connect_timeout();
    loop {
        let answer = tokio::select! {
            answer = tokio::time::timeout_at(deadline, answers.recv()) => answer,
            () = s2s.shutdown.cancelled() => return Err(ConnectError::ShuttingDown),
        };
        let answer = answer
            .map_err(|_| ConnectError::Timeout)?
            .ok_or_else(|| ConnectError::Io("the peer closed the link".into()))?;
        if let Some(outcome) = authenticate::dialback_outcome(&answer, domain, &target.remote) {
            return outcome;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::domain_part;

    #[test]
    fn the_domain_part_drops_the_local_part_and_the_resource() {
        assert_eq!(domain_part("alice@a.example/phone@home"), "a.example");
        assert_eq!(domain_part("alice@a.example"), "a.example");
        assert_eq!(domain_part("a.example/resource"), "a.example");
        assert_eq!(domain_part("a.example"), "a.example");
    }
}
