//! XEP-0402 compatibility (`#compat`, `#compat-pep`) and XEP-0411: Bookmarks Conversion —
//! one set of chat room bookmarks whichever way a client keeps them: PEP Native Bookmarks
//! (one `urn:xmpp:bookmarks:1` item per room), XEP-0048 in private XML storage (XEP-0049),
//! or XEP-0048 in the PEP node `storage:bookmarks`. A write to any of the three is copied to
//! the other two through the PEP and private storage modules' own methods, which raise no
//! hook event: a conversion never triggers itself.

use std::sync::Arc;

use async_trait::async_trait;
use jid::BareJid;
use rempart_xep::bookmarks::{
    legacy_conferences, legacy_storage, Conference, COMPAT, COMPAT_PEP, CONVERSION, NS, NS_LEGACY,
};
use rempart_xep::data_form::{DataForm, Field};
use rempart_xep::element::Element;
use rempart_xep::pubsub;
use serde::Deserialize;
use time::OffsetDateTime;
use tracing::{debug, warn};

use crate::modules::pep::PepModule;
use crate::modules::private::PrivateModule;
use crate::modules::Module;
use crate::pubsub::config::AccessModel;
use crate::pubsub::ItemRecord;
use crate::router::{priority, Event, EventHook, Flow, HookPoint, Implements, Registrar, Router};

/// Store name of when each account's private-storage bookmarks were last written (µs since
/// the epoch, the clock of PEP item sequence numbers).
const STORE: &str = "bookmarks_conversion";
/// The single item of the XEP-0048 PEP node.
const LEGACY_ITEM: &str = "current";

/// `[modules.bookmarks_conversion]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BookmarksConversionConfig {
    /// Keep bookmarks in step between PEP and private XML storage (needs `[modules.pep]`).
    pub enabled: bool,
}

impl Default for BookmarksConversionConfig {
    fn default() -> Self {
        BookmarksConversionConfig { enabled: true }
    }
}

/// Where a set of bookmarks was written by a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Private XML storage.
    Private,
    /// The XEP-0048 PEP node.
    LegacyPep,
}

/// The bookmarks conversion module.
pub struct BookmarksConversionModule {
    pep: Arc<PepModule>,
    private: Arc<PrivateModule>,
}

static IMPLEMENTS: &[Implements] = &[
    Implements {
        spec: "XEP-0048",
        version: "1.2",
        note: "bookmarks in private XML storage and in PEP, converted to and from XEP-0402",
    },
    Implements {
        spec: "XEP-0402",
        version: "1.2.0",
        note: "#compat and #compat-pep: one item per room, kept in step with XEP-0048 storage",
    },
    Implements {
        spec: "XEP-0411",
        version: "1.1.0",
        note: "private XML and PEP bookmarks converted both ways",
    },
];

impl Module for BookmarksConversionModule {
    fn name(&self) -> &'static str {
        "bookmarks_conversion"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        for feature in [COMPAT, COMPAT_PEP, CONVERSION] {
            registrar.account_feature(feature);
        }
        for point in [
            HookPoint::PrivateXmlStored,
            HookPoint::PrivateXmlRead,
            HookPoint::PepItemPublished,
            HookPoint::PepItemsRemoved,
            HookPoint::IqFromClient,
        ] {
            registrar.hook(point, priority::HANDLER, self.clone());
        }
    }
}

/// Publish-options of the bookmark nodes the conversion creates (XEP-0402 §3.3, XEP-0411
/// §5.2): only the owner may read them.
fn bookmark_node_options(node: &str) -> DataForm {
    let mut fields = vec![
        Field::new("pubsub#access_model", "list-single", "whitelist"),
        Field::new("pubsub#persist_items", "boolean", "true"),
    ];
    if node == NS {
        fields.push(Field::new("pubsub#max_items", "text-single", "max"));
        fields.push(Field::new(
            "pubsub#send_last_published_item",
            "list-single",
            "never",
        ));
    }
    DataForm {
        kind: "submit".to_owned(),
        form_type: Some(pubsub::PUBLISH_OPTIONS.to_owned()),
        fields,
    }
}

/// The conferences of the `urn:xmpp:bookmarks:1` items, oldest first.
fn item_conferences(items: &[ItemRecord]) -> Vec<Conference> {
    items
        .iter()
        .filter_map(|item| {
            let payload = Element::parse(&item.payload).ok()?;
            Conference::from_item(&item.id, &payload)
        })
        .collect()
}

/// True when `iq` is its sender's request for its own PEP bookmarks.
fn asks_for_own_pep_bookmarks(iq: &Element, owner: &BareJid) -> bool {
    if iq.get_attr("type") != Some("get") {
        return false;
    }
    let to_self = iq
        .get_attr("to")
        .is_none_or(|to| BareJid::new(to).is_ok_and(|to| to == *owner));
    let node = iq
        .get_child("pubsub", pubsub::NS)
        .and_then(|p| p.get_child("items", pubsub::NS))
        .and_then(|items| items.get_attr("node"));
    to_self && matches!(node, Some(NS | NS_LEGACY))
}

fn now_micros() -> u64 {
    u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000).unwrap_or_default()
}

fn user_of(owner: &BareJid) -> String {
    owner.node().map(|n| n.to_string()).unwrap_or_default()
}

impl BookmarksConversionModule {
    /// The module, writing through the PEP and private storage modules.
    pub fn new(pep: Arc<PepModule>, private: Arc<PrivateModule>) -> Self {
        BookmarksConversionModule { pep, private }
    }

    /// True when `node` of `owner` may receive converted bookmarks: absent (it is created
    /// whitelisted) or readable by the owner only (XEP-0411 §5.2).
    async fn node_is_private(&self, owner: &BareJid, node: &str) -> bool {
        match self.pep.node_of(owner, node).await {
            Ok(None) => true,
            Ok(Some(record)) => {
                let private = record.config.access_model == AccessModel::Whitelist;
                if !private {
                    debug!(
                        node,
                        "bookmark node readable by others; not converted into it"
                    );
                }
                private
            }
            Err(error) => {
                warn!(?error, node, "PEP read failed");
                false
            }
        }
    }

    /// A XEP-0048 `storage` element written by a client: its conferences become
    /// `urn:xmpp:bookmarks:1` items, and the copy it was not written to is replaced.
    async fn convert_legacy(
        &self,
        router: &Router,
        owner: &BareJid,
        storage: &Element,
        from: Source,
    ) {
        let conferences = legacy_conferences(storage);
        self.sync_items(router, owner, &conferences).await;
        match from {
            Source::Private => self.publish_legacy(router, owner, storage).await,
            Source::LegacyPep => self.store_private(router, owner, storage).await,
        }
        self.record_private_write(router, owner).await;
    }

    /// Makes the `urn:xmpp:bookmarks:1` items those of `conferences`: changed rooms are
    /// published, rooms no longer there retracted, unchanged ones left without a
    /// notification (XEP-0402 §6.3.2).
    async fn sync_items(&self, router: &Router, owner: &BareJid, conferences: &[Conference]) {
        if !self.node_is_private(owner, NS).await {
            return;
        }
        let current = match self.pep.items_of(owner, NS).await {
            Ok(items) => item_conferences(&items),
            Err(error) => {
                warn!(?error, "PEP read failed");
                return;
            }
        };
        let options = bookmark_node_options(NS);
        for conference in conferences {
            if current.contains(conference) {
                continue;
            }
            let payload = conference.to_item_payload();
            let published = self
                .pep
                .publish_for_owner(router, owner, NS, &conference.jid, &payload, &options)
                .await;
            if let Err(error) = published {
                debug!(?error, "bookmark not published to PEP");
                return;
            }
        }
        let removed: Vec<String> = current
            .into_iter()
            .filter(|old| conferences.iter().all(|new| new.jid != old.jid))
            .map(|old| old.jid)
            .collect();
        if removed.is_empty() {
            return;
        }
        if let Err(error) = self
            .pep
            .retract_for_owner(router, owner, NS, &removed)
            .await
        {
            debug!(?error, "bookmarks not retracted from PEP");
        }
    }

    /// The `urn:xmpp:bookmarks:1` items changed: both XEP-0048 copies are rewritten from
    /// them, keeping the URL bookmarks of the private copy.
    async fn convert_pep_items(&self, router: &Router, owner: &BareJid) {
        let items = match self.pep.items_of(owner, NS).await {
            Ok(items) => items,
            Err(error) => {
                warn!(?error, "PEP read failed");
                return;
            }
        };
        let previous = match self
            .private
            .element(router, owner, NS_LEGACY, "storage")
            .await
        {
            Ok(previous) => previous,
            Err(error) => {
                warn!(%error, "private storage read failed");
                return;
            }
        };
        let storage = legacy_storage(&item_conferences(&items), previous.as_ref());
        self.store_private(router, owner, &storage).await;
        self.record_private_write(router, owner).await;
        self.publish_legacy(router, owner, &storage).await;
    }

    async fn store_private(&self, router: &Router, owner: &BareJid, storage: &Element) {
        if let Err(error) = self.private.store(router, owner, storage).await {
            debug!(%error, "bookmarks not copied into private storage");
        }
    }

    /// Publishes the XEP-0048 PEP copy, which notifies its subscribers (XEP-0411 §5.1).
    async fn publish_legacy(&self, router: &Router, owner: &BareJid, storage: &Element) {
        if !self.node_is_private(owner, NS_LEGACY).await {
            return;
        }
        let options = bookmark_node_options(NS_LEGACY);
        let published = self
            .pep
            .publish_for_owner(router, owner, NS_LEGACY, LEGACY_ITEM, storage, &options)
            .await;
        if let Err(error) = published {
            debug!(?error, "bookmarks not copied into the XEP-0048 PEP node");
        }
    }

    async fn record_private_write(&self, router: &Router, owner: &BareJid) {
        let store = router.storage.kv::<u64>(owner.domain().as_str(), STORE);
        if let Err(error) = store.set(&user_of(owner), &now_micros()).await {
            warn!(%error, "bookmark conversion time not stored");
        }
    }

    /// The private copy asked for, or one built from the `urn:xmpp:bookmarks:1` items when
    /// they changed after it was last written.
    async fn read_private(&self, router: &Router, owner: &BareJid, stored: &mut Element) {
        let Ok(items) = self.pep.items_of(owner, NS).await else {
            return;
        };
        let Some(newest) = items.iter().map(|item| item.seq).max() else {
            return;
        };
        let store = router.storage.kv::<u64>(owner.domain().as_str(), STORE);
        let written = store.get(&user_of(owner)).await.ok().flatten();
        if written.is_some_and(|written| written >= newest) {
            return;
        }
        *stored = legacy_storage(&item_conferences(&items), Some(stored));
    }

    /// XEP-0411 §5.1: bookmarks kept only in private storage (from before the conversion)
    /// are copied to PEP before a client looks for them there.
    async fn migrate(&self, router: &Router, owner: &BareJid) {
        if !matches!(self.pep.node_of(owner, NS).await, Ok(None)) {
            return;
        }
        let Ok(Some(storage)) = self
            .private
            .element(router, owner, NS_LEGACY, "storage")
            .await
        else {
            return;
        };
        if !legacy_conferences(&storage).is_empty() {
            self.convert_legacy(router, owner, &storage, Source::Private)
                .await;
        }
    }
}

#[async_trait]
impl EventHook<Router> for BookmarksConversionModule {
    async fn on_event(&self, router: &Router, event: &mut Event<'_>) -> Flow {
        match event {
            Event::PrivateXmlStored { owner, data } if data.is("storage", NS_LEGACY) => {
                self.convert_legacy(router, owner, data, Source::Private)
                    .await
            }
            Event::PrivateXmlRead { owner, data } if data.is("storage", NS_LEGACY) => {
                self.read_private(router, owner, data).await
            }
            Event::PepItemPublished {
                owner,
                node,
                payload: Some(storage),
                ..
            } if *node == NS_LEGACY && storage.is("storage", NS_LEGACY) => {
                self.convert_legacy(router, owner, storage, Source::LegacyPep)
                    .await
            }
            Event::PepItemPublished { owner, node, .. }
            | Event::PepItemsRemoved { owner, node }
                if *node == NS =>
            {
                self.convert_pep_items(router, owner).await
            }
            Event::IqFromClient { session, iq } => {
                let owner = session.jid.to_bare();
                if asks_for_own_pep_bookmarks(iq, &owner) {
                    self.migrate(router, &owner).await;
                }
            }
            _ => {}
        }
        Flow::Continue
    }
}
