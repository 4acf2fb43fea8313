//! Resumable sessions survive a restart: at shutdown each is written to storage with its
//! XEP-0198 counters, the stanzas its client has not acknowledged and its presence; at start
//! each comes back detached and waits, for what is left of its resumption time, for its
//! client to send `<resume/>`.

use jid::FullJid;
use rempart_xep::element::Element;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::warn;

use crate::router::Router;
use crate::storage::StorageError;

/// The storage module name of saved sessions.
const STORE: &str = "stream_management";

/// A resumable session as written at shutdown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedSession {
    /// The SM-ID the client resumes with.
    pub id: String,
    /// The bound resource.
    pub resource: String,
    /// Stanzas handled from the client.
    pub handled: u32,
    /// Stanzas sent to the client.
    pub sent: u32,
    /// What the client has not acknowledged, oldest first, as XML.
    pub unacked: Vec<String>,
    /// The last available presence, as XML, when the session was available.
    pub presence: Option<String>,
    /// Its priority.
    pub priority: i8,
    /// Whether the session asked for the roster (gets roster pushes).
    pub interested: bool,
    /// Until when (Unix seconds) the client may resume.
    pub resume_until: i64,
}

impl SavedSession {
    /// The unacknowledged stanzas, parsed back; a record that does not parse is dropped
    /// with a warning rather than stopping the restore.
    pub fn unacked_stanzas(&self) -> Vec<Element> {
        self.unacked
            .iter()
            .filter_map(|xml| match Element::parse(xml) {
                Ok(stanza) => Some(stanza),
                Err(error) => {
                    warn!(%error, "a saved stanza does not parse");
                    None
                }
            })
            .collect()
    }

    /// Seconds left to resume, from now.
    pub fn seconds_left(&self) -> u64 {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        u64::try_from(self.resume_until.saturating_sub(now)).unwrap_or(0)
    }
}

/// Writes a session of `jid`'s account beside the others saved for it.
pub async fn save(
    router: &Router,
    jid: &FullJid,
    session: SavedSession,
) -> Result<(), StorageError> {
    let store = router
        .storage
        .map::<SavedSession>(jid.domain().as_str(), STORE);
    let user = jid.node().map(|n| n.as_str()).unwrap_or_default();
    store.set(user, &session.id, &session).await
}

/// Reads every saved session of every host. Each record stays in storage until its session
/// is resumed or ends ([`forget`]), so that a crash before then loses nothing.
pub async fn all(router: &Router) -> Result<Vec<(FullJid, SavedSession)>, StorageError> {
    let mut restored = Vec::new();
    for host in router.hosts() {
        let store = router.storage.map::<SavedSession>(host, STORE);
        for (user, _, session) in store.everything().await? {
            match FullJid::new(&format!("{user}@{host}/{}", session.resource)) {
                Ok(jid) => restored.push((jid, session)),
                Err(error) => warn!(%error, "a saved session has an invalid address"),
            }
        }
    }
    Ok(restored)
}

/// Removes the saved record of a restored session that was resumed or ended.
pub async fn forget(router: &Router, jid: &FullJid, id: &str) -> Result<(), StorageError> {
    let store = router
        .storage
        .map::<SavedSession>(jid.domain().as_str(), STORE);
    let user = jid.node().map(|n| n.as_str()).unwrap_or_default();
    store.delete(user, id).await
}
