//! Namespace constants, one per protocol area, so that no handler spells a URI twice.

/// Content namespace of client-to-server streams.
pub const CLIENT: &str = "jabber:client";
/// Content namespace of server-to-server streams.
pub const SERVER: &str = "jabber:server";
/// The stream namespace of RFC 6120.
pub const STREAM: &str = "http://etherx.jabber.org/streams";
/// Stream error conditions.
pub const STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// Stanza error conditions.
pub const STANZA_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// STARTTLS negotiation.
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// SASL negotiation.
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// Resource binding.
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// Legacy session establishment (RFC 3921), advertised as optional.
pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// The `xml:` prefix namespace.
pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
/// Roster management (RFC 6121).
pub const ROSTER: &str = "jabber:iq:roster";
/// Roster versioning stream feature.
pub const ROSTER_VER: &str = "urn:xmpp:features:rosterver";
/// Presence pre-approval stream feature.
pub const PRE_APPROVAL: &str = "urn:xmpp:features:pre-approval";
/// XEP-0030 disco#info.
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XEP-0030 disco#items.
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// XEP-0115 entity capabilities.
pub const CAPS: &str = "http://jabber.org/protocol/caps";
/// XEP-0092 software version.
pub const VERSION: &str = "jabber:iq:version";
/// XEP-0199 ping.
pub const PING: &str = "urn:xmpp:ping";
/// XEP-0202 entity time.
pub const TIME: &str = "urn:xmpp:time";
/// XEP-0203 delayed delivery.
pub const DELAY: &str = "urn:xmpp:delay";
/// XEP-0160 offline message storage (disco feature).
pub const OFFLINE: &str = "msgoffline";
/// XEP-0334 message processing hints.
pub const HINTS: &str = "urn:xmpp:hints";
/// XEP-0440 SASL channel-binding type capability.
pub const SASL_CB: &str = "urn:xmpp:sasl-cb:0";
/// XEP-0388 Extensible SASL Profile.
pub const SASL2: &str = "urn:xmpp:sasl:2";
/// XEP-0484 Fast Authentication Streamlining Tokens.
pub const FAST: &str = "urn:xmpp:fast:0";
/// XEP-0386 Bind 2.
pub const BIND2: &str = "urn:xmpp:bind:0";
/// XEP-0004 data forms.
pub const DATA_FORMS: &str = "jabber:x:data";
/// XEP-0049 private XML storage.
pub const PRIVATE: &str = "jabber:iq:private";
/// XEP-0054 vcard-temp.
pub const VCARD: &str = "vcard-temp";
/// XEP-0220 server dialback elements.
pub const DIALBACK: &str = "jabber:server:dialback";
/// XEP-0220 dialback stream feature.
pub const DIALBACK_FEATURE: &str = "urn:xmpp:features:dialback";
/// XEP-0198 stream management.
pub const SM: &str = "urn:xmpp:sm:3";
/// XEP-0280 message carbons.
pub const CARBONS: &str = "urn:xmpp:carbons:2";
/// XEP-0297 stanza forwarding.
pub const FORWARD: &str = "urn:xmpp:forward:0";
/// XEP-0359 unique and stable stanza ids.
pub const STANZA_ID: &str = "urn:xmpp:sid:0";
/// XEP-0384 OMEMO encryption, the current namespace.
pub const OMEMO: &str = "urn:xmpp:omemo:2";
/// XEP-0384 OMEMO encryption, the legacy namespace most clients still send.
pub const OMEMO_LEGACY: &str = "eu.siacs.conversations.axolotl";
/// XEP-0059 result set management.
pub const RSM: &str = "http://jabber.org/protocol/rsm";
/// XEP-0313 message archive management, the version the server speaks first.
pub const MAM: &str = "urn:xmpp:mam:2";
/// XEP-0313 `#extended` feature: before-id/after-id/ids, flip-page and metadata.
pub const MAM_EXTENDED: &str = "urn:xmpp:mam:2#extended";
/// XEP-0313 older namespace, still sent by some clients with the same query shape.
pub const MAM_1: &str = "urn:xmpp:mam:1";
/// XEP-0313 oldest namespace still sent by some clients with the same query shape.
pub const MAM_0: &str = "urn:xmpp:mam:0";
/// XEP-0352 client state indication.
pub const CSI: &str = "urn:xmpp:csi:0";
/// XEP-0191 blocking command.
pub const BLOCKING: &str = "urn:xmpp:blocking";
/// XEP-0191 application error condition for a blocked contact.
pub const BLOCKING_ERRORS: &str = "urn:xmpp:blocking:errors";
/// XEP-0357 push notifications.
pub const PUSH: &str = "urn:xmpp:push:0";
/// XEP-0357 FORM_TYPE of the notification summary.
pub const PUSH_SUMMARY: &str = "urn:xmpp:push:summary";
/// XEP-0085 chat state notifications.
pub const CHAT_STATES: &str = "http://jabber.org/protocol/chatstates";
/// XEP-0184 message delivery receipts.
pub const RECEIPTS: &str = "urn:xmpp:receipts";
/// XEP-0333 displayed markers.
pub const CHAT_MARKERS: &str = "urn:xmpp:chat-markers:0";
/// XEP-0045 occupant payloads (private messages, mediated invitations).
pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
/// XEP-0249 direct MUC invitations.
pub const CONFERENCE: &str = "jabber:x:conference";
/// XEP-0027 legacy OpenPGP encrypted payloads.
pub const OPENPGP_LEGACY: &str = "jabber:x:encrypted";
/// XEP-0215 external service discovery (STUN, TURN).
pub const EXTDISCO: &str = "urn:xmpp:extdisco:2";
/// XEP-0128 FORM_TYPE of the server information form that carries XEP-0157 contact addresses.
pub const SERVER_INFO: &str = "http://jabber.org/network/serverinfo";
