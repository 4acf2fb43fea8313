//! Client-to-server connections: negotiation, then one session actor per bound stream.

pub mod acks;
pub mod bind2;
pub mod csi;
pub mod hibernation;
pub mod negotiation;
pub mod resumption;
pub mod session;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info_span, Instrument};

use crate::c2s::negotiation::Negotiated;
use crate::c2s::resumption::Resumptions;
use crate::config::{ListenerConfig, ListenerKind};
use crate::net::tls::TlsContext;
use crate::net::transport::Transport;
use crate::router::Router;
use crate::sasl::channel_binding::ChannelBindings;
use crate::sasl::fast::FastTokens;
use crate::sasl::rate_limit::AuthThrottle;
use crate::stream::reader::ReaderLimits;

/// What every client connection shares.
pub struct C2sContext {
    /// The router.
    pub router: Arc<Router>,
    /// TLS configurations.
    pub tls: TlsContext,
    /// Authentication attempts per address and per (address, account).
    pub auth_throttle: AuthThrottle,
    /// Sessions a new connection may resume (XEP-0198).
    pub resumptions: Resumptions,
    /// FAST tokens of devices (XEP-0484).
    pub fast: FastTokens,
    /// Cancelled on shutdown.
    pub shutdown: CancellationToken,
}

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

impl C2sContext {
    /// Shared state for client connections.
    pub fn new(router: Arc<Router>, tls: TlsContext, shutdown: CancellationToken) -> Self {
        C2sContext {
            auth_throttle: AuthThrottle::new(&router.config.auth),
            resumptions: Resumptions::new(router.config.stream_management.remembered_sessions),
            fast: FastTokens::new(router.storage.clone()),
            router,
            tls,
            shutdown,
        }
    }

    /// Time allowed from connect to bound session.
    pub fn negotiation_timeout(&self) -> Duration {
        Duration::from_secs(self.router.config.limits.negotiation_timeout_secs)
    }

    /// Time one write to the client may block before the client is treated as gone.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.router.config.limits.write_timeout_secs)
    }

    /// Reader limits from the configuration.
    pub fn reader_limits(&self) -> ReaderLimits {
        crate::reader_limits(&self.router.config)
    }
}

/// Serves one accepted client connection to its end.
pub async fn serve_connection(
    ctx: Arc<C2sContext>,
    tcp: TcpStream,
    peer: SocketAddr,
    listener: ListenerConfig,
) {
    let conn = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
    let span = info_span!("c2s", conn, %peer, jid = tracing::field::Empty);
    async move {
        let _ = tcp.set_nodelay(true);
        let direct_tls = listener.kind == ListenerKind::C2sDirectTls;
        let (transport, bindings) = match direct_tls {
            false => (Transport::Plain(tcp), ChannelBindings::default()),
            true => {
                let acceptor = tokio_rustls::TlsAcceptor::from(ctx.tls.direct.clone());
                let handshake =
                    tokio::time::timeout(ctx.negotiation_timeout(), acceptor.accept(tcp));
                match handshake.await {
                    Ok(Ok(tls)) => {
                        let bindings = negotiation::bindings_of(&ctx, &tls);
                        (Transport::Tls(Box::new(tls)), bindings)
                    }
                    Ok(Err(error)) => {
                        debug!(%error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        debug!("TLS handshake timed out");
                        return;
                    }
                }
            }
        };
        match negotiation::negotiate(&ctx, transport, bindings, peer, &listener).await {
            Ok(Negotiated::Bound(bound)) => {
                tracing::Span::current().record("jid", tracing::field::display(&bound.handle.jid));
                session::run(ctx.clone(), bound).await;
            }
            Ok(Negotiated::Resume(resume)) => {
                tracing::Span::current().record("jid", tracing::field::display(&resume.jid));
                session::hand_over(resume, ctx.write_timeout()).await;
            }
            Err(end) => debug!(%end, "connection ended before binding"),
        }
    }
    .instrument(span)
    .await
}
