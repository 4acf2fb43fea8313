//! The `rempart` binary as an operator uses it: user management with and without a running
//! server, configuration checks, clean shutdown and durability across kill -9.

mod common;

use std::path::Path;
use std::process::Command;

use common::binary::{run_command as run, ServerProcess, BIN};

fn write_config(dir: &Path) -> std::path::PathBuf {
    write_config_with(dir, "redb")
}

fn write_config_with(dir: &Path, backend: &str) -> std::path::PathBuf {
    let path = dir.join("rempart.toml");
    let toml = format!(
        "[server]\nhosts = [\"localhost\"]\ndata_dir = \"{}\"\n\n[storage]\nbackend = \"{backend}\"\n\n[[listeners]]\nkind = \"c2s\"\naddress = \"127.0.0.1:0\"\n",
        dir.join("data").display()
    );
    std::fs::write(&path, toml).expect("config written");
    path
}

fn users(config: &Path) -> String {
    let output = run(config, &["user", "list"], "");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Serves `config` with a plaintext client listener added, logs in with both passwords, and
/// stops the server again.
fn assert_only_the_new_password_logs_in(config: &Path, user: &str, new: &str, old: &str) {
    let with_plaintext = config.with_extension("plaintext.toml");
    let mut toml = std::fs::read_to_string(config).expect("config read");
    toml.push_str(
        "\n[[listeners]]\nkind = \"c2s\"\naddress = \"127.0.0.1:0\"\nrequire_tls = false\n",
    );
    std::fs::write(&with_plaintext, toml).expect("config written");
    let mut server = ServerProcess::start(&with_plaintext);
    let plaintext = *server.addresses.last().expect("the plaintext listener");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let login = |password: &str| {
        runtime.block_on(async {
            let mut client = common::RawClient::connect(plaintext).await;
            client.open("localhost").await;
            client.authenticate("SCRAM-SHA-256", user, password).await
        })
    };
    let with_new = login(new);
    assert!(with_new.starts_with("<success"), "{with_new}");
    let with_old = login(old);
    assert!(with_old.contains("<not-authorized/>"), "{with_old}");
    server.stop();
}

#[test]
fn users_are_managed_without_a_running_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    let added = run(&config, &["user", "add", "alice@localhost"], "s3cret\n");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(users(&config).contains("alice@localhost"));
    let again = run(&config, &["user", "add", "alice@localhost"], "other\n");
    assert!(!again.status.success(), "adding twice must fail");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let passwd = run(
        &config,
        &["user", "passwd", "alice@localhost"],
        "new-secret\n",
    );
    assert!(
        passwd.status.success(),
        "{}",
        String::from_utf8_lossy(&passwd.stderr)
    );
    assert_only_the_new_password_logs_in(&config, "alice", "new-secret", "s3cret");
    let removed = run(&config, &["user", "remove", "alice@localhost"], "");
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    assert!(!users(&config).contains("alice@localhost"));
}

#[test]
fn unknown_domain_is_refused_by_user_add() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    let added = run(&config, &["user", "add", "alice@elsewhere.example"], "pw\n");
    assert!(!added.status.success());
    assert!(String::from_utf8_lossy(&added.stderr).contains("not an account on a host served here"));
}

#[test]
fn users_are_managed_through_the_admin_socket_while_serving_and_survive_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    let mut server = ServerProcess::start(&config);
    let socket = dir.path().join("data").join("admin.sock");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&socket)
            .expect("admin socket")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the admin socket is private");
    let added = run(&config, &["user", "add", "bob@localhost"], "builder\n");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(users(&config).contains("bob@localhost"));
    server.stop();
    let mut restarted = ServerProcess::start(&config);
    // The store is the running server's now: this listing goes through its admin socket.
    let listed = run(&config, &["user", "list"], "");
    restarted.kill_9();
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(
        stdout.contains("bob@localhost"),
        "the restarted server lists bob: {stdout}"
    );
}

fn acknowledged_account_survives_kill_9(backend: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config_with(dir.path(), backend);
    let mut server = ServerProcess::start(&config);
    let added = run(&config, &["user", "add", "carol@localhost"], "pw-carol\n");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    server.kill_9();
    assert!(users(&config).contains("carol@localhost"));
}

#[test]
fn acknowledged_account_survives_kill_9_on_redb() {
    acknowledged_account_survives_kill_9("redb");
}

#[cfg(feature = "sled")]
#[test]
fn acknowledged_account_survives_kill_9_on_sled() {
    acknowledged_account_survives_kill_9("sled");
}

#[test]
fn environment_overrides_are_validated_like_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    let output = Command::new(BIN)
        .args(["config", "check"])
        .arg(&config)
        .env("REMPART_LIMITS__MAX_STANZA_SIZE", "10")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("max_stanza_size"));
    let output = Command::new(BIN)
        .args(["config", "check"])
        .arg(&config)
        .env("REMPART_LIMITS__MAX_STANZA_SIZE", "65536")
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn config_check_names_the_bad_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[limits]\nmax_stanza_sise = 1\n").expect("written");
    let output = Command::new(BIN)
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .expect("runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("max_stanza_sise"));
    let good = write_config(dir.path());
    let output = Command::new(BIN)
        .args(["config", "check"])
        .arg(&good)
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn example_configuration_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/rempart.example.toml");
    let output = Command::new(BIN)
        .args(["config", "check", example])
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn readme_lists_exactly_what_the_modules_declare() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let start =
        readme.find("<!-- xeps:start -->\n").expect("start marker") + "<!-- xeps:start -->\n".len();
    let end = readme.find("<!-- xeps:end -->").expect("end marker");
    let output = Command::new(BIN).arg("xeps").output().expect("runs");
    assert!(output.status.success());
    assert_eq!(&readme[start..end], String::from_utf8_lossy(&output.stdout));
}

#[test]
fn doap_file_lists_exactly_what_the_modules_declare() {
    let doap = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rempart.doap"))
        .expect("rempart.doap");
    let output = Command::new(BIN)
        .args(["xeps", "--doap"])
        .output()
        .expect("runs");
    assert!(output.status.success());
    assert_eq!(doap, String::from_utf8_lossy(&output.stdout));
    assert!(doap.contains("xep-0384.html"), "OMEMO is declared");
}

#[test]
fn admin_socket_refuses_other_users_even_when_its_mode_lets_them_in() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().expect("tempdir");
    if std::fs::metadata(dir.path()).expect("tempdir").uid() != 0 {
        eprintln!("needs root to connect as another user; the uid rule has a unit test");
        return;
    }
    let config = write_config(dir.path());
    let mut server = ServerProcess::start(&config);
    let socket = dir.path().join("data").join("admin.sock");
    // Open every door the file mode guards, so that only the uid check remains.
    for path in [dir.path(), &dir.path().join("data")] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "--config",
        ])
        .arg(&config)
        .args(["user", "list"])
        .output()
        .expect("setpriv runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("uid 65534 may not administer this server"),
        "{stderr}"
    );
    let added = run(&config, &["user", "add", "dave@localhost"], "pw\n");
    assert!(
        added.status.success(),
        "the server's own user is still served: {}",
        String::from_utf8_lossy(&added.stderr)
    );
    server.stop();
}
