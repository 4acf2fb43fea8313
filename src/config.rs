//! Server configuration: one TOML file, overridable by `REMPART_*` environment variables.
//!
//! Every section refuses unknown keys, so a typo is a start-up error that names the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::s2s::settings::S2sConfig;
use crate::storage::BackendKind;

/// The `[modules.<name>]` sections, kept as read: the modules own their types.
pub type ModuleSections = config::Map<String, config::Value>;

/// Why a configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read or a value did not fit its key.
    #[error("{0}")]
    Load(#[from] config::ConfigError),
    /// The values parsed but contradict each other.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Domains served and where data lives.
    pub server: ServerConfig,
    /// Storage backend.
    pub storage: StorageConfig,
    /// Certificates.
    pub tls: TlsConfig,
    /// Authentication policy.
    pub auth: AuthConfig,
    /// Resource limits.
    pub limits: LimitsConfig,
    /// Network listeners.
    pub listeners: Vec<ListenerConfig>,
    /// Per-module settings, `[modules.<name>]`: each module reads and checks its own section
    /// when the server is built.
    pub modules: ModuleSections,
    /// Server-to-server links.
    pub s2s: S2sConfig,
    /// Stream management (XEP-0198): acknowledgements and resumption.
    pub stream_management: StreamManagementConfig,
    /// Logging.
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            storage: StorageConfig::default(),
            tls: TlsConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            listeners: default_listeners(),
            modules: ModuleSections::default(),
            s2s: S2sConfig::default(),
            stream_management: StreamManagementConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The domains (virtual hosts) this server is authoritative for.
    pub hosts: Vec<String>,
    /// Directory for the embedded store, generated certificates and the admin socket.
    pub data_dir: PathBuf,
    /// Path of the local admin socket (defaults to `<data_dir>/admin.sock`).
    pub admin_socket: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hosts: vec!["localhost".to_owned()],
            data_dir: PathBuf::from("./data"),
            admin_socket: None,
        }
    }
}

impl ServerConfig {
    /// Where the admin socket lives.
    pub fn admin_socket_path(&self) -> PathBuf {
        self.admin_socket
            .clone()
            .unwrap_or_else(|| self.data_dir.join("admin.sock"))
    }
}

/// `[storage]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `redb` (default), `sled` or `memory`.
    pub backend: BackendKind,
}

/// `[tls]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Certificate and key per host; hosts without one get a generated self-signed certificate.
    pub certificates: Vec<CertificateConfig>,
}

/// One `[[tls.certificates]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// The host this certificate serves (matched by SNI).
    pub host: String,
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Offer SASL PLAIN (only ever over TLS).
    pub allow_plain: bool,
    /// PBKDF2 iterations for newly stored SCRAM credentials, and the count shown for
    /// unknown users so that they look like real ones.
    pub scram_iterations: u32,
    /// Failed authentications on one stream before it is closed with `policy-violation`
    /// (RFC 6120 §6.4.5 asks for 2 to 5 retries).
    pub max_failures_per_stream: u32,
    /// Attempts on one account from one address that run at once; past them each further
    /// attempt waits `failure_delay_secs`, doubled each time. Other addresses are unaffected,
    /// so a stranger cannot lock the owner out.
    pub failures_before_delay: u32,
    /// First delay, in seconds, once `failures_before_delay` is used up.
    pub failure_delay_secs: u64,
    /// Longest delay between attempts on one account from one address, in seconds.
    pub max_failure_delay_secs: u64,
    /// Seconds without an attempt after which an address's failures on an account are
    /// forgotten.
    pub failure_reset_secs: u64,
    /// Failed (or still running) authentications allowed per client address within
    /// `failure_window_secs`, whatever the account; beyond that the address is refused until
    /// the window passes.
    pub max_failures_per_address: u32,
    /// Window of the per-address counter, in seconds.
    pub failure_window_secs: u64,
    /// IPv6 clients are counted per network of this prefix length (one end site gets a /64).
    pub ipv6_prefix_len: u8,
    /// Addresses and (address, account) pairs remembered at once; the stalest is forgotten
    /// first when full.
    pub max_tracked_clients: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            allow_plain: false,
            scram_iterations: 4096,
            max_failures_per_stream: 3,
            failures_before_delay: 3,
            failure_delay_secs: 2,
            max_failure_delay_secs: 600,
            failure_reset_secs: 3600,
            max_failures_per_address: 30,
            failure_window_secs: 60,
            ipv6_prefix_len: 64,
            max_tracked_clients: 100_000,
        }
    }
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest stanza accepted, in bytes.
    pub max_stanza_size: usize,
    /// Deepest element nesting accepted inside a stanza.
    pub max_depth: usize,
    /// Most attributes accepted on one element.
    pub max_attributes: usize,
    /// Largest approximate memory one parsed stanza may take, in bytes (many tiny elements
    /// cost far more parsed than on the wire).
    pub max_stanza_memory: usize,
    /// Largest stream header accepted, in bytes.
    pub max_stream_header_size: usize,
    /// Most namespace declarations accepted on a stream header.
    pub max_stream_header_declarations: usize,
    /// Seconds a connection may take to authenticate and bind.
    pub negotiation_timeout_secs: u64,
    /// Simultaneous connections accepted on all listeners together.
    pub max_connections: usize,
    /// Simultaneous connections accepted on the client listeners (c2s, c2s-direct-tls).
    pub max_c2s_connections: usize,
    /// Simultaneous connections accepted on the server listeners (s2s, s2s-direct-tls), so
    /// that unauthenticated server streams cannot take the clients' places.
    pub max_s2s_connections: usize,
    /// Seconds streams get at shutdown to close themselves with `system-shutdown` before
    /// their connections are dropped.
    pub shutdown_grace_secs: u64,
    /// Pending connections the kernel queues per listener before the server accepts them.
    pub listen_backlog: u32,
    /// Simultaneous connections from one client address (0: no limit; many users may share
    /// an address behind NAT).
    pub max_connections_per_address: usize,
    /// Seconds of silence after which the server pings a client.
    pub idle_ping_secs: u64,
    /// Seconds a pinged client has to answer before it is disconnected.
    pub ping_timeout_secs: u64,
    /// Stanzas queued for one session before it is treated as a slow consumer.
    pub session_queue: usize,
    /// Bytes of stanzas queued for one session before it is treated as a slow consumer.
    pub session_queue_bytes: usize,
    /// Seconds a write to a client may block before the client is treated as dead.
    pub write_timeout_secs: u64,
    /// Most roster items per account.
    pub max_roster_items: usize,
    /// Most subscription requests waiting for an account's answer; more are refused.
    pub max_pending_subscriptions: usize,
    /// Most bytes those waiting requests may take together.
    pub max_pending_subscription_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_stanza_size: 256 * 1024,
            max_depth: 48,
            max_attributes: 64,
            max_stanza_memory: 2 * 1024 * 1024,
            max_stream_header_size: 4096,
            max_stream_header_declarations: 8,
            negotiation_timeout_secs: 30,
            max_connections: 100_000,
            max_c2s_connections: 100_000,
            max_s2s_connections: 1_000,
            shutdown_grace_secs: 5,
            listen_backlog: 4096,
            max_connections_per_address: 0,
            idle_ping_secs: 300,
            ping_timeout_secs: 60,
            session_queue: 512,
            session_queue_bytes: 2 * 1024 * 1024,
            write_timeout_secs: 30,
            max_roster_items: 1000,
            max_pending_subscriptions: 1000,
            max_pending_subscription_bytes: 512 * 1024,
        }
    }
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListenerKind {
    /// Client connections, STARTTLS (RFC 6120).
    C2s,
    /// Client connections, TLS from the first byte (XEP-0368, ALPN `xmpp-client`).
    C2sDirectTls,
    /// Server connections, STARTTLS then SASL EXTERNAL (XEP-0178) or dialback (XEP-0220).
    S2s,
    /// Server connections, TLS from the first byte (XEP-0368, ALPN `xmpp-server`).
    S2sDirectTls,
}

/// One `[[listeners]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Protocol of the listener.
    pub kind: ListenerKind,
    /// Address and port to bind.
    pub address: SocketAddr,
    /// Refuse authentication before TLS (always true for direct TLS).
    #[serde(default = "yes")]
    pub require_tls: bool,
}

fn yes() -> bool {
    true
}

fn default_listeners() -> Vec<ListenerConfig> {
    let listen = |kind, port: u16| ListenerConfig {
        kind,
        address: SocketAddr::from(([0, 0, 0, 0], port)),
        require_tls: true,
    };
    vec![
        listen(ListenerKind::C2s, 5222),
        listen(ListenerKind::C2sDirectTls, 5223),
        listen(ListenerKind::S2s, 5269),
        listen(ListenerKind::S2sDirectTls, 5270),
    ]
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `rempart=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
        }
    }
}

/// `[stream_management]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamManagementConfig {
    /// Whether clients may enable acknowledgements and resumption.
    pub enabled: bool,
    /// Seconds a session whose connection dropped waits to be resumed; then the stanzas it
    /// holds go to another resource or to offline storage.
    pub resume_timeout_secs: u32,
    /// Stanzas a session may hold unacknowledged; a session that passes it ends and its
    /// stanzas are rerouted.
    pub max_unacked: usize,
    /// Bytes a session may hold unacknowledged, with the same consequence.
    pub max_unacked_bytes: usize,
    /// Ended resumable sessions remembered, so that a late `<resume/>` learns its count.
    pub remembered_sessions: usize,
}

impl Default for StreamManagementConfig {
    fn default() -> Self {
        StreamManagementConfig {
            enabled: true,
            resume_timeout_secs: 300,
            max_unacked: 1000,
            max_unacked_bytes: 4 * 1024 * 1024,
            remembered_sessions: 10_000,
        }
    }
}

impl Config {
    /// Loads the file (if given) and applies `REMPART_*` overrides, e.g.
    /// `REMPART_LIMITS__MAX_STANZA_SIZE=65536`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            builder = builder.add_source(
                config::File::from(path.to_path_buf()).format(config::FileFormat::Toml),
            );
        }
        builder = builder.add_source(
            config::Environment::with_prefix("REMPART")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("server.hosts"),
        );
        let config: Config = builder.build()?.try_deserialize()?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML string (tests and `config check`).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: cross-field consistency.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        if self.server.hosts.is_empty() {
            return invalid("server.hosts: at least one host is required".into());
        }
        for host in &self.server.hosts {
            if jid::BareJid::new(host)
                .map(|j| j.node().is_some())
                .unwrap_or(true)
            {
                return invalid(format!("server.hosts: {host:?} is not a valid domain"));
            }
        }
        for cert in &self.tls.certificates {
            if !self.server.hosts.contains(&cert.host) {
                return invalid(format!(
                    "tls.certificates: host {:?} is not in server.hosts",
                    cert.host
                ));
            }
        }
        if self.limits.max_stanza_size < 4096 {
            return invalid("limits.max_stanza_size: must be at least 4096 bytes".into());
        }
        if self.limits.max_depth < 4 {
            return invalid("limits.max_depth: must be at least 4".into());
        }
        if self.limits.session_queue == 0 {
            return invalid("limits.session_queue: must be at least 1".into());
        }
        if self.limits.session_queue_bytes < 4096 {
            return invalid("limits.session_queue_bytes: must be at least 4096 bytes".into());
        }
        if self.stream_management.max_unacked == 0 {
            return invalid("stream_management.max_unacked: must be at least 1".into());
        }
        if self.auth.scram_iterations < 4096 {
            return invalid("auth.scram_iterations: must be at least 4096 (RFC 7677)".into());
        }
        if self.auth.max_failures_per_stream == 0 {
            return invalid("auth.max_failures_per_stream: must be at least 1".into());
        }
        if self.auth.failures_before_delay == 0 {
            return invalid("auth.failures_before_delay: must be at least 1".into());
        }
        if self.auth.max_failures_per_address == 0 {
            return invalid("auth.max_failures_per_address: must be at least 1".into());
        }
        if self.auth.failure_delay_secs > self.auth.max_failure_delay_secs {
            return invalid(
                "auth.failure_delay_secs: must not exceed auth.max_failure_delay_secs".into(),
            );
        }
        if !(1..=128).contains(&self.auth.ipv6_prefix_len) {
            return invalid("auth.ipv6_prefix_len: must be between 1 and 128".into());
        }
        if self.auth.max_tracked_clients == 0 {
            return invalid("auth.max_tracked_clients: must be at least 1".into());
        }
        Ok(())
    }

    /// True when `domain` is one of the hosts served here.
    pub fn serves(&self, domain: &str) -> bool {
        self.server.hosts.iter().any(|h| h == domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let config = Config::from_toml("").expect("defaults");
        assert_eq!(config.server.hosts, vec!["localhost".to_owned()]);
        assert_eq!(config.listeners.len(), 4);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("[limits]\nmax_stanza_sise = 5\n").unwrap_err();
        assert!(err.to_string().contains("max_stanza_sise"), "{err}");
    }

    #[test]
    fn bad_value_is_explained() {
        let err = Config::from_toml("[limits]\nmax_stanza_size = 10\n").unwrap_err();
        assert!(err.to_string().contains("max_stanza_size"), "{err}");
    }
}
