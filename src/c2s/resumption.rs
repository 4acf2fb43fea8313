//! The resumable sessions (XEP-0198 §5): a new connection names a session by its SM-ID and
//! takes it over; sessions that ended are remembered for a while, so that a late `<resume/>`
//! still learns how many of its stanzas the server handled.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use jid::{BareJid, FullJid};
use rand::distr::{Alphanumeric, SampleString};
use rempart_xep::element::Element;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::mpsc;

use crate::net::transport::Transport;
use crate::stream::reader::XmlReader;
use crate::stream::writer::XmlWriter;

/// A new connection for a resumable session, authenticated as its owner.
pub struct Takeover {
    /// Reads the new stream.
    pub reader: XmlReader<ReadHalf<Transport>>,
    /// Writes to the new stream.
    pub writer: XmlWriter<WriteHalf<Transport>>,
    /// The stanzas the client says it handled on the former stream.
    pub h: u32,
    /// When the resumption came inline with SASL2 (XEP-0388): what the `<success/>` that
    /// carries `<resumed/>` must also say.
    pub sasl2: Option<Sasl2Reply>,
}

/// The parts of a SASL2 `<success/>` decided during authentication.
pub struct Sasl2Reply {
    /// The mechanism's additional data.
    pub additional_data: Vec<u8>,
    /// Other results to report (a FAST token).
    pub extra: Vec<Element>,
}

/// What the server knows of an SM-ID a client wants to resume.
pub enum Lookup {
    /// The session lives: hand it the connection.
    Live {
        /// The session's full JID, for logs.
        jid: FullJid,
        /// Where the connection goes.
        takeover: mpsc::Sender<Takeover>,
    },
    /// The session ended; it had handled this many stanzas from the client.
    Ended {
        /// The session's last `h`.
        handled: u32,
    },
    /// Never heard of, or of another account.
    Unknown,
}

struct Live {
    jid: FullJid,
    takeover: mpsc::Sender<Takeover>,
}

struct Ended {
    owner: BareJid,
    handled: u32,
}

/// Live resumable sessions by SM-ID, and the last ones that ended.
pub struct Resumptions {
    live: Mutex<HashMap<String, Live>>,
    ended: Mutex<EndedSessions>,
}

/// A bounded memory of ended sessions, oldest forgotten first.
struct EndedSessions {
    by_id: HashMap<String, Ended>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Resumptions {
    /// An empty table that remembers up to `remembered` ended sessions.
    pub fn new(remembered: usize) -> Resumptions {
        Resumptions {
            live: Mutex::new(HashMap::new()),
            ended: Mutex::new(EndedSessions {
                by_id: HashMap::new(),
                order: VecDeque::new(),
                capacity: remembered,
            }),
        }
    }

    /// Registers a session that may be resumed and returns its new SM-ID.
    pub fn register(&self, jid: FullJid, takeover: mpsc::Sender<Takeover>) -> String {
        let id = Alphanumeric.sample_string(&mut rand::rng(), 24);
        self.register_with_id(id.clone(), jid, takeover);
        id
    }

    /// Registers a restored session under the SM-ID its client knows.
    pub fn register_with_id(&self, id: String, jid: FullJid, takeover: mpsc::Sender<Takeover>) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.insert(id, Live { jid, takeover });
    }

    /// What `owner` may resume under `id`; another account's session reads as unknown.
    pub fn find(&self, id: &str, owner: &BareJid) -> Lookup {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(session) = live.get(id) {
            if session.jid.to_bare() == *owner {
                return Lookup::Live {
                    jid: session.jid.clone(),
                    takeover: session.takeover.clone(),
                };
            }
            return Lookup::Unknown;
        }
        drop(live);
        let ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        match ended.by_id.get(id) {
            Some(session) if session.owner == *owner => Lookup::Ended {
                handled: session.handled,
            },
            _ => Lookup::Unknown,
        }
    }

    /// The session under `id` ended after handling `handled` stanzas from its client.
    pub fn ended(&self, id: &str, handled: u32) {
        let removed = {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            live.remove(id)
        };
        let Some(session) = removed else {
            return;
        };
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        if ended.capacity == 0 {
            return;
        }
        while ended.order.len() >= ended.capacity {
            if let Some(oldest) = ended.order.pop_front() {
                ended.by_id.remove(&oldest);
            }
        }
        ended.order.push_back(id.to_owned());
        ended.by_id.insert(
            id.to_owned(),
            Ended {
                owner: session.jid.to_bare(),
                handled,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(text: &str) -> FullJid {
        FullJid::new(text).expect("valid")
    }

    #[test]
    fn only_the_owner_finds_a_live_session() {
        let table = Resumptions::new(4);
        let (tx, _rx) = mpsc::channel(1);
        let id = table.register(jid("alice@example.org/phone"), tx);
        let alice = BareJid::new("alice@example.org").expect("valid");
        let mallory = BareJid::new("mallory@example.org").expect("valid");
        assert!(matches!(table.find(&id, &alice), Lookup::Live { .. }));
        assert!(matches!(table.find(&id, &mallory), Lookup::Unknown));
    }

    #[test]
    fn an_ended_session_is_remembered_with_its_count_until_pushed_out() {
        let table = Resumptions::new(1);
        let alice = BareJid::new("alice@example.org").expect("valid");
        let (tx, _rx) = mpsc::channel(1);
        let first = table.register(jid("alice@example.org/a"), tx.clone());
        let second = table.register(jid("alice@example.org/b"), tx);
        table.ended(&first, 7);
        assert!(matches!(
            table.find(&first, &alice),
            Lookup::Ended { handled: 7 }
        ));
        table.ended(&second, 9);
        assert!(matches!(table.find(&first, &alice), Lookup::Unknown));
        assert!(matches!(
            table.find(&second, &alice),
            Lookup::Ended { handled: 9 }
        ));
    }
}
