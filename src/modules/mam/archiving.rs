//! What goes into an account's archive, and the stanza-id that tells the recipient where it
//! was stored.

use jid::{BareJid, Jid};
use rempart_xep::address::parse_address;
use rempart_xep::carbons::is_carbon;
use rempart_xep::element::Element;
use rempart_xep::encryption::has_content;
use rempart_xep::hints::{forbids_permanent_store, Hint};
use rempart_xep::mam::MamNs;
use rempart_xep::mam_prefs::ArchivePolicy;
use rempart_xep::stanza::MessageType;
use rempart_xep::stanza_id::{strip_stanza_ids_by, StanzaId};
use tracing::{debug, warn};

use super::{archive_store, retention, user_of, ArchivedMessage, Direction, MamModule};
use crate::router::Router;

/// True when an archive keeps the message (XEP-0313 §7.1.1): a chat or normal message with a
/// body, an end-to-end encrypted payload (OMEMO in either namespace, legacy OpenPGP) or a
/// `<store/>` hint; never a carbon copy, an error, a groupchat message or one hinted not to be
/// stored (XEP-0334).
pub(super) fn is_archivable(message: &Element) -> bool {
    if !matches!(
        MessageType::of(message),
        MessageType::Chat | MessageType::Normal
    ) || forbids_permanent_store(message)
        || is_carbon(message)
    {
        return false;
    }
    has_content(message) || Hint::Store.is_on(message)
}

/// The JID in one of a message's address attributes.
fn address(message: &Element, attribute: &str) -> Option<Jid> {
    message
        .get_attr(attribute)
        .and_then(|text| parse_address(text).ok())
}

impl MamModule {
    /// A message is about to reach `account`: drops stanza-ids claiming to be from its archive
    /// (only the archive may write them), then archives the message and adds the archive's
    /// stanza-id before it is delivered or stored offline. A failed write is logged and the
    /// message goes on without a stanza-id rather than being lost.
    pub(super) async fn archive_incoming(
        &self,
        router: &Router,
        account: &BareJid,
        message: &mut Element,
    ) {
        let archive = Jid::from(account.clone());
        strip_stanza_ids_by(message, &archive);
        if !is_archivable(message) {
            return;
        }
        let Some(from) = address(message, "from") else {
            return;
        };
        // A message between two local accounts goes into both archives in one durable commit:
        // the sender's copy waits here instead of costing a commit of its own before routing.
        let sender = from.to_bare();
        let incoming = self.archive(router, account, &from, message, Direction::Incoming);
        let id = if router.config.serves(sender.domain().as_str()) && sender != *account {
            let to = Jid::from(account.clone());
            let outgoing = self.archive(router, &sender, &to, message, Direction::Outgoing);
            tokio::join!(incoming, outgoing).0
        } else {
            incoming.await
        };
        if let Some(id) = id {
            let stamp = StanzaId {
                id: id.to_string(),
                by: archive,
            };
            message.append_child(stamp.to_element());
        }
    }

    /// A resource of `account` sent a message: it goes into the sender's archive, unless it is
    /// for the account itself, which archives it once, on arrival, or for another local
    /// account, whose arrival archives both copies at once. The sender learns no stanza-id:
    /// it is for the recipient's archive only (XEP-0313 §3.1).
    pub(super) async fn archive_outgoing(
        &self,
        router: &Router,
        account: &BareJid,
        message: &Element,
    ) {
        if !is_archivable(message) {
            return;
        }
        let Some(to) = address(message, "to") else {
            return;
        };
        if to.to_bare() == *account || router.config.serves(to.domain().as_str()) {
            return;
        }
        self.archive(router, account, &to, message, Direction::Outgoing)
            .await;
    }

    /// Appends the message to the account's archive when its preferences admit `partner`,
    /// durably, then trims the archive to its size limit; returns the new entry's id.
    async fn archive(
        &self,
        router: &Router,
        account: &BareJid,
        partner: &Jid,
        message: &Element,
        direction: Direction,
    ) -> Option<u64> {
        if !self.admits(router, account, partner).await {
            return None;
        }
        let user = user_of(account);
        let entry = ArchivedMessage {
            xml: message.to_xml(),
            partner: partner.to_string(),
            direction,
        };
        let store = archive_store(router, account);
        let index = partner.to_bare().to_string();
        let id = match store.append(user, &entry, Some(&index)).await {
            Ok(id) => id,
            Err(error) => {
                warn!(%error, "archiving a message failed");
                return None;
            }
        };
        debug!(id, ?direction, "message archived");
        let max = self.config.max_entries_per_account;
        if max > 0 {
            if let Err(error) = retention::trim_to(&store, user, max).await {
                warn!(%error, "trimming an archive failed");
            }
        }
        Some(id)
    }

    /// True when the account's preferences archive messages with `partner`; the account's
    /// own messages to itself count as from its roster. Unreadable preferences or roster
    /// fall back to archiving, so that nothing is lost by an error.
    async fn admits(&self, router: &Router, account: &BareJid, partner: &Jid) -> bool {
        let prefs = match self.prefs(router, account, MamNs::V2).await {
            Ok(prefs) => prefs,
            Err(error) => {
                warn!(%error, "reading archiving preferences failed");
                return true;
            }
        };
        match prefs.policy_for(partner) {
            ArchivePolicy::Always => true,
            ArchivePolicy::Never => false,
            ArchivePolicy::Roster => {
                let contact = partner.to_bare();
                if contact == *account {
                    return true;
                }
                match self.rosters.entry(router, account, &contact).await {
                    Ok(entry) => entry.is_some_and(|e| e.in_roster),
                    Err(error) => {
                        warn!(%error, "roster read failed");
                        true
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(xml: &str) -> Element {
        Element::parse(xml).expect("xml")
    }

    #[test]
    fn chat_and_normal_messages_with_a_body_or_omemo_payload_are_archived() {
        assert!(is_archivable(&message(
            "<message xmlns='jabber:client' type='chat'><body>hi</body></message>"
        )));
        assert!(is_archivable(&message(
            "<message xmlns='jabber:client'><body>hi</body></message>"
        )));
        assert!(is_archivable(&message(
            "<message xmlns='jabber:client' type='chat'><encrypted xmlns='urn:xmpp:omemo:2'/></message>"
        )));
        assert!(is_archivable(&message(
            "<message xmlns='jabber:client' type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>"
        )));
    }

    #[test]
    fn groupchat_errors_chat_states_carbons_and_no_store_hints_are_not_archived() {
        for xml in [
            "<message xmlns='jabber:client' type='groupchat'><body>hi</body></message>",
            "<message xmlns='jabber:client' type='error'><body>hi</body></message>",
            "<message xmlns='jabber:client' type='headline'><body>hi</body></message>",
            "<message xmlns='jabber:client' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
            "<message xmlns='jabber:client' type='chat'><body>hi</body><no-store xmlns='urn:xmpp:hints'/></message>",
            "<message xmlns='jabber:client' type='chat'><body>hi</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>",
            "<message xmlns='jabber:client'><received xmlns='urn:xmpp:carbons:2'/></message>",
        ] {
            assert!(!is_archivable(&message(xml)), "{xml}");
        }
    }

    #[test]
    fn a_store_hint_archives_a_message_without_body() {
        assert!(is_archivable(&message(
            "<message xmlns='jabber:client' type='chat'><store xmlns='urn:xmpp:hints'/></message>"
        )));
    }
}
