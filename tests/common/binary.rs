//! The built `rempart` binary as an operator runs it: one-shot commands, and a serving
//! process that a test starts, signals, waits for and kills.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::GUARD;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_rempart");

/// Runs `rempart --config <config> <args>` with `stdin`, to completion.
pub fn run_command(config: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rempart runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin written");
    child.wait_with_output().expect("rempart finishes")
}

/// Adds an account with `rempart user add`, asserting it worked.
pub fn add_user(config: &Path, jid: &str, password: &str) {
    let output = run_command(config, &["user", "add", jid], &format!("{password}\n"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A serving `rempart` process, killed when dropped (also when a test fails).
pub struct ServerProcess {
    child: Child,
    /// The addresses its start-up line announces, in listener order.
    pub addresses: Vec<SocketAddr>,
}

impl ServerProcess {
    /// Starts the server and waits for the line saying where it serves; its output keeps
    /// being read so that it never blocks on a full pipe.
    pub fn start(config: &Path) -> ServerProcess {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("server starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some((_, list)) = line.split_once("Rempart is serving ") {
                    let addresses: Vec<SocketAddr> = list
                        .split_once(" on ")
                        .map(|(_, a)| a)
                        .unwrap_or_default()
                        .split(", ")
                        .filter_map(|a| a.parse().ok())
                        .collect();
                    let _ = tx.send(addresses);
                }
            }
        });
        let addresses = rx.recv_timeout(GUARD).expect("server announces itself");
        ServerProcess { child, addresses }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// SIGTERM, then waits for an exit with status 0.
    pub fn stop(&mut self) {
        self.terminate();
        assert!(self.wait_exit().success(), "clean exit on SIGTERM");
    }

    /// Waits for the process to exit (within the guard).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + GUARD;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit");
            std::thread::park_timeout(Duration::from_millis(20));
        }
    }

    /// kill -9, and waits until the process is gone.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("server reaped");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
