//! Where a remote server domain is reached (RFC 6120 §3.2 with XEP-0368): a configured route,
//! else the `_xmpps-server._tcp` (direct TLS) and `_xmpp-server._tcp` (STARTTLS) SRV records
//! mixed as one set, else the domain's own addresses on port 5269.
//!
//! Choices the specifications leave open:
//! - Within a priority the records are picked by RFC 2782 weighted random selection, so the
//!   operator decides how direct TLS and STARTTLS share the load (XEP-0368 §3, rule 1). Only
//!   where the weights leave nothing to chance (every remaining record has weight 0) does direct
//!   TLS come first, since it saves the STARTTLS round trips.
//! - A record set made only of `.` targets says the service is not offered (RFC 2782); a `.`
//!   among real targets is ignored.
//! - An IP literal domain (`127.0.0.1`, `[::1]`) has no SRV records to look up: it is reached
//!   with STARTTLS on port 5269 of that address.
//! - Addresses outside the public internet (private, loopback, link-local, CGNAT …) are
//!   dropped unless `allow_private_addresses` is set: a peer naming a domain in a dialback
//!   request must not make us connect into the operator's network. Routes are the operator's
//!   own choice and are used as given.
//! - At most [`MAX_ENDPOINTS`] SRV targets are looked up and as many endpoints returned, so a
//!   hostile zone cannot keep us connecting forever.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{Name, RData};
use hickory_resolver::TokioResolver;
use rand::Rng;
use thiserror::Error;

use crate::net::public_address::is_public;

/// Receives a description of each step of opening a link (for `rempart s2s check`).
pub type Observer<'a> = &'a mut (dyn FnMut(&str, String) + Send);

/// The server-to-server port when DNS names none (RFC 6120 §3.2.2).
const DEFAULT_PORT: u16 = 5269;

/// The most SRV targets looked up, and the most endpoints returned.
const MAX_ENDPOINTS: usize = 32;

/// One place to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Where to connect.
    pub address: SocketAddr,
    /// Whether TLS starts at once (an `_xmpps-server` record) rather than with STARTTLS.
    pub direct_tls: bool,
    /// The SRV target or domain that led here, for logs and diagnostics.
    pub host: String,
}

/// Why a domain could not be resolved to any endpoint.
#[derive(Debug, Error)]
pub enum ResolveError {
    /// The domain is not a valid server domain name.
    #[error("{0} is not a valid server domain")]
    InvalidDomain(String),
    /// DNS has no address for the domain or any of its SRV targets.
    #[error("no address found for {0}")]
    NotFound(String),
    /// The domain's SRV records say it offers no server-to-server service (target ".").
    #[error("{0} does not offer server-to-server connections")]
    ServiceDisabled(String),
    /// Every address of the domain is outside the public internet, and policy refuses those.
    #[error("{0} resolves only to private or special-purpose addresses")]
    NotPublic(String),
    /// A DNS lookup failed, so nothing can be concluded about the domain.
    #[error("DNS lookup failed: {0}")]
    Dns(String),
    /// The resolver configuration is unusable.
    #[error("resolver configuration: {0}")]
    Config(String),
}

/// A configured way to reach a domain, bypassing SRV.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    /// A fixed address.
    Address(SocketAddr),
    /// A host name resolved with A/AAAA, and a port.
    Host { name: Name, port: u16 },
}

/// One SRV record, tagged with the service it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SrvRecord {
    priority: u16,
    weight: u16,
    port: u16,
    target: Name,
    direct_tls: bool,
}

/// What one SRV lookup said.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SrvAnswer {
    /// Usable records.
    Records(Vec<SrvRecord>),
    /// Only "." targets: the service is not offered.
    Disabled,
    /// No records (NXDOMAIN or an empty answer).
    Absent,
    /// The lookup failed; nothing can be concluded.
    Failed(String),
}

/// What to do after both SRV lookups.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// Try these records' targets.
    Srv(Vec<SrvRecord>),
    /// No SRV records at all: try the domain's own addresses (RFC 6120 §3.2.2).
    Fallback,
}

/// Finds the endpoints of remote server domains.
pub struct Resolver {
    dns: TokioResolver,
    routes: BTreeMap<String, Route>,
    allow_private: bool,
}

impl Resolver {
    /// `name_servers` empty = the system's resolv.conf; otherwise these servers (UDP+TCP) only.
    /// `routes`: static table domain -> "host:port" (host may be an IP literal or a name resolved
    /// with A/AAAA); a routed domain never queries SRV; routes are STARTTLS (direct_tls = false).
    /// `timeout` bounds each query to a name server. `allow_private`: whether addresses
    /// outside the public internet found through DNS or IP literals may be used.
    pub fn new(
        name_servers: &[SocketAddr],
        routes: &BTreeMap<String, String>,
        timeout: Duration,
        allow_private: bool,
    ) -> Result<Resolver, ResolveError> {
        let mut builder = if name_servers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| ResolveError::Config(e.to_string()))?
        } else {
            let servers = name_servers.iter().map(name_server).collect();
            let mut builder = TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            );
            // "These servers only": /etc/hosts would answer some names behind their back.
            builder.options_mut().use_hosts_file = ResolveHosts::Never;
            builder
        };
        // IPv6 first, then IPv4, as the order of endpoints.
        builder.options_mut().ip_strategy = LookupIpStrategy::Ipv6AndIpv4;
        builder.options_mut().timeout = timeout;
        builder.options_mut().attempts = 2;
        let dns = builder
            .build()
            .map_err(|e| ResolveError::Config(e.to_string()))?;
        let mut parsed = BTreeMap::new();
        for (domain, target) in routes {
            let route = parse_route(target)
                .map_err(|e| ResolveError::Config(format!("route for {domain}: {e}")))?;
            parsed.insert(normalize(domain), route);
        }
        Ok(Resolver {
            dns,
            routes: parsed,
            allow_private,
        })
    }

    /// The endpoints of `domain`, in the order to try them.
    pub async fn resolve(&self, domain: &str) -> Result<Vec<Endpoint>, ResolveError> {
        self.resolve_observed(domain, &mut |_, _| {}).await
    }

    /// Same, telling `observe(step, detail)` what each lookup found (for `rempart s2s check`).
    pub async fn resolve_observed(
        &self,
        domain: &str,
        observe: Observer<'_>,
    ) -> Result<Vec<Endpoint>, ResolveError> {
        let domain = normalize(domain);
        if let Some(route) = self.routes.get(&domain) {
            return self.resolve_route(&domain, route, observe).await;
        }
        let endpoints = self.resolve_unrouted(&domain, observe).await?;
        self.keep_allowed(&domain, endpoints, observe)
    }

    /// Drops the endpoints outside the public internet unless configuration allows them.
    fn keep_allowed(
        &self,
        domain: &str,
        mut endpoints: Vec<Endpoint>,
        observe: Observer<'_>,
    ) -> Result<Vec<Endpoint>, ResolveError> {
        if self.allow_private {
            return Ok(endpoints);
        }
        endpoints.retain(|endpoint| {
            let public = is_public(endpoint.address.ip());
            if !public {
                observe(
                    "address",
                    format!(
                        "{} is not a public address: skipped (allow_private_addresses is off)",
                        endpoint.address.ip()
                    ),
                );
            }
            public
        });
        if endpoints.is_empty() {
            return Err(ResolveError::NotPublic(domain.to_owned()));
        }
        Ok(endpoints)
    }

    /// The endpoints DNS (or an IP literal) gives for a domain without a route.
    async fn resolve_unrouted(
        &self,
        domain: &str,
        observe: Observer<'_>,
    ) -> Result<Vec<Endpoint>, ResolveError> {
        let domain = domain.to_owned();
        if let Some(ip) = ip_literal(&domain) {
            observe(
                "address",
                format!("{domain} is an IP address: no SRV lookup"),
            );
            return Ok(vec![Endpoint {
                address: SocketAddr::new(ip, DEFAULT_PORT),
                direct_tls: false,
                host: domain,
            }]);
        }
        let name = fqdn(&domain)?;
        let direct_name = fqdn(&format!("_xmpps-server._tcp.{domain}"))?;
        let starttls_name = fqdn(&format!("_xmpp-server._tcp.{domain}"))?;
        let (direct, starttls) = tokio::join!(
            self.srv(direct_name.clone(), true),
            self.srv(starttls_name.clone(), false)
        );
        observe("srv", describe_srv(&direct_name, &direct));
        observe("srv", describe_srv(&starttls_name, &starttls));
        match plan(&domain, direct, starttls)? {
            Plan::Fallback => {
                observe(
                    "srv",
                    format!("no SRV records: trying {domain} on port {DEFAULT_PORT}"),
                );
                self.resolve_host(&domain, name, DEFAULT_PORT, observe)
                    .await
            }
            Plan::Srv(records) => self.resolve_records(&domain, records, observe).await,
        }
    }

    async fn resolve_route(
        &self,
        domain: &str,
        route: &Route,
        observe: Observer<'_>,
    ) -> Result<Vec<Endpoint>, ResolveError> {
        match route {
            Route::Address(address) => {
                observe("route", format!("{domain} is routed to {address}"));
                Ok(vec![Endpoint {
                    address: *address,
                    direct_tls: false,
                    host: address.ip().to_string(),
                }])
            }
            Route::Host { name, port } => {
                let host = host_text(name);
                observe("route", format!("{domain} is routed to {host}:{port}"));
                self.resolve_host(&host, name.clone(), *port, observe).await
            }
        }
    }

    /// The STARTTLS endpoints of one host name (a route or the SRV fallback).
    async fn resolve_host(
        &self,
        host: &str,
        name: Name,
        port: u16,
        observe: Observer<'_>,
    ) -> Result<Vec<Endpoint>, ResolveError> {
        let addresses = match self.addresses(name).await {
            Ok(addresses) => addresses,
            Err(error) => {
                observe("address", format!("{host}: {error}"));
                return Err(ResolveError::Dns(error.to_string()));
            }
        };
        observe("address", describe_addresses(host, &addresses));
        let mut endpoints = Vec::new();
        add_endpoints(&mut endpoints, &addresses, port, false, host);
        if endpoints.is_empty() {
            return Err(ResolveError::NotFound(host.to_owned()));
        }
        Ok(endpoints)
    }

    async fn resolve_records(
        &self,
        domain: &str,
        records: Vec<SrvRecord>,
        observe: Observer<'_>,
    ) -> Result<Vec<Endpoint>, ResolveError> {
        // The thread RNG is not Send: keep it out of the awaits below.
        let mut ordered = {
            let mut rng = rand::rng();
            order(records, &mut |bound| rng.random_range(0..=bound))
        };
        if ordered.len() > MAX_ENDPOINTS {
            observe(
                "limit",
                format!(
                    "{} SRV targets, only the first {MAX_ENDPOINTS} are tried",
                    ordered.len()
                ),
            );
            ordered.truncate(MAX_ENDPOINTS);
        }
        observe("order", describe_order(&ordered));
        let mut endpoints = Vec::new();
        let mut failure = None;
        for record in &ordered {
            let host = host_text(&record.target);
            match self.addresses(record.target.clone()).await {
                Ok(addresses) => {
                    observe("address", describe_addresses(&host, &addresses));
                    let room = add_endpoints(
                        &mut endpoints,
                        &addresses,
                        record.port,
                        record.direct_tls,
                        &host,
                    );
                    if !room {
                        observe("limit", format!("stopping at {MAX_ENDPOINTS} endpoints"));
                        break;
                    }
                }
                Err(error) => {
                    observe("address", format!("{host}: {error}, skipped"));
                    failure = Some(error.to_string());
                }
            }
        }
        match (endpoints.is_empty(), failure) {
            (false, _) => Ok(endpoints),
            (true, Some(error)) => Err(ResolveError::Dns(error)),
            (true, None) => Err(ResolveError::NotFound(domain.to_owned())),
        }
    }

    async fn srv(&self, name: Name, direct_tls: bool) -> SrvAnswer {
        match self.dns.srv_lookup(name).await {
            Ok(lookup) => srv_answer(
                lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::SRV(srv) => Some(SrvRecord {
                            priority: srv.priority,
                            weight: srv.weight,
                            port: srv.port,
                            target: srv.target.clone(),
                            direct_tls,
                        }),
                        _ => None,
                    })
                    .collect(),
            ),
            Err(error) if error.is_no_records_found() => SrvAnswer::Absent,
            Err(error) => SrvAnswer::Failed(error.to_string()),
        }
    }

    /// The addresses of `name`, IPv6 first; none when DNS says it has none.
    async fn addresses(&self, name: Name) -> Result<Vec<IpAddr>, NetError> {
        // Some zones give an IP literal as the target (Prosody accepts it): no lookup then.
        if let Ok(ip) = host_text(&name).parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        match self.dns.lookup_ip(name).await {
            Ok(lookup) => Ok(lookup.iter().collect()),
            Err(error) if error.is_no_records_found() => Ok(Vec::new()),
            Err(error) => Err(error),
        }
    }
}

/// A name server at `address`, over UDP and TCP on its port.
fn name_server(address: &SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = address.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = address.port();
    NameServerConfig::new(address.ip(), true, vec![udp, tcp])
}

/// Domains compare lowercase and without the trailing dot of absolute names.
fn normalize(domain: &str) -> String {
    domain.strip_suffix('.').unwrap_or(domain).to_lowercase()
}

/// The address of an IP literal domainpart (RFC 7622 §3.2: IPv6 in brackets).
fn ip_literal(domain: &str) -> Option<IpAddr> {
    match domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        Some(inner) => inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        None => domain.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

/// `name` as an absolute DNS name, so that no search domain is appended.
fn fqdn(name: &str) -> Result<Name, ResolveError> {
    if name.is_empty() {
        return Err(ResolveError::InvalidDomain(String::new()));
    }
    let mut parsed =
        Name::from_utf8(name).map_err(|e| ResolveError::InvalidDomain(format!("{name} ({e})")))?;
    parsed.set_fqdn(true);
    Ok(parsed)
}

/// A DNS name as written in endpoints and diagnostics: ASCII, no trailing dot.
fn host_text(name: &Name) -> String {
    let text = name.to_ascii().to_lowercase();
    match text.strip_suffix('.') {
        Some(stripped) if !stripped.is_empty() => stripped.to_owned(),
        _ => text,
    }
}

/// Parses a route's "host:port", where host is an IP literal or a DNS name.
fn parse_route(value: &str) -> Result<Route, String> {
    if let Ok(address) = value.parse::<SocketAddr>() {
        return Ok(Route::Address(address));
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(format!("{value:?} is not host:port"));
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("{value:?}: {port:?} is not a port"))?;
    let name = fqdn(&normalize(host)).map_err(|e| format!("{value:?}: {e}"))?;
    Ok(Route::Host { name, port })
}

/// Classifies one SRV record set (RFC 2782: a lone "." target means "not offered").
fn srv_answer(records: Vec<SrvRecord>) -> SrvAnswer {
    if records.is_empty() {
        return SrvAnswer::Absent;
    }
    let usable: Vec<SrvRecord> = records
        .into_iter()
        .filter(|record| !record.target.is_root())
        .collect();
    if usable.is_empty() {
        SrvAnswer::Disabled
    } else {
        SrvAnswer::Records(usable)
    }
}

/// Combines the direct TLS and STARTTLS answers (XEP-0368: one mixed record set; a "." for
/// one service with nothing for the other forbids the A/AAAA fallback).
fn plan(domain: &str, direct: SrvAnswer, starttls: SrvAnswer) -> Result<Plan, ResolveError> {
    match (direct, starttls) {
        (SrvAnswer::Records(mut direct), SrvAnswer::Records(starttls)) => {
            direct.extend(starttls);
            Ok(Plan::Srv(direct))
        }
        (SrvAnswer::Records(records), _) | (_, SrvAnswer::Records(records)) => {
            Ok(Plan::Srv(records))
        }
        (SrvAnswer::Failed(error), _) | (_, SrvAnswer::Failed(error)) => {
            Err(ResolveError::Dns(error))
        }
        (SrvAnswer::Absent, SrvAnswer::Absent) => Ok(Plan::Fallback),
        (SrvAnswer::Disabled, _) | (_, SrvAnswer::Disabled) => {
            Err(ResolveError::ServiceDisabled(domain.to_owned()))
        }
    }
}

/// Orders records by priority, and within a priority by RFC 2782 weighted random selection.
/// `random(bound)` returns a number in `0..=bound`.
fn order(mut records: Vec<SrvRecord>, random: &mut dyn FnMut(u64) -> u64) -> Vec<SrvRecord> {
    // RFC 2782 puts weight 0 first, which leaves it a 1 in (sum + 1) chance; then direct TLS
    // first, which decides only when every remaining weight is 0.
    records.sort_by_key(|r| (r.priority, r.weight != 0, !r.direct_tls));
    let mut ordered = Vec::with_capacity(records.len());
    for same_priority in records.chunk_by(|a, b| a.priority == b.priority) {
        let mut left = same_priority.to_vec();
        while !left.is_empty() {
            let total: u64 = left.iter().map(|r| u64::from(r.weight)).sum();
            let pick = random(total).min(total);
            let mut running = 0;
            let chosen = left
                .iter()
                .position(|r| {
                    running += u64::from(r.weight);
                    running >= pick
                })
                .unwrap_or(0);
            ordered.push(left.remove(chosen));
        }
    }
    ordered
}

/// Appends an endpoint per new address; returns false once [`MAX_ENDPOINTS`] is reached.
fn add_endpoints(
    endpoints: &mut Vec<Endpoint>,
    addresses: &[IpAddr],
    port: u16,
    direct_tls: bool,
    host: &str,
) -> bool {
    for ip in addresses {
        if endpoints.len() >= MAX_ENDPOINTS {
            return false;
        }
        let address = SocketAddr::new(*ip, port);
        // Several records may lead to the same place; one attempt there is enough.
        if endpoints
            .iter()
            .any(|e| e.address == address && e.direct_tls == direct_tls)
        {
            continue;
        }
        endpoints.push(Endpoint {
            address,
            direct_tls,
            host: host.to_owned(),
        });
    }
    endpoints.len() < MAX_ENDPOINTS
}

fn tls_kind(direct_tls: bool) -> &'static str {
    if direct_tls {
        "direct TLS"
    } else {
        "STARTTLS"
    }
}

fn describe_srv(name: &Name, answer: &SrvAnswer) -> String {
    let name = host_text(name);
    match answer {
        SrvAnswer::Records(records) => {
            let list: Vec<String> = records
                .iter()
                .map(|r| {
                    format!(
                        "{}:{} (priority {}, weight {})",
                        host_text(&r.target),
                        r.port,
                        r.priority,
                        r.weight
                    )
                })
                .collect();
            format!("{name}: {} record(s): {}", records.len(), list.join(", "))
        }
        SrvAnswer::Disabled => format!("{name}: target \".\", the service is not offered"),
        SrvAnswer::Absent => format!("{name}: no records"),
        SrvAnswer::Failed(error) => format!("{name}: lookup failed: {error}"),
    }
}

fn describe_order(records: &[SrvRecord]) -> String {
    let list: Vec<String> = records
        .iter()
        .map(|r| {
            format!(
                "{}:{} ({})",
                host_text(&r.target),
                r.port,
                tls_kind(r.direct_tls)
            )
        })
        .collect();
    format!("trying {}", list.join(", "))
}

fn describe_addresses(host: &str, addresses: &[IpAddr]) -> String {
    if addresses.is_empty() {
        return format!("{host}: no addresses");
    }
    let list: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
    format!("{host} -> {}", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(priority: u16, weight: u16, target: &str, direct_tls: bool) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port: if direct_tls { 5270 } else { 5269 },
            target: Name::from_ascii(target).unwrap(),
            direct_tls,
        }
    }

    fn targets(records: &[SrvRecord]) -> Vec<String> {
        records.iter().map(|r| host_text(&r.target)).collect()
    }

    /// Orders `records` with `values` as the random numbers; also returns the bounds asked for.
    fn ordered_with(records: Vec<SrvRecord>, values: &[u64]) -> (Vec<String>, Vec<u64>) {
        let mut left: Vec<u64> = values.iter().rev().copied().collect();
        let mut bounds = Vec::new();
        let result = order(records, &mut |bound| {
            bounds.push(bound);
            left.pop().unwrap_or(0)
        });
        (targets(&result), bounds)
    }

    #[test]
    fn lower_priority_comes_first_whatever_the_weight() {
        let records = vec![
            record(20, 100, "c.example.", false),
            record(0, 0, "a.example.", false),
            record(10, 65535, "b.example.", true),
        ];
        let (order, _) = ordered_with(records, &[]);
        assert_eq!(order, ["a.example", "b.example", "c.example"]);
    }

    #[test]
    fn weighted_selection_follows_the_random_numbers() {
        // Sorted: zero (0), ten (10), thirty (30); running sums 0, 10, 40.
        let records = vec![
            record(5, 10, "ten.example.", false),
            record(5, 30, "thirty.example.", false),
            record(5, 0, "zero.example.", false),
        ];
        // 11 > 10 picks thirty; then 0 of 10 picks zero; then ten is alone.
        let (order, bounds) = ordered_with(records.clone(), &[11, 0, 0]);
        assert_eq!(order, ["thirty.example", "zero.example", "ten.example"]);
        assert_eq!(bounds, [40, 10, 10]);
        // 1 picks ten; then 0 of 30 picks zero, its only chance.
        let (order, _) = ordered_with(records.clone(), &[1, 0, 0]);
        assert_eq!(order, ["ten.example", "zero.example", "thirty.example"]);
        // 0 picks the weight 0 record first: a 1 in 41 chance.
        let (order, _) = ordered_with(records, &[0, 10, 0]);
        assert_eq!(order, ["zero.example", "ten.example", "thirty.example"]);
    }

    #[test]
    fn a_random_number_out_of_bounds_picks_the_last_record() {
        let records = vec![
            record(1, 5, "a.example.", false),
            record(1, 5, "b.example.", false),
        ];
        let (order, _) = ordered_with(records, &[u64::MAX]);
        assert_eq!(order, ["b.example", "a.example"]);
    }

    #[test]
    fn direct_tls_comes_first_when_weights_are_all_zero() {
        let records = vec![
            record(0, 0, "starttls.example.", false),
            record(0, 0, "direct.example.", true),
        ];
        let (order, _) = ordered_with(records, &[0, 0]);
        assert_eq!(order, ["direct.example", "starttls.example"]);
    }

    #[test]
    fn weights_decide_between_direct_tls_and_starttls() {
        let records = vec![
            record(0, 90, "starttls.example.", false),
            record(0, 10, "direct.example.", true),
        ];
        // Direct TLS is sorted first (sum 10); 50 falls on STARTTLS.
        let (order, _) = ordered_with(records, &[50, 0]);
        assert_eq!(order, ["starttls.example", "direct.example"]);
    }

    #[test]
    fn a_lone_dot_target_disables_the_service() {
        assert_eq!(
            srv_answer(vec![record(0, 0, ".", true)]),
            SrvAnswer::Disabled
        );
        assert_eq!(srv_answer(Vec::new()), SrvAnswer::Absent);
    }

    #[test]
    fn a_dot_among_real_targets_is_ignored() {
        let real = record(0, 0, "xmpp.example.", false);
        assert_eq!(
            srv_answer(vec![record(0, 0, ".", false), real.clone()]),
            SrvAnswer::Records(vec![real])
        );
    }

    #[test]
    fn direct_tls_and_starttls_records_are_merged() {
        let direct = record(0, 0, "direct.example.", true);
        let starttls = record(0, 0, "starttls.example.", false);
        let merged = plan(
            "example",
            SrvAnswer::Records(vec![direct.clone()]),
            SrvAnswer::Records(vec![starttls.clone()]),
        )
        .unwrap();
        assert_eq!(merged, Plan::Srv(vec![direct, starttls]));
    }

    #[test]
    fn records_of_one_service_are_used_whatever_the_other_says() {
        let starttls = record(0, 0, "starttls.example.", false);
        for other in [
            SrvAnswer::Absent,
            SrvAnswer::Disabled,
            SrvAnswer::Failed("timeout".into()),
        ] {
            let got = plan(
                "example",
                other.clone(),
                SrvAnswer::Records(vec![starttls.clone()]),
            )
            .unwrap();
            assert_eq!(got, Plan::Srv(vec![starttls.clone()]));
            let got = plan("example", SrvAnswer::Records(vec![starttls.clone()]), other).unwrap();
            assert_eq!(got, Plan::Srv(vec![starttls.clone()]));
        }
    }

    #[test]
    fn no_records_at_all_falls_back_to_the_domain() {
        let got = plan("example", SrvAnswer::Absent, SrvAnswer::Absent).unwrap();
        assert_eq!(got, Plan::Fallback);
    }

    #[test]
    fn a_dot_with_nothing_else_means_service_disabled() {
        for (direct, starttls) in [
            (SrvAnswer::Disabled, SrvAnswer::Disabled),
            (SrvAnswer::Disabled, SrvAnswer::Absent),
            (SrvAnswer::Absent, SrvAnswer::Disabled),
        ] {
            let got = plan("example", direct, starttls);
            assert!(matches!(got, Err(ResolveError::ServiceDisabled(d)) if d == "example"));
        }
    }

    #[test]
    fn a_failed_lookup_without_records_is_a_dns_error() {
        for other in [SrvAnswer::Absent, SrvAnswer::Disabled] {
            let got = plan(
                "example",
                SrvAnswer::Failed("SERVFAIL".into()),
                other.clone(),
            );
            assert!(matches!(got, Err(ResolveError::Dns(_))));
            let got = plan("example", other, SrvAnswer::Failed("SERVFAIL".into()));
            assert!(matches!(got, Err(ResolveError::Dns(_))));
        }
    }

    #[test]
    fn endpoints_stop_at_the_cap() {
        let mut endpoints = Vec::new();
        let addresses: Vec<IpAddr> = (0..40u8)
            .map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)))
            .collect();
        assert!(!add_endpoints(&mut endpoints, &addresses, 5269, false, "x"));
        assert_eq!(endpoints.len(), MAX_ENDPOINTS);
        assert!(!add_endpoints(
            &mut endpoints,
            &addresses[..1],
            5270,
            true,
            "y"
        ));
        assert_eq!(endpoints.len(), MAX_ENDPOINTS);
    }

    #[test]
    fn repeated_addresses_become_one_endpoint() {
        let mut endpoints = Vec::new();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(add_endpoints(&mut endpoints, &[ip, ip], 5269, false, "a"));
        assert!(add_endpoints(&mut endpoints, &[ip], 5269, false, "b"));
        assert!(add_endpoints(&mut endpoints, &[ip], 5269, true, "c"));
        let hosts: Vec<&str> = endpoints.iter().map(|e| e.host.as_str()).collect();
        assert_eq!(hosts, ["a", "c"]);
    }

    #[test]
    fn routes_parse_ip_literals_and_names() {
        assert_eq!(
            parse_route("127.0.0.1:5269"),
            Ok(Route::Address("127.0.0.1:5269".parse().unwrap()))
        );
        assert_eq!(
            parse_route("[::1]:5270"),
            Ok(Route::Address("[::1]:5270".parse().unwrap()))
        );
        assert_eq!(
            parse_route("XMPP.Example.org.:5269"),
            Ok(Route::Host {
                name: Name::from_ascii("xmpp.example.org.").unwrap(),
                port: 5269
            })
        );
    }

    #[test]
    fn malformed_routes_are_refused() {
        for bad in [
            "xmpp.example.org",
            "xmpp.example.org:",
            "xmpp.example.org:70000",
            ":5269",
            "::1:5269",
            "bad host:5269",
        ] {
            assert!(parse_route(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn a_resolver_with_a_bad_route_is_refused() {
        let routes = BTreeMap::from([("a.example".to_owned(), "nowhere".to_owned())]);
        let made = Resolver::new(
            &["127.0.0.1:53".parse().unwrap()],
            &routes,
            Duration::from_secs(1),
            false,
        );
        assert!(matches!(made, Err(ResolveError::Config(_))));
    }

    #[tokio::test]
    async fn a_routed_address_is_used_without_dns() {
        // The name server is never asked (and nothing listens on loopback port 9).
        let routes = BTreeMap::from([("A.Example.".to_owned(), "192.0.2.7:5999".to_owned())]);
        let resolver = Resolver::new(
            &["127.0.0.1:9".parse().unwrap()],
            &routes,
            Duration::from_secs(1),
            true,
        )
        .unwrap();
        let endpoints = resolver.resolve("a.example.").await.unwrap();
        assert_eq!(
            endpoints,
            [Endpoint {
                address: "192.0.2.7:5999".parse().unwrap(),
                direct_tls: false,
                host: "192.0.2.7".to_owned(),
            }]
        );
    }

    #[tokio::test]
    async fn an_ip_literal_domain_is_reached_on_port_5269() {
        let resolver = Resolver::new(
            &["127.0.0.1:9".parse().unwrap()],
            &BTreeMap::new(),
            Duration::from_secs(1),
            true,
        )
        .unwrap();
        let endpoints = resolver.resolve("[::1]").await.unwrap();
        assert_eq!(endpoints[0].address, "[::1]:5269".parse().unwrap());
        let endpoints = resolver.resolve("127.0.0.1").await.unwrap();
        assert_eq!(endpoints[0].address, "127.0.0.1:5269".parse().unwrap());
        assert!(!endpoints[0].direct_tls);
    }

    #[tokio::test]
    async fn a_private_ip_literal_domain_is_refused_unless_allowed() {
        let resolver = Resolver::new(
            &["127.0.0.1:9".parse().unwrap()],
            &BTreeMap::new(),
            Duration::from_secs(1),
            false,
        )
        .unwrap();
        for private in [
            "127.0.0.1",
            "10.0.0.1",
            "[::1]",
            "[fe80::1]",
            "169.254.169.254",
        ] {
            let got = resolver.resolve(private).await;
            assert!(
                matches!(got, Err(ResolveError::NotPublic(_))),
                "{private}: {got:?}"
            );
        }
        let endpoints = resolver.resolve("8.8.8.8").await.unwrap();
        assert_eq!(endpoints[0].address, "8.8.8.8:5269".parse().unwrap());
    }

    #[tokio::test]
    async fn a_routed_private_address_is_used_whatever_the_switch() {
        let routes = BTreeMap::from([("a.example".to_owned(), "127.0.0.1:5999".to_owned())]);
        let resolver = Resolver::new(
            &["127.0.0.1:9".parse().unwrap()],
            &routes,
            Duration::from_secs(1),
            false,
        )
        .unwrap();
        let endpoints = resolver.resolve("a.example").await.unwrap();
        assert_eq!(endpoints[0].address, "127.0.0.1:5999".parse().unwrap());
    }

    #[tokio::test]
    async fn an_invalid_domain_is_refused_before_any_lookup() {
        let resolver = Resolver::new(
            &["127.0.0.1:9".parse().unwrap()],
            &BTreeMap::new(),
            Duration::from_secs(1),
            true,
        )
        .unwrap();
        for bad in ["", ".", "bad domain", "::1"] {
            let got = resolver.resolve(bad).await;
            assert!(
                matches!(got, Err(ResolveError::InvalidDomain(_))),
                "{bad}: {got:?}"
            );
        }
    }

    #[test]
    fn domains_are_lowercased_without_the_trailing_dot() {
        assert_eq!(normalize("Example.ORG."), "example.org");
        assert_eq!(normalize("example.org"), "example.org");
    }
}
