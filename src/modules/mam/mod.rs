//! XEP-0313: Message Archive Management — each account's one-to-one messages are archived
//! durably before they are delivered, stamped with a XEP-0359 stanza-id, and served back page
//! by page to the account's own resources. XEP-0441 preferences say whose messages are kept;
//! entries older than `max_age_days` or beyond `max_entries_per_account` are deleted, oldest
//! first.

mod archiving;
mod prefs;
mod query;
mod retention;

use std::sync::Arc;

use async_trait::async_trait;
use jid::BareJid;
use rempart_xep::mam::{query_form, MamNs};
use rempart_xep::mam_prefs::ArchivePolicy;
use rempart_xep::ns;
use rempart_xep::stanza::{Condition, IqType, StanzaError};
use serde::{Deserialize, Serialize};

use crate::modules::roster::RosterModule;
use crate::modules::Module;
use crate::router::{
    priority, Event, EventHook, Flow, HookPoint, Implements, IqHandler, IqRequest, IqResult,
    IqScope, Registrar, Router,
};
use crate::storage::ArchiveStore;

/// Store name of the message archives.
const ARCHIVE: &str = "mam";
/// Store name of the archiving preferences.
const PREFS: &str = "mam_prefs";

/// `[modules.mam]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MamConfig {
    /// Archive one-to-one messages and answer archive queries.
    pub enabled: bool,
    /// Whose messages an account archives until it sets its own preferences.
    pub default_policy: DefaultPolicy,
    /// Most results in one page, whatever the client asks for.
    pub max_page: u32,
    /// Entries older than this many days are deleted (0: kept forever).
    pub max_age_days: u32,
    /// Most entries an account keeps; beyond it the oldest are deleted (0: no limit).
    pub max_entries_per_account: usize,
}

impl Default for MamConfig {
    fn default() -> Self {
        MamConfig {
            enabled: true,
            default_policy: DefaultPolicy::Always,
            max_page: 250,
            max_age_days: 0,
            max_entries_per_account: 100_000,
        }
    }
}

/// The configured default of XEP-0441 preferences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultPolicy {
    /// Archive every contact's messages.
    Always,
    /// Archive nothing unless the account lists the contact.
    Never,
    /// Archive the messages of contacts in the account's roster.
    Roster,
}

impl From<DefaultPolicy> for ArchivePolicy {
    fn from(policy: DefaultPolicy) -> Self {
        match policy {
            DefaultPolicy::Always => ArchivePolicy::Always,
            DefaultPolicy::Never => ArchivePolicy::Never,
            DefaultPolicy::Roster => ArchivePolicy::Roster,
        }
    }
}

/// Which side of the conversation the account was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// The account received the message.
    Incoming,
    /// The account sent the message.
    Outgoing,
}

/// One archived message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchivedMessage {
    /// The message, exactly as it was sent or received (without the archive's stanza-id).
    pub xml: String,
    /// The other side of the conversation, as addressed (a full JID when it was one).
    pub partner: String,
    /// Whether the account sent or received it.
    pub direction: Direction,
}

/// The message archive module.
pub struct MamModule {
    config: MamConfig,
    rosters: Arc<RosterModule>,
}

static IMPLEMENTS: &[Implements] = &[
    Implements {
        spec: "XEP-0313",
        version: "1.1.3",
        note: "account archives durable before delivery, RSM paging both ways, before-id/after-id/ids, flip-page, metadata",
    },
    Implements {
        spec: "XEP-0359",
        version: "0.7.0",
        note: "stanza-ids from the account archive; forged ones stripped",
    },
    Implements {
        spec: "XEP-0441",
        version: "0.2.0",
        note: "archiving preferences always, never, roster with JID lists",
    },
];

impl Module for MamModule {
    fn name(&self) -> &'static str {
        "mam"
    }

    fn implements(&self) -> &'static [Implements] {
        IMPLEMENTS
    }

    fn register(self: Arc<Self>, registrar: &mut Registrar) {
        registrar.hook(HookPoint::MessageToAccount, priority::HANDLER, self.clone());
        registrar.hook(
            HookPoint::MessageFromClient,
            priority::HANDLER,
            self.clone(),
        );
        // `urn:xmpp:mam:0` answered `<fin/>` in a message of its own; only prefs keep its shape.
        for namespace in [ns::MAM, ns::MAM_1] {
            registrar.iq(IqScope::Account, namespace, "query", self.clone());
        }
        for namespace in [ns::MAM, ns::MAM_1, ns::MAM_0] {
            registrar.iq(IqScope::Account, namespace, "prefs", self.clone());
        }
        registrar.iq(IqScope::Account, ns::MAM, "metadata", self.clone());
        registrar.account_feature(ns::MAM);
        registrar.account_feature(ns::MAM_EXTENDED);
        registrar.account_feature(ns::STANZA_ID);
        if let Some(task) = retention::AgeRetention::of(&self.config) {
            registrar.background(Arc::new(task));
        }
    }
}

impl MamModule {
    /// The module with its configuration; the roster serves the `roster` policy.
    pub fn new(config: MamConfig, rosters: Arc<RosterModule>) -> Self {
        MamModule { config, rosters }
    }
}

/// The archive store of an account's host.
fn archive_store(router: &Router, account: &BareJid) -> ArchiveStore<ArchivedMessage> {
    router.storage.archive(account.domain().as_str(), ARCHIVE)
}

/// The user part of an account, the key of its data in every store.
fn user_of(account: &BareJid) -> &str {
    account.node().map(|n| n.as_str()).unwrap_or_default()
}

#[async_trait]
impl EventHook<Router> for MamModule {
    async fn on_event(&self, router: &Router, event: &mut Event<'_>) -> Flow {
        match event {
            Event::MessageToAccount { to, message } => {
                self.archive_incoming(router, to, message).await;
            }
            Event::MessageFromClient { session, message } => {
                self.archive_outgoing(router, &session.jid.to_bare(), message)
                    .await;
            }
            _ => {}
        }
        Flow::Continue
    }
}

#[async_trait]
impl IqHandler<Router> for MamModule {
    async fn handle(&self, router: &Router, request: IqRequest) -> IqResult {
        if !request.from_owner() {
            return Err(StanzaError::new(Condition::Forbidden)
                .with_text("only the account's own resources may use its archive"));
        }
        let version = MamNs::of(request.payload.ns()).unwrap_or(MamNs::V2);
        let account = request.to.to_bare();
        match (request.payload.name(), request.iq_type) {
            ("query", IqType::Get) => Ok(Some(query_form(version))),
            ("query", IqType::Set) => {
                if let Ok(full) = request.from.try_as_full() {
                    if let Some(entry) = router.sessions.get(full) {
                        entry.handle.status.set_syncs_from_archive();
                    }
                }
                self.answer_query(router, &request).await
            }
            ("prefs", IqType::Get) => self.get_prefs(router, &account, version).await,
            ("prefs", IqType::Set) => self.set_prefs(router, &account, &request.payload).await,
            ("metadata", IqType::Get) => self.metadata(router, &account).await,
            _ => Err(StanzaError::new(Condition::BadRequest)),
        }
    }
}
