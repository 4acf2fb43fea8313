//! `rempart s2s check <domain>`: what resolution, connection, TLS, the peer's certificate and
//! authentication find, step by step — federation problems are the most common support
//! question.

use std::time::Duration;

use crate::config::Config;
use crate::net::tls::TlsContext;
use crate::s2s::authenticate::{self, External};
use crate::s2s::S2s;

/// Walks through opening and authenticating a link from `local` to `remote`, printing each
/// step; returns whether every step succeeded.
pub async fn check(config: &Config, local: &str, remote: &str) -> bool {
    println!("checking the link {local} -> {remote}");
    let s2s = match TlsContext::load(config).map(|tls| {
        S2s::new(
            config.s2s.clone(),
            crate::reader_limits(config),
            &config.server.hosts,
            &tls.resolver,
        )
    }) {
        Ok(Ok(s2s)) => s2s,
        Ok(Err(error)) => {
            println!("  FAILED: {error}");
            return false;
        }
        Err(error) => {
            println!("  FAILED: TLS: {error}");
            return false;
        }
    };
    println!("  policy: {:?}", s2s.policy(remote));
    let within = Duration::from_secs(config.s2s.connect_timeout_secs);
    let mut report = |step: &str, detail: String| println!("  {step}: {detail}");
    let walk = async {
        let stream = s2s.open_link(local, remote, &mut report).await?;
        authenticate::judge_certificate(&s2s, &stream, remote, &mut report)?;
        authenticate::sasl_external(stream, local, remote, &mut report).await
    };
    match tokio::time::timeout(within, walk).await {
        Ok(Ok(External::Succeeded(mut stream))) => {
            let _ = stream.writer.close().await;
            true
        }
        Ok(Ok(External::NotDone(mut stream))) => {
            let _ = stream.writer.close().await;
            println!("  authenticate: Server Dialback (XEP-0220) would follow; the peer verifies our key with the running server, so `rempart` must be serving {local} for it to succeed");
            true
        }
        Ok(Err(error)) => {
            println!("  FAILED: {error}");
            false
        }
        Err(_) => {
            println!("  FAILED: no answer within {} s", within.as_secs());
            false
        }
    }
}
