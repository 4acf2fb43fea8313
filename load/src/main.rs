//! `rempart-load`: simulated XMPP users against any server on loopback — STARTTLS, SCRAM,
//! roster, presence, then idle sessions, a login storm or timed one-to-one messages — with
//! login rate, delivered messages per second, delivery latency, errors, and the server's RSS
//! and CPU time read from `/proc/<pid>`.

mod conn;
mod procfs;
mod run;
mod scram;
mod xml;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use serde::Serialize;

use crate::procfs::Proc;
use crate::run::{
    ErrorReport, IdleReport, LoginReport, Population, Ramp, RegisterReport, Shared, StepReport,
};
use crate::scram::{Mechanism, SaltedCache};

/// What the simulated users do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// Create the accounts by in-band registration (XEP-0077), for servers that allow it.
    Register,
    /// Log everyone in at a moderate pace, hold the sessions idle, report RSS per session.
    Idle,
    /// Log everyone in as fast as the concurrency allows; report logins per second.
    Storm,
    /// Log everyone in, then user 2k and 2k+1 message each other at each rate in turn.
    Messages,
}

/// Load generator for XMPP servers (c2s over STARTTLS, SCRAM without channel binding).
#[derive(Debug, Parser)]
#[command(name = "rempart-load", version)]
struct Args {
    /// Scenario to run.
    #[arg(long, value_enum)]
    mode: Mode,
    /// The server's c2s (STARTTLS) address.
    #[arg(long, default_value = "127.0.0.1:5222")]
    server: SocketAddr,
    /// XMPP domain of the accounts.
    #[arg(long, default_value = "localhost")]
    domain: String,
    /// Number of simulated users.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Index of the first user; users are <prefix><first>..<prefix><first+users-1>.
    #[arg(long, default_value_t = 1)]
    first: usize,
    /// Localpart prefix.
    #[arg(long, default_value = "user")]
    prefix: String,
    /// Password of every account.
    #[arg(long, default_value = "load-test-password")]
    password: String,
    /// SASL mechanism (SCRAM-SHA-1, SCRAM-SHA-256 or SCRAM-SHA-512; gs2 header `n,,`).
    #[arg(long, default_value = "SCRAM-SHA-256")]
    mechanism: String,
    /// Spread connections over this many source addresses, 127.0.0.2 upwards (0: kernel's choice).
    #[arg(long, default_value_t = 4)]
    sources: u8,
    /// Logins (or registrations) in flight at once.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Start at most this many logins per second (default: as fast as the concurrency allows).
    #[arg(long)]
    login_rate: Option<f64>,
    /// Seconds one login may take before it counts as failed.
    #[arg(long, default_value_t = 30.0)]
    login_timeout: f64,
    /// Idle: seconds to wait with all sessions up before reading the server's RSS.
    #[arg(long, default_value_t = 10.0)]
    settle: f64,
    /// Idle and storm: seconds to keep the sessions open after measuring.
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
    /// Messages: offered rates in messages/s over all users, one step each, in order.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    rates: Vec<f64>,
    /// Messages: seconds of sending per rate step.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Messages: each user sends this many messages back to back at each tick (bursts);
    /// the rate per second stays the same.
    #[arg(long, default_value_t = 1)]
    burst: u32,
    /// Messages: bytes of padding in each body (besides the step and timestamp).
    #[arg(long, default_value_t = 64)]
    body_size: usize,
    /// Messages: a step is sustained only with p99 latency under this.
    #[arg(long, default_value_t = 100.0)]
    p99_limit_ms: f64,
    /// Messages: longest wait after a step for its last messages.
    #[arg(long, default_value_t = 3.0)]
    drain: f64,
    /// Messages: run every step even after one is not sustained.
    #[arg(long)]
    keep_going: bool,
    /// Seconds to wait after the last login before the first step.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// The server's process id, to read its RSS and CPU time from /proc.
    #[arg(long)]
    pid: Option<u32>,
    /// File of salted passwords computed by earlier runs (created if missing).
    #[arg(long)]
    scram_cache: Option<PathBuf>,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The whole run stops after this many seconds, whatever state it is in.
    #[arg(long, default_value_t = 900.0)]
    max_secs: f64,
}

/// Server process readings for the report.
#[derive(Debug, Serialize)]
struct ServerReading {
    pid: u32,
    rss_kb: u64,
    cpu_secs: f64,
}

/// Everything one run measured.
#[derive(Debug, Serialize)]
struct Report {
    mode: Mode,
    server: String,
    users: usize,
    mechanism: &'static str,
    tls: Option<String>,
    tool_cpus: usize,
    register: Option<RegisterReport>,
    login: Option<LoginReport>,
    idle: Option<IdleReport>,
    steps: Vec<StepReport>,
    max_sustained_rate: Option<f64>,
    errors: Option<ErrorReport>,
    server_start: Option<ServerReading>,
    server_end: Option<ServerReading>,
    tool_saturated: bool,
    elapsed_secs: f64,
}

fn reading(pid: Option<u32>) -> Option<ServerReading> {
    let pid = pid?;
    Proc::Pid(pid).sample().map(|s| ServerReading {
        pid,
        rss_kb: s.rss_kb,
        cpu_secs: s.cpu_secs,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.users == 0 {
        bail!("--users must be at least 1");
    }
    if args.sources > 250 {
        bail!("--sources must be at most 250 (127.0.0.2 to 127.0.0.251)");
    }
    if args.rates.iter().any(|r| *r <= 0.0) {
        bail!("--rates must be positive");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(procfs::allowed_cpus())
        .enable_all()
        .build()?;
    let max = Duration::from_secs_f64(args.max_secs);
    let outcome = runtime.block_on(async { tokio::time::timeout(max, run(args)).await });
    // Sessions still open are dropped with the runtime; the kernel closes their sockets.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(result) => result,
        Err(_) => bail!("stopped after --max-secs {}", max.as_secs_f64()),
    }
}

async fn run(args: Args) -> Result<()> {
    let started = std::time::Instant::now();
    let mechanism = Mechanism::parse(&args.mechanism)?;
    let target = Arc::new(conn::Target {
        addr: args.server,
        domain: args.domain.clone(),
        mechanism,
        tls: conn::tls_connector()?,
        cache: SaltedCache::load(args.scram_cache.as_deref())?,
        tls_summary: OnceLock::new(),
    });
    let sources = (0..args.sources)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i)))
        .collect();
    let population = Population {
        users: (args.first..args.first + args.users)
            .map(|i| format!("{}{i}", args.prefix))
            .collect(),
        password: args.password.clone(),
        sources,
        concurrency: args.concurrency,
        login_rate: args.login_rate,
        login_timeout: Duration::from_secs_f64(args.login_timeout),
    };
    let server = args.pid.map(Proc::Pid);
    if let (Some(pid), None) = (args.pid, server.and_then(Proc::sample)) {
        bail!("cannot read /proc/{pid}");
    }
    let server_start = reading(args.pid);
    println!(
        "rempart-load: {:?}, {} users on {} ({}), {} source address(es) (0: kernel's choice), load generator on {} CPU(s)",
        args.mode,
        args.users,
        args.server,
        mechanism.name(),
        args.sources,
        procfs::allowed_cpus()
    );
    let mut report = Report {
        mode: args.mode,
        server: args.server.to_string(),
        users: args.users,
        mechanism: mechanism.name(),
        tls: None,
        tool_cpus: procfs::allowed_cpus(),
        register: None,
        login: None,
        idle: None,
        steps: Vec::new(),
        max_sustained_rate: None,
        errors: None,
        server_start,
        server_end: None,
        tool_saturated: false,
        elapsed_secs: 0.0,
    };
    if args.mode == Mode::Register {
        let registered = run::register_all(target.clone(), &population).await;
        println!(
            "registered {} new, {} existing, {} failed in {:.1} s{}",
            registered.created,
            registered.existed,
            registered.failed,
            registered.secs,
            registered
                .first_failure
                .as_deref()
                .map(|f| format!(" (first failure: {f})"))
                .unwrap_or_default()
        );
        report.register = Some(registered);
    } else {
        let steps = if args.mode == Mode::Messages {
            args.rates.len()
        } else {
            0
        };
        let shared = Shared::new(steps);
        let before = server.and_then(Proc::sample);
        let (login, fleet) = run::login_all(
            target.clone(),
            &population,
            shared.clone(),
            server,
            args.body_size,
        )
        .await;
        println!(
            "logins: {} ok of {} in {:.2} s = {:.0}/s; login time p50 {:.1} ms p95 {:.1} ms p99 {:.1} ms; \
             server cpu {}; tool cpu {:.2}{}",
            login.ok,
            login.attempted,
            login.secs,
            login.per_sec,
            login.p50_ms,
            login.p95_ms,
            login.p99_ms,
            login
                .server_cpu_ms_per_login
                .map(|c| format!("{c:.2} ms/login"))
                .unwrap_or_else(|| "n/a".into()),
            login.tool_cpu,
            if login.tool_saturated { " (LOAD GENERATOR SATURATED)" } else { "" }
        );
        if !login.failed.is_empty() {
            println!(
                "login failures: {:?}; first: {}",
                login.failed,
                login.first_failure.as_deref().unwrap_or("")
            );
        }
        report.tool_saturated |= login.tool_saturated;
        report.login = Some(login);
        match args.mode {
            Mode::Idle => {
                let idle =
                    run::measure_idle(&fleet, before, Duration::from_secs_f64(args.settle), server)
                        .await;
                if let Some(idle) = &idle {
                    println!(
                        "idle: {} sessions, server RSS {} KiB -> {} KiB = {:.1} KiB per session; idle server cpu {:.3}",
                        idle.sessions,
                        idle.rss_before_kb,
                        idle.rss_after_kb,
                        idle.rss_per_session_kb,
                        idle.idle_server_cpu
                    );
                }
                report.idle = idle;
                tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
            }
            Mode::Storm => tokio::time::sleep(Duration::from_secs_f64(args.hold)).await,
            Mode::Messages => {
                tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
                let ramp = Ramp {
                    rates: args.rates.clone(),
                    secs: args.duration,
                    burst: args.burst.max(1),
                    drain: Duration::from_secs_f64(args.drain),
                    p99_limit_ms: args.p99_limit_ms,
                    keep_going: args.keep_going,
                };
                let steps = run::ramp(&fleet, &ramp, fleet.len(), server).await;
                report.max_sustained_rate = steps
                    .iter()
                    .filter(|s| s.sustained)
                    .map(|s| s.rate)
                    .fold(None, |max: Option<f64>, r| {
                        Some(max.map_or(r, |m| m.max(r)))
                    });
                report.tool_saturated |= steps.iter().any(|s| s.tool_saturated);
                report.steps = steps;
                match report.max_sustained_rate {
                    Some(rate) => println!("max sustained rate: {rate:.0} messages/s"),
                    None => println!("no rate step was sustained"),
                }
            }
            Mode::Register => {}
        }
        let errors = shared.error_report();
        println!(
            "errors after login: {} stanza errors, {} streams closed, {} read, {} write; {} pings answered{}",
            errors.stanza_errors,
            errors.streams_closed,
            errors.read_errors,
            errors.write_errors,
            errors.pings_answered,
            errors
                .first
                .as_deref()
                .map(|f| format!(" (first: {f})"))
                .unwrap_or_default()
        );
        report.errors = Some(errors);
        fleet.stop().await;
    }
    report.tls = target.tls_summary.get().cloned();
    if let Some(tls) = &report.tls {
        println!("tls: {tls}");
    }
    report.server_end = reading(args.pid);
    if report.tool_saturated {
        println!(
            "WARNING: the load generator was CPU-bound (>= 90% of its {} CPU(s)); \
             the server figures above are lower bounds",
            procfs::allowed_cpus()
        );
    }
    target.cache.save()?;
    if args.scram_cache.is_some() {
        println!("scram cache: {} salted passwords", target.cache.len());
    }
    report.elapsed_secs = started.elapsed().as_secs_f64();
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
