//! XEP-0357: Push Notifications (0.4.1)
//!
//! The enable/disable commands an app client sends to register its push service, and the
//! notification the server publishes to that service when the user has news.

use jid::Jid;
use thiserror::Error;

use crate::address::parse_address;
use crate::data_form::{DataForm, Field};
use crate::element::Element;
use crate::ns;
use crate::pubsub;
use crate::stanza::Condition;

/// Why a push command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PushError {
    /// The element is not `<enable/>` or `<disable/>` in `urn:xmpp:push:0`.
    #[error("not a push command")]
    NotPush,
    /// The `jid` attribute is absent or malformed.
    #[error("push service jid missing or malformed")]
    BadJid,
    /// `<enable/>` without a `node`: without one there is nothing to publish to.
    #[error("enable without node")]
    MissingNode,
    /// The form in `<enable/>` is not a publish-options form.
    #[error("the enable form is not publish-options")]
    BadPublishOptions,
}

impl PushError {
    /// The stanza error condition to answer with.
    pub fn condition(&self) -> Condition {
        match self {
            PushError::BadJid => Condition::JidMalformed,
            _ => Condition::BadRequest,
        }
    }
}

/// A push service registered by an app client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEnable {
    /// The XMPP push service.
    pub jid: Jid,
    /// The node provisioned by the app server.
    pub node: String,
    /// Publish-options (e.g. a secret) to send with every notification.
    pub publish_options: Option<DataForm>,
}

/// A client's push command, the payload of an IQ set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushCommand {
    /// Register a push service.
    Enable(PushEnable),
    /// Remove one node of a service, or every node of it when `node` is absent.
    Disable {
        /// The XMPP push service.
        jid: Jid,
        /// The node to remove.
        node: Option<String>,
    },
}

impl PushCommand {
    /// Reads the payload of an IQ set.
    pub fn parse(payload: &Element) -> Result<PushCommand, PushError> {
        if payload.ns() != ns::PUSH {
            return Err(PushError::NotPush);
        }
        let jid = payload
            .get_attr("jid")
            .and_then(|jid| parse_address(jid).ok())
            .ok_or(PushError::BadJid)?;
        let node = payload.get_attr("node").map(str::to_owned);
        match payload.name() {
            "enable" => {
                let publish_options = match payload.get_child("x", ns::DATA_FORMS) {
                    Some(x) => Some(
                        DataForm::parse(x)
                            .filter(|f| f.form_type.as_deref() == Some(pubsub::PUBLISH_OPTIONS))
                            .ok_or(PushError::BadPublishOptions)?,
                    ),
                    None => None,
                };
                Ok(PushCommand::Enable(PushEnable {
                    jid,
                    node: node.ok_or(PushError::MissingNode)?,
                    publish_options,
                }))
            }
            "disable" => Ok(PushCommand::Disable { jid, node }),
            _ => Err(PushError::NotPush),
        }
    }

    /// The `<enable/>` or `<disable/>` element.
    pub fn to_element(&self) -> Element {
        match self {
            PushCommand::Enable(enable) => {
                let element = Element::new("enable", ns::PUSH)
                    .attr("jid", enable.jid.to_string())
                    .attr("node", enable.node.clone());
                match &enable.publish_options {
                    Some(form) => element.child(form.to_element()),
                    None => element,
                }
            }
            PushCommand::Disable { jid, node } => Element::new("disable", ns::PUSH)
                .attr("jid", jid.to_string())
                .attr_opt("node", node.clone()),
        }
    }
}

/// What a notification tells the push service; every part is optional, so that a user can
/// choose to send less (§8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Messages waiting for the user.
    pub message_count: Option<u32>,
    /// Who sent the last one.
    pub last_message_sender: Option<Jid>,
    /// What the last one said.
    pub last_message_body: Option<String>,
}

impl Summary {
    /// The `urn:xmpp:push:summary` form.
    pub fn to_form(&self) -> DataForm {
        let field = |var: &str, value: String| Field {
            var: var.to_owned(),
            values: vec![value],
            ..Field::default()
        };
        let fields = [
            self.message_count
                .map(|n| field("message-count", n.to_string())),
            self.last_message_sender
                .as_ref()
                .map(|jid| field("last-message-sender", jid.to_string())),
            self.last_message_body
                .clone()
                .map(|body| field("last-message-body", body)),
        ];
        DataForm {
            kind: "submit".to_owned(),
            form_type: Some(ns::PUSH_SUMMARY.to_owned()),
            fields: fields.into_iter().flatten().collect(),
        }
    }

    /// Reads a summary form; unknown fields are ignored, malformed ones read as absent.
    pub fn from_form(form: &DataForm) -> Summary {
        Summary {
            message_count: form.value("message-count").and_then(|n| n.parse().ok()),
            last_message_sender: form
                .value("last-message-sender")
                .and_then(|jid| parse_address(jid).ok()),
            last_message_body: form.value("last-message-body").map(str::to_owned),
        }
    }
}

impl PushEnable {
    /// The `<pubsub/>` payload publishing a notification to this service's node, with its
    /// publish-options.
    pub fn notification(&self, summary: &Summary) -> Element {
        let notification =
            Element::new("notification", ns::PUSH).child(summary.to_form().to_element());
        let publish = Element::new("publish", pubsub::NS)
            .attr("node", self.node.clone())
            .child(Element::new("item", pubsub::NS).child(notification));
        let payload = Element::new("pubsub", pubsub::NS).child(publish);
        match &self.publish_options {
            Some(form) => {
                payload.child(Element::new("publish-options", pubsub::NS).child(form.to_element()))
            }
            None => payload,
        }
    }

    /// The IQ set from the server (`from`) to the push service carrying [`Self::notification`].
    pub fn notification_iq(&self, from: &str, id: &str, summary: &Summary) -> Element {
        Element::new("iq", ns::CLIENT)
            .attr("type", "set")
            .attr("from", from)
            .attr("to", self.jid.to_string())
            .attr("id", id)
            .child(self.notification(summary))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Result<PushCommand, PushError> {
        PushCommand::parse(&Element::parse(xml).expect("xml"))
    }

    fn jid(text: &str) -> Jid {
        Jid::new(text).expect("jid")
    }

    const ENABLE_WITH_OPTIONS: &str = "<enable xmlns='urn:xmpp:push:0' jid='push-5.client.example' node='yxs32uqsflafdk3iuqo'>\
        <x xmlns='jabber:x:data' type='submit'>\
        <field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
        <field var='secret'><value>eruio234vzxc2kla-91</value></field></x></enable>";

    #[test]
    fn the_enable_examples_read_and_write_back() {
        let plain = parse("<enable xmlns='urn:xmpp:push:0' jid='push-5.client.example' node='yxs32uqsflafdk3iuqo'/>")
            .expect("enable");
        assert_eq!(
            plain,
            PushCommand::Enable(PushEnable {
                jid: jid("push-5.client.example"),
                node: "yxs32uqsflafdk3iuqo".to_owned(),
                publish_options: None,
            })
        );
        let with_options = parse(ENABLE_WITH_OPTIONS).expect("enable");
        let PushCommand::Enable(enable) = &with_options else {
            panic!("not an enable: {with_options:?}");
        };
        let options = enable.publish_options.as_ref().expect("options");
        assert_eq!(options.value("secret"), Some("eruio234vzxc2kla-91"));
        assert_eq!(
            PushCommand::parse(&with_options.to_element()),
            Ok(with_options)
        );
    }

    #[test]
    fn the_disable_examples_read_with_and_without_node() {
        let all = parse("<disable xmlns='urn:xmpp:push:0' jid='push-5.client.example'/>")
            .expect("disable");
        assert_eq!(
            all,
            PushCommand::Disable {
                jid: jid("push-5.client.example"),
                node: None
            }
        );
        let one = parse("<disable xmlns='urn:xmpp:push:0' jid='push-5.client.example' node='yxs32uqsflafdk3iuqo'/>")
            .expect("disable");
        assert_eq!(PushCommand::parse(&one.to_element()), Ok(one));
    }

    #[test]
    fn commands_without_jid_or_node_or_with_a_foreign_form_are_refused() {
        assert_eq!(
            parse("<enable xmlns='urn:xmpp:push:0' node='n'/>"),
            Err(PushError::BadJid)
        );
        assert_eq!(
            parse("<enable xmlns='urn:xmpp:push:0' jid='push.example'/>"),
            Err(PushError::MissingNode)
        );
        assert_eq!(PushError::BadJid.condition(), Condition::JidMalformed);
        assert_eq!(
            parse(&ENABLE_WITH_OPTIONS.replace("pubsub#publish-options", "pubsub#node_config")),
            Err(PushError::BadPublishOptions)
        );
        assert_eq!(
            parse("<enable xmlns='urn:xmpp:push:1' jid='push.example' node='n'/>"),
            Err(PushError::NotPush)
        );
    }

    #[test]
    fn the_notification_publishes_the_summary_and_the_publish_options() {
        let Ok(PushCommand::Enable(enable)) = parse(ENABLE_WITH_OPTIONS) else {
            panic!("enable");
        };
        let summary = Summary {
            message_count: Some(1),
            last_message_sender: Some(jid("juliet@capulet.example/balcony")),
            last_message_body: Some("Wherefore art thou, Romeo?".to_owned()),
        };
        let iq = enable.notification_iq("example.com", "n12", &summary);
        assert_eq!(iq.get_attr("to"), Some("push-5.client.example"));
        let pubsub = iq.get_child("pubsub", pubsub::NS).expect("pubsub");
        let publish = pubsub.get_child("publish", pubsub::NS).expect("publish");
        assert_eq!(publish.get_attr("node"), Some("yxs32uqsflafdk3iuqo"));
        let form = publish
            .get_child("item", pubsub::NS)
            .and_then(|item| item.get_child("notification", ns::PUSH))
            .and_then(|n| n.get_child("x", ns::DATA_FORMS))
            .and_then(DataForm::parse)
            .expect("summary form");
        assert_eq!(form.form_type.as_deref(), Some(ns::PUSH_SUMMARY));
        assert_eq!(Summary::from_form(&form), summary);
        let options = pubsub
            .get_child("publish-options", pubsub::NS)
            .and_then(|p| p.get_child("x", ns::DATA_FORMS))
            .and_then(DataForm::parse)
            .expect("publish-options");
        assert_eq!(options.value("secret"), Some("eruio234vzxc2kla-91"));
    }

    #[test]
    fn an_empty_summary_sends_only_the_form_type() {
        let form = Summary::default().to_form();
        assert!(form.fields.is_empty());
        assert_eq!(form.form_type.as_deref(), Some(ns::PUSH_SUMMARY));
    }
}
