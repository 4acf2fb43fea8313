//! `rempart s2s check <domain>`: what resolution, connection, TLS and the peer's stream
//! offer, step by step — federation problems are the most common support question.

use std::time::Duration;

use crate::config::Config;
use crate::s2s::connect::open_observed;

/// Walks through opening a link from `local` to `remote`, printing each step; returns
/// whether every step succeeded.
pub async fn check(config: &Config, local: &str, remote: &str) -> bool {
    let limits = crate::reader_limits(config);
    println!("checking the link {local} -> {remote}");
    let Some(address) = config.s2s.routes.get(remote).copied() else {
        println!("  resolve: FAILED — no route for {remote} in [s2s.routes] (DNS SRV is not supported yet)");
        return false;
    };
    println!("  resolve: {remote} is routed to {address}");
    let within = Duration::from_secs(config.s2s.connect_timeout_secs);
    let mut report = |step: &str, detail: String| println!("  {step}: {detail}");
    match open_observed(address, local, remote, limits, within, &mut report).await {
        Ok(mut stream) => {
            let _ = stream.writer.close().await;
            println!("  authenticate: Server Dialback (XEP-0220) is run by the server itself, which must be running for the peer to verify its key");
            true
        }
        Err(error) => {
            println!("  FAILED: {error}");
            false
        }
    }
}
