//! TCP listeners: accept connections under a global bound and a bound per kind (client or
//! server), and hand each one to its own task, tracked for a clean shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::{LimitsConfig, ListenerConfig, ListenerKind};
use crate::net::per_address::PerAddress;

/// A connection's whole life, as a future the listener tracks.
pub type Served = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serves accepted connections: the listener bounds and tracks them, the handler knows what
/// kind of stream each listener carries.
pub trait ConnectionHandler: Send + Sync + 'static {
    /// Serves `tcp`, accepted from `peer` on `listener`, to its end.
    fn serve(&self, tcp: TcpStream, peer: SocketAddr, listener: ListenerConfig) -> Served;
}

/// The connection bounds every listener shares.
#[derive(Clone)]
pub struct ConnectionLimits {
    /// All connections together.
    total: Arc<Semaphore>,
    /// Client connections.
    c2s: Arc<Semaphore>,
    /// Server connections.
    s2s: Arc<Semaphore>,
    /// Connections per client address.
    per_address: Arc<PerAddress>,
    /// How long streams may take to close after shutdown before they are dropped.
    shutdown_grace: Duration,
}

impl ConnectionLimits {
    /// The bounds of `limits`.
    pub fn new(limits: &LimitsConfig) -> ConnectionLimits {
        ConnectionLimits {
            total: Arc::new(Semaphore::new(limits.max_connections)),
            c2s: Arc::new(Semaphore::new(limits.max_c2s_connections)),
            s2s: Arc::new(Semaphore::new(limits.max_s2s_connections)),
            per_address: PerAddress::new(limits.max_connections_per_address),
            shutdown_grace: Duration::from_secs(limits.shutdown_grace_secs),
        }
    }

    fn of_kind(&self, kind: ListenerKind) -> &Arc<Semaphore> {
        match kind {
            ListenerKind::C2s | ListenerKind::C2sDirectTls => &self.c2s,
            ListenerKind::S2s | ListenerKind::S2sDirectTls => &self.s2s,
        }
    }
}

/// Accepts on `listener` until shutdown.
pub async fn accept_loop(
    listener: TcpListener,
    config: ListenerConfig,
    handler: Arc<dyn ConnectionHandler>,
    limits: ConnectionLimits,
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
        let Ok(permit) = limits.total.clone().try_acquire_owned() else {
            warn!(%peer, "connection limit reached, refusing");
            continue;
        };
        let Ok(kind_permit) = limits.of_kind(config.kind).clone().try_acquire_owned() else {
            warn!(%peer, kind = ?config.kind, "connection limit of this kind reached, refusing");
            continue;
        };
        let Some(slot) = limits.per_address.acquire(peer.ip()) else {
            warn!(%peer, "per-address connection limit reached, refusing");
            continue;
        };
        let serve = handler.serve(tcp, peer, config.clone());
        let (shutdown, grace) = (shutdown.clone(), limits.shutdown_grace);
        tracker.spawn(async move {
            // At shutdown a stream has the grace period to say `system-shutdown` and close;
            // one still negotiating or writing to a peer that does not read is dropped then.
            let dropped_after_grace = async {
                shutdown.cancelled().await;
                tokio::time::sleep(grace).await;
            };
            tokio::select! {
                () = serve => {}
                () = dropped_after_grace => debug!(%peer, "connection dropped at shutdown"),
            }
            drop(slot);
            drop(kind_permit);
            drop(permit);
        });
    }
}
