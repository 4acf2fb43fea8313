//! XEP-0084: User Avatar (1.1.4), XEP-0153: vCard-Based Avatars (1.1.1) and the namespace of
//! XEP-0398: User Avatar to vCard-Based Avatars Conversion (1.0.0)
//!
//! The two ways clients store an avatar — PEP data and metadata nodes, or a `<PHOTO/>` in the
//! vCard — and the presence hash that announces the vCard one.

use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::element::Element;
use crate::ns;

/// The PEP node (and payload namespace) holding the image bytes.
pub const NS_DATA: &str = "urn:xmpp:avatar:data";
/// The PEP node (and payload namespace) describing the current avatar.
pub const NS_METADATA: &str = "urn:xmpp:avatar:metadata";
/// XEP-0153 presence extension carrying the vCard avatar's hash.
pub const NS_VCARD_UPDATE: &str = "vcard-temp:x:update";
/// XEP-0398 account feature: the server converts between the two storages.
pub const NS_CONVERSION: &str = "urn:xmpp:pep-vcard-conversion:0";

/// An avatar image: its bytes and MIME type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Avatar {
    /// The image.
    pub bytes: Vec<u8>,
    /// Its MIME type, e.g. `image/png`.
    pub mime_type: String,
}

impl Avatar {
    /// The hex SHA-1 of the bytes: the XEP-0084 item id and the XEP-0153 photo hash.
    pub fn id(&self) -> String {
        sha1_hex(&self.bytes)
    }

    /// The image as base64, as both storages carry it.
    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.bytes)
    }

    /// The `<data/>` payload of the data node's item.
    pub fn data_payload(&self) -> Element {
        Element::new("data", NS_DATA).text(self.base64())
    }

    /// The `<metadata/>` payload describing this avatar, stored in the data node.
    pub fn metadata_payload(&self) -> Element {
        Element::new("metadata", NS_METADATA).child(
            Element::new("info", NS_METADATA)
                .attr("bytes", self.bytes.len().to_string())
                .attr("id", self.id())
                .attr("type", self.mime_type.clone()),
        )
    }
}

/// The hex SHA-1 of `bytes`.
pub fn sha1_hex(bytes: &[u8]) -> String {
    Sha1::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Decodes base64 as vCards and avatar data carry it, line breaks included.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
        .filter(|bytes| !bytes.is_empty())
}

/// The image bytes of a `<data xmlns='urn:xmpp:avatar:data'/>` payload.
pub fn data_bytes(data: &Element) -> Option<Vec<u8>> {
    if !data.is("data", NS_DATA) {
        return None;
    }
    decode_base64(&data.text_content())
}

/// One `<info/>` of a metadata payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvatarInfo {
    /// The SHA-1 of the image, also the data item's id.
    pub id: String,
    /// The MIME type.
    pub mime_type: String,
    /// Where the image is, when not in the data node.
    pub url: Option<String>,
}

/// What a metadata payload says: the avatar stored in the data node, none (the user disabled
/// the avatar: no `<info/>` at all), or only avatars kept elsewhere (URLs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metadata {
    /// The avatar is the data node's item with this id.
    Stored(AvatarInfo),
    /// The user has no avatar.
    Disabled,
    /// Every avatar offered lives at a URL.
    External,
}

impl Metadata {
    /// Reads a `<metadata/>` payload; `None` when it is not one.
    pub fn parse(metadata: &Element) -> Option<Metadata> {
        if !metadata.is("metadata", NS_METADATA) {
            return None;
        }
        let infos: Vec<AvatarInfo> = metadata
            .children()
            .filter(|c| c.is("info", NS_METADATA))
            .filter_map(|info| {
                Some(AvatarInfo {
                    id: info.get_attr("id")?.to_owned(),
                    mime_type: info.get_attr("type")?.to_owned(),
                    url: info.get_attr("url").map(str::to_owned),
                })
            })
            .collect();
        if infos.is_empty() {
            return Some(Metadata::Disabled);
        }
        // XEP-0398 §3.1: the info that does not point to an external URL.
        Some(
            infos
                .into_iter()
                .find(|info| info.url.is_none())
                .map_or(Metadata::External, Metadata::Stored),
        )
    }
}

/// The avatar in a vCard's `<PHOTO/>` (TYPE and BINVAL); `None` without one or when its
/// BINVAL is not base64.
pub fn vcard_photo(vcard: &Element) -> Option<Avatar> {
    let photo = vcard.get_child("PHOTO", ns::VCARD)?;
    let bytes = decode_base64(&photo.child_text("BINVAL", ns::VCARD)?)?;
    let mime_type = photo
        .child_text("TYPE", ns::VCARD)
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "image/png".to_owned());
    Some(Avatar { bytes, mime_type })
}

/// Replaces the vCard's `<PHOTO/>` with `avatar`, or removes it when `None`; every other
/// field is kept as it was.
pub fn set_vcard_photo(vcard: &mut Element, avatar: Option<&Avatar>) {
    vcard.retain_children(|child| !child.is("PHOTO", ns::VCARD));
    if let Some(avatar) = avatar {
        vcard.append_child(
            Element::new("PHOTO", ns::VCARD)
                .child(Element::new("TYPE", ns::VCARD).text(avatar.mime_type.clone()))
                .child(Element::new("BINVAL", ns::VCARD).text(avatar.base64())),
        );
    }
}

/// Puts the XEP-0153 hash of the user's avatar in an available presence, as XEP-0398 §3.3
/// asks: a presence whose update element already holds a `<photo/>` (empty: the client is not
/// ready to say; or a hash of its own) is left alone, an update element without one is
/// replaced, and a presence without any gets one.
pub fn announce_photo(presence: &mut Element, hash: &str) {
    let has_photo = presence
        .get_child("x", NS_VCARD_UPDATE)
        .is_some_and(|x| x.has_child("photo", NS_VCARD_UPDATE));
    if has_photo {
        return;
    }
    presence.retain_children(|child| !child.is("x", NS_VCARD_UPDATE));
    presence.append_child(
        Element::new("x", NS_VCARD_UPDATE).child(Element::new("photo", NS_VCARD_UPDATE).text(hash)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avatar() -> Avatar {
        Avatar {
            bytes: b"\x89PNG not really".to_vec(),
            mime_type: "image/png".into(),
        }
    }

    #[test]
    fn item_id_is_the_hex_sha1_of_the_image() {
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(avatar().id(), sha1_hex(b"\x89PNG not really"));
    }

    #[test]
    fn vcard_photo_round_trips_and_keeps_other_fields() {
        let mut vcard =
            Element::new("vCard", ns::VCARD).child(Element::new("FN", ns::VCARD).text("Alice"));
        set_vcard_photo(&mut vcard, Some(&avatar()));
        assert_eq!(vcard_photo(&vcard), Some(avatar()));
        assert_eq!(vcard.child_text("FN", ns::VCARD).as_deref(), Some("Alice"));
        set_vcard_photo(&mut vcard, None);
        assert_eq!(vcard_photo(&vcard), None);
        assert!(vcard.has_child("FN", ns::VCARD));
    }

    #[test]
    fn vcard_binval_with_line_breaks_is_decoded() {
        let encoded = avatar().base64();
        let (head, tail) = encoded.split_at(8);
        let xml = format!(
            "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/jpeg</TYPE><BINVAL>{head}\n  {tail}</BINVAL></PHOTO></vCard>"
        );
        let photo = vcard_photo(&Element::parse(&xml).expect("xml")).expect("photo");
        assert_eq!(photo.bytes, avatar().bytes);
        assert_eq!(photo.mime_type, "image/jpeg");
    }

    #[test]
    fn metadata_picks_the_stored_avatar_over_urls() {
        let xml = "<metadata xmlns='urn:xmpp:avatar:metadata'><info id='u' type='image/png' bytes='1' url='https://example.org/a.png'/><info id='s' type='image/png' bytes='1'/></metadata>";
        let parsed = Metadata::parse(&Element::parse(xml).expect("xml"));
        assert!(matches!(parsed, Some(Metadata::Stored(info)) if info.id == "s"));
        let empty = Element::new("metadata", NS_METADATA);
        assert_eq!(Metadata::parse(&empty), Some(Metadata::Disabled));
    }

    #[test]
    fn presence_hash_respects_a_photo_the_client_set() {
        let mut plain = Element::new("presence", ns::CLIENT);
        announce_photo(&mut plain, "abc");
        assert!(
            plain.to_xml().contains("<photo>abc</photo>"),
            "{}",
            plain.to_xml()
        );

        let xml = "<presence xmlns='jabber:client'><x xmlns='vcard-temp:x:update'><photo/></x></presence>";
        let mut not_ready = Element::parse(xml).expect("xml");
        announce_photo(&mut not_ready, "abc");
        assert!(!not_ready.to_xml().contains("abc"));

        let xml = "<presence xmlns='jabber:client'><x xmlns='vcard-temp:x:update'/></presence>";
        let mut empty_update = Element::parse(xml).expect("xml");
        announce_photo(&mut empty_update, "abc");
        let written = empty_update.to_xml();
        assert_eq!(
            written.matches("vcard-temp:x:update").count(),
            1,
            "{written}"
        );
        assert!(written.contains("<photo>abc</photo>"), "{written}");
    }
}
