//! Server-to-server links (RFC 6120, RFC 7590): one outbound stream per (local domain, remote
//! domain) with a bounded queue, found through DNS SRV or static routes, authenticated with
//! certificates and SASL EXTERNAL (XEP-0178) or Server Dialback (XEP-0220) as each remote
//! domain's policy says; inbound streams accept stanzas only from domains proven on them.

pub mod authenticate;
pub mod certificate;
pub mod check;
pub mod connect;
pub mod dialback;
pub mod inbound;
pub mod local;
mod outbound;
pub mod policy;
mod queue;
pub mod resolve;
pub mod settings;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use jid::Jid;
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stanza::Condition;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::net::tls::SniResolver;
use crate::stream::reader::ReaderLimits;
use certificate::{TrustAnchorError, TrustAnchors};
use connect::{ClientTls, ConnectError, OpenStream};
use dialback::DialbackSecret;
use local::LocalServer;
pub use policy::Policy;
use resolve::{Observer, ResolveError, Resolver};
pub use settings::S2sConfig;
use thiserror::Error;

/// A live outbound link's queue, with an id to tell it from its successor.
#[derive(Clone)]
struct Link {
    id: u64,
    queue: queue::QueueSender,
    sharing: Arc<outbound::Sharing>,
}

/// Why the service could not be set up.
#[derive(Debug, Error)]
pub enum S2sError {
    /// The trust anchors could not be read.
    #[error("s2s trust anchors: {0}")]
    TrustAnchors(#[from] TrustAnchorError),
    /// The resolver configuration is unusable.
    #[error("s2s resolver: {0}")]
    Resolver(#[from] ResolveError),
    /// rustls refused our certificates as client credentials.
    #[error("s2s TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// The server-to-server service.
pub struct S2s {
    config: S2sConfig,
    secret: DialbackSecret,
    limits: ReaderLimits,
    anchors: TrustAnchors,
    resolver: Resolver,
    client_tls: HashMap<String, ClientTls>,
    anonymous_tls: ClientTls,
    links: Mutex<HashMap<(String, String), Link>>,
    next_link: std::sync::atomic::AtomicU64,
    /// Dialback verifications waiting on authoritative servers, across all inbound streams.
    verifications: Arc<Semaphore>,
    /// Cancelled when the server shuts down: every outbound link closes at once.
    shutdown: CancellationToken,
    /// The outbound links, waited for at shutdown.
    tasks: TaskTracker,
    /// Live inbound streams per remote domain proven on them.
    inbound: Mutex<HashMap<String, usize>>,
    /// The server the links belong to, set once by [`S2s::serve_for`].
    local: OnceLock<Weak<dyn LocalServer>>,
}

impl S2s {
    /// The service for `config`, presenting the certificates of `hosts`, with a fresh
    /// dialback secret.
    pub fn new(
        config: S2sConfig,
        limits: ReaderLimits,
        hosts: &[String],
        certificates: &SniResolver,
    ) -> Result<Arc<S2s>, S2sError> {
        let anchors = match &config.trust_anchors {
            Some(paths) => TrustAnchors::load(paths)?,
            None => TrustAnchors::system_default(),
        };
        let resolver = Resolver::new(
            &config.name_servers,
            &config.routes,
            Duration::from_secs(config.dns_timeout_secs.max(1)),
            config.allow_private_addresses,
        )?;
        Ok(Arc::new(S2s {
            secret: DialbackSecret::random(),
            limits,
            anchors,
            resolver,
            client_tls: ClientTls::per_host(hosts, certificates)?,
            anonymous_tls: ClientTls::new(None)?,
            links: Mutex::new(HashMap::new()),
            next_link: std::sync::atomic::AtomicU64::new(1),
            verifications: Arc::new(Semaphore::new(config.max_dialback_pending)),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            inbound: Mutex::new(HashMap::new()),
            local: OnceLock::new(),
            config,
        }))
    }

    /// Closes every outbound link with `system-shutdown` and waits for them to end.
    pub async fn shut_down(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// A place for one more dialback verification, or `None` when the server-wide limit of
    /// pending verifications is reached.
    pub fn verification_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.verifications.clone().try_acquire_owned().ok()
    }

    /// Notes that an inbound stream proved `domain`.
    pub fn inbound_proven(&self, domain: &str) {
        let mut inbound = self.inbound.lock().unwrap_or_else(|e| e.into_inner());
        *inbound.entry(domain.to_owned()).or_insert(0) += 1;
    }

    /// Notes that an inbound stream that proved `domain` ended; true when it was the last.
    pub fn inbound_ended(&self, domain: &str) -> bool {
        let mut inbound = self.inbound.lock().unwrap_or_else(|e| e.into_inner());
        let Some(count) = inbound.get_mut(domain) else {
            return true;
        };
        *count = count.saturating_sub(1);
        if *count > 0 {
            return false;
        }
        inbound.remove(domain);
        true
    }

    /// How long one write to a peer server may block.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.config.write_timeout_secs.max(1))
    }

    /// The policy that applies to `domain`.
    pub fn policy(&self, domain: &str) -> Policy {
        self.config.policy(domain)
    }

    /// Opens a secured stream from `local` to `remote`, trying each resolved endpoint in
    /// order; the peer is not authenticated yet.
    pub async fn open_link(
        &self,
        local: &str,
        remote: &str,
        observe: Observer<'_>,
    ) -> Result<OpenStream, ConnectError> {
        if self.policy(remote) == Policy::Deny {
            return Err(ConnectError::Denied(remote.to_owned()));
        }
        let endpoints = self.resolver.resolve_observed(remote, observe).await?;
        let tls = self.client_tls.get(local).unwrap_or(&self.anonymous_tls);
        let mut last = ConnectError::Resolve(ResolveError::NotFound(remote.to_owned()));
        for endpoint in &endpoints {
            let opened = connect::open(
                endpoint,
                local,
                remote,
                tls,
                self.limits,
                self.write_timeout(),
                observe,
            );
            match opened.await {
                Ok(stream) => return Ok(stream),
                Err(error) => {
                    observe("connect", format!("{}: {error}", endpoint.address));
                    last = error;
                }
            }
        }
        Err(last)
    }

    /// This server's dialback secret.
    pub fn secret(&self) -> &DialbackSecret {
        &self.secret
    }

    /// Limits for reading peers' streams.
    pub fn limits(&self) -> ReaderLimits {
        self.limits
    }

    fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.config.connect_timeout_secs)
    }

    /// Attaches the links to the server they belong to: where inbound stanzas go and who
    /// answers the senders of stanzas that cannot be sent.
    pub fn serve_for(&self, local: Weak<dyn LocalServer>) {
        let _ = self.local.set(local);
    }

    /// Sends a stanza to its remote domain, bouncing it when that cannot be done.
    pub fn send(self: &Arc<Self>, stanza: Element) {
        let Some(local_server) = self.local.get().and_then(Weak::upgrade) else {
            debug!("server-to-server links are not attached to a server");
            return;
        };
        let local = stanza
            .get_attr("from")
            .and_then(|f| Jid::new(f).ok())
            .map(|j| j.domain().to_string());
        let remote = stanza
            .get_attr("to")
            .and_then(|t| Jid::new(t).ok())
            .map(|j| j.domain().to_string());
        let (Some(local), Some(remote)) = (local, remote) else {
            return;
        };
        if !local_server.is_local_domain(&local) {
            debug!(%local, "only served domains originate server-to-server traffic");
            local_server.bounce(&stanza, Condition::RemoteServerNotFound);
            return;
        }
        if self.policy(&remote) == Policy::Deny {
            debug!(%remote, "federation with this domain is denied");
            local_server.bounce(&stanza, Condition::PolicyViolation);
            return;
        }
        let key = (local.clone(), remote.clone());
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        // Without a link of its own, the pair piggybacks on an established link from another
        // of our domains to the same peer, which proves this domain with dialback first.
        if !links.contains_key(&key) {
            let shared = links
                .iter()
                .find(|((_, to), link)| *to == remote && link.sharing.accepts(&local))
                .map(|(_, link)| link.clone());
            if let Some(link) = shared {
                links.insert(key.clone(), link);
            }
        }
        let stanza = match links.get(&key) {
            Some(link) => match link.queue.push(stanza) {
                Ok(()) => return,
                Err(queue::Refused::Full(stanza)) => {
                    drop(links);
                    // RFC 6120 §8.3.3.18: the server lacks the resources to take more now.
                    local_server.bounce(&stanza, Condition::ResourceConstraint);
                    return;
                }
                Err(queue::Refused::Closed(stanza)) => stanza,
            },
            None => stanza,
        };
        if self.shutdown.is_cancelled() {
            drop(links);
            local_server.bounce(&stanza, Condition::RemoteServerTimeout);
            return;
        }
        let (queue, rx) = queue::channel(self.config.max_queue, self.config.max_queue_bytes);
        let id = self
            .next_link
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = queue.push(stanza);
        let sharing = Arc::new(outbound::Sharing::default());
        links.insert(
            key,
            Link {
                id,
                queue,
                sharing: sharing.clone(),
            },
        );
        drop(links);
        self.tasks.spawn(outbound::run(
            local_server,
            self.clone(),
            outbound::Target {
                local,
                remote,
                link: id,
                sharing,
            },
            rx,
        ));
    }

    /// Forgets every pair a link that ended carried, unless a newer link replaced it.
    fn forget(&self, id: u64) {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        links.retain(|_, link| link.id != id);
    }

    /// Forgets one pair a link could not carry (its domain was refused on it).
    fn forget_pair(&self, local: &str, remote: &str, id: u64) {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        let key = (local.to_owned(), remote.to_owned());
        if links.get(&key).map(|l| l.id) == Some(id) {
            links.remove(&key);
        }
    }

    /// Asks the authoritative server of `remote` whether `key` is genuine for the stream
    /// `stream_id` it opened to `local` (XEP-0220 §2.2).
    pub async fn verify_with_authority(
        &self,
        local: &str,
        remote: &str,
        stream_id: &str,
        key: &str,
    ) -> Verification {
        let opened = tokio::time::timeout(
            self.connect_timeout(),
            self.open_link(local, remote, &mut |_, _| {}),
        )
        .await;
        let mut stream = match opened {
            Ok(Ok(stream)) => stream,
            Err(_) => return Verification::Error(Condition::RemoteServerTimeout),
            Ok(Err(ConnectError::Resolve(ResolveError::NotPublic(_)))) => {
                return Verification::Error(Condition::PolicyViolation)
            }
            Ok(Err(_)) => return Verification::Error(Condition::RemoteServerNotFound),
        };
        let request = Element::new("verify", ns::DIALBACK)
            .attr("from", local)
            .attr("to", remote)
            .attr("id", stream_id)
            .text(key);
        if stream.writer.write_element(&request).await.is_err() {
            return Verification::Error(Condition::RemoteServerNotFound);
        }
        let answer = tokio::time::timeout(
            self.connect_timeout(),
            connect::next_element(&mut stream.reader),
        )
        .await;
        let _ = stream.writer.close().await;
        match answer {
            Ok(Ok(reply))
                if reply.is("verify", ns::DIALBACK) && reply.get_attr("id") == Some(stream_id) =>
            {
                if reply.get_attr("type") == Some("valid") {
                    Verification::Valid
                } else {
                    Verification::Invalid
                }
            }
            Ok(_) => Verification::Error(Condition::RemoteServerNotFound),
            Err(_) => Verification::Error(Condition::RemoteServerTimeout),
        }
    }
}

/// What the authoritative server said of a dialback key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The key is genuine.
    Valid,
    /// The key is not.
    Invalid,
    /// The key could not be judged (XEP-0220 §2.5: answer with an error of this condition).
    Error(Condition),
}
