//! Work a module runs for as long as the server serves (periodic clean-up), registered as
//! data like its hooks and started by the server with the listeners.

use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

/// A module's long-running task; the server waits for it at shutdown.
#[async_trait]
pub trait BackgroundTask<R>: Send + Sync {
    /// Runs until `shutdown` is cancelled, then returns promptly.
    async fn run(&self, router: Arc<R>, shutdown: CancellationToken);
}
