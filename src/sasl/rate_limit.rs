//! Failed-authentication counters per address and per account, so that passwords cannot be
//! guessed at line speed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before expired ones are swept.
const SWEEP_THRESHOLD: usize = 10_000;

/// Counts failures per key within a window.
#[derive(Debug)]
pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    counters: Mutex<HashMap<String, (u32, Instant)>>,
}

impl FailureLimiter {
    /// At most `max_failures` per key within `window`.
    pub fn new(max_failures: u32, window: Duration) -> FailureLimiter {
        FailureLimiter {
            max_failures,
            window,
            counters: Mutex::new(HashMap::new()),
        }
    }

    /// True when the key used up its failures in the current window.
    pub fn is_blocked(&self, key: &str) -> bool {
        let now = Instant::now();
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters
            .get(key)
            .is_some_and(|(count, since)| *count >= self.max_failures && now - *since < self.window)
    }

    /// Records one failure for the key.
    pub fn record_failure(&self, key: &str) {
        let now = Instant::now();
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if counters.len() >= SWEEP_THRESHOLD {
            let window = self.window;
            counters.retain(|_, (_, since)| now - *since < window);
        }
        let entry = counters.entry(key.to_owned()).or_insert((0, now));
        if now - entry.1 >= self.window {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    /// Forgets the key's failures after a success.
    pub fn clear(&self, key: &str) {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_configured_failures_and_clears_on_success() {
        let limiter = FailureLimiter::new(2, Duration::from_secs(60));
        limiter.record_failure("ip:127.0.0.1");
        assert!(!limiter.is_blocked("ip:127.0.0.1"));
        limiter.record_failure("ip:127.0.0.1");
        assert!(limiter.is_blocked("ip:127.0.0.1"));
        assert!(!limiter.is_blocked("ip:127.0.0.2"));
        limiter.clear("ip:127.0.0.1");
        assert!(!limiter.is_blocked("ip:127.0.0.1"));
    }
}
