//! The simulated users and the scenarios: registration, idle sessions, login storm, and
//! one-to-one messaging at a stepped rate.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rempart_xep::element::escape;
use rempart_xep::{ns, Element};
use serde::Serialize;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{sleep, sleep_until, timeout};

use crate::conn::{self, Registered, SessionReader, SessionWriter, Stage, StageError, Target};
use crate::procfs::{self, Proc, ProcSample};
use crate::xml::Incoming;

/// Share of its allowed CPUs above which the load generator counts as the bottleneck.
const SATURATED: f64 = 0.9;

/// Who logs in, from where, and how fast.
pub struct Population {
    /// Localparts, in order; user `i` messages user `i ^ 1`.
    pub users: Vec<String>,
    /// The password of every account.
    pub password: String,
    /// Source addresses, used round-robin (empty: let the kernel choose).
    pub sources: Vec<IpAddr>,
    /// Logins in flight at once.
    pub concurrency: usize,
    /// Logins started per second, if paced.
    pub login_rate: Option<f64>,
    /// Longest a single login may take.
    pub login_timeout: Duration,
}

/// What every session is told to do; drivers watch it.
#[derive(Clone, Debug)]
pub enum Phase {
    /// Stay connected, answer pings.
    Wait,
    /// Send `burst` messages to the partner every `interval`, from `start`.
    Send {
        /// Index of the rate step, carried in each message.
        step: usize,
        /// Time between two bursts of one user.
        interval: Duration,
        /// Messages per burst.
        burst: u32,
        /// When the step begins.
        start: tokio::time::Instant,
    },
    /// Close the stream and stop.
    Stop,
}

/// Counters of one rate step.
#[derive(Default)]
pub struct StepCounters {
    sent: AtomicU64,
    received: AtomicU64,
    max_lag_us: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
}

/// Errors seen after login, counted across all sessions.
#[derive(Default)]
struct ErrorCounters {
    stanza_errors: AtomicU64,
    stream_closed: AtomicU64,
    read_errors: AtomicU64,
    write_errors: AtomicU64,
    foreign_bodies: AtomicU64,
    first: Mutex<Option<String>>,
}

impl ErrorCounters {
    fn total(&self) -> u64 {
        self.stanza_errors.load(Ordering::Relaxed)
            + self.stream_closed.load(Ordering::Relaxed)
            + self.read_errors.load(Ordering::Relaxed)
            + self.write_errors.load(Ordering::Relaxed)
    }

    fn note(&self, what: String) {
        if let Ok(mut first) = self.first.lock() {
            first.get_or_insert(what);
        }
    }
}

/// State shared by all sessions of one run.
pub struct Shared {
    epoch: Instant,
    stopping: AtomicBool,
    errors: ErrorCounters,
    steps: Vec<StepCounters>,
    pings: AtomicU64,
}

impl Shared {
    /// State for a run with `steps` rate steps.
    pub fn new(steps: usize) -> Arc<Shared> {
        Arc::new(Shared {
            epoch: Instant::now(),
            stopping: AtomicBool::new(false),
            errors: ErrorCounters::default(),
            steps: (0..steps).map(|_| StepCounters::default()).collect(),
            pings: AtomicU64::new(0),
        })
    }

    fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }

    fn handle(&self, element: &Element, pongs: &mpsc::Sender<String>) {
        match element.name() {
            "message" => {
                if element.get_attr("type") == Some("error") {
                    self.errors.stanza_errors.fetch_add(1, Ordering::Relaxed);
                    self.errors
                        .note(format!("message error: {}", element.to_xml()));
                    return;
                }
                let Some(body) = element.get_child("body", ns::CLIENT) else {
                    return;
                };
                let text = body.text_content();
                let mut parts = text.split(' ');
                let step = parts.next().and_then(|s| s.parse::<usize>().ok());
                let sent_at = parts.next().and_then(|s| s.parse::<u64>().ok());
                match (step.and_then(|s| self.steps.get(s)), sent_at) {
                    (Some(counters), Some(sent_at)) => {
                        let latency = self
                            .micros(Instant::now())
                            .saturating_sub(sent_at)
                            .min(u64::from(u32::MAX)) as u32;
                        if let Ok(mut latencies) = counters.latencies_us.lock() {
                            latencies.push(latency);
                        }
                        counters.received.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        self.errors.foreign_bodies.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            "iq" if element.get_attr("type") == Some("get")
                && element.has_child("ping", ns::PING) =>
            {
                let id = escape(element.get_attr("id").unwrap_or(""));
                let to = element
                    .get_attr("from")
                    .map(|f| format!(" to='{}'", escape(f)))
                    .unwrap_or_default();
                let _ = pongs.try_send(format!("<iq type='result' id='{id}'{to}/>"));
                self.pings.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// Login figures of one run.
#[derive(Debug, Serialize)]
pub struct LoginReport {
    /// Logins attempted.
    pub attempted: usize,
    /// Logins that reached a bound session with roster and presence.
    pub ok: usize,
    /// Logins that failed, by stage.
    pub failed: BTreeMap<String, u64>,
    /// First failure, to explain the counts.
    pub first_failure: Option<String>,
    /// From the first connect to the last completed login.
    pub secs: f64,
    /// Completed logins per second over `secs`.
    pub per_sec: f64,
    /// Login duration percentiles, milliseconds.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Server CPU seconds spent during the logins.
    pub server_cpu_secs: Option<f64>,
    /// Server CPU milliseconds per completed login.
    pub server_cpu_ms_per_login: Option<f64>,
    /// Load generator CPU, in cores, during the logins.
    pub tool_cpu: f64,
    /// The load generator was CPU-bound: the figure is a lower bound for the server.
    pub tool_saturated: bool,
}

/// Registration figures of one run.
#[derive(Debug, Serialize)]
pub struct RegisterReport {
    /// New accounts.
    pub created: u64,
    /// Accounts that already existed.
    pub existed: u64,
    /// Registrations that failed.
    pub failed: u64,
    /// First failure.
    pub first_failure: Option<String>,
    /// Wall time.
    pub secs: f64,
}

/// Figures of one rate step.
#[derive(Debug, Serialize)]
pub struct StepReport {
    /// Offered rate, messages per second over all users.
    pub rate: f64,
    /// Messages per burst.
    pub burst: u32,
    /// Seconds of sending.
    pub secs: f64,
    /// Messages written.
    pub sent: u64,
    /// Messages received by their addressee (sent during this step).
    pub delivered: u64,
    /// Sent but not received by the end of the drain time.
    pub lost: u64,
    /// Delivered messages per second of the step.
    pub delivered_per_sec: f64,
    /// Delivery latency percentiles, milliseconds (delivered messages).
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest delivery.
    pub max_ms: f64,
    /// Latest write against its schedule (the sender falling behind), milliseconds.
    pub max_send_lag_ms: f64,
    /// Errors (stanza errors, closed streams, read/write failures) during the step.
    pub errors: u64,
    /// Server CPU seconds, sending plus drain.
    pub server_cpu_secs: Option<f64>,
    /// Server CPU milliseconds per delivered message.
    pub server_cpu_ms_per_msg: Option<f64>,
    /// Server RSS at the end of the step, KiB.
    pub server_rss_kb: Option<u64>,
    /// Load generator CPU, in cores, while sending.
    pub tool_cpu: f64,
    /// The load generator was CPU-bound during the step.
    pub tool_saturated: bool,
    /// Sent at the offered rate, delivered (≤ 0.1 % lost), no errors, p99 under the limit.
    pub sustained: bool,
}

/// Idle-session figures.
#[derive(Debug, Serialize)]
pub struct IdleReport {
    /// Sessions held.
    pub sessions: usize,
    /// Server RSS before the first login, KiB.
    pub rss_before_kb: u64,
    /// Server RSS with all sessions idle after settling, KiB.
    pub rss_after_kb: u64,
    /// Growth per session, KiB.
    pub rss_per_session_kb: f64,
    /// Server CPU over the settle time, in cores (idle cost).
    pub idle_server_cpu: f64,
}

/// Errors after login, for the report.
#[derive(Debug, Serialize)]
pub struct ErrorReport {
    /// `type='error'` messages received.
    pub stanza_errors: u64,
    /// Streams the server closed while the run went on.
    pub streams_closed: u64,
    /// Read failures.
    pub read_errors: u64,
    /// Write failures.
    pub write_errors: u64,
    /// Messages whose body this tool did not write.
    pub foreign_bodies: u64,
    /// Server pings answered.
    pub pings_answered: u64,
    /// First error seen.
    pub first: Option<String>,
}

impl Shared {
    /// Snapshot of the error counters.
    pub fn error_report(&self) -> ErrorReport {
        let e = &self.errors;
        ErrorReport {
            stanza_errors: e.stanza_errors.load(Ordering::Relaxed),
            streams_closed: e.stream_closed.load(Ordering::Relaxed),
            read_errors: e.read_errors.load(Ordering::Relaxed),
            write_errors: e.write_errors.load(Ordering::Relaxed),
            foreign_bodies: e.foreign_bodies.load(Ordering::Relaxed),
            pings_answered: self.pings.load(Ordering::Relaxed),
            first: e.first.lock().ok().and_then(|f| f.clone()),
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn cpu_between(before: Option<ProcSample>, after: Option<ProcSample>) -> Option<f64> {
    Some(after?.cpu_secs - before?.cpu_secs)
}

/// Sessions that are up, and the means to steer and stop them.
pub struct Fleet {
    phase: watch::Sender<Phase>,
    drivers: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Fleet {
    /// Sessions up.
    pub fn len(&self) -> usize {
        self.drivers.len()
    }

    /// Closes every stream and waits (bounded) for the drivers to finish.
    pub async fn stop(self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        let _ = self.phase.send(Phase::Stop);
        let all = async {
            for driver in self.drivers {
                let _ = driver.await;
            }
        };
        let _ = timeout(Duration::from_secs(10), all).await;
    }
}

/// Logs every user in (bounded concurrency, optional pacing); each session then runs a reader
/// task and a driver task until [`Fleet::stop`].
pub async fn login_all(
    target: Arc<Target>,
    population: &Population,
    shared: Arc<Shared>,
    server: Option<Proc>,
    body_size: usize,
) -> (LoginReport, Fleet) {
    let (phase_tx, _) = watch::channel(Phase::Wait);
    let pad: Arc<str> = "x".repeat(body_size).into();
    let semaphore = Arc::new(Semaphore::new(population.concurrency.max(1)));
    let server_before = server.and_then(Proc::sample);
    let tool_before = Proc::SelfProcess.sample();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    let domain = target.domain.clone();
    for (index, user) in population.users.iter().enumerate() {
        if let Some(rate) = population.login_rate {
            sleep_until((started + Duration::from_secs_f64(index as f64 / rate)).into()).await;
        }
        let Ok(permit) = semaphore.clone().acquire_owned().await else {
            break;
        };
        let target = target.clone();
        let shared = shared.clone();
        let user = user.clone();
        let password = population.password.clone();
        let source = (!population.sources.is_empty())
            .then(|| population.sources[index % population.sources.len()]);
        let partner = population
            .users
            .get(index ^ 1)
            .map(|p| format!("{p}@{domain}"));
        let phase = phase_tx.subscribe();
        let pad = pad.clone();
        let limit = population.login_timeout;
        tasks.spawn(async move {
            let begun = Instant::now();
            let result = match timeout(limit, conn::login(&target, &user, &password, source)).await
            {
                Ok(result) => result,
                Err(_) => Err(StageError {
                    stage: Stage::Timeout,
                    error: anyhow::anyhow!("login timed out after {limit:?}"),
                }),
            };
            drop(permit);
            let took = begun.elapsed();
            let done = Instant::now();
            let driver = result.map(|session| {
                let (pong_tx, pong_rx) = mpsc::channel(8);
                tokio::spawn(read_loop(session.reader, pong_tx, shared.clone()));
                tokio::spawn(drive(session.writer, pong_rx, phase, partner, shared, pad))
            });
            (driver, took, done)
        });
    }
    let mut durations = Vec::with_capacity(population.users.len());
    let mut failed: BTreeMap<String, u64> = BTreeMap::new();
    let mut first_failure = None;
    let mut drivers = Vec::with_capacity(population.users.len());
    let mut last_done = started;
    while let Some(joined) = tasks.join_next().await {
        let Ok((driver, took, done)) = joined else {
            *failed.entry("panic".into()).or_default() += 1;
            continue;
        };
        match driver {
            Ok(driver) => {
                drivers.push(driver);
                durations.push(took.as_micros().min(u128::from(u32::MAX)) as u32);
                last_done = last_done.max(done);
            }
            Err(error) => {
                *failed.entry(error.stage.to_string()).or_default() += 1;
                first_failure.get_or_insert_with(|| error.to_string());
            }
        }
    }
    let server_after = server.and_then(Proc::sample);
    let tool_after = Proc::SelfProcess.sample();
    durations.sort_unstable();
    let secs = last_done.duration_since(started).as_secs_f64();
    let ok = durations.len();
    let server_cpu_secs = cpu_between(server_before, server_after);
    let tool_cpu = match (tool_before, tool_after) {
        (Some(before), Some(after)) => procfs::cpu_share(&before, &after),
        _ => 0.0,
    };
    let report = LoginReport {
        attempted: population.users.len(),
        ok,
        failed,
        first_failure,
        secs,
        per_sec: if secs > 0.0 { ok as f64 / secs } else { 0.0 },
        p50_ms: percentile(&durations, 50.0),
        p95_ms: percentile(&durations, 95.0),
        p99_ms: percentile(&durations, 99.0),
        server_cpu_secs,
        server_cpu_ms_per_login: server_cpu_secs
            .filter(|_| ok > 0)
            .map(|cpu| cpu * 1000.0 / ok as f64),
        tool_cpu,
        tool_saturated: tool_cpu >= SATURATED * procfs::allowed_cpus() as f64,
    };
    (
        report,
        Fleet {
            phase: phase_tx,
            drivers,
            shared,
        },
    )
}

async fn read_loop(mut reader: SessionReader, pongs: mpsc::Sender<String>, shared: Arc<Shared>) {
    loop {
        match reader.next().await {
            Ok(Incoming::Element(element)) => shared.handle(&element, &pongs),
            Ok(Incoming::End) => {
                if !shared.stopping.load(Ordering::Relaxed) {
                    shared.errors.stream_closed.fetch_add(1, Ordering::Relaxed);
                    shared.errors.note("server closed a stream".into());
                }
                return;
            }
            Err(error) => {
                if !shared.stopping.load(Ordering::Relaxed) {
                    shared.errors.read_errors.fetch_add(1, Ordering::Relaxed);
                    shared.errors.note(format!("read: {error:#}"));
                }
                return;
            }
        }
    }
}

/// One user's outbound side: answers pings, sends messages while a step runs, closes at the end.
async fn drive(
    mut writer: SessionWriter,
    mut pongs: mpsc::Receiver<String>,
    mut phase: watch::Receiver<Phase>,
    partner: Option<String>,
    shared: Arc<Shared>,
    pad: Arc<str>,
) {
    let mut sequence: u64 = 0;
    let mut out = String::with_capacity(256);
    'phases: loop {
        let current = phase.borrow_and_update().clone();
        match current {
            Phase::Stop => break,
            Phase::Wait => {
                tokio::select! {
                    changed = phase.changed() => if changed.is_err() { break },
                    Some(pong) = pongs.recv() => {
                        if !write(&mut writer, &pong, &shared).await { break }
                    }
                }
            }
            Phase::Send {
                step,
                interval,
                burst,
                start,
            } => {
                let Some(to) = partner.as_deref() else {
                    if phase.changed().await.is_err() {
                        break;
                    }
                    continue;
                };
                let mut next = start + interval.mul_f64(rand::random::<f64>());
                loop {
                    tokio::select! {
                        biased;
                        changed = phase.changed() => {
                            if changed.is_err() { break 'phases }
                            continue 'phases;
                        }
                        Some(pong) = pongs.recv() => {
                            if !write(&mut writer, &pong, &shared).await { break 'phases }
                        }
                        () = sleep_until(next) => {
                            // Stamped when written; how late the write is against the schedule
                            // is kept apart (timer granularity, or a load generator or a server
                            // that cannot keep up), and a step that falls short of its offered
                            // rate does not count as sustained.
                            let now = Instant::now();
                            let stamp = shared.micros(now);
                            let lag = now.saturating_duration_since(next.into_std()).as_micros();
                            shared.steps[step]
                                .max_lag_us
                                .fetch_max(lag.min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
                            out.clear();
                            for _ in 0..burst {
                                sequence += 1;
                                let _ = write!(
                                    out,
                                    "<message to='{to}' type='chat' id='m{sequence}'><body>{step} {stamp} {pad}</body></message>"
                                );
                            }
                            if !write(&mut writer, &out, &shared).await { break 'phases }
                            shared.steps[step].sent.fetch_add(u64::from(burst), Ordering::Relaxed);
                            next += interval;
                        }
                    }
                }
            }
        }
    }
    let _ = timeout(Duration::from_secs(5), async {
        let _ = conn::send(&mut writer, "</stream:stream>").await;
        let _ = writer.shutdown().await;
    })
    .await;
}

async fn write(writer: &mut SessionWriter, xml: &str, shared: &Shared) -> bool {
    match conn::send(writer, xml).await {
        Ok(()) => true,
        Err(error) => {
            if !shared.stopping.load(Ordering::Relaxed) {
                shared.errors.write_errors.fetch_add(1, Ordering::Relaxed);
                shared.errors.note(format!("write: {error:#}"));
            }
            false
        }
    }
}

/// How the messaging ramp runs.
pub struct Ramp {
    /// Offered rates, messages per second over all users, in order.
    pub rates: Vec<f64>,
    /// Seconds of sending per step.
    pub secs: f64,
    /// Messages per burst.
    pub burst: u32,
    /// Longest wait after a step for its messages to arrive.
    pub drain: Duration,
    /// p99 limit for a step to count as sustained.
    pub p99_limit_ms: f64,
    /// Go on after a step that is not sustained.
    pub keep_going: bool,
}

/// Runs the rate steps over the fleet's sessions, all users sending to their partner.
pub async fn ramp(
    fleet: &Fleet,
    ramp: &Ramp,
    senders: usize,
    server: Option<Proc>,
) -> Vec<StepReport> {
    let shared = &fleet.shared;
    let mut reports = Vec::new();
    for (step, &rate) in ramp.rates.iter().enumerate() {
        let per_user = rate / senders.max(1) as f64;
        let interval = Duration::from_secs_f64(f64::from(ramp.burst) / per_user);
        let errors_before = shared.errors.total();
        let server_before = server.and_then(Proc::sample);
        let tool_before = Proc::SelfProcess.sample();
        let start = tokio::time::Instant::now() + Duration::from_millis(20);
        let _ = fleet.phase.send(Phase::Send {
            step,
            interval,
            burst: ramp.burst,
            start,
        });
        sleep_until(start + Duration::from_secs_f64(ramp.secs)).await;
        let _ = fleet.phase.send(Phase::Wait);
        let tool_after = Proc::SelfProcess.sample();
        let counters = &shared.steps[step];
        let drain_until = Instant::now() + ramp.drain;
        while counters.received.load(Ordering::Relaxed) < counters.sent.load(Ordering::Relaxed)
            && Instant::now() < drain_until
        {
            sleep(Duration::from_millis(20)).await;
        }
        let server_after = server.and_then(Proc::sample);
        let sent = counters.sent.load(Ordering::Relaxed);
        let delivered = counters.received.load(Ordering::Relaxed);
        let mut latencies = counters
            .latencies_us
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        latencies.sort_unstable();
        let tool_cpu = match (tool_before, tool_after) {
            (Some(before), Some(after)) => procfs::cpu_share(&before, &after),
            _ => 0.0,
        };
        let server_cpu_secs = cpu_between(server_before, server_after);
        let errors = shared.errors.total() - errors_before;
        let lost = sent.saturating_sub(delivered);
        let p99_ms = percentile(&latencies, 99.0);
        let offered = rate * ramp.secs;
        let sustained = sent as f64 >= 0.95 * offered
            && lost as f64 <= 0.001 * sent as f64
            && errors == 0
            && p99_ms < ramp.p99_limit_ms;
        let report = StepReport {
            rate,
            burst: ramp.burst,
            secs: ramp.secs,
            sent,
            delivered,
            lost,
            delivered_per_sec: delivered as f64 / ramp.secs,
            p50_ms: percentile(&latencies, 50.0),
            p95_ms: percentile(&latencies, 95.0),
            p99_ms,
            max_ms: latencies.last().map(|&l| l as f64 / 1000.0).unwrap_or(0.0),
            max_send_lag_ms: counters.max_lag_us.load(Ordering::Relaxed) as f64 / 1000.0,
            errors,
            server_cpu_secs,
            server_cpu_ms_per_msg: server_cpu_secs
                .filter(|_| delivered > 0)
                .map(|cpu| cpu * 1000.0 / delivered as f64),
            server_rss_kb: server_after.map(|s| s.rss_kb),
            tool_cpu,
            tool_saturated: tool_cpu >= SATURATED * procfs::allowed_cpus() as f64,
            sustained,
        };
        println!(
            "step {step}: offered {rate:.0}/s sent {sent} delivered {delivered} ({:.0}/s) lost {lost} \
             p50 {:.2} ms p95 {:.2} ms p99 {:.2} ms max {:.1} ms send lag max {:.1} ms errors {errors} \
             server cpu {} tool cpu {:.2}{} -> {}",
            report.delivered_per_sec,
            report.p50_ms,
            report.p95_ms,
            report.p99_ms,
            report.max_ms,
            report.max_send_lag_ms,
            report
                .server_cpu_ms_per_msg
                .map(|c| format!("{c:.3} ms/msg"))
                .unwrap_or_else(|| "n/a".into()),
            report.tool_cpu,
            if report.tool_saturated { " (LOAD GENERATOR SATURATED)" } else { "" },
            if sustained { "sustained" } else { "NOT sustained" },
        );
        reports.push(report);
        if !sustained && !ramp.keep_going {
            break;
        }
    }
    reports
}

/// Holds idle sessions for `settle`, then measures the server's memory per session.
pub async fn measure_idle(
    fleet: &Fleet,
    before: Option<ProcSample>,
    settle: Duration,
    server: Option<Proc>,
) -> Option<IdleReport> {
    let settle_start = server.and_then(Proc::sample);
    sleep(settle).await;
    let after = server.and_then(Proc::sample)?;
    let before = before?;
    let sessions = fleet.len();
    Some(IdleReport {
        sessions,
        rss_before_kb: before.rss_kb,
        rss_after_kb: after.rss_kb,
        rss_per_session_kb: if sessions > 0 {
            (after.rss_kb as f64 - before.rss_kb as f64) / sessions as f64
        } else {
            0.0
        },
        idle_server_cpu: settle_start
            .map(|s| procfs::cpu_share(&s, &after))
            .unwrap_or(0.0),
    })
}

/// Registers every user in-band (XEP-0077), bounded concurrency.
pub async fn register_all(target: Arc<Target>, population: &Population) -> RegisterReport {
    let semaphore = Arc::new(Semaphore::new(population.concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (index, user) in population.users.iter().enumerate() {
        let Ok(permit) = semaphore.clone().acquire_owned().await else {
            break;
        };
        let target = target.clone();
        let user = user.clone();
        let password = population.password.clone();
        let source = (!population.sources.is_empty())
            .then(|| population.sources[index % population.sources.len()]);
        let limit = population.login_timeout;
        tasks.spawn(async move {
            let result = timeout(limit, conn::register(&target, &user, &password, source)).await;
            drop(permit);
            match result {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(_) => Err("registration timed out".to_owned()),
            }
        });
    }
    let mut report = RegisterReport {
        created: 0,
        existed: 0,
        failed: 0,
        first_failure: None,
        secs: 0.0,
    };
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(Registered::Created)) => report.created += 1,
            Ok(Ok(Registered::Existed)) => report.existed += 1,
            Ok(Err(error)) => {
                report.failed += 1;
                report.first_failure.get_or_insert(error);
            }
            Err(error) => {
                report.failed += 1;
                report.first_failure.get_or_insert(error.to_string());
            }
        }
    }
    report.secs = started.elapsed().as_secs_f64();
    report
}
