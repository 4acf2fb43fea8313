//! XEP-0115: Entity Capabilities of clients — learns which PEP nodes each available resource
//! wants notifications for (`+notify` features, XEP-0163 §4.2). A new `ver` is queried once,
//! its hash verified, and the answer cached for every resource announcing it: local sessions,
//! and contacts' resources on other servers (see `remote_interests`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jid::FullJid;
use rempart_xep::caps::verify;
use rempart_xep::disco::DiscoInfo;
use rempart_xep::element::Element;
use rempart_xep::ns;
use serde::Deserialize;
use tracing::debug;

use crate::modules::Module;
use crate::router::{
    priority, Event, EventHook, Flow, HookPoint, Implements, Registrar, Router, SessionHandle,
};

/// Longest `ver` considered: the base64 of a 512-bit hash is 88 characters; anything longer
/// is no verification string and is not worth a query or a cache entry.
const MAX_VER_LEN: usize = 88;

/// `[modules.caps]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapsConfig {
    /// Verified `ver` strings remembered; the least recently used one makes room.
    pub cache_size: usize,
    /// Resources remembered with a `ver` that could not be verified, so that their next
    /// presences do not query them again.
    pub failure_cache_size: usize,
    /// Seconds such a failure is remembered.
    pub failure_ttl_secs: u64,
}

impl Default for CapsConfig {
    fn default() -> Self {
        CapsConfig {
            cache_size: 10_000,
            failure_cache_size: 10_000,
            failure_ttl_secs: 3600,
        }
    }
}

/// A map of bounded size that makes room by dropping its least recently used entry.
struct LruCache<K, V> {
    capacity: usize,
    tick: u64,
    entries: HashMap<K, (V, u64)>,
    by_use: BTreeMap<u64, K>,
}

impl<K: Clone + Eq + Hash, V> LruCache<K, V> {
    fn new(capacity: usize) -> Self {
        LruCache {
            capacity,
            tick: 0,
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
        }
    }

    /// The value of `key`, now the most recently used.
    fn get(&mut self, key: &K) -> Option<&V> {
        self.tick += 1;
        let (_, used) = self.entries.get_mut(key)?;
        self.by_use.remove(used);
        *used = self.tick;
        self.by_use.insert(self.tick, key.clone());
        self.entries.get(key).map(|(value, _)| value)
    }

    /// Stores `value`, dropping the least recently used entry when full.
    fn insert(&mut self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        self.tick += 1;
        if let Some((_, used)) = self.entries.remove(&key) {
            self.by_use.remove(&used);
        } else if self.entries.len() >= self.capacity {
            if let Some((_, oldest)) = self.by_use.pop_first() {
                self.entries.remove(&oldest);
            }
        }
        self.by_use.insert(self.tick, key.clone());
        self.entries.insert(key, (value, self.tick));
    }

    fn remove(&mut self, key: &K) {
        if let Some((_, used)) = self.entries.remove(key) {
            self.by_use.remove(&used);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// What one resource's unverified `ver` taught: its own interests, kept until `until`.
#[derive(Clone)]
struct Unverified {
    interests: Arc<HashSet<String>>,
    until: Instant,
}

/// A resource that announced a `ver`: asked about it when nobody else is, and told the
/// interests behind it once they are known.
#[async_trait]
pub trait Announcer: Send + Sync {
    /// The resource to ask.
    fn jid(&self) -> &FullJid;
    /// The served domain the question comes from.
    fn asked_from(&self) -> &str;
    /// Takes the `+notify` interests behind the announced `ver`.
    async fn learned(&self, router: &Router, interests: Arc<HashSet<String>>);
}

/// The `<c/>` of an available presence (XEP-0115 §4).
#[derive(Debug, Clone)]
pub struct AnnouncedCaps {
    /// The client's software, asked about as `node#ver`.
    pub node: String,
    /// The verification string.
    pub ver: String,
    /// The hash function behind `ver`; only `sha-1` is verified and cached.
    pub hash: Option<String>,
}

impl AnnouncedCaps {
    /// The caps an available presence carries, if any.
    pub fn of(presence: &Element) -> Option<Self> {
        if presence.get_attr("type").is_some() {
            return None;
        }
        let c = presence.get_child("c", ns::CAPS)?;
        Some(AnnouncedCaps {
            node: c.get_attr("node")?.to_owned(),
            ver: c.get_attr("ver")?.to_owned(),
            hash: c.get_attr("hash").map(str::to_owned),
        })
    }

    fn verifiable(&self) -> bool {
        self.hash.as_deref() == Some("sha-1")
    }
}

/// Verified interests per `ver`, recent failures per (resource, `ver`), and who waits while
/// a `ver` is being queried.
struct CapsState {
    verified: LruCache<String, Arc<HashSet<String>>>,
    failed: LruCache<(FullJid, String), Unverified>,
    failure_ttl: Duration,
    discovering: HashMap<String, Vec<Arc<dyn Announcer>>>,
}

impl CapsState {
    fn new(config: &CapsConfig) -> Self {
        CapsState {
            verified: LruCache::new(config.cache_size),
            failed: LruCache::new(config.failure_cache_size),
            failure_ttl: Duration::from_secs(config.failure_ttl_secs),
            discovering: HashMap::new(),
        }
    }

    /// What an earlier failed query of this resource's `ver` taught, while it is fresh.
    fn recent_failure(&mut self, jid: &FullJid, ver: &str) -> Option<Unverified> {
        let key = (jid.clone(), ver.to_owned());
        let failure = self.failed.get(&key)?.clone();
        if failure.until <= Instant::now() {
            self.failed.remove(&key);
            return None;
        }
        Some(failure)
    }
}

/// What to do with a presence announcing a `ver`.
enum Lookup {
    /// Known: apply these interests.
    Known(Arc<HashSet<String>>),
    /// Someone is already asking: this announcer waits for that answer.
    Waiting,
    /// Nobody asked yet: this announcer is queried.
    Query,
}

/// A local session: its interests live in the session table.
struct LocalSession(SessionHandle);

#[async_trait]
impl Announcer for LocalSession {
    fn jid(&self) -> &FullJid {
        &self.0.jid
    }

    fn asked_from(&self) -> &str {
        self.0.jid.domain().as_str()
    }

    /// Records the interests. Modules hear of them now only if the session is already
    /// available; otherwise its initial presence (`SessionAvailable`) is the moment they act.
    async fn learned(&self, router: &Router, interests: Arc<HashSet<String>>) {
        let session = &self.0;
        let mut changed = false;
        let mut available = false;
        router.sessions.update(&session.jid, |state| {
            changed = state.notify != interests;
            available = state.available.is_some();
            state.notify = interests.clone();
        });
        if changed && available {
            router
                .run_hooks(Event::NotifyInterestsKnown { session })
                .await;
        }
    }
}

/// The capabilities module.
pub struct CapsModule {
    state: Arc<Mutex<CapsState>>,
}

static IMPLEMENTS: &[Implements] = &[Implements {
    spec: "XEP-0115",
    version: "1.6.0",
    note: "client capabilities verified and cached for +notify filtering",
}];

impl Module for CapsModule {
    fn name(&self) -> &'static str {
        "caps"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        registrar.hook(HookPoint::PresenceFromClient, priority::POLICY, self);
    }
}

/// The PEP nodes a client asked to be notified about.
fn notify_interests(info: &DiscoInfo) -> HashSet<String> {
    info.features
        .iter()
        .filter_map(|f| f.strip_suffix("+notify"))
        .map(str::to_owned)
        .collect()
}

fn lookup(
    state: &Mutex<CapsState>,
    ver: &str,
    announcer: &Arc<dyn Announcer>,
    verifiable: bool,
) -> Lookup {
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(interests) = state.verified.get(&ver.to_owned()) {
        return Lookup::Known(interests.clone());
    }
    if let Some(failure) = state.recent_failure(announcer.jid(), ver) {
        return Lookup::Known(failure.interests);
    }
    if !verifiable {
        return Lookup::Query;
    }
    match state.discovering.get_mut(ver) {
        Some(waiting) => {
            waiting.push(announcer.clone());
            Lookup::Waiting
        }
        None => {
            state.discovering.insert(ver.to_owned(), Vec::new());
            Lookup::Query
        }
    }
}

/// Caches verified interests and hands back the announcers that waited for them.
fn verified(
    state: &Mutex<CapsState>,
    ver: &str,
    interests: Arc<HashSet<String>>,
) -> Vec<Arc<dyn Announcer>> {
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    state.verified.insert(ver.to_owned(), interests);
    state.discovering.remove(ver).unwrap_or_default()
}

/// Remembers that `jid`'s `ver` could not be verified, with what it answered for itself,
/// so that its next presences with that `ver` are not queried again for a while. (A
/// resource that did not answer is asked again at its next presence: it may have been busy.)
fn failed(state: &Mutex<CapsState>, jid: &FullJid, ver: &str, interests: Arc<HashSet<String>>) {
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    let until = Instant::now() + state.failure_ttl;
    state.failed.insert(
        (jid.clone(), ver.to_owned()),
        Unverified { interests, until },
    );
}

/// After a failed query, the next waiting announcer to ask, if any.
fn next_to_ask(state: &Mutex<CapsState>, ver: &str) -> Option<Arc<dyn Announcer>> {
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    let waiting = state.discovering.get_mut(ver)?;
    if waiting.is_empty() {
        state.discovering.remove(ver);
        return None;
    }
    Some(waiting.remove(0))
}

impl CapsModule {
    /// The module with its cache sizes.
    pub fn new(config: &CapsConfig) -> Self {
        CapsModule {
            state: Arc::new(Mutex::new(CapsState::new(config))),
        }
    }

    /// Gives `announcer` the interests behind `caps`: at once when its `ver` is verified,
    /// else once a client answered. The question is asked from a task of its own: its answer
    /// may come through the very stream that carried the announcement.
    pub async fn announce(
        &self,
        router: &Router,
        announcer: Arc<dyn Announcer>,
        caps: AnnouncedCaps,
    ) {
        if caps.ver.len() > MAX_VER_LEN {
            debug!("capabilities ver too long to be a hash; ignored");
            return;
        }
        match lookup(&self.state, &caps.ver, &announcer, caps.verifiable()) {
            Lookup::Known(interests) => announcer.learned(router, interests).await,
            Lookup::Waiting => {}
            Lookup::Query => {
                if let Some(router) = router.handle() {
                    tokio::spawn(Self::discover(self.state.clone(), router, announcer, caps));
                }
            }
        }
    }

    /// Asks a client for the features behind `node#ver` and verifies the hash; a verified
    /// answer serves every announcer that waited for it, a failed one passes the question on
    /// to the next waiting announcer.
    async fn discover(
        state: Arc<Mutex<CapsState>>,
        router: Arc<Router>,
        announcer: Arc<dyn Announcer>,
        caps: AnnouncedCaps,
    ) {
        let verifiable = caps.verifiable();
        let mut asked = announcer;
        loop {
            let query = Element::new("query", ns::DISCO_INFO)
                .attr("node", format!("{}#{}", caps.node, caps.ver));
            let info = router
                .query(asked.jid(), asked.asked_from(), query)
                .await
                .and_then(|answer| {
                    answer
                        .get_child("query", ns::DISCO_INFO)
                        .map(DiscoInfo::from_element)
                });
            if let Some(info) = &info {
                let interests = Arc::new(notify_interests(info));
                let checked = if verifiable {
                    verify(info, &caps.ver)
                } else {
                    Ok(())
                };
                match checked {
                    Ok(()) if verifiable => {
                        let waiting = verified(&state, &caps.ver, interests.clone());
                        for announcer in std::iter::once(asked).chain(waiting) {
                            announcer.learned(&router, interests.clone()).await;
                        }
                        return;
                    }
                    Ok(()) => debug!("capabilities hash not supported; used for this resource"),
                    Err(error) => {
                        debug!(%error, "capabilities not verified; used for this resource")
                    }
                }
                failed(&state, asked.jid(), &caps.ver, interests.clone());
                asked.learned(&router, interests).await;
            } else {
                debug!("no capabilities answer");
            }
            if !verifiable {
                return;
            }
            match next_to_ask(&state, &caps.ver) {
                Some(next) => asked = next,
                None => return,
            }
        }
    }
}

#[async_trait]
impl EventHook<Router> for CapsModule {
    async fn on_event(&self, router: &Router, event: &mut Event<'_>) -> Flow {
        let Event::PresenceFromClient { session, presence } = event else {
            return Flow::Continue;
        };
        // Only broadcast presence announces what a session wants.
        if presence.get_attr("to").is_some() {
            return Flow::Continue;
        }
        if let Some(caps) = AnnouncedCaps::of(presence) {
            let session = Arc::new(LocalSession((*session).clone()));
            self.announce(router, session, caps).await;
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_features_name_the_nodes() {
        let info = DiscoInfo {
            features: vec![
                "urn:xmpp:omemo:2:devices+notify".into(),
                "eu.siacs.conversations.axolotl.devicelist+notify".into(),
                "urn:xmpp:ping".into(),
            ],
            ..DiscoInfo::default()
        };
        let interests = notify_interests(&info);
        assert!(interests.contains("urn:xmpp:omemo:2:devices"));
        assert!(interests.contains("eu.siacs.conversations.axolotl.devicelist"));
        assert_eq!(interests.len(), 2);
    }

    #[test]
    fn a_full_cache_evicts_only_its_least_recently_used_entry() {
        let mut cache = LruCache::new(3);
        cache.insert("a", 1);
        cache.insert("b", 2);
        cache.insert("c", 3);
        assert_eq!(cache.get(&"a"), Some(&1));
        cache.insert("d", 4);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&"b"), None, "b was the least recently used");
        assert_eq!(cache.get(&"a"), Some(&1));
        assert_eq!(cache.get(&"c"), Some(&3));
        assert_eq!(cache.get(&"d"), Some(&4));
    }
}
