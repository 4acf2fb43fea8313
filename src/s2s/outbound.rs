//! One outbound link: connect, authenticate with dialback, then write queued stanzas until
//! idle. Whatever cannot be sent bounces to its sender.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stanza::Condition;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::router::Router;
use crate::s2s::connect::{self, ConnectError, OpenStream};
use crate::s2s::S2s;

/// Where a link goes.
pub struct Target {
    /// Our domain.
    pub local: String,
    /// Theirs.
    pub remote: String,
    /// Their address.
    pub address: SocketAddr,
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
                info!("authenticated with dialback");
                pump(&router, &s2s, stream, &mut queue).await;
                Condition::RemoteServerNotFound
            }
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
    let mut stream = connect::open(
        target.address,
        &target.local,
        &target.remote,
        s2s.limits(),
        s2s.connect_timeout(),
    )
    .await?;
    let key = s2s
        .secret()
        .key(&target.remote, &target.local, &stream.peer_stream_id);
    let request = Element::new("result", ns::DIALBACK)
        .attr("from", target.local.clone())
        .attr("to", target.remote.clone())
        .text(key);
    stream
        .writer
        .write_element(&request)
        .await
        .map_err(|e| ConnectError::Io(e.to_string()))?;
    loop {
        let answer = connect::next_element(&mut stream.reader).await?;
        if !answer.is("result", ns::DIALBACK) {
            continue;
        }
        return match answer.get_attr("type") {
            Some("valid") => Ok(stream),
            _ => Err(ConnectError::Protocol("dialback refused".into())),
        };
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
