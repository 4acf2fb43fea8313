//! The features of the server, one module per file: each registers its IQ handlers, hooks,
//! disco features and stream features with the router, and reads its own `[modules.<name>]`
//! section of the configuration.

pub mod avatar_conversion;
pub mod blocking;
pub mod bookmarks_conversion;
pub mod caps;
pub mod carbons;
pub mod catalogue;
pub mod contact_info;
pub mod disco;
pub mod external_services;
pub mod mam;
pub mod offline;
pub mod pep;
pub mod ping;
pub mod presence;
pub mod private;
pub mod pubsub_service;
pub mod push;
pub mod remote_interests;
pub mod roster;
pub mod time;
pub mod vcard;
pub mod version;

use std::sync::Arc;

use serde::Deserialize;

use crate::config::{Config, ConfigError};
use crate::router::{Implements, Registrar, Registry};
use crate::storage::Storage;

/// A compiled-in feature of the server.
pub trait Module: Send + Sync {
    /// Short name, as used in the `[modules.<name>]` config section.
    fn name(&self) -> &'static str;
    /// The specifications it implements.
    fn implements(&self) -> &'static [Implements];
    /// Registers handlers, hooks and features.
    fn register(self: Arc<Self>, registrar: &mut Registrar);
}

/// `[modules]`: one section per configurable module.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModulesConfig {
    /// `[modules.offline]`
    pub offline: offline::OfflineConfig,
    /// `[modules.mam]`
    pub mam: mam::MamConfig,
    /// `[modules.version]`
    pub version: version::VersionConfig,
    /// `[modules.pep]`
    pub pep: pep::PepConfig,
    /// `[modules.pubsub]`
    pub pubsub: pubsub_service::PubSubServiceConfig,
    /// `[modules.private]`
    pub private: private::PrivateConfig,
    /// `[modules.vcard]`
    pub vcard: vcard::VCardConfig,
    /// `[modules.caps]`
    pub caps: caps::CapsConfig,
    /// `[modules.carbons]`
    pub carbons: carbons::CarbonsConfig,
    /// `[modules.blocking]`
    pub blocking: blocking::BlockingConfig,
    /// `[modules.avatar_conversion]`
    pub avatar_conversion: avatar_conversion::AvatarConversionConfig,
    /// `[modules.bookmarks_conversion]`
    pub bookmarks_conversion: bookmarks_conversion::BookmarksConversionConfig,
    /// `[modules.push]`
    pub push: push::PushConfig,
    /// `[modules.external_services]`
    pub external_services: external_services::ExternalServicesConfig,
    /// `[modules.contact_info]`
    pub contact_info: contact_info::ContactInfoConfig,
}

impl ModulesConfig {
    /// Reads the `[modules.<name>]` sections, refusing unknown modules, keys and values.
    pub fn of(config: &Config) -> Result<ModulesConfig, ConfigError> {
        let modules: ModulesConfig =
            ::config::Value::new(None, ::config::ValueKind::Table(config.modules.clone()))
                .try_deserialize()
                .map_err(|error| ConfigError::Invalid(format!("modules: {error}")))?;
        modules.external_services.check()?;
        modules.contact_info.check()?;
        Ok(modules)
    }
}

/// Builds every module the configuration enables, dependencies first, each with its own
/// section of the configuration.
pub fn enabled_modules(
    router_config: &Config,
    storage: &Storage,
) -> Result<Vec<Arc<dyn Module>>, ConfigError> {
    let config = &ModulesConfig::of(router_config)?;
    let rosters = Arc::new(roster::RosterModule::new(
        router_config.limits.max_roster_items,
    ));
    let caps = Arc::new(caps::CapsModule::new(&config.caps));
    let private = Arc::new(private::PrivateModule::new(config.private.clone()));
    let vcards = Arc::new(vcard::VCardModule::new(config.vcard.clone()));
    let mut modules: Vec<Arc<dyn Module>> = vec![
        rosters.clone(),
        Arc::new(presence::PresenceModule::new(
            rosters.clone(),
            presence::PendingLimits {
                max_requests: router_config.limits.max_pending_subscriptions,
                max_bytes: router_config.limits.max_pending_subscription_bytes,
            },
        )),
        Arc::new(disco::DiscoModule),
        caps.clone(),
        Arc::new(ping::PingModule),
        Arc::new(time::TimeModule),
        private.clone(),
        vcards.clone(),
        Arc::new(push::PushModule::new(config.push.clone())),
        Arc::new(external_services::ExternalServicesModule::new(
            &config.external_services,
        )),
        Arc::new(contact_info::ContactInfoModule::new(&config.contact_info)),
    ];
    if config.pep.enabled {
        let contacts = Arc::new(remote_interests::RemoteInterests::new(
            caps,
            rosters.clone(),
            remote_interests::RemoteLimits::of(&router_config.s2s),
        ));
        modules.push(contacts.clone());
        let pep = Arc::new(pep::PepModule::new(
            &config.pep,
            storage.clone(),
            rosters.clone(),
            contacts,
        ));
        modules.push(pep.clone());
        if config.avatar_conversion.enabled {
            modules.push(Arc::new(avatar_conversion::AvatarConversionModule::new(
                pep.clone(),
                vcards,
            )));
        }
        if config.bookmarks_conversion.enabled {
            modules.push(Arc::new(
                bookmarks_conversion::BookmarksConversionModule::new(pep, private),
            ));
        }
    }
    if config.pubsub.enabled {
        modules.push(Arc::new(pubsub_service::PubSubServiceModule::new(
            &config.pubsub,
            storage.clone(),
        )));
    }
    if config.blocking.enabled {
        modules.push(Arc::new(blocking::BlockingModule::new(
            config.blocking.clone(),
            rosters.clone(),
        )));
    }
    if config.carbons.enabled {
        modules.push(Arc::new(carbons::CarbonsModule::new()));
    }
    if config.version.enabled {
        modules.push(Arc::new(version::VersionModule::new(
            config.version.clone(),
        )));
    }
    if config.mam.enabled {
        modules.push(Arc::new(mam::MamModule::new(
            config.mam.clone(),
            rosters.clone(),
        )));
    }
    if config.offline.enabled {
        modules.push(Arc::new(offline::OfflineModule::new(
            config.offline.clone(),
            rosters,
        )));
    }
    Ok(modules)
}

/// Freezes the registrations of `modules` for the router.
pub fn registry(modules: &[Arc<dyn Module>]) -> Registry {
    let mut registrar = Registrar::default();
    for module in modules {
        registrar.implements(module.implements());
        module.clone().register(&mut registrar);
    }
    registrar.freeze()
}
