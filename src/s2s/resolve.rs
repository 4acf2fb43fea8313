//! Placeholder until DNS resolution lands: static routes only.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use thiserror::Error;

/// One place to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Where to connect.
    pub address: SocketAddr,
    /// TLS from the first byte (XEP-0368) rather than STARTTLS.
    pub direct_tls: bool,
    /// The name that led here.
    pub host: String,
}

/// Why a domain could not be resolved.
#[derive(Debug, Error)]
pub enum ResolveError {
    /// Nothing found.
    #[error("no route to {0}")]
    NotFound(String),
    /// Bad configuration.
    #[error("{0}")]
    Config(String),
}

/// Finds where remote domains are reached.
pub struct Resolver {
    routes: BTreeMap<String, SocketAddr>,
}

impl Resolver {
    /// A resolver.
    pub fn new(
        _name_servers: &[SocketAddr],
        routes: &BTreeMap<String, String>,
    ) -> Result<Resolver, ResolveError> {
        let mut parsed = BTreeMap::new();
        for (domain, route) in routes {
            let address = route
                .parse()
                .map_err(|_| ResolveError::Config(format!("bad route {route}")))?;
            parsed.insert(domain.clone(), address);
        }
        Ok(Resolver { routes: parsed })
    }

    /// Where `domain` is reached.
    pub async fn resolve_observed(
        &self,
        domain: &str,
        observe: &mut (dyn FnMut(&str, String) + Send),
    ) -> Result<Vec<Endpoint>, ResolveError> {
        let address = self
            .routes
            .get(domain)
            .copied()
            .ok_or_else(|| ResolveError::NotFound(domain.to_owned()))?;
        observe("route", format!("{domain} is routed to {address}"));
        Ok(vec![Endpoint {
            address,
            direct_tls: false,
            host: domain.to_owned(),
        }])
    }
}
