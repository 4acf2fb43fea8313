//! Rempart, an XMPP server with first-class OMEMO support.
//!
//! `Server::build(config)` wires storage, modules, the router and listeners;
//! `Server::run(shutdown)` serves until the token is cancelled.

pub mod accounts;
pub mod admin;
pub mod c2s;
pub mod config;
pub mod modules;
pub mod net;
pub mod pubsub;
pub mod router;
pub mod s2s;
pub mod sasl;
pub mod storage;
pub mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, info_span, warn, Instrument};

use crate::accounts::Accounts;
use crate::admin::AdminService;
use crate::c2s::C2sContext;
use crate::config::ListenerKind;
use crate::config::{Config, ListenerConfig};
use crate::modules::{enabled_modules, registry};
use crate::net::listener::{ConnectionHandler, ConnectionLimits, Served};
use crate::net::tls::{TlsContext, TlsError};
use crate::router::Router;
use crate::s2s::inbound::InboundContext;
use crate::storage::{Storage, StorageError};

/// Why the server could not start or stopped abnormally.
#[derive(Debug, Error)]
pub enum ServerError {
    /// Storage could not be opened.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// TLS could not be set up.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// Server-to-server links could not be set up.
    #[error("{0}")]
    S2s(#[from] s2s::S2sError),
    /// A listener could not bind.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// The system error.
        source: std::io::Error,
    },
    /// The admin socket could not be set up.
    #[error("admin socket: {0}")]
    Admin(std::io::Error),
    /// A module's configuration section is invalid.
    #[error("{0}")]
    Config(#[from] config::ConfigError),
}

/// Binds a listening socket with the configured backlog (the standard library's is 128,
/// which a login storm overflows).
fn bind(address: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(backlog)
}

/// The XML reader limits of the configuration.
pub fn reader_limits(config: &Config) -> stream::reader::ReaderLimits {
    stream::reader::ReaderLimits {
        max_stanza_size: config.limits.max_stanza_size,
        max_header_size: config.limits.max_stream_header_size,
        max_header_declarations: config.limits.max_stream_header_declarations,
        structure: rempart_xep::parse::Limits {
            max_depth: config.limits.max_depth,
            max_attributes: config.limits.max_attributes,
            max_tree_cost: config.limits.max_stanza_memory,
        },
    }
}

/// Brings back the resumable sessions saved at the last shutdown, before any client can
/// connect to resume one.
async fn restore_sessions(c2s: &Arc<C2sContext>, tracker: &TaskTracker) {
    match c2s::hibernation::all(&c2s.router).await {
        Ok(saved) => {
            if !saved.is_empty() {
                info!(sessions = saved.len(), "restoring resumable sessions");
            }
            for (jid, session) in saved {
                let span = info_span!("c2s", conn = "restored", %jid);
                tracker.spawn(c2s::session::restore(c2s.clone(), jid, session).instrument(span));
            }
        }
        Err(error) => warn!(%error, "the sessions saved at shutdown could not be read"),
    }
}

/// Hands each accepted connection to client or server stream handling by its listener's kind.
struct Connections {
    c2s: Arc<C2sContext>,
    s2s: Arc<InboundContext>,
}

impl ConnectionHandler for Connections {
    fn serve(&self, tcp: TcpStream, peer: SocketAddr, listener: ListenerConfig) -> Served {
        match listener.kind {
            ListenerKind::S2s => Box::pin(s2s::inbound::serve(self.s2s.clone(), tcp, peer, false)),
            ListenerKind::S2sDirectTls => {
                Box::pin(s2s::inbound::serve(self.s2s.clone(), tcp, peer, true))
            }
            ListenerKind::C2s | ListenerKind::C2sDirectTls => {
                Box::pin(c2s::serve_connection(self.c2s.clone(), tcp, peer, listener))
            }
        }
    }
}

/// A built server, listeners bound, ready to run.
pub struct Server {
    router: Arc<Router>,
    tls: TlsContext,
    listeners: Vec<(TcpListener, ListenerConfig)>,
    admin: Option<AdminService>,
}

impl Server {
    /// Opens storage, loads certificates, builds the modules and binds every listener.
    pub async fn build(config: Config) -> Result<Server, ServerError> {
        let storage = Storage::open(config.storage.backend, &config.server.data_dir)?;
        Self::build_with_storage(config, storage, true).await
    }

    /// Like `build` with a given storage; `admin_socket` false skips the local admin socket
    /// (in-process tests).
    pub async fn build_with_storage(
        config: Config,
        storage: Storage,
        admin_socket: bool,
    ) -> Result<Server, ServerError> {
        let config = Arc::new(config);
        let tls = TlsContext::load(&config)?;
        let accounts = Accounts::new(
            storage.clone(),
            config.server.hosts.clone(),
            config.auth.scram_iterations,
        );
        let modules = enabled_modules(&config, &storage)?;
        let registry = registry(&modules);
        let s2s = s2s::S2s::new(
            config.s2s.clone(),
            reader_limits(&config),
            &config.server.hosts,
            &tls.resolver,
        )?;
        let router = Router::new(config.clone(), storage, accounts, registry, s2s);
        let mut listeners = Vec::new();
        for listener in &config.listeners {
            let bound = bind(listener.address, config.limits.listen_backlog).map_err(|source| {
                ServerError::Bind {
                    address: listener.address,
                    source,
                }
            })?;
            listeners.push((bound, listener.clone()));
        }
        let admin = if admin_socket {
            Some(
                AdminService::bind(&config.server.admin_socket_path(), router.clone())
                    .map_err(ServerError::Admin)?,
            )
        } else {
            None
        };
        Ok(Server {
            router,
            tls,
            listeners,
            admin,
        })
    }

    /// The addresses actually bound (ports resolved when configured as 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }

    /// The router, for in-process tests and admin actions.
    pub fn router(&self) -> Arc<Router> {
        self.router.clone()
    }

    /// Serves until `shutdown` is cancelled, then closes every stream with
    /// `system-shutdown` and flushes storage.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServerError> {
        let tracker = TaskTracker::new();
        let c2s = Arc::new(C2sContext::new(
            self.router.clone(),
            self.tls.clone(),
            shutdown.clone(),
        ));
        let s2s = Arc::new(InboundContext {
            s2s: self.router.s2s().clone(),
            local: self.router.clone(),
            tls: self.tls.clone(),
            negotiation_timeout: c2s.negotiation_timeout(),
            shutdown: shutdown.clone(),
        });
        restore_sessions(&c2s, &tracker).await;
        let handler: Arc<dyn ConnectionHandler> = Arc::new(Connections { c2s, s2s });
        let limits = ConnectionLimits::new(&self.router.config.limits);
        for (listener, config) in self.listeners {
            tracker.spawn(net::listener::accept_loop(
                listener,
                config,
                handler.clone(),
                limits.clone(),
                tracker.clone(),
                shutdown.clone(),
            ));
        }
        if let Some(admin) = self.admin {
            tracker.spawn(admin.serve(shutdown.clone()));
        }
        for task in &self.router.registry.background_tasks {
            let (task, router, shutdown) = (task.clone(), self.router.clone(), shutdown.clone());
            tracker.spawn(async move { task.run(router, shutdown).await });
        }
        shutdown.cancelled().await;
        info!("shutting down");
        tracker.close();
        // Inbound streams and outbound links close concurrently, each with `system-shutdown`.
        tokio::join!(tracker.wait(), self.router.s2s().shut_down());
        self.router.storage.flush().await?;
        info!("stopped");
        Ok(())
    }
}
