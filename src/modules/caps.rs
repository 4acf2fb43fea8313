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

/// Notify interests per verified `ver`.
type InterestCache = HashMap<String, Arc<HashSet<String>>>;

/// The capabilities module.
#[derive(Default)]
pub struct CapsModule {
    verified: Arc<Mutex<InterestCache>>,
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

fn cached(cache: &Mutex<InterestCache>, ver: &str) -> Option<Arc<HashSet<String>>> {
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(ver)
        .cloned()
}

fn remember(cache: &Mutex<InterestCache>, ver: String, interests: Arc<HashSet<String>>) {
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= CACHE_LIMIT {
        cache.clear();
    }
    cache.insert(ver, interests);
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

    /// Asks the client for the features behind `node#ver`, verifies the hash and applies them.
    async fn discover(
        cache: Arc<Mutex<InterestCache>>,
        router: Arc<Router>,
        session: SessionHandle,
        node: String,
        ver: String,
        hash: Option<String>,
    ) {
        let query = Element::new("query", ns::DISCO_INFO).attr("node", format!("{node}#{ver}"));
        let host = session.jid.domain().to_string();
        let Some(answer) = router.query(&session.jid, &host, query).await else {
            debug!("no capabilities answer");
            return;
        };
        let Some(info) = answer
            .get_child("query", ns::DISCO_INFO)
            .map(DiscoInfo::from_element)
        else {
            return;
        };
        let interests = Arc::new(notify_interests(&info));
        if hash.as_deref() == Some("sha-1") && ver_string(&info) == ver {
            remember(&cache, ver, interests.clone());
        } else {
            debug!("capabilities hash not verified; used for this session only");
        }
        Self::apply(&router, &session, interests).await;
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
        if let Some(interests) = cached(&self.verified, &ver) {
            Self::apply(router, session, interests).await;
            return Flow::Continue;
        }
        let Some(router) = router.handle() else {
            return Flow::Continue;
        };
        let session = (*session).clone();
        // The answer arrives through this very session: never wait for it here.
        tokio::spawn(Self::discover(
            self.verified.clone(),
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
