//! XEP-0215: External Service Discovery — the STUN and TURN servers clients use for audio
//! and video calls, from the configuration, with time-limited TURN credentials in the
//! "TURN REST API" scheme that coturn and eturnal check with a shared secret.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jid::BareJid;
use rempart_xep::delay::datetime;
use rempart_xep::extdisco::{
    credentials_element, services_element, ExtDiscoRequest, ExternalService,
};
use rempart_xep::ns;
use rempart_xep::stanza::{Condition, IqType, StanzaError};
use serde::Deserialize;
use sha1::Sha1;
use time::OffsetDateTime;

use crate::config::ConfigError;
use crate::modules::Module;
use crate::router::{Implements, IqHandler, IqRequest, IqResult, IqScope, Registrar, Router};

/// A service type of the XEP-0215 registry that this server can announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    /// STUN (RFC 5389): finds the client's public address.
    Stun,
    /// TURN (RFC 5766): relays media.
    Turn,
    /// TURN over TLS.
    Turns,
}

impl ServiceKind {
    /// The registered type name.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Stun => "stun",
            ServiceKind::Turn => "turn",
            ServiceKind::Turns => "turns",
        }
    }
}

/// The transport a service listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl Transport {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// One `[[modules.external_services.services]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// `stun`, `turn` or `turns`.
    #[serde(rename = "type")]
    pub kind: ServiceKind,
    /// Host name or IP address clients connect to.
    pub host: String,
    /// Port clients connect to.
    pub port: u16,
    /// `udp` or `tcp`; left out when absent.
    #[serde(default)]
    pub transport: Option<Transport>,
    /// A name for humans.
    #[serde(default)]
    pub name: Option<String>,
    /// The secret shared with a TURN server (coturn `static-auth-secret`): clients then get
    /// time-limited credentials derived from it.
    #[serde(default)]
    pub secret: Option<String>,
}

/// `[modules.external_services]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExternalServicesConfig {
    /// The services announced to local users.
    pub services: Vec<ServiceConfig>,
    /// How long TURN credentials stay valid, in seconds.
    pub credentials_ttl_secs: u64,
}

impl Default for ExternalServicesConfig {
    fn default() -> Self {
        ExternalServicesConfig {
            services: Vec::new(),
            credentials_ttl_secs: 86400,
        }
    }
}

/// The external service discovery module.
pub struct ExternalServicesModule {
    config: ExternalServicesConfig,
}

static IMPLEMENTS: &[Implements] = &[Implements {
    spec: "XEP-0215",
    version: "1.0.0",
    note: "STUN/TURN services from the configuration, time-limited TURN credentials",
}];

impl ExternalServicesConfig {
    /// Checks what serde cannot: a secret only on TURN services and never empty, a host
    /// for every service, credentials that live a while.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| {
            Err(ConfigError::Invalid(format!(
                "modules.external_services: {message}"
            )))
        };
        for service in &self.services {
            if service.host.is_empty() {
                return invalid("a service needs a host".into());
            }
            match (&service.secret, service.kind) {
                (Some(secret), _) if secret.is_empty() => {
                    return invalid(format!("the secret of {} is empty", service.host));
                }
                (Some(_), ServiceKind::Stun) => {
                    return invalid(format!(
                        "{} is a STUN service, which takes no secret",
                        service.host
                    ));
                }
                _ => {}
            }
        }
        if self.credentials_ttl_secs == 0 {
            return invalid("credentials_ttl_secs must be above zero".into());
        }
        Ok(())
    }
}

impl ExternalServicesModule {
    /// The module with its (checked) configuration.
    pub fn new(config: &ExternalServicesConfig) -> Self {
        ExternalServicesModule {
            config: config.clone(),
        }
    }

    /// A service as announced to `user`, with fresh credentials when it has a secret.
    fn describe(
        &self,
        service: &ServiceConfig,
        user: &BareJid,
        now: SystemTime,
    ) -> ExternalService {
        let mut described = ExternalService {
            kind: service.kind.as_str().to_owned(),
            host: service.host.clone(),
            port: Some(service.port),
            transport: service.transport.map(|t| t.as_str().to_owned()),
            name: service.name.clone(),
            ..ExternalService::default()
        };
        if let Some(secret) = &service.secret {
            let expiry = now + Duration::from_secs(self.config.credentials_ttl_secs);
            let credentials = TurnCredentials::new(secret, user, expiry);
            described.restricted = true;
            described.username = Some(credentials.username);
            described.password = Some(credentials.password);
            described.expires = Some(credentials.expires);
        }
        described
    }
}

/// Time-limited TURN credentials ("A REST API for access to TURN services", §2.2): the
/// TURN server recomputes the password from the user name and the shared secret.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TurnCredentials {
    /// `<expiry unix time>:<bare jid>`.
    username: String,
    /// base64(HMAC-SHA1(secret, username)).
    password: String,
    /// The expiry as an XEP-0082 DateTime.
    expires: String,
}

impl TurnCredentials {
    fn new(secret: &str, user: &BareJid, expiry: SystemTime) -> TurnCredentials {
        let seconds = expiry
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let username = format!("{seconds}:{user}");
        // HMAC takes a key of any length; the error case cannot happen.
        let password = match Hmac::<Sha1>::new_from_slice(secret.as_bytes()) {
            Ok(mut mac) => {
                mac.update(username.as_bytes());
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
            }
            Err(_) => String::new(),
        };
        TurnCredentials {
            username,
            password,
            expires: datetime(OffsetDateTime::from(expiry)),
        }
    }
}

impl Module for ExternalServicesModule {
    fn name(&self) -> &'static str {
        "external_services"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        registrar.iq(IqScope::Server, ns::EXTDISCO, "services", self.clone());
        registrar.iq(IqScope::Server, ns::EXTDISCO, "credentials", self);
        registrar.server_feature(ns::EXTDISCO);
    }
}

#[async_trait]
impl IqHandler<Router> for ExternalServicesModule {
    async fn handle(&self, router: &Router, request: IqRequest) -> IqResult {
        if request.iq_type != IqType::Get {
            return Err(StanzaError::new(Condition::BadRequest));
        }
        // Credentials open a relay that costs bandwidth: local accounts only.
        let user = request.from.to_bare();
        if user.node().is_none() || !router.config.serves(user.domain().as_str()) {
            return Err(StanzaError::new(Condition::Forbidden));
        }
        let now = SystemTime::now();
        let query = ExtDiscoRequest::parse(&request.payload).map_err(|error| {
            StanzaError::new(Condition::BadRequest).with_text(error.to_string())
        })?;
        match query {
            ExtDiscoRequest::Services { kind } => {
                let services: Vec<ExternalService> = self
                    .config
                    .services
                    .iter()
                    .filter(|s| kind.as_deref().is_none_or(|kind| s.kind.as_str() == kind))
                    .map(|s| self.describe(s, &user, now))
                    .collect();
                Ok(Some(services_element(kind.as_deref(), &services)))
            }
            ExtDiscoRequest::Credentials { host, kind, port } => {
                let services: Vec<ExternalService> = self
                    .config
                    .services
                    .iter()
                    .filter(|s| {
                        s.secret.is_some()
                            && s.host == host
                            && s.kind.as_str() == kind
                            && port.is_none_or(|port| s.port == port)
                    })
                    .map(|s| self.describe(s, &user, now))
                    .collect();
                if services.is_empty() {
                    return Err(StanzaError::new(Condition::ItemNotFound));
                }
                Ok(Some(credentials_element(&services)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_services: &[ServiceConfig]) -> ExternalServicesConfig {
        ExternalServicesConfig {
            services: toml_services.to_vec(),
            ..ExternalServicesConfig::default()
        }
    }

    fn service(kind: ServiceKind, secret: Option<&str>) -> ServiceConfig {
        ServiceConfig {
            kind,
            host: "turn.example.org".to_owned(),
            port: 3478,
            transport: Some(Transport::Udp),
            name: None,
            secret: secret.map(str::to_owned),
        }
    }

    #[test]
    fn turn_credentials_follow_the_rest_api_scheme() {
        let user = BareJid::new("alice@example.org").expect("jid");
        let expiry = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let credentials = TurnCredentials::new("s3cret", &user, expiry);
        assert_eq!(credentials.username, "1700000000:alice@example.org");
        let mut mac = Hmac::<Sha1>::new_from_slice(b"s3cret").expect("key");
        mac.update(b"1700000000:alice@example.org");
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(credentials.password, expected);
        assert_eq!(credentials.expires, "2023-11-14T22:13:20Z");
    }

    #[test]
    fn a_stun_service_with_a_secret_or_an_empty_secret_is_refused() {
        assert!(config(&[service(ServiceKind::Stun, Some("s"))])
            .check()
            .is_err());
        assert!(config(&[service(ServiceKind::Turn, Some(""))])
            .check()
            .is_err());
        assert!(config(&[service(ServiceKind::Turns, Some("s"))])
            .check()
            .is_ok());
    }

    #[test]
    fn a_service_without_secret_carries_no_credentials() {
        let module = ExternalServicesModule::new(&config(&[]));
        let user = BareJid::new("alice@example.org").expect("jid");
        let described =
            module.describe(&service(ServiceKind::Turn, None), &user, SystemTime::now());
        assert!(!described.restricted);
        assert_eq!(described.username, None);
        assert_eq!(described.transport.as_deref(), Some("udp"));
    }
}
