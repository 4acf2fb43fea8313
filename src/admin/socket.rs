//! The local admin socket: newline-delimited JSON over a Unix socket readable by its owner
//! only, so the CLI can act while the server holds the embedded store.

use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::admin::{execute, AdminRequest, AdminResponse};
use crate::router::Router;

/// Longest request line accepted.
const MAX_REQUEST: usize = 64 * 1024;

/// The server side of the admin socket.
pub struct AdminService {
    listener: UnixListener,
    path: PathBuf,
    router: Arc<Router>,
}

impl AdminService {
    /// Binds the socket with mode 0600, replacing a stale one left by a crash.
    pub fn bind(path: &Path, router: Arc<Router>) -> io::Result<AdminService> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use: is another server running?", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(AdminService {
            listener,
            path: path.to_owned(),
            router,
        })
    }

    /// Answers requests until shutdown, then removes the socket file.
    pub async fn serve(self, shutdown: CancellationToken) {
        info!(path = %self.path.display(), "admin socket ready");
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = shutdown.cancelled() => break,
            };
            match accepted {
                Ok((stream, _)) => {
                    let router = self.router.clone();
                    tokio::spawn(async move {
                        if let Err(error) = answer(stream, &router).await {
                            warn!(%error, "admin connection failed");
                        }
                    });
                }
                Err(error) => warn!(%error, "admin accept failed"),
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn answer(stream: UnixStream, router: &Router) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST as u64));
    reader.read_line(&mut line).await?;
    let response = match serde_json::from_str::<AdminRequest>(&line) {
        Ok(request) => execute(request, &router.accounts, Some(router)).await,
        Err(error) => AdminResponse {
            ok: false,
            message: format!("bad request: {error}"),
            users: Vec::new(),
        },
    };
    let mut encoded = serde_json::to_string(&response).map_err(io::Error::other)?;
    encoded.push('\n');
    write.write_all(encoded.as_bytes()).await
}

/// Sends one request to a running server; `Ok(None)` when no server listens there.
pub async fn request(path: &Path, request: &AdminRequest) -> io::Result<Option<AdminResponse>> {
    let stream = match UnixStream::connect(path).await {
        Ok(stream) => stream,
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(error) => return Err(error),
    };
    let (read, mut write) = stream.into_split();
    let mut encoded = serde_json::to_string(request).map_err(io::Error::other)?;
    encoded.push('\n');
    write.write_all(encoded.as_bytes()).await?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    serde_json::from_str(&line)
        .map(Some)
        .map_err(io::Error::other)
}
