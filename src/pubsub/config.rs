//! Node configuration (XEP-0060 §16.4 `pubsub#node_config`) and publish-options
//! preconditions (§7.1.5).

use rempart_xep::data_form::{parse_bool, DataForm, Field};
use rempart_xep::pubsub::NODE_CONFIG;
use serde::{Deserialize, Serialize};

/// Who may retrieve items and receive notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessModel {
    /// Anyone.
    Open,
    /// Contacts with a presence subscription to the owner.
    Presence,
    /// Contacts in allowed roster groups.
    Roster,
    /// Only affiliated entities (owner, members, publishers).
    Whitelist,
}

impl AccessModel {
    fn as_str(self) -> &'static str {
        match self {
            AccessModel::Open => "open",
            AccessModel::Presence => "presence",
            AccessModel::Roster => "roster",
            AccessModel::Whitelist => "whitelist",
        }
    }

    fn parse(value: &str) -> Option<AccessModel> {
        match value {
            "open" => Some(AccessModel::Open),
            "presence" => Some(AccessModel::Presence),
            "roster" => Some(AccessModel::Roster),
            "whitelist" => Some(AccessModel::Whitelist),
            _ => None,
        }
    }
}

/// When the last published item is sent without being asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendLastItem {
    /// Never.
    Never,
    /// When someone subscribes.
    OnSub,
    /// When someone subscribes and when an interested contact comes online.
    OnSubAndPresence,
}

impl SendLastItem {
    fn as_str(self) -> &'static str {
        match self {
            SendLastItem::Never => "never",
            SendLastItem::OnSub => "on_sub",
            SendLastItem::OnSubAndPresence => "on_sub_and_presence",
        }
    }

    fn parse(value: &str) -> Option<SendLastItem> {
        match value {
            "never" => Some(SendLastItem::Never),
            "on_sub" => Some(SendLastItem::OnSub),
            "on_sub_and_presence" => Some(SendLastItem::OnSubAndPresence),
            _ => None,
        }
    }
}

/// A node's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// Who may read.
    pub access_model: AccessModel,
    /// Most items kept; older ones are dropped on publish.
    pub max_items: usize,
    /// Keep items at all (false keeps only the last, for last-item delivery).
    pub persist_items: bool,
    /// When to push the last item.
    pub send_last_published_item: SendLastItem,
    /// Notify retractions.
    pub notify_retract: bool,
    /// Notify node deletion.
    pub notify_delete: bool,
    /// Include payloads in notifications.
    pub deliver_payloads: bool,
    /// Roster groups allowed under the roster access model.
    pub roster_groups_allowed: Vec<String>,
    /// A title for humans.
    pub title: Option<String>,
}

/// Why a submitted form was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A value does not fit its field.
    BadValue(String),
    /// Publish-options do not match the existing node.
    PreconditionNotMet(String),
}

impl NodeConfig {
    /// The defaults of a PEP node (XEP-0163 §4.5, XEP-0060 defaults).
    pub fn pep_default() -> NodeConfig {
        NodeConfig {
            access_model: AccessModel::Presence,
            max_items: 1,
            persist_items: true,
            send_last_published_item: SendLastItem::OnSubAndPresence,
            notify_retract: true,
            notify_delete: true,
            deliver_payloads: true,
            roster_groups_allowed: Vec::new(),
            title: None,
        }
    }

    /// Applies submitted values; `max_cap` is the service's `max`.
    pub fn apply(&mut self, form: &DataForm, max_cap: usize) -> Result<(), ConfigError> {
        for field in &form.fields {
            let value = field.values.first().map(String::as_str).unwrap_or_default();
            let bad = || ConfigError::BadValue(field.var.clone());
            match field.var.as_str() {
                "pubsub#access_model" => {
                    self.access_model = AccessModel::parse(value).ok_or_else(bad)?
                }
                "pubsub#max_items" => {
                    self.max_items = parse_max_items(value, max_cap).ok_or_else(bad)?
                }
                "pubsub#persist_items" => self.persist_items = parse_bool(value).ok_or_else(bad)?,
                "pubsub#send_last_published_item" => {
                    self.send_last_published_item = SendLastItem::parse(value).ok_or_else(bad)?
                }
                "pubsub#notify_retract" => {
                    self.notify_retract = parse_bool(value).ok_or_else(bad)?
                }
                "pubsub#notify_delete" => self.notify_delete = parse_bool(value).ok_or_else(bad)?,
                "pubsub#deliver_payloads" => {
                    self.deliver_payloads = parse_bool(value).ok_or_else(bad)?
                }
                "pubsub#roster_groups_allowed" => self.roster_groups_allowed = field.values.clone(),
                "pubsub#title" => self.title = Some(value.to_owned()).filter(|t| !t.is_empty()),
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks publish-options against this (existing) node's configuration.
    pub fn check_preconditions(&self, form: &DataForm, max_cap: usize) -> Result<(), ConfigError> {
        let mut wanted = self.clone();
        wanted.apply(form, max_cap)?;
        for field in &form.fields {
            let differs = match field.var.as_str() {
                "pubsub#access_model" => wanted.access_model != self.access_model,
                "pubsub#max_items" => wanted.max_items != self.max_items,
                "pubsub#persist_items" => wanted.persist_items != self.persist_items,
                "pubsub#send_last_published_item" => {
                    wanted.send_last_published_item != self.send_last_published_item
                }
                "pubsub#notify_retract" => wanted.notify_retract != self.notify_retract,
                "pubsub#notify_delete" => wanted.notify_delete != self.notify_delete,
                "pubsub#deliver_payloads" => wanted.deliver_payloads != self.deliver_payloads,
                "pubsub#roster_groups_allowed" => {
                    wanted.roster_groups_allowed != self.roster_groups_allowed
                }
                _ => false,
            };
            if differs {
                return Err(ConfigError::PreconditionNotMet(field.var.clone()));
            }
        }
        Ok(())
    }

    /// The configuration as a form (owner `configure` get).
    pub fn to_form(&self, max_cap: usize) -> DataForm {
        let max_items = if self.max_items >= max_cap {
            "max".to_owned()
        } else {
            self.max_items.to_string()
        };
        let boolean = |b: bool| if b { "true" } else { "false" };
        let mut groups = Field::new("pubsub#roster_groups_allowed", "list-multi", "");
        groups.values = self.roster_groups_allowed.clone();
        DataForm {
            kind: "form".to_owned(),
            form_type: Some(NODE_CONFIG.to_owned()),
            fields: vec![
                Field::new(
                    "pubsub#access_model",
                    "list-single",
                    self.access_model.as_str(),
                )
                .with_options(&["open", "presence", "roster", "whitelist"]),
                Field::new("pubsub#max_items", "text-single", max_items),
                Field::new(
                    "pubsub#persist_items",
                    "boolean",
                    boolean(self.persist_items),
                ),
                Field::new(
                    "pubsub#send_last_published_item",
                    "list-single",
                    self.send_last_published_item.as_str(),
                )
                .with_options(&["never", "on_sub", "on_sub_and_presence"]),
                Field::new(
                    "pubsub#notify_retract",
                    "boolean",
                    boolean(self.notify_retract),
                ),
                Field::new(
                    "pubsub#notify_delete",
                    "boolean",
                    boolean(self.notify_delete),
                ),
                Field::new(
                    "pubsub#deliver_payloads",
                    "boolean",
                    boolean(self.deliver_payloads),
                ),
                groups,
                Field::new(
                    "pubsub#title",
                    "text-single",
                    self.title.clone().unwrap_or_default(),
                ),
            ],
        }
    }
}

/// Parses `pubsub#max_items`: a positive number or `max` (the service cap).
fn parse_max_items(value: &str, max_cap: usize) -> Option<usize> {
    if value == "max" {
        return Some(max_cap);
    }
    let parsed: usize = value.parse().ok()?;
    (parsed >= 1).then_some(parsed.min(max_cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)]) -> DataForm {
        DataForm {
            kind: "submit".into(),
            form_type: Some(rempart_xep::pubsub::PUBLISH_OPTIONS.into()),
            fields: fields
                .iter()
                .map(|(var, value)| Field::new(var, "text-single", *value))
                .collect(),
        }
    }

    #[test]
    fn max_means_the_service_cap_and_matches_itself() {
        let mut config = NodeConfig::pep_default();
        let options = form(&[("pubsub#max_items", "max"), ("pubsub#access_model", "open")]);
        config.apply(&options, 256).expect("valid");
        assert_eq!(config.max_items, 256);
        assert_eq!(config.check_preconditions(&options, 256), Ok(()));
    }

    #[test]
    fn a_different_access_model_is_a_failed_precondition() {
        let config = NodeConfig::pep_default();
        let options = form(&[("pubsub#access_model", "open")]);
        assert_eq!(
            config.check_preconditions(&options, 256),
            Err(ConfigError::PreconditionNotMet(
                "pubsub#access_model".into()
            ))
        );
    }

    #[test]
    fn bad_values_are_refused() {
        let mut config = NodeConfig::pep_default();
        assert!(config
            .apply(&form(&[("pubsub#max_items", "zero")]), 256)
            .is_err());
        assert!(config
            .apply(&form(&[("pubsub#access_model", "secret")]), 256)
            .is_err());
    }
}
