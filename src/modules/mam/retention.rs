//! Archive retention: the oldest entries go when an account passes its entry limit, and a
//! background task deletes entries older than the configured age (XEP-0313 §3.2: never
//! holes, always the oldest).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{archive_store, user_of, ArchivedMessage, MamConfig};
use crate::router::{BackgroundTask, Router};
use crate::storage::{ArchiveRange, ArchiveStore, StorageError};

/// How often old entries are looked for.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);
/// Entries deleted in one storage batch.
const PRUNE_BATCH: usize = 500;

/// Deletes the user's oldest entries until at most `max` remain.
pub(super) async fn trim_to(
    store: &ArchiveStore<ArchivedMessage>,
    user: &str,
    max: usize,
) -> Result<(), StorageError> {
    let held = store.count(user).await?;
    if held <= max {
        return Ok(());
    }
    let oldest: Vec<u64> = store
        .list(user, None, held - max)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    store.delete(user, &oldest).await
}

/// Deletes the user's entries archived before `cutoff`, a batch at a time; returns how many.
pub(super) async fn prune_older_than(
    store: &ArchiveStore<ArchivedMessage>,
    user: &str,
    cutoff: OffsetDateTime,
) -> Result<usize, StorageError> {
    let range = ArchiveRange {
        before: Some(ArchiveStore::<ArchivedMessage>::id_for_time(cutoff)),
        limit: PRUNE_BATCH,
        ..ArchiveRange::default()
    };
    let mut removed = 0;
    loop {
        let page = store.query(user, &range).await?;
        let ids: Vec<u64> = page.entries.iter().map(|(id, _)| *id).collect();
        store.delete(user, &ids).await?;
        removed += ids.len();
        if page.complete || ids.is_empty() {
            return Ok(removed);
        }
    }
}

/// The periodic deletion of entries older than `max_age_days`.
pub(super) struct AgeRetention {
    max_age: time::Duration,
}

impl AgeRetention {
    /// The task for `config`, or none when entries are kept forever.
    pub(super) fn of(config: &MamConfig) -> Option<AgeRetention> {
        (config.max_age_days > 0).then(|| AgeRetention {
            max_age: time::Duration::days(i64::from(config.max_age_days)),
        })
    }

    /// One pass over every account; stops early at shutdown.
    async fn prune_all(&self, router: &Router, shutdown: &CancellationToken) {
        let accounts = match router.accounts.list().await {
            Ok(accounts) => accounts,
            Err(error) => {
                warn!(%error, "listing accounts for archive retention failed");
                return;
            }
        };
        let cutoff = OffsetDateTime::now_utc() - self.max_age;
        let mut removed = 0;
        for account in accounts {
            if shutdown.is_cancelled() {
                return;
            }
            let store = archive_store(router, &account);
            match prune_older_than(&store, user_of(&account), cutoff).await {
                Ok(count) => removed += count,
                Err(error) => warn!(%error, "archive retention failed for an account"),
            }
        }
        if removed > 0 {
            info!(removed, "old archive entries deleted");
        }
    }
}

#[async_trait]
impl BackgroundTask<Router> for AgeRetention {
    async fn run(&self, router: Arc<Router>, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(PRUNE_INTERVAL);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = every.tick() => self.prune_all(&router, &shutdown).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;

    fn entry(text: &str) -> ArchivedMessage {
        ArchivedMessage {
            xml: text.to_owned(),
            partner: "bob@localhost".to_owned(),
            direction: super::super::Direction::Incoming,
        }
    }

    #[tokio::test]
    async fn pruning_deletes_only_entries_older_than_the_cutoff() {
        let store = Storage::memory().archive::<ArchivedMessage>("localhost", "mam");
        let old = store.append("alice", &entry("old"), None).await.unwrap();
        let cutoff = ArchiveStore::<ArchivedMessage>::time_of_id(old + 1).unwrap();
        let recent = store.append("alice", &entry("new"), None).await.unwrap();
        assert_eq!(prune_older_than(&store, "alice", cutoff).await.unwrap(), 1);
        let left: Vec<u64> = store
            .list("alice", None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(left, vec![recent]);
    }

    #[tokio::test]
    async fn trimming_keeps_the_newest_entries_up_to_the_limit() {
        let store = Storage::memory().archive::<ArchivedMessage>("localhost", "mam");
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(
                store
                    .append("alice", &entry(&n.to_string()), None)
                    .await
                    .unwrap(),
            );
        }
        trim_to(&store, "alice", 3).await.unwrap();
        let left: Vec<u64> = store
            .list("alice", None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(left, ids[2..]);
    }
}
