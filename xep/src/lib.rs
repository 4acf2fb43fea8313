//! The XMPP wire vocabulary of Rempart: owned elements, namespaces, stanzas, errors and the
//! payloads of each protocol area. No I/O and no async runtime live here.

pub mod address;
pub mod avatar;
pub mod blocking;
pub mod bookmarks;
pub mod caps;
pub mod carbons;
pub mod contact_addresses;
pub mod csi;
pub mod data_form;
pub mod delay;
pub mod disco;
pub mod element;
pub mod encryption;
pub mod extdisco;
pub mod forward;
pub mod hints;
pub mod mam;
pub mod mam_prefs;
pub mod ns;
pub mod parse;
pub mod pubsub;
pub mod push;
pub mod roster;
pub mod rsm;
pub mod sasl;
pub mod sasl2;
pub mod sm;
pub mod stanza;
pub mod stanza_id;
pub mod stream;
pub mod xml_name;

pub use element::{Element, Node};
