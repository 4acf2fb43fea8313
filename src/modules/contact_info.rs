//! XEP-0157: Contact Addresses for XMPP Services — where to report abuse, reach the
//! administrators or get support, as a form in the server's disco#info.

use std::sync::Arc;

use rempart_xep::contact_addresses::ContactAddresses;
use serde::Deserialize;

use crate::config::ConfigError;
use crate::modules::Module;
use crate::router::{Implements, Registrar};

/// `[modules.contact_info]`: addresses as URIs (`mailto:`, `xmpp:`, `https:` ...), the same
/// for every host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContactInfoConfig {
    /// For reports of abuse (spam, harassment).
    pub abuse: Vec<String>,
    /// The administrators.
    pub admin: Vec<String>,
    /// Feedback.
    pub feedback: Vec<String>,
    /// Sales.
    pub sales: Vec<String>,
    /// Security reports.
    pub security: Vec<String>,
    /// Service status pages.
    pub status: Vec<String>,
    /// Support.
    pub support: Vec<String>,
}

/// The contact addresses module.
pub struct ContactInfoModule {
    addresses: ContactAddresses,
}

static IMPLEMENTS: &[Implements] = &[Implements {
    spec: "XEP-0157",
    version: "1.1.1",
    note: "contact addresses from the configuration in the server's disco#info",
}];

impl ContactInfoConfig {
    /// The addresses, as published.
    fn addresses(&self) -> ContactAddresses {
        ContactAddresses {
            abuse: self.abuse.clone(),
            admin: self.admin.clone(),
            feedback: self.feedback.clone(),
            sales: self.sales.clone(),
            security: self.security.clone(),
            status: self.status.clone(),
            support: self.support.clone(),
        }
    }

    /// Checks that every address is a URI.
    pub fn check(&self) -> Result<(), ConfigError> {
        match self.addresses().first_non_uri() {
            Some(bad) => Err(ConfigError::Invalid(format!(
                "modules.contact_info: {bad:?} is not a URI (mailto:, xmpp:, https: ...)"
            ))),
            None => Ok(()),
        }
    }
}

impl ContactInfoModule {
    /// The module with its (checked) configuration.
    pub fn new(config: &ContactInfoConfig) -> Self {
        ContactInfoModule {
            addresses: config.addresses(),
        }
    }
}

impl Module for ContactInfoModule {
    fn name(&self) -> &'static str {
        "contact_info"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        if !self.addresses.is_empty() {
            registrar.server_form(self.addresses.to_element());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_without_a_scheme_is_refused() {
        let config = ContactInfoConfig {
            abuse: vec!["abuse@example.org".to_owned()],
            ..ContactInfoConfig::default()
        };
        assert!(config.check().is_err());
        let config = ContactInfoConfig {
            abuse: vec!["mailto:abuse@example.org".to_owned()],
            ..ContactInfoConfig::default()
        };
        assert!(config.check().is_ok());
    }
}
