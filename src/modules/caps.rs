//! XEP-0115: Entity Capabilities of clients — learns which PEP nodes each available resource
//! wants notifications for (`+notify` features, XEP-0163 §4.2). A new `ver` is queried once,
//! its hash verified, and the answer cached for every resource announcing it: local sessions,
//! and contacts' resources on other servers (see `remote_interests`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jid::FullJid;
use rempart_xep::caps::ver_string;
use rempart_xep::disco::DiscoInfo;
use rempart_xep::element::Element;
use rempart_xep::ns;
use tracing::debug;

use crate::modules::{priority, Event, EventHook, Flow, HookPoint, Implements, Module, Registrar};
use crate::router::{Router, SessionHandle};

/// Verified `ver` strings kept before the cache is emptied and rebuilt.
const CACHE_LIMIT: usize = 10_000;

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

/// Verified interests per `ver`, and who waits while a `ver` is being queried.
#[derive(Default)]
struct CapsState {
    verified: HashMap<String, Arc<HashSet<String>>>,
    discovering: HashMap<String, Vec<Arc<dyn Announcer>>>,
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
#[derive(Default)]
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
    if let Some(interests) = state.verified.get(ver) {
        return Lookup::Known(interests.clone());
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
    if state.verified.len() >= CACHE_LIMIT {
        state.verified.clear();
    }
    state.verified.insert(ver.to_owned(), interests);
    state.discovering.remove(ver).unwrap_or_default()
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
    /// Gives `announcer` the interests behind `caps`: at once when its `ver` is verified,
    /// else once a client answered. The question is asked from a task of its own: its answer
    /// may come through the very stream that carried the announcement.
    pub async fn announce(
        &self,
        router: &Router,
        announcer: Arc<dyn Announcer>,
        caps: AnnouncedCaps,
    ) {
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
                if verifiable && ver_string(info) == caps.ver {
                    let waiting = verified(&state, &caps.ver, interests.clone());
                    for announcer in std::iter::once(asked).chain(waiting) {
                        announcer.learned(&router, interests.clone()).await;
                    }
                    return;
                }
                debug!("capabilities hash not verified; used for this resource only");
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
impl EventHook for CapsModule {
    async fn on_event(&self, router: &Router, event: &Event<'_>) -> Flow {
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
}
