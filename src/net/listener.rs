//! TCP listeners: accept connections under a global connection bound and hand each one to
//! its own task, tracked for a clean shutdown.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::c2s::{serve_connection, C2sContext};
use crate::config::{ListenerConfig, ListenerKind};
use crate::net::per_address::PerAddress;

/// Accepts on `listener` until shutdown.
pub async fn accept_loop(
    listener: TcpListener,
    config: ListenerConfig,
    ctx: Arc<C2sContext>,
    connections: Arc<Semaphore>,
    per_address: Arc<PerAddress>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    info!(address = %config.address, kind = ?config.kind, "listening");
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            warn!(%peer, "connection limit reached, refusing");
            continue;
        };
        let Some(slot) = per_address.acquire(peer.ip()) else {
            warn!(%peer, "per-address connection limit reached, refusing");
            continue;
        };
        let ctx = ctx.clone();
        let config = config.clone();
        tracker.spawn(async move {
            match config.kind {
                ListenerKind::S2s => crate::s2s::inbound::serve(ctx, tcp, peer, false).await,
                ListenerKind::S2sDirectTls => {
                    crate::s2s::inbound::serve(ctx, tcp, peer, true).await
                }
                ListenerKind::C2s | ListenerKind::C2sDirectTls => {
                    serve_connection(ctx, tcp, peer, config).await
                }
            }
            drop(slot);
            drop(permit);
        });
    }
}
