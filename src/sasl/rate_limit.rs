//! Authentication throttling. An attempt is counted when it starts, not when it fails, so
//! that parallel connections share one budget instead of getting one each.
//!
//! Two counters, chosen so that a stranger cannot lock the owner out of an account:
//! - per (address, account): a few attempts run at once, then each further one waits an
//!   exponentially growing delay; other addresses are not affected;
//! - per address (IPv6 per network prefix): a budget of failed attempts per window, whatever
//!   the account; past it the address is refused until the window ends.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::config::AuthConfig;

/// Why an attempt was refused before it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Throttled {
    /// The address used up its budget of failures for the current window.
    #[error("too many failed authentications from this address")]
    Address,
    /// This account was guessed at from this address too often; the next attempt must wait.
    #[error("too many recent attempts on this account from this address")]
    Account,
}

/// The limits, read once from `[auth]`.
#[derive(Debug, Clone)]
struct Limits {
    failures_before_delay: u32,
    first_delay: Duration,
    max_delay: Duration,
    pair_reset: Duration,
    max_per_address: u32,
    address_window: Duration,
    ipv6_prefix_len: u8,
    max_tracked: usize,
}

/// Attempts from one address in the current window.
#[derive(Debug, Clone, Copy)]
struct AddressRecord {
    attempts: u32,
    window_start: Instant,
}

/// Attempts on one account from one address since the last success.
#[derive(Debug, Clone, Copy)]
struct PairRecord {
    attempts: u32,
    last_attempt: Instant,
}

/// An (address, account) pair; the account is kept as a keyed hash, so that long claimed
/// names cost no memory.
type PairKey = (IpAddr, u64);

#[derive(Debug, Default)]
struct Counters {
    addresses: HashMap<IpAddr, AddressRecord>,
    pairs: HashMap<PairKey, PairRecord>,
}

/// A started attempt, to hand back when it succeeded or did not really happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptTicket {
    pair: PairKey,
}

/// The server's authentication throttle, shared by every client connection.
#[derive(Debug)]
pub struct AuthThrottle {
    limits: Limits,
    account_hasher: RandomState,
    counters: Mutex<Counters>,
}

impl AuthThrottle {
    /// A throttle with the limits of `[auth]`.
    pub fn new(config: &AuthConfig) -> AuthThrottle {
        AuthThrottle {
            limits: Limits {
                failures_before_delay: config.failures_before_delay,
                first_delay: Duration::from_secs(config.failure_delay_secs),
                max_delay: Duration::from_secs(config.max_failure_delay_secs),
                pair_reset: Duration::from_secs(config.failure_reset_secs),
                max_per_address: config.max_failures_per_address,
                address_window: Duration::from_secs(config.failure_window_secs),
                ipv6_prefix_len: config.ipv6_prefix_len,
                max_tracked: config.max_tracked_clients,
            },
            account_hasher: RandomState::new(),
            counters: Mutex::new(Counters::default()),
        }
    }

    /// Counts an attempt on `account` from `peer` before the exchange runs, or refuses it.
    pub fn begin(&self, peer: IpAddr, account: &str) -> Result<AttemptTicket, Throttled> {
        self.begin_at(peer, account, Instant::now())
    }

    /// The attempt succeeded: it no longer counts, and the account's delay from this address
    /// is lifted.
    pub fn succeeded(&self, ticket: &AttemptTicket) {
        let mut counters = self.lock();
        Self::refund_address(&mut counters, ticket.pair.0);
        counters.pairs.remove(&ticket.pair);
    }

    /// The attempt never judged a password (the server failed): it no longer counts.
    pub fn withdrawn(&self, ticket: &AttemptTicket) {
        let mut counters = self.lock();
        Self::refund_address(&mut counters, ticket.pair.0);
        if let Some(pair) = counters.pairs.get_mut(&ticket.pair) {
            pair.attempts = pair.attempts.saturating_sub(1);
        }
    }

    fn begin_at(
        &self,
        peer: IpAddr,
        account: &str,
        now: Instant,
    ) -> Result<AttemptTicket, Throttled> {
        let address = network_of(peer, self.limits.ipv6_prefix_len);
        let pair_key = (address, self.account_hasher.hash_one(account));
        let mut counters = self.lock();
        let address_record =
            counters.addresses.get(&address).copied().filter(|r| {
                now.saturating_duration_since(r.window_start) < self.limits.address_window
            });
        if address_record.is_some_and(|r| r.attempts >= self.limits.max_per_address) {
            return Err(Throttled::Address);
        }
        let pair_record = counters
            .pairs
            .get(&pair_key)
            .copied()
            .filter(|r| now.saturating_duration_since(r.last_attempt) < self.limits.pair_reset);
        if let Some(pair) = pair_record {
            let wait = self.delay_after(pair.attempts);
            if now.saturating_duration_since(pair.last_attempt) < wait {
                return Err(Throttled::Account);
            }
        }
        let address_record = address_record.unwrap_or(AddressRecord {
            attempts: 0,
            window_start: now,
        });
        let pair_attempts = pair_record.map_or(0, |r| r.attempts);
        self.make_room(&mut counters, now);
        counters.addresses.insert(
            address,
            AddressRecord {
                attempts: address_record.attempts + 1,
                ..address_record
            },
        );
        counters.pairs.insert(
            pair_key,
            PairRecord {
                attempts: pair_attempts + 1,
                last_attempt: now,
            },
        );
        Ok(AttemptTicket { pair: pair_key })
    }

    /// How long the next attempt waits after `attempts` unsuccessful ones.
    fn delay_after(&self, attempts: u32) -> Duration {
        let Some(over) = attempts.checked_sub(self.limits.failures_before_delay) else {
            return Duration::ZERO;
        };
        let factor = 1u32.checked_shl(over).unwrap_or(u32::MAX);
        self.limits
            .first_delay
            .saturating_mul(factor)
            .min(self.limits.max_delay)
    }

    /// Forgets expired records, then the stalest eighth, so that the maps stay bounded and
    /// a full map is not scanned on every attempt.
    fn make_room(&self, counters: &mut Counters, now: Instant) {
        let limits = &self.limits;
        if counters.addresses.len() >= limits.max_tracked {
            counters.addresses.retain(|_, r| {
                now.saturating_duration_since(r.window_start) < limits.address_window
            });
            keep_freshest(&mut counters.addresses, limits.max_tracked, |r| {
                r.window_start
            });
        }
        if counters.pairs.len() >= limits.max_tracked {
            counters
                .pairs
                .retain(|_, r| now.saturating_duration_since(r.last_attempt) < limits.pair_reset);
            keep_freshest(&mut counters.pairs, limits.max_tracked, |r| r.last_attempt);
        }
    }

    fn refund_address(counters: &mut Counters, address: IpAddr) {
        if let Some(record) = counters.addresses.get_mut(&address) {
            record.attempts = record.attempts.saturating_sub(1);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// When `map` holds `max` entries or more, keeps only the freshest seven eighths of `max`
/// (at least one slot is freed).
fn keep_freshest<K: Eq + Hash, V>(
    map: &mut HashMap<K, V>,
    max: usize,
    stamp: impl Fn(&V) -> Instant,
) {
    if map.len() < max {
        return;
    }
    let keep = max.saturating_sub(max / 8 + 1);
    let mut stamps: Vec<Instant> = map.values().map(&stamp).collect();
    let drop = stamps.len() - keep;
    let (_, cutoff, _) = stamps.select_nth_unstable(drop - 1);
    let cutoff = *cutoff;
    map.retain(|_, value| stamp(value) > cutoff);
}

/// The unit an address is counted in: IPv4 addresses one by one, IPv6 per network prefix
/// (one site usually holds a whole /64). IPv4-mapped IPv6 addresses count as IPv4.
fn network_of(peer: IpAddr, ipv6_prefix_len: u8) -> IpAddr {
    match peer {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(ipv6_prefix_len.min(128)))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(edit: impl FnOnce(&mut AuthConfig)) -> AuthThrottle {
        let mut config = AuthConfig::default();
        edit(&mut config);
        AuthThrottle::new(&config)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn attempts_count_when_they_start_so_parallel_ones_share_the_budget() {
        let throttle = throttle(|c| c.failures_before_delay = 2);
        let now = Instant::now();
        let peer = ip("192.0.2.1");
        assert!(throttle.begin_at(peer, "alice@x", now).is_ok());
        assert!(throttle.begin_at(peer, "alice@x", now).is_ok());
        assert_eq!(
            throttle.begin_at(peer, "alice@x", now),
            Err(Throttled::Account)
        );
    }

    #[test]
    fn delay_doubles_per_attempt_and_is_capped() {
        let throttle = throttle(|c| {
            c.failures_before_delay = 1;
            c.failure_delay_secs = 2;
            c.max_failure_delay_secs = 5;
        });
        let peer = ip("192.0.2.1");
        let start = Instant::now();
        assert!(throttle.begin_at(peer, "a@x", start).is_ok());
        let after_first = start + Duration::from_secs(2);
        assert!(throttle.begin_at(peer, "a@x", after_first).is_ok());
        let too_soon = after_first + Duration::from_secs(3);
        assert_eq!(
            throttle.begin_at(peer, "a@x", too_soon),
            Err(Throttled::Account)
        );
        let after_second = after_first + Duration::from_secs(4);
        assert!(throttle.begin_at(peer, "a@x", after_second).is_ok());
        assert_eq!(throttle.delay_after(10), Duration::from_secs(5));
        assert_eq!(throttle.delay_after(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn a_delayed_account_is_not_delayed_from_another_address() {
        let throttle = throttle(|c| c.failures_before_delay = 1);
        let now = Instant::now();
        assert!(throttle.begin_at(ip("192.0.2.1"), "a@x", now).is_ok());
        assert!(throttle.begin_at(ip("192.0.2.1"), "a@x", now).is_err());
        assert!(throttle.begin_at(ip("192.0.2.2"), "a@x", now).is_ok());
    }

    #[test]
    fn success_refunds_the_attempt_and_lifts_the_delay() {
        let throttle = throttle(|c| {
            c.failures_before_delay = 1;
            c.max_failures_per_address = 1;
        });
        let now = Instant::now();
        let peer = ip("192.0.2.1");
        for _ in 0..5 {
            let ticket = throttle.begin_at(peer, "a@x", now).expect("allowed");
            throttle.succeeded(&ticket);
        }
    }

    #[test]
    fn address_budget_covers_every_account_until_the_window_ends() {
        let throttle = throttle(|c| {
            c.max_failures_per_address = 2;
            c.failure_window_secs = 60;
        });
        let now = Instant::now();
        let peer = ip("192.0.2.1");
        assert!(throttle.begin_at(peer, "a@x", now).is_ok());
        assert!(throttle.begin_at(peer, "b@x", now).is_ok());
        assert_eq!(throttle.begin_at(peer, "c@x", now), Err(Throttled::Address));
        assert!(throttle.begin_at(ip("192.0.2.2"), "c@x", now).is_ok());
        let later = now + Duration::from_secs(60);
        assert!(throttle.begin_at(peer, "c@x", later).is_ok());
    }

    #[test]
    fn ipv6_addresses_of_one_network_share_a_budget() {
        let throttle = throttle(|c| c.max_failures_per_address = 1);
        let now = Instant::now();
        assert!(throttle.begin_at(ip("2001:db8::1"), "a@x", now).is_ok());
        assert_eq!(
            throttle.begin_at(ip("2001:db8::ffff:2"), "b@x", now),
            Err(Throttled::Address)
        );
        assert!(throttle.begin_at(ip("2001:db8:0:1::1"), "b@x", now).is_ok());
        assert_eq!(
            network_of(ip("::ffff:192.0.2.7"), 64),
            ip("192.0.2.7"),
            "IPv4-mapped addresses count as IPv4"
        );
    }

    #[test]
    fn tracked_clients_stay_bounded() {
        let throttle = throttle(|c| c.max_tracked_clients = 3);
        let now = Instant::now();
        for n in 0..10u8 {
            let peer = IpAddr::from([192, 0, 2, n]);
            assert!(throttle.begin_at(peer, "a@x", now).is_ok());
        }
        let counters = throttle.lock();
        assert!(counters.addresses.len() <= 3);
        assert!(counters.pairs.len() <= 3);
    }
}
