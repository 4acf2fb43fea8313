//! XEP-0060 Publish-Subscribe and XEP-0163 PEP vocabulary.

use crate::element::Element;

/// The main pubsub namespace.
pub const NS: &str = "http://jabber.org/protocol/pubsub";
/// Owner operations.
pub const NS_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
/// Event notifications.
pub const NS_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
/// Application-specific error conditions.
pub const NS_ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
/// FORM_TYPE of publish-options.
pub const PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";
/// FORM_TYPE of node configuration.
pub const NODE_CONFIG: &str = "http://jabber.org/protocol/pubsub#node_config";
/// XEP-0059 Result Set Management.
pub const NS_RSM: &str = crate::ns::RSM;

/// A pubsub#errors application condition element.
pub fn error_condition(name: &str) -> Element {
    Element::new(name, NS_ERRORS)
}

/// An `<unsupported feature='…'/>` application condition.
pub fn unsupported(feature: &str) -> Element {
    Element::new("unsupported", NS_ERRORS).attr("feature", feature)
}

/// A notification `<message><event><…/></event></message>` without addresses.
pub fn event_message(payload: Element) -> Element {
    Element::new("message", crate::ns::CLIENT)
        .attr("type", "headline")
        .child(Element::new("event", NS_EVENT).child(payload))
}
