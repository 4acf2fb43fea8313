//! XEP-0115: Entity Capabilities of clients — learns which PEP nodes each available resource
//! wants notifications for (`+notify` features, XEP-0163 §4.2). A new `ver` is queried once,
//! its hash verified, and the answer cached for every session announcing it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rempart_xep::caps::ver_string;
use rempart_xep::disco::DiscoInfo;
use rempart_xep::element::Element;
use rempart_xep::ns;
use tracing::debug;

use crate::modules::{priority, Event, EventHook, Flow, HookPoint, Implements, Module, Registrar};
use crate::router::{Router, SessionHandle};

/// Verified `ver` strings kept before the cache is emptied and rebuilt.
const CACHE_LIMIT: usize = 10_000;

/// Verified interests per `ver`, and the sessions waiting while a `ver` is being queried.
#[derive(Default)]
struct CapsState {
    verified: HashMap<String, Arc<HashSet<String>>>,
    discovering: HashMap<String, Vec<SessionHandle>>,
}

/// What to do with a presence announcing a `ver`.
enum Lookup {
    /// Known: apply these interests.
    Known(Arc<HashSet<String>>),
    /// Someone is already asking: this session waits for that answer.
    Waiting,
    /// Nobody asked yet: this session's client is queried.
    Query,
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

/// The `<c/>` of a broadcast available presence: (node, ver, hash).
fn announced_caps(presence: &Element) -> Option<(String, String, Option<String>)> {
    if presence.get_attr("type").is_some() || presence.get_attr("to").is_some() {
        return None;
    }
    let c = presence.get_child("c", ns::CAPS)?;
    Some((
        c.get_attr("node")?.to_owned(),
        c.get_attr("ver")?.to_owned(),
        c.get_attr("hash").map(str::to_owned),
    ))
}

fn lookup(
    state: &Mutex<CapsState>,
    ver: &str,
    session: &SessionHandle,
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
            waiting.push(session.clone());
            Lookup::Waiting
        }
        None => {
            state.discovering.insert(ver.to_owned(), Vec::new());
            Lookup::Query
        }
    }
}

/// Caches verified interests and hands back the sessions that waited for them.
fn verified(
    state: &Mutex<CapsState>,
    ver: &str,
    interests: Arc<HashSet<String>>,
) -> Vec<SessionHandle> {
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    if state.verified.len() >= CACHE_LIMIT {
        state.verified.clear();
    }
    state.verified.insert(ver.to_owned(), interests);
    state.discovering.remove(ver).unwrap_or_default()
}

/// After a failed query, the next waiting session to ask, if any.
fn next_to_ask(state: &Mutex<CapsState>, ver: &str) -> Option<SessionHandle> {
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    let waiting = state.discovering.get_mut(ver)?;
    if waiting.is_empty() {
        state.discovering.remove(ver);
        return None;
    }
    Some(waiting.remove(0))
}

impl CapsModule {
    /// Records the interests. Modules hear of them now only if the session is already
    /// available; otherwise its initial presence (`SessionAvailable`) is the moment they act.
    async fn apply(router: &Router, session: &SessionHandle, interests: Arc<HashSet<String>>) {
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

    /// Asks a client for the features behind `node#ver` and verifies the hash; a verified
    /// answer serves every session that waited for it, a failed one passes the question on
    /// to the next waiting session.
    async fn discover(
        state: Arc<Mutex<CapsState>>,
        router: Arc<Router>,
        session: SessionHandle,
        node: String,
        ver: String,
        hash: Option<String>,
    ) {
        let verifiable = hash.as_deref() == Some("sha-1");
        let mut asked = session;
        loop {
            let query = Element::new("query", ns::DISCO_INFO).attr("node", format!("{node}#{ver}"));
            let host = asked.jid.domain().to_string();
            let info = router
                .query(&asked.jid, &host, query)
                .await
                .and_then(|answer| {
                    answer
                        .get_child("query", ns::DISCO_INFO)
                        .map(DiscoInfo::from_element)
                });
            if let Some(info) = &info {
                let interests = Arc::new(notify_interests(info));
                if verifiable && ver_string(info) == ver {
                    let waiting = verified(&state, &ver, interests.clone());
                    for session in std::iter::once(asked).chain(waiting) {
                        Self::apply(&router, &session, interests.clone()).await;
                    }
                    return;
                }
                debug!("capabilities hash not verified; used for this session only");
                Self::apply(&router, &asked, interests).await;
            } else {
                debug!("no capabilities answer");
            }
            if !verifiable {
                return;
            }
            match next_to_ask(&state, &ver) {
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
        let Some((node, ver, hash)) = announced_caps(presence) else {
            return Flow::Continue;
        };
        let verifiable = hash.as_deref() == Some("sha-1");
        match lookup(&self.state, &ver, session, verifiable) {
            Lookup::Known(interests) => {
                Self::apply(router, session, interests).await;
                return Flow::Continue;
            }
            Lookup::Waiting => return Flow::Continue,
            Lookup::Query => {}
        }
        let Some(router) = router.handle() else {
            return Flow::Continue;
        };
        let session = (*session).clone();
        // The answer arrives through this very session: never wait for it here.
        tokio::spawn(Self::discover(
            self.state.clone(),
            router,
            session,
            node,
            ver,
            hash,
        ));
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
