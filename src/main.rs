//! The `rempart` command: serve (default), manage users, check a configuration.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use rempart::accounts::Accounts;
use rempart::admin::socket::request;
use rempart::admin::{execute, AdminRequest, AdminResponse};
use rempart::config::Config;
use rempart::modules::{catalogue, enabled_modules, ModulesConfig};
use rempart::storage::Storage;
use rempart::Server;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Rempart, an XMPP server with first-class OMEMO support.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML). Without it, built-in defaults serve `localhost`.
    #[arg(short, long, global = true, env = "REMPART_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Manage accounts.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Validate configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Diagnose server-to-server links.
    S2s {
        #[command(subcommand)]
        action: S2sAction,
    },
    /// Print the table of implemented XEPs and RFCs (as in the README).
    Xeps {
        /// Print the XEP-0453 DOAP file (rempart.doap) instead.
        #[arg(long)]
        doap: bool,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Create an account; the password is prompted for, or read from standard input.
    Add {
        /// The account, e.g. alice@localhost.
        jid: String,
    },
    /// Delete an account and everything stored for it.
    Remove {
        /// The account.
        jid: String,
    },
    /// Change an account's password.
    Passwd {
        /// The account.
        jid: String,
    },
    /// List all accounts.
    List,
    /// List the devices an account logged in from (SASL2 clients name themselves).
    Devices {
        /// The account.
        jid: String,
    },
    /// Revoke a device: its FAST tokens stop working, it must log in with the password.
    RevokeDevice {
        /// The account.
        jid: String,
        /// The device id, as `user devices` lists it.
        device: String,
    },
}

#[derive(Subcommand)]
enum S2sAction {
    /// Show what resolution, connection, TLS and the remote stream offer, step by step.
    Check {
        /// The remote domain.
        domain: String,
        /// The local domain to connect as (defaults to the first host).
        #[arg(long)]
        from: Option<String>,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Check a configuration file and name any bad key.
    Check {
        /// The file to check (defaults to --config).
        file: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(cli.config.as_deref()).await,
            Command::User { action } => user(cli.config.as_deref(), action).await,
            Command::Config {
                action: ConfigAction::Check { file },
            } => check(file.or(cli.config).as_deref()),
            Command::S2s {
                action: S2sAction::Check { domain, from },
            } => {
                let config = Config::load(cli.config.as_deref())?;
                let local = from
                    .or_else(|| config.server.hosts.first().cloned())
                    .unwrap_or_default();
                if rempart::s2s::check::check(&config, &local, &domain).await {
                    Ok(())
                } else {
                    bail!("the link to {domain} does not work")
                }
            }
            Command::Xeps { doap } => {
                let config = Config::load(cli.config.as_deref())?;
                let modules = enabled_modules(&config, &Storage::memory())?;
                if doap {
                    print!("{}", catalogue::doap(&modules));
                } else {
                    print!("{}", catalogue::implements_table(&modules));
                }
                Ok(())
            }
        }
    })
}

async fn serve(config_path: Option<&Path>) -> anyhow::Result<()> {
    let config = Config::load(config_path).context("loading the configuration")?;
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new(config.log.level.clone()));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let hosts = config.server.hosts.join(", ");
    let first_host = config.server.hosts.first().cloned().unwrap_or_default();
    let server = Server::build(config).await.context("starting the server")?;
    let addresses: Vec<String> = server
        .local_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    println!("Rempart is serving {hosts} on {}", addresses.join(", "));
    println!(
        "Add a user with: cargo run --release -- user add alice@{first_host}   (or: rempart user add alice@{first_host})"
    );
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signal.cancel();
    });
    server.run(shutdown).await.context("serving")?;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn user(config_path: Option<&Path>, action: UserAction) -> anyhow::Result<()> {
    let config = Config::load(config_path).context("loading the configuration")?;
    let admin_request = match action {
        UserAction::Add { jid } => AdminRequest::UserAdd {
            password: read_password(&jid)?,
            jid,
        },
        UserAction::Remove { jid } => AdminRequest::UserRemove { jid },
        UserAction::Passwd { jid } => AdminRequest::UserPasswd {
            password: read_password(&jid)?,
            jid,
        },
        UserAction::List => AdminRequest::UserList,
        UserAction::Devices { jid } => AdminRequest::DeviceList { jid },
        UserAction::RevokeDevice { jid, device } => AdminRequest::DeviceRevoke { jid, device },
    };
    let socket = config.server.admin_socket_path();
    let response = match request(&socket, &admin_request)
        .await
        .with_context(|| format!("talking to the server at {}", socket.display()))?
    {
        Some(response) => response,
        None => offline(&config, admin_request).await?,
    };
    report(response)
}

/// Runs the action on the store directly when no server is running.
async fn offline(config: &Config, admin_request: AdminRequest) -> anyhow::Result<AdminResponse> {
    let storage =
        Storage::open(config.storage.backend, &config.server.data_dir).with_context(|| {
            format!(
                "opening the store in {} (is a server running without its admin socket?)",
                config.server.data_dir.display()
            )
        })?;
    let accounts = Accounts::new(
        storage.clone(),
        config.server.hosts.clone(),
        config.auth.scram_iterations,
    );
    let response = execute(admin_request, &accounts, None).await;
    storage.flush().await.context("flushing the store")?;
    Ok(response)
}

fn report(response: AdminResponse) -> anyhow::Result<()> {
    for user in &response.users {
        println!("{user}");
    }
    if response.ok {
        eprintln!("{}", response.message);
        Ok(())
    } else {
        bail!("{}", response.message)
    }
}

/// Prompts twice without echo on a terminal; reads one line from a pipe otherwise.
fn read_password(jid: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {jid}: "))?;
        let second = rpassword::prompt_password("Again: ")?;
        if first != second {
            bail!("the passwords differ");
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            bail!("no password on standard input");
        }
        Ok(password)
    }
}

fn check(file: Option<&Path>) -> anyhow::Result<()> {
    let Some(file) = file else {
        bail!("name the file to check: rempart config check FILE");
    };
    let loaded = Config::load(Some(file)).and_then(|config| {
        ModulesConfig::of(&config)?;
        Ok(config)
    });
    match loaded {
        Ok(config) => {
            println!(
                "{}: valid ({} host(s), {} listener(s), storage {:?})",
                file.display(),
                config.server.hosts.len(),
                config.listeners.len(),
                config.storage.backend
            );
            Ok(())
        }
        Err(error) => bail!("{}: {error}", file.display()),
    }
}
