//! The session table: `BareJid → {resource → SessionEntry}`. Holds senders, never sockets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use jid::{BareJid, FullJid};
use rempart_xep::element::{Element, Node};
use rempart_xep::stream::StreamError;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::router::extensions::{SessionExtensions, SessionStatus};

/// What the router can ask of a session actor.
#[derive(Debug)]
pub enum SessionCommand {
    /// Write this stanza to the client; `cost` is what it counts against the inbox's byte
    /// budget until the actor takes it (see [`SessionHandle::taken`]).
    Stanza {
        /// The stanza.
        stanza: Element,
        /// Its estimated size in bytes.
        cost: usize,
    },
    /// Close the stream with this error.
    Close(StreamError),
}

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

/// How long a bulk delivery waits for room in a session's inbox before giving up.
const BULK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Bytes queued in a session's inbox and the most it may hold, shared by every handle.
#[derive(Debug)]
struct InboxBudget {
    queued: AtomicUsize,
    limit: AtomicUsize,
    /// Woken when the actor takes a stanza, for deliveries waiting for room.
    room: Notify,
}

impl InboxBudget {
    /// Counts `cost` bytes as queued unless that would pass the limit. A stanza always fits
    /// an empty inbox, so one stanza larger than the limit is still delivered.
    fn reserve(&self, cost: usize) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                let fits = queued == 0 || queued.saturating_add(cost) <= limit;
                fits.then_some(queued.saturating_add(cost))
            })
            .is_ok()
    }

    /// Gives `cost` bytes back and wakes deliveries waiting for room.
    fn release(&self, cost: usize) {
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                Some(queued.saturating_sub(cost))
            });
        self.room.notify_waiters();
    }
}

/// A cheap handle on a session actor.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    /// The bound full JID.
    pub jid: FullJid,
    /// Unique per session, to tell a replaced session from its successor.
    pub id: u64,
    /// Modules' state of this session.
    pub extensions: Arc<SessionExtensions>,
    /// Whether the client is attached and active, as the session actor reports it.
    pub status: Arc<SessionStatus>,
    tx: mpsc::Sender<SessionCommand>,
    overflow: CancellationToken,
    budget: Arc<InboxBudget>,
}

impl SessionHandle {
    /// A handle and the receiving end of its inbox, which holds `capacity` stanzas and no
    /// byte limit until [`SessionHandle::limit_queued_bytes`] sets one.
    pub fn new(
        jid: FullJid,
        capacity: usize,
    ) -> (
        SessionHandle,
        mpsc::Receiver<SessionCommand>,
        CancellationToken,
    ) {
        let (tx, rx) = mpsc::channel(capacity);
        let overflow = CancellationToken::new();
        let handle = SessionHandle {
            jid,
            id: NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed),
            extensions: Arc::default(),
            status: Arc::default(),
            tx,
            overflow: overflow.clone(),
            budget: Arc::new(InboxBudget {
                queued: AtomicUsize::new(0),
                limit: AtomicUsize::new(usize::MAX),
                room: Notify::new(),
            }),
        };
        (handle, rx, overflow)
    }

    /// Sets the most bytes of stanzas the inbox may hold (for this handle and its clones).
    pub fn limit_queued_bytes(&self, limit: usize) {
        self.budget.limit.store(limit, Ordering::Relaxed);
    }

    /// Queues a stanza; a full inbox (in stanzas or in bytes) marks the session as a slow
    /// consumer to be dropped.
    pub fn send(&self, stanza: Element) -> bool {
        let cost = stanza_cost(&stanza);
        if !self.budget.reserve(cost) {
            self.overflow.cancel();
            return false;
        }
        match self.tx.try_send(SessionCommand::Stanza { stanza, cost }) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.budget.release(cost);
                self.overflow.cancel();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.budget.release(cost);
                false
            }
        }
    }

    /// Queues a stanza of a bulk delivery (offline messages, pending subscription requests,
    /// last PEP items), waiting for room (in stanzas and in bytes) instead of treating a full
    /// inbox as a slow consumer. Call it from a task of its own, never from the session's
    /// actor, which is what empties the inbox.
    pub async fn send_waiting(&self, stanza: Element) -> bool {
        let cost = stanza_cost(&stanza);
        let deadline = tokio::time::Instant::now() + BULK_WAIT;
        loop {
            let room = self.budget.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.budget.reserve(cost) {
                break;
            }
            tokio::select! {
                () = &mut room => {}
                () = self.tx.closed() => return false,
                () = tokio::time::sleep_until(deadline) => return false,
            }
        }
        let command = SessionCommand::Stanza { stanza, cost };
        let sent = tokio::time::timeout_at(deadline, self.tx.send(command)).await;
        if matches!(sent, Ok(Ok(()))) {
            true
        } else {
            self.budget.release(cost);
            false
        }
    }

    /// The actor took a stanza of `cost` bytes out of the inbox: that room is free again.
    pub fn taken(&self, cost: usize) {
        self.budget.release(cost);
    }

    /// Asks the session to close with a stream error.
    pub fn close(&self, error: StreamError) {
        if self.tx.try_send(SessionCommand::Close(error)).is_err() {
            self.overflow.cancel();
        }
    }
}

/// What a stanza costs in an inbox: roughly its serialised size (names, namespaces,
/// attributes and text), computed without serialising it.
pub fn stanza_cost(stanza: &Element) -> usize {
    /// Markup around each element: brackets, quotes, `xmlns=`, the closing tag.
    const ELEMENT_OVERHEAD: usize = 16;
    let mut cost = 0usize;
    let mut pending = vec![stanza];
    while let Some(element) = pending.pop() {
        cost = cost
            .saturating_add(ELEMENT_OVERHEAD)
            .saturating_add(2 * element.name().len())
            .saturating_add(element.ns().len());
        for (name, value) in element.attrs() {
            cost = cost.saturating_add(name.len() + value.len() + 4);
        }
        for node in element.nodes() {
            match node {
                Node::Element(child) => pending.push(child),
                Node::Text(text) => cost = cost.saturating_add(text.len()),
            }
        }
    }
    cost
}

/// Presence state the router keeps per session.
#[derive(Debug, Clone, Default)]
pub struct PresenceState {
    /// The last broadcast available presence, `None` while unavailable.
    pub available: Option<std::sync::Arc<Element>>,
    /// Its priority.
    pub priority: i8,
    /// The session asked for the roster (gets roster pushes).
    pub interested: bool,
    /// JIDs that got directed presence and must get `unavailable` when the session leaves.
    pub directed: Vec<jid::Jid>,
    /// PEP nodes the client asked notifications for with `+notify` in its capabilities.
    pub notify: std::sync::Arc<std::collections::HashSet<String>>,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct SessionEntry {
    /// The actor.
    pub handle: SessionHandle,
    /// Presence state.
    pub presence: PresenceState,
}

/// All bound sessions.
#[derive(Debug, Default)]
pub struct SessionTable {
    by_account: RwLock<HashMap<BareJid, HashMap<String, SessionEntry>>>,
}

impl SessionTable {
    /// Registers a session, returning the one it replaces (same full JID), if any.
    pub fn insert(&self, handle: SessionHandle) -> Option<SessionHandle> {
        let mut table = self.by_account.write().unwrap_or_else(|e| e.into_inner());
        let resources = table.entry(handle.jid.to_bare()).or_default();
        let resource = handle.jid.resource().to_string();
        resources
            .insert(
                resource,
                SessionEntry {
                    handle,
                    presence: PresenceState::default(),
                },
            )
            .map(|old| old.handle)
    }

    /// Removes the session if it is still the registered one; returns its last state.
    pub fn remove(&self, handle: &SessionHandle) -> Option<PresenceState> {
        let mut table = self.by_account.write().unwrap_or_else(|e| e.into_inner());
        let bare = handle.jid.to_bare();
        let resources = table.get_mut(&bare)?;
        let resource = handle.jid.resource().as_str();
        if resources.get(resource).map(|e| e.handle.id) != Some(handle.id) {
            return None;
        }
        let removed = resources.remove(resource).map(|e| e.presence);
        if resources.is_empty() {
            table.remove(&bare);
        }
        removed
    }

    /// The session bound to a full JID.
    pub fn get(&self, jid: &FullJid) -> Option<SessionEntry> {
        let table = self.by_account.read().unwrap_or_else(|e| e.into_inner());
        table
            .get(&jid.to_bare())?
            .get(jid.resource().as_str())
            .cloned()
    }

    /// All sessions of an account.
    pub fn of_account(&self, bare: &BareJid) -> Vec<SessionEntry> {
        let table = self.by_account.read().unwrap_or_else(|e| e.into_inner());
        table
            .get(bare)
            .map(|resources| resources.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Updates the presence state of a session (no-op if it is gone).
    pub fn update(&self, jid: &FullJid, change: impl FnOnce(&mut PresenceState)) {
        let mut table = self.by_account.write().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = table
            .get_mut(&jid.to_bare())
            .and_then(|r| r.get_mut(jid.resource().as_str()))
        {
            change(&mut entry.presence);
        }
    }

    /// Number of bound sessions.
    pub fn count(&self) -> usize {
        let table = self.by_account.read().unwrap_or_else(|e| e.into_inner());
        table.values().map(HashMap::len).sum()
    }
}
