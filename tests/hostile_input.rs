//! The hostile-input suite: the built `rempart` binary under the attacks a stranger can make
//! before authenticating, each answered with the stream error RFC 6120 names, and the
//! server's peak memory during each attack printed as a table.
//!
//! It runs without the test harness (`harness = false`) so that the table is printed by the
//! test command. The peak is the kernel's high-water mark of the server's resident memory
//! (`VmHWM`), reset before each attack through `/proc/<pid>/clear_refs`; an attack fails the
//! suite when the server answers wrongly, stops serving, or its peak grows by more than
//! `MEMORY_BUDGET`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;

use common::binary::ServerProcess;
use common::GUARD;
/// Most the server's peak resident memory may grow during one attack.
const MEMORY_BUDGET: u64 = 64 * 1024 * 1024;
/// Connections the flood opens from one address, beyond the configured per-address limit.
const FLOOD: usize = 400;
const PER_ADDRESS_LIMIT: usize = 100;

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// One attack: the bytes sent after connecting and the stream error expected in answer.
struct Attack {
    name: &'static str,
    payload: Vec<u8>,
    expected: &'static str,
}

fn attacks() -> Vec<Attack> {
    let long_uri = |len: usize| format!("urn:x:{}", "u".repeat(len));
    let with_header = |stanza: String| format!("{HEADER}{stanza}").into_bytes();
    vec![
        Attack {
            name: "250 KB namespace on the stream header",
            payload: format!(
                "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:p='{}'><message>{}</message>",
                long_uri(250_000),
                "<p:a/>".repeat(40_000)
            )
            .into_bytes(),
            expected: "policy-violation",
        },
        Attack {
            name: "40,000 elements in a 3 KB namespace",
            payload: with_header(format!(
                "<message xmlns:p='{}'>{}</message>",
                long_uri(3000),
                "<p:a/>".repeat(40_000)
            )),
            expected: "policy-violation",
        },
        Attack {
            name: "60,000 tiny elements",
            payload: with_header(format!("<message>{}</message>", "<a/>".repeat(60_000))),
            expected: "policy-violation",
        },
        Attack {
            name: "100,000 nested elements",
            payload: with_header("<a>".repeat(100_000)),
            expected: "policy-violation",
        },
        Attack {
            name: "1 MB attribute value",
            payload: with_header(format!("<message id='{}'/>", "x".repeat(1_000_000))),
            expected: "policy-violation",
        },
        Attack {
            name: "10 MB of text in one stanza",
            payload: with_header(format!("<message><body>{}", "x".repeat(10_000_000))),
            expected: "policy-violation",
        },
        Attack {
            name: "10,000 attributes",
            payload: with_header(format!(
                "<message {}/>",
                (0..10_000)
                    .map(|i| format!("a{i}='v'"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
            expected: "policy-violation",
        },
        Attack {
            name: "document type declaration",
            payload: format!(
                "<?xml version='1.0'?><!DOCTYPE lol [<!ENTITY lol 'lol'>]>{}",
                &HEADER[21..]
            )
            .into_bytes(),
            expected: "restricted-xml",
        },
        Attack {
            name: "entity reference (billion laughs)",
            payload: with_header("<message><body>&lol9;</body></message>".to_owned()),
            expected: "restricted-xml",
        },
        Attack {
            name: "comment",
            payload: with_header("<!-- hello -->".to_owned()),
            expected: "restricted-xml",
        },
        Attack {
            name: "processing instruction",
            payload: with_header("<message><?evil x?></message>".to_owned()),
            expected: "restricted-xml",
        },
        Attack {
            name: "invalid UTF-8",
            payload: [HEADER.as_bytes(), b"<message><body>\xff\xfe</body></message>"].concat(),
            expected: "not-well-formed",
        },
        Attack {
            name: "NUL character",
            payload: with_header("<message><body>\u{0}</body></message>".to_owned()),
            expected: "not-well-formed",
        },
        Attack {
            name: "undeclared prefix",
            payload: with_header("<p:message/>".to_owned()),
            expected: "not-well-formed",
        },
        Attack {
            name: "30 namespace declarations on the header",
            payload: format!(
                "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'{}>",
                (0..30)
                    .map(|i| format!(" xmlns:p{i}='urn:p{i}'"))
                    .collect::<String>()
            )
            .into_bytes(),
            expected: "policy-violation",
        },
        Attack {
            name: "slowloris (half a header, then silence)",
            payload: HEADER.as_bytes()[..40].to_vec(),
            expected: "connection-timeout",
        },
    ]
}

/// The server under attack.
struct Server {
    process: ServerProcess,
    c2s: SocketAddr,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let config = dir.join("rempart.toml");
        let toml = format!(
            "[server]\nhosts = [\"localhost\"]\ndata_dir = \"{}\"\n\n[limits]\nnegotiation_timeout_secs = 2\nmax_connections_per_address = {PER_ADDRESS_LIMIT}\n\n[[listeners]]\nkind = \"c2s\"\naddress = \"127.0.0.1:0\"\n",
            dir.join("data").display()
        );
        std::fs::write(&config, toml).expect("config written");
        let process = ServerProcess::start(&config);
        let c2s = *process.addresses.first().expect("the client listener");
        Server { process, c2s }
    }

    fn status_field(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.pid()))
            .expect("the server's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// Resets the peak-memory mark to the current resident size; returns that size.
    fn reset_peak(&self) -> u64 {
        std::fs::write(format!("/proc/{}/clear_refs", self.process.pid()), "5")
            .expect("clear_refs");
        self.status_field("VmRSS:")
    }

    fn peak(&self) -> u64 {
        self.status_field("VmHWM:")
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.c2s).expect("connect");
        stream.set_read_timeout(Some(GUARD)).expect("timeout");
        stream.set_write_timeout(Some(GUARD)).expect("timeout");
        stream
    }

    /// A well-behaved client still gets its stream features.
    fn still_serves(&self) -> bool {
        let mut stream = self.connect();
        if stream.write_all(HEADER.as_bytes()).is_err() {
            return false;
        }
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("</stream:features>") {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return false,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
            }
        }
        true
    }
}

/// Sends the payload (the server may close before it is all written) and reads everything
/// the server answers until it closes the connection.
fn run_attack(server: &Server, payload: &[u8]) -> String {
    let mut stream = server.connect();
    let _ = stream.write_all(payload);
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Opens `FLOOD` connections at once from 127.0.0.2 (an address no other check uses, so
/// its count starts at zero) that each send a header and nothing more; counts how many the
/// server served (it closes the others at once).
fn flood(server: &Server) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    let mut open = Vec::new();
    for _ in 0..FLOOD {
        let connected = runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind("127.0.0.2:0".parse().expect("address"))?;
            socket.connect(server.c2s).await?.into_std()
        });
        if let Ok(mut stream) = connected {
            stream.set_nonblocking(false).expect("blocking");
            let _ = stream.write_all(HEADER.as_bytes());
            open.push(stream);
        }
    }
    let mut kept = 0;
    for stream in &mut open {
        stream.set_read_timeout(Some(GUARD)).expect("read timeout");
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        let served = loop {
            let text = String::from_utf8_lossy(&seen);
            if text.contains("</stream:features>") {
                break true;
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break false,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
            }
        };
        if served {
            kept += 1;
        }
    }
    format!("{kept} of {FLOOD} served")
}

fn main() -> ExitCode {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(dir.path());
    let mut failures = Vec::new();
    println!(
        "hostile input against {} (pid {})",
        server.c2s,
        server.process.pid()
    );
    println!("{:<42} {:<28} {:>14}", "attack", "answer", "peak growth");
    for attack in attacks() {
        let before = server.reset_peak();
        let answer = run_attack(&server, &attack.payload);
        let growth = server.peak().saturating_sub(before);
        let got = if answer.contains(&format!("<{}", attack.expected)) {
            attack.expected.to_owned()
        } else {
            failures.push(format!(
                "{}: expected {}, got {:?}",
                attack.name,
                attack.expected,
                answer.chars().take(300).collect::<String>()
            ));
            "WRONG ANSWER".to_owned()
        };
        report(attack.name, &got, growth, &mut failures);
        if !server.still_serves() {
            failures.push(format!("{}: the server stopped serving", attack.name));
            break;
        }
    }
    let before = server.reset_peak();
    let outcome = flood(&server);
    let growth = server.peak().saturating_sub(before);
    if outcome != format!("{PER_ADDRESS_LIMIT} of {FLOOD} served") {
        failures.push(format!(
            "connection flood: expected {PER_ADDRESS_LIMIT} of {FLOOD} served, got {outcome}"
        ));
    }
    report(
        &format!("{FLOOD} connections from one address"),
        &outcome,
        growth,
        &mut failures,
    );
    if !server.still_serves() {
        failures.push("connection flood: the server stopped serving".to_owned());
    }
    server.process.kill_9();
    if failures.is_empty() {
        println!("hostile input: every attack answered, the server kept serving");
        ExitCode::SUCCESS
    } else {
        for failure in &failures {
            println!("FAILED {failure}");
        }
        ExitCode::FAILURE
    }
}

fn report(name: &str, answer: &str, growth: u64, failures: &mut Vec<String>) {
    println!(
        "{name:<42} {answer:<28} {:>10.1} MiB",
        growth as f64 / (1024.0 * 1024.0)
    );
    if growth > MEMORY_BUDGET {
        failures.push(format!(
            "{name}: peak memory grew by {} MiB",
            growth / (1024 * 1024)
        ));
    }
}
