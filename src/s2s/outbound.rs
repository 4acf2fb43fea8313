//! One outbound link: connect, authenticate, then write queued stanzas until idle. Whatever
//! cannot be sent bounces to its sender.

use std::sync::Arc;
use std::time::Duration;

use rempart_xep::element::Element;
use rempart_xep::stanza::Condition;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::router::Router;
use crate::s2s::authenticate::{self, External};
use crate::s2s::connect::{self, ConnectError, OpenStream};
use crate::s2s::S2s;

/// Where a link goes.
pub struct Target {
    /// Our domain.
    pub local: String,
    /// Theirs.
    pub remote: String,
    /// The link's id in the pool.
    pub link: u64,
}

/// Runs a link to its end.
pub async fn run(
    router: Arc<Router>,
    s2s: Arc<S2s>,
    target: Target,
    mut queue: mpsc::Receiver<Element>,
) {
    let span = info_span!("s2s", local = %target.local, remote = %target.remote, dir = "out");
    async move {
        let established = timeout(s2s.connect_timeout(), establish(&s2s, &target)).await;
        let failure = match established {
            Ok(Ok(stream)) => {
                pump(&router, &s2s, stream, &mut queue).await;
                Condition::RemoteServerNotFound
            }
            Ok(Err(ConnectError::Denied(_))) => Condition::PolicyViolation,
            Ok(Err(error)) => {
                warn!(%error, "link failed");
                Condition::RemoteServerNotFound
            }
            Err(_) => {
                warn!("link timed out");
                Condition::RemoteServerTimeout
            }
        };
        s2s.forget(&target.local, &target.remote, target.link);
        queue.close();
        while let Ok(stanza) = queue.try_recv() {
            router.bounce(&stanza, failure);
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

/// Writes queued stanzas; ends when idle, when the peer closes, or on a write error.
async fn pump(router: &Router, s2s: &S2s, stream: OpenStream, queue: &mut mpsc::Receiver<Element>) {
    let OpenStream {
        mut reader,
        mut writer,
        ..
    } = stream;
    let (closed_tx, mut closed) = tokio::sync::oneshot::channel::<()>();
    // The reader runs in its own task: quick-xml's read is not cancel-safe.
    let watcher = tokio::spawn(async move {
        while connect::next_element(&mut reader).await.is_ok() {}
        let _ = closed_tx.send(());
    });
    let idle = Duration::from_secs(s2s.config.idle_timeout_secs);
    loop {
        tokio::select! {
            stanza = queue.recv() => {
                let Some(stanza) = stanza else { break };
                if let Err(error) = writer.write_element(&stanza).await {
                    debug!(%error, "write failed");
                    router.bounce(&stanza, Condition::RemoteServerNotFound);
                    break;
                }
            }
            _ = &mut closed => {
                debug!("peer closed the link");
                break;
            }
            () = tokio::time::sleep(idle) => {
                debug!("idle link closed");
                break;
            }
        }
    }
    let _ = writer.close().await;
    watcher.abort();
}
