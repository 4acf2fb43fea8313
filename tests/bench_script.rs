//! The benchmark command BENCHMARKS.md documents, `bench/compare`: its argument parsing and its
//! build step run here (`--dry-run`), so that the command cannot break unnoticed. The real
//! benchmark (root, Prosody, ejabberd, minutes of load) is its own command and never runs here.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn compare(args: &[&str]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Command::new(root.join("bench").join("compare"))
        .args(args)
        .current_dir(root)
        // The same cargo as the one running these tests.
        .env("CARGO", env!("CARGO"))
        .stdin(Stdio::null())
        .output()
        .expect("bench/compare runs (python3 is needed)")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn dry_run_checks_the_build_step_of_both_binaries_and_prints_the_plan() {
    let output = compare(&["--dry-run", "--quick"]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "exit status {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("the build step's targets check: rempart, rempart-load\n"),
        "the build step's selection of both binaries must pass cargo check: {stdout}"
    );
    assert!(
        stdout.contains(
            " build --release --package rempart --bin rempart --package rempart-load --bin rempart-load\n"
        ),
        "the benchmark builds each binary from its own package: {stdout}"
    );
    assert!(
        stdout.contains("500 idle, 500 storm"),
        "--quick sets the small scale: {stdout}"
    );
    assert!(stdout.contains("nothing started"), "{stdout}");
}

#[test]
fn unknown_server_is_refused_before_anything_runs() {
    let output = compare(&["--dry-run", "--no-build", "--servers", "rempart,openfire"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown server openfire"), "{stderr}");
    assert!(!stderr.contains("building"), "{stderr}");
}

#[test]
fn fixed_rate_outside_the_rates_is_refused() {
    let output = compare(&[
        "--dry-run",
        "--no-build",
        "--rates",
        "500,1000",
        "--fixed-rate",
        "750",
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--fixed-rate must be one of --rates"),
        "{stderr}"
    );
}

#[test]
fn help_documents_the_dry_run() {
    let output = compare(&["--help"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(stdout.contains("--dry-run"), "{stdout}");
    assert!(stdout.contains("--quick"), "{stdout}");
}

#[test]
fn dry_run_plan_says_archiving_is_on_by_default() {
    let output = compare(&["--dry-run", "--no-build"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        stdout.contains("scenarios idle,storm,messages;"),
        "{stdout}"
    );
    assert!(stdout.contains("; archiving on ("), "{stdout}");
}

#[test]
fn no_archive_and_a_scenario_subset_are_in_the_plan() {
    let output = compare(&[
        "--dry-run",
        "--no-build",
        "--no-archive",
        "--scenarios",
        "messages",
    ]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(stdout.contains("scenarios messages;"), "{stdout}");
    assert!(stdout.contains("; archiving off ("), "{stdout}");
}

#[test]
fn unknown_scenario_is_refused_before_anything_runs() {
    let output = compare(&["--dry-run", "--no-build", "--scenarios", "messages,muc"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown scenario muc"), "{stderr}");
}
