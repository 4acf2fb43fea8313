//! XEP-0398: User Avatar to vCard-Based Avatars Conversion — one avatar whichever way a
//! client stores it: a PEP avatar (XEP-0084) is copied into the vCard, a vCard photo
//! (XEP-0054/0153) is published to the PEP avatar nodes, and available presence carries the
//! XEP-0153 hash of the vCard photo. Conversions write through the PEP and vCard modules'
//! own methods, which raise no hook event: a conversion never triggers the reverse one.

use std::sync::Arc;

use async_trait::async_trait;
use jid::BareJid;
use rempart_xep::avatar::{
    announce_photo, data_bytes, set_vcard_photo, sha1_hex, vcard_photo, Avatar, Metadata,
    NS_CONVERSION, NS_DATA, NS_METADATA,
};
use rempart_xep::data_form::{DataForm, Field};
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::pubsub::PUBLISH_OPTIONS;
use serde::Deserialize;
use tracing::{debug, warn};

use crate::modules::pep::PepModule;
use crate::modules::vcard::VCardModule;
use crate::modules::Module;
use crate::pubsub::config::AccessModel;
use crate::router::{priority, Event, EventHook, Flow, HookPoint, Implements, Registrar, Router};

/// `[modules.avatar_conversion]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AvatarConversionConfig {
    /// Convert avatars between PEP and the vCard (needs `[modules.pep]`).
    pub enabled: bool,
}

impl Default for AvatarConversionConfig {
    fn default() -> Self {
        AvatarConversionConfig { enabled: true }
    }
}

/// The avatar conversion module.
pub struct AvatarConversionModule {
    pep: Arc<PepModule>,
    vcards: Arc<VCardModule>,
}

static IMPLEMENTS: &[Implements] = &[
    Implements {
        spec: "XEP-0084",
        version: "1.1.4",
        note: "avatar data and metadata nodes kept in step with the vCard photo",
    },
    Implements {
        spec: "XEP-0153",
        version: "1.1.1",
        note: "the server puts the vCard photo's hash in available presence",
    },
    Implements {
        spec: "XEP-0398",
        version: "1.0.0",
        note: "PEP avatars (open data node) copied into the vCard, vCard photos published to PEP",
    },
];

impl Module for AvatarConversionModule {
    fn name(&self) -> &'static str {
        "avatar_conversion"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        registrar.account_feature(NS_CONVERSION);
        registrar.hook(HookPoint::PepItemPublished, priority::HANDLER, self.clone());
        registrar.hook(HookPoint::VCardStored, priority::HANDLER, self.clone());
        // Before the presence module broadcasts it.
        registrar.hook(HookPoint::PresenceFromClient, priority::POLICY, self);
    }
}

/// Publish-options for avatar nodes the conversion creates: open, as XEP-0084 suggests and
/// as clients publish them (MUC occupants fetch avatars of strangers); the vCard they come
/// from is readable by anyone anyway.
fn avatar_node_options() -> DataForm {
    DataForm {
        kind: "submit".to_owned(),
        form_type: Some(PUBLISH_OPTIONS.to_owned()),
        fields: vec![Field::new("pubsub#access_model", "list-single", "open")],
    }
}

impl AvatarConversionModule {
    /// The module, writing through the PEP and vCard modules.
    pub fn new(pep: Arc<PepModule>, vcards: Arc<VCardModule>) -> Self {
        AvatarConversionModule { pep, vcards }
    }

    /// XEP-0398 §3.1: a metadata publish puts the avatar it names in the vCard (or takes the
    /// photo out when the user disabled the avatar).
    async fn pep_to_vcard(&self, router: &Router, owner: &BareJid, metadata: &Element) {
        let avatar = match Metadata::parse(metadata) {
            None | Some(Metadata::External) => return,
            Some(Metadata::Disabled) => None,
            Some(Metadata::Stored(info)) => {
                let Some(bytes) = self.stored_image(owner, &info.id).await else {
                    return;
                };
                Some(Avatar {
                    bytes,
                    mime_type: info.mime_type,
                })
            }
        };
        let vcard = match self.vcards.vcard(router, owner).await {
            Ok(vcard) => vcard,
            Err(error) => {
                warn!(%error, "vCard read failed");
                return;
            }
        };
        let mut vcard = vcard.unwrap_or_else(|| Element::new("vCard", ns::VCARD));
        if vcard_photo(&vcard).map(|photo| photo.id()) == avatar.as_ref().map(Avatar::id) {
            return;
        }
        set_vcard_photo(&mut vcard, avatar.as_ref());
        if let Err(error) = self.vcards.store(router, owner, &vcard).await {
            debug!(%error, "PEP avatar not copied into the vCard");
        }
    }

    /// The bytes of the data node's item `id`, when that node is open (XEP-0398 §6: the
    /// vCard is readable by anyone, a restricted avatar must not leak into it) and the bytes
    /// hash to the id.
    async fn stored_image(&self, owner: &BareJid, id: &str) -> Option<Vec<u8>> {
        let node = self.pep.node_of(owner, NS_DATA).await.ok().flatten()?;
        if node.config.access_model != AccessModel::Open {
            debug!("avatar data node is not open; not copied into the vCard");
            return None;
        }
        let items = self.pep.items_of(owner, NS_DATA).await.ok()?;
        let item = items.into_iter().find(|item| item.id == id)?;
        let bytes = Element::parse(&item.payload)
            .ok()
            .and_then(|data| data_bytes(&data))?;
        if sha1_hex(&bytes) != id {
            debug!("avatar data does not match its id; not copied into the vCard");
            return None;
        }
        Some(bytes)
    }

    /// XEP-0398 §3.2: a vCard with a photo publishes it to the data node, then describes it
    /// in the metadata node, unless it already is the PEP avatar.
    async fn vcard_to_pep(&self, router: &Router, owner: &BareJid, vcard: &Element) {
        let Some(avatar) = vcard_photo(vcard) else {
            return;
        };
        let id = avatar.id();
        if self.current_pep_avatar(owner).await.as_deref() == Some(id.as_str()) {
            return;
        }
        let options = avatar_node_options();
        for (node, payload) in [
            (NS_DATA, avatar.data_payload()),
            (NS_METADATA, avatar.metadata_payload()),
        ] {
            let published = self
                .pep
                .publish_for_owner(router, owner, node, &id, &payload, &options)
                .await;
            if let Err(error) = published {
                debug!(?error, node, "vCard photo not published to PEP");
                return;
            }
        }
    }

    /// The id of the avatar the metadata node describes now.
    async fn current_pep_avatar(&self, owner: &BareJid) -> Option<String> {
        let items = self.pep.items_of(owner, NS_METADATA).await.ok()?;
        let metadata = Element::parse(&items.last()?.payload).ok()?;
        match Metadata::parse(&metadata)? {
            Metadata::Stored(info) => Some(info.id),
            Metadata::Disabled | Metadata::External => None,
        }
    }

    /// XEP-0398 §3.3: the hash of the vCard photo, for an available presence.
    async fn photo_hash(&self, router: &Router, owner: &BareJid) -> Option<String> {
        let vcard = self.vcards.vcard(router, owner).await.ok()??;
        vcard_photo(&vcard).map(|avatar| avatar.id())
    }
}

#[async_trait]
impl EventHook<Router> for AvatarConversionModule {
    async fn on_event(&self, router: &Router, event: &mut Event<'_>) -> Flow {
        match event {
            Event::PepItemPublished {
                owner,
                node,
                payload: Some(metadata),
                ..
            } if *node == NS_METADATA => self.pep_to_vcard(router, owner, metadata).await,
            Event::VCardStored { owner, vcard } => self.vcard_to_pep(router, owner, vcard).await,
            Event::PresenceFromClient { session, presence }
                if presence.get_attr("type").is_none() =>
            {
                if let Some(hash) = self.photo_hash(router, &session.jid.to_bare()).await {
                    announce_photo(presence, &hash);
                }
            }
            _ => {}
        }
        Flow::Continue
    }
}
