//! Server-to-server links (RFC 6120 with XEP-0220 Server Dialback): one outbound stream per
//! (local domain, remote domain) with a bounded queue, inbound streams that accept stanzas only
//! from domains proven on them. Remote domains are reached through configured routes.

pub mod check;
pub mod connect;
pub mod dialback;
pub mod inbound;
mod outbound;
pub mod resolve;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jid::Jid;
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stanza::Condition;
use serde::Deserialize;
use tokio::sync::mpsc;
use tracing::debug;

use crate::router::Router;
use crate::stream::reader::ReaderLimits;
use connect::ConnectError;
use dialback::DialbackSecret;

/// `[s2s]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S2sConfig {
    /// Where each remote domain is reached: `"domain" = "host:port"`.
    pub routes: BTreeMap<String, SocketAddr>,
    /// Seconds to connect and authenticate before queued stanzas bounce.
    pub connect_timeout_secs: u64,
    /// Seconds an outbound link may stay idle before it is closed.
    pub idle_timeout_secs: u64,
    /// Stanzas queued per link while it connects; more bounce.
    pub max_queue: usize,
}

impl Default for S2sConfig {
    fn default() -> Self {
        S2sConfig {
            routes: BTreeMap::new(),
            connect_timeout_secs: 30,
            idle_timeout_secs: 600,
            max_queue: 1000,
        }
    }
}

/// A live outbound link's queue, with an id to tell it from its successor.
struct Link {
    id: u64,
    queue: mpsc::Sender<Element>,
}

/// The server-to-server service.
pub struct S2s {
    config: S2sConfig,
    secret: DialbackSecret,
    limits: ReaderLimits,
    links: Mutex<HashMap<(String, String), Link>>,
    next_link: std::sync::atomic::AtomicU64,
}

impl S2s {
    /// The service for `config`, with a fresh dialback secret.
    pub fn new(config: S2sConfig, limits: ReaderLimits) -> Arc<S2s> {
        Arc::new(S2s {
            config,
            secret: DialbackSecret::random(),
            limits,
            links: Mutex::new(HashMap::new()),
            next_link: std::sync::atomic::AtomicU64::new(1),
        })
    }

    /// This server's dialback secret.
    pub fn secret(&self) -> &DialbackSecret {
        &self.secret
    }

    /// Limits for reading peers' streams.
    pub fn limits(&self) -> ReaderLimits {
        self.limits
    }

    /// The address a remote domain is reached at.
    pub fn route(&self, domain: &str) -> Option<SocketAddr> {
        self.config.routes.get(domain).copied()
    }

    fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.config.connect_timeout_secs)
    }

    /// Sends a stanza to its remote domain, bouncing it when that cannot be done.
    pub fn send(self: &Arc<Self>, router: &Router, stanza: Element) {
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
        if !router.config.serves(&local) {
            debug!(%local, "only served domains originate server-to-server traffic");
            router.bounce(&stanza, Condition::RemoteServerNotFound);
            return;
        }
        let Some(address) = self.route(&remote) else {
            router.bounce(&stanza, Condition::RemoteServerNotFound);
            return;
        };
        let key = (local.clone(), remote.clone());
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        let stanza = match links.get(&key) {
            Some(link) => match link.queue.try_send(stanza) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(stanza)) => {
                    drop(links);
                    router.bounce(&stanza, Condition::RemoteServerTimeout);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(stanza)) => stanza,
            },
            None => stanza,
        };
        let Some(router) = router.handle() else {
            return;
        };
        let (queue, rx) = mpsc::channel(self.config.max_queue.max(1));
        let id = self
            .next_link
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = queue.try_send(stanza);
        links.insert(key, Link { id, queue });
        drop(links);
        tokio::spawn(outbound::run(
            router,
            self.clone(),
            outbound::Target {
                local,
                remote,
                address,
                link: id,
            },
            rx,
        ));
    }

    /// Forgets a link that ended, unless a newer one replaced it.
    fn forget(&self, local: &str, remote: &str, id: u64) {
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
        let Some(address) = self.route(remote) else {
            return Verification::Unreachable(Condition::RemoteServerNotFound);
        };
        let opened =
            connect::open(address, local, remote, self.limits, self.connect_timeout()).await;
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(ConnectError::Timeout) => {
                return Verification::Unreachable(Condition::RemoteServerTimeout)
            }
            Err(_) => return Verification::Unreachable(Condition::RemoteServerNotFound),
        };
        let request = Element::new("verify", ns::DIALBACK)
            .attr("from", local)
            .attr("to", remote)
            .attr("id", stream_id)
            .text(key);
        if stream.writer.write_element(&request).await.is_err() {
            return Verification::Unreachable(Condition::RemoteServerNotFound);
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
            Ok(_) => Verification::Unreachable(Condition::RemoteServerNotFound),
            Err(_) => Verification::Unreachable(Condition::RemoteServerTimeout),
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
    /// The authoritative server could not be asked (XEP-0220 §2.4: answer with an error).
    Unreachable(Condition),
}
