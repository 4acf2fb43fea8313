//! Resident memory and CPU time of a process, read from `/proc/<pid>` (Linux only).

use std::time::Instant;

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// Resident set size in KiB (`VmRSS`).
    pub rss_kb: u64,
    /// User plus system CPU time in seconds, all threads.
    pub cpu_secs: f64,
    /// When it was taken.
    pub at: Instant,
}

/// Which process to read.
#[derive(Debug, Clone, Copy)]
pub enum Proc {
    /// The load generator itself.
    SelfProcess,
    /// Another process by id.
    Pid(u32),
}

impl Proc {
    fn dir(self) -> String {
        match self {
            Proc::SelfProcess => "/proc/self".to_owned(),
            Proc::Pid(pid) => format!("/proc/{pid}"),
        }
    }

    /// Reads the process now; `None` if it is gone or unreadable.
    pub fn sample(self) -> Option<ProcSample> {
        let dir = self.dir();
        let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
        // Fields after the command name, which is in parentheses and may contain spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
        let rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Some(ProcSample {
            rss_kb,
            cpu_secs: (utime + stime) as f64 / clock_ticks(),
            at: Instant::now(),
        })
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// CPUs this process may run on (its affinity mask, e.g. set by `taskset`).
pub fn allowed_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// CPU used between two samples, as a fraction of the wall time (1.0 = one core busy).
pub fn cpu_share(before: &ProcSample, after: &ProcSample) -> f64 {
    let wall = after.at.duration_since(before.at).as_secs_f64();
    if wall <= 0.0 {
        0.0
    } else {
        (after.cpu_secs - before.cpu_secs) / wall
    }
}
