//! `[s2s]`: how server-to-server links are found, authenticated and bounded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::s2s::policy::Policy;

/// `[s2s]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S2sConfig {
    /// Remote domains reached at a fixed place instead of through DNS: `"domain" = "host:port"`.
    pub routes: BTreeMap<String, String>,
    /// DNS servers to ask (`"127.0.0.1:53"`); empty: the system's (/etc/resolv.conf).
    pub name_servers: Vec<SocketAddr>,
    /// Seconds to wait for a DNS answer (each query is tried twice).
    pub dns_timeout_secs: u64,
    /// Seconds to connect and authenticate before queued stanzas bounce.
    pub connect_timeout_secs: u64,
    /// Seconds an outbound link may stay idle before it is closed.
    pub idle_timeout_secs: u64,
    /// Stanzas queued per link while it connects; more bounce with `resource-constraint`.
    pub max_queue: usize,
    /// Bytes of stanzas queued per link while it connects; more bounce with
    /// `resource-constraint`.
    pub max_queue_bytes: usize,
    /// Seconds one write to a peer server may block before the link is dropped.
    pub write_timeout_secs: u64,
    /// Dialback verifications one inbound stream may have waiting on authoritative servers at
    /// once; more are answered with a `resource-constraint` dialback error.
    pub max_dialback_per_stream: usize,
    /// Dialback verifications waiting on authoritative servers across the whole server; more
    /// are answered with a `resource-constraint` dialback error.
    pub max_dialback_pending: usize,
    /// Whether SRV targets and IP literal domains in private, loopback, link-local,
    /// unique-local or other non-public ranges may be connected to. Domains in `routes` are
    /// always reached where the route says.
    pub allow_private_addresses: bool,
    /// Available resources of remote contacts whose PEP interests one local account keeps.
    pub max_remote_resources_per_account: usize,
    /// Of those, how many may belong to one remote domain, so that one server cannot crowd
    /// out the contacts of others.
    pub max_remote_resources_per_domain: usize,
    /// Of those, how many may belong to one remote contact.
    pub max_remote_resources_per_contact: usize,
    /// PEM files of the authorities trusted for peers' certificates; absent: the system's
    /// bundle (/etc/ssl/certs/ca-certificates.crt) when there is one.
    pub trust_anchors: Option<Vec<PathBuf>>,
    /// The policy of domains without an entry in `policies`.
    pub default_policy: Policy,
    /// Per remote domain: "dialback", "require-valid-cert" or "deny".
    pub policies: BTreeMap<String, Policy>,
    /// A closed federation: only domains listed in `policies` (and not denied) are reached or
    /// accepted.
    pub allowlist_only: bool,
}

impl S2sConfig {
    /// The policy that applies to `domain`.
    pub fn policy(&self, domain: &str) -> Policy {
        match self.policies.get(domain) {
            Some(policy) => *policy,
            None if self.allowlist_only => Policy::Deny,
            None => self.default_policy,
        }
    }
}

impl Default for S2sConfig {
    fn default() -> Self {
        S2sConfig {
            routes: BTreeMap::new(),
            name_servers: Vec::new(),
            dns_timeout_secs: 5,
            connect_timeout_secs: 30,
            idle_timeout_secs: 600,
            max_queue: 1000,
            max_queue_bytes: 4 * 1024 * 1024,
            write_timeout_secs: 30,
            max_dialback_per_stream: 8,
            max_dialback_pending: 256,
            allow_private_addresses: false,
            max_remote_resources_per_account: 1000,
            max_remote_resources_per_domain: 100,
            max_remote_resources_per_contact: 16,
            trust_anchors: None,
            default_policy: Policy::Dialback,
            policies: BTreeMap::new(),
            allowlist_only: false,
        }
    }
}
