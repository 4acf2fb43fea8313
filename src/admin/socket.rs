//! The local admin socket: newline-delimited JSON over a Unix socket readable by its owner
//! only, so the CLI can act while the server holds the embedded store. Peers are checked
//! twice: by the file mode, and by their uid (SO_PEERCRED), which must be root's or the
//! server's own.

use std::io;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
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
    server_uid: u32,
    router: Arc<Router>,
}

impl AdminService {
    /// Binds the socket with mode 0600, replacing a stale one left by a crash. The socket is
    /// never reachable with a wider mode: it is bound in a fresh directory only the server can
    /// enter, given its mode there, then moved into place. (A umask would do it too, but the
    /// umask is process-wide and would change files other threads create meanwhile.)
    pub fn bind(path: &Path, router: Arc<Router>) -> io::Result<AdminService> {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(parent)?;
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use: is another server running?", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let staging = parent.join(format!(".admin-socket-{}", std::process::id()));
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        std::fs::DirBuilder::new().mode(0o700).create(&staging)?;
        let bound = bind_private(&staging.join("admin.sock"), path);
        let _ = std::fs::remove_dir(&staging);
        let listener = bound?;
        let server_uid = std::fs::metadata(path)?.uid();
        Ok(AdminService {
            listener,
            path: path.to_owned(),
            server_uid,
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
                    let server_uid = self.server_uid;
                    tokio::spawn(async move {
                        if let Err(error) = answer(stream, server_uid, &router).await {
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

/// Binds at `staged` (in a directory only we can enter), sets the mode, moves it to `path`.
fn bind_private(staged: &Path, path: &Path) -> io::Result<UnixListener> {
    let listener = UnixListener::bind(staged)?;
    std::fs::set_permissions(staged, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(staged, path)?;
    Ok(listener)
}

/// Only root and the user the server runs as may administer it.
fn may_administer(peer_uid: u32, server_uid: u32) -> bool {
    peer_uid == 0 || peer_uid == server_uid
}

async fn answer(stream: UnixStream, server_uid: u32, router: &Router) -> io::Result<()> {
    let peer_uid = stream.peer_cred()?.uid();
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST as u64));
    reader.read_line(&mut line).await?;
    let response = if !may_administer(peer_uid, server_uid) {
        warn!(
            peer_uid,
            "admin request refused: not root or the server's user"
        );
        AdminResponse {
            ok: false,
            message: format!("uid {peer_uid} may not administer this server"),
            users: Vec::new(),
        }
    } else {
        match serde_json::from_str::<AdminRequest>(&line) {
            Ok(request) => execute(request, &router.accounts, Some(router)).await,
            Err(error) => AdminResponse {
                ok: false,
                message: format!("bad request: {error}"),
                users: Vec::new(),
            },
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_and_the_servers_own_user_may_administer() {
        assert!(may_administer(0, 1000));
        assert!(may_administer(1000, 1000));
        assert!(!may_administer(1001, 1000));
    }
}
