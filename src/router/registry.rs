//! What modules register with the router (IQ handlers, hooks, disco features and identities,
//! stream features, service domains), collected at start and then frozen.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use jid::{BareJid, Jid};
use rempart_xep::caps::{caps_element, ver_string, SERVER_NODE};
use rempart_xep::disco::{DiscoInfo, DiscoItem, Identity};
use rempart_xep::element::Element;

use crate::router::background::BackgroundTask;
use crate::router::hooks::{EventHook, HookPoint};
use crate::router::inline::BindInline;
use crate::router::iq::{IqHandler, IqScope};

/// A XEP (or RFC) a module implements, with the version implemented; feeds the README table.
#[derive(Debug, Clone, Copy)]
pub struct Implements {
    /// e.g. "XEP-0160" or "RFC 6121".
    pub spec: &'static str,
    /// The version of the specification implemented.
    pub version: &'static str,
    /// What is supported, in a few words.
    pub note: &'static str,
}

/// Contributes items to an account's disco#items (XEP-0030), e.g. PEP nodes.
#[async_trait]
pub trait AccountItems<R>: Send + Sync {
    /// The items `requester` may see on `account`.
    async fn items(&self, router: &R, account: &BareJid, requester: &Jid) -> Vec<DiscoItem>;
}

/// Hooks of one event point with their priorities.
type PrioritizedHooks<R> = Vec<(i32, Arc<dyn EventHook<R>>)>;

/// What modules register, collected at start.
pub struct Registrar<R> {
    iq_handlers: HashMap<(IqScope, String, String), Arc<dyn IqHandler<R>>>,
    hooks: HashMap<HookPoint, PrioritizedHooks<R>>,
    server_features: Vec<String>,
    account_features: Vec<String>,
    server_identities: Vec<Identity>,
    account_identities: Vec<Identity>,
    server_forms: Vec<Element>,
    account_items: Vec<Arc<dyn AccountItems<R>>>,
    stream_features: Vec<Element>,
    service_prefixes: Vec<String>,
    implements: Vec<Implements>,
    background_tasks: Vec<Arc<dyn BackgroundTask<R>>>,
    bind_inline: HashMap<String, Arc<dyn BindInline>>,
}

impl<R> Default for Registrar<R> {
    fn default() -> Self {
        Registrar {
            iq_handlers: HashMap::new(),
            hooks: HashMap::new(),
            server_features: Vec::new(),
            account_features: Vec::new(),
            server_identities: Vec::new(),
            account_identities: Vec::new(),
            server_forms: Vec::new(),
            account_items: Vec::new(),
            stream_features: Vec::new(),
            service_prefixes: Vec::new(),
            implements: Vec::new(),
            background_tasks: Vec::new(),
            bind_inline: HashMap::new(),
        }
    }
}

impl<R> Registrar<R> {
    /// Records the specifications a module implements, for the README table and DOAP file.
    pub fn implements(&mut self, specs: &[Implements]) {
        self.implements.extend_from_slice(specs);
    }

    /// Handles IQs whose payload is `<name xmlns=ns>` addressed in `scope`.
    pub fn iq(&mut self, scope: IqScope, ns: &str, name: &str, handler: Arc<dyn IqHandler<R>>) {
        self.iq_handlers
            .insert((scope, ns.to_owned(), name.to_owned()), handler);
    }

    /// Runs `hook` on every event of `point`, ordered by `priority`.
    pub fn hook(&mut self, point: HookPoint, priority: i32, hook: Arc<dyn EventHook<R>>) {
        let hooks = self.hooks.entry(point).or_default();
        hooks.push((priority, hook));
        hooks.sort_by_key(|(p, _)| *p);
    }

    /// Advertises a feature in the server's disco#info.
    pub fn server_feature(&mut self, var: &str) {
        self.server_features.push(var.to_owned());
    }

    /// Advertises a feature in every account's disco#info.
    pub fn account_feature(&mut self, var: &str) {
        self.account_features.push(var.to_owned());
    }

    /// Adds an identity to the server's disco#info.
    pub fn server_identity(&mut self, identity: Identity) {
        self.server_identities.push(identity);
    }

    /// Adds an identity to every account's disco#info.
    pub fn account_identity(&mut self, identity: Identity) {
        self.account_identities.push(identity);
    }

    /// Adds an extended information form (XEP-0128) to the server's disco#info, e.g. the
    /// XEP-0157 contact addresses.
    pub fn server_form(&mut self, form: Element) {
        self.server_forms.push(form);
    }

    /// Adds a source of account disco#items.
    pub fn account_items(&mut self, provider: Arc<dyn AccountItems<R>>) {
        self.account_items.push(provider);
    }

    /// Serves `<prefix>.<host>` for every host (IQs reach `IqScope::Service` handlers).
    pub fn service_prefix(&mut self, prefix: &str) {
        self.service_prefixes.push(prefix.to_owned());
    }

    /// Offers an element in the stream features after authentication.
    pub fn stream_feature(&mut self, feature: Element) {
        self.stream_features.push(feature);
    }

    /// Runs `task` from the start of serving until shutdown.
    pub fn background(&mut self, task: Arc<dyn BackgroundTask<R>>) {
        self.background_tasks.push(task);
    }

    /// Lets clients set up the feature of namespace `ns` inline with a Bind 2 binding.
    pub fn bind_inline(&mut self, ns: &str, handler: Arc<dyn BindInline>) {
        self.bind_inline.insert(ns.to_owned(), handler);
    }

    /// Freezes what the modules registered.
    pub fn freeze(self) -> Registry<R> {
        let mut server_features = self.server_features;
        server_features.sort();
        server_features.dedup();
        let mut account_features = self.account_features;
        account_features.sort();
        account_features.dedup();
        let server_info = DiscoInfo {
            node: None,
            identities: self.server_identities.clone(),
            features: server_features.clone(),
            forms: self.server_forms.clone(),
        };
        Registry {
            iq_handlers: self.iq_handlers,
            hooks: self
                .hooks
                .into_iter()
                .map(|(point, hooks)| (point, hooks.into_iter().map(|(_, h)| h).collect()))
                .collect(),
            server_caps: caps_element(SERVER_NODE, &ver_string(&server_info)),
            server_features,
            account_features,
            server_identities: self.server_identities,
            account_identities: self.account_identities,
            server_forms: self.server_forms,
            account_items: self.account_items,
            stream_features: self.stream_features,
            service_prefixes: self.service_prefixes,
            implements: self.implements,
            background_tasks: self.background_tasks,
            bind_inline: self.bind_inline,
        }
    }
}

/// The registrations of all enabled modules, frozen.
pub struct Registry<R> {
    iq_handlers: HashMap<(IqScope, String, String), Arc<dyn IqHandler<R>>>,
    hooks: HashMap<HookPoint, Vec<Arc<dyn EventHook<R>>>>,
    /// Features of the server's disco#info, sorted.
    pub server_features: Vec<String>,
    /// Features of each account's disco#info, sorted.
    pub account_features: Vec<String>,
    /// Identities of the server.
    pub server_identities: Vec<Identity>,
    /// Identities of every account.
    pub account_identities: Vec<Identity>,
    /// Extended information forms of the server's disco#info.
    pub server_forms: Vec<Element>,
    /// Sources of account disco#items.
    pub account_items: Vec<Arc<dyn AccountItems<R>>>,
    /// Stream features offered after authentication.
    pub stream_features: Vec<Element>,
    /// Service subdomain prefixes (e.g. `pubsub`).
    pub service_prefixes: Vec<String>,
    /// What the enabled modules implement.
    pub implements: Vec<Implements>,
    /// The `<c/>` element (XEP-0115) the server advertises in its stream features.
    pub server_caps: Element,
    /// Tasks the server runs while it serves.
    pub background_tasks: Vec<Arc<dyn BackgroundTask<R>>>,
    /// Features that may be set up inline with a Bind 2 binding, by namespace.
    pub bind_inline: HashMap<String, Arc<dyn BindInline>>,
}

impl<R> Registry<R> {
    /// The server's disco#info, without a node.
    pub fn server_info(&self) -> DiscoInfo {
        DiscoInfo {
            node: None,
            identities: self.server_identities.clone(),
            features: self.server_features.clone(),
            forms: self.server_forms.clone(),
        }
    }

    /// The handler for a payload, if any.
    pub fn iq_handler(&self, scope: IqScope, payload: &Element) -> Option<Arc<dyn IqHandler<R>>> {
        self.iq_handlers
            .get(&(scope, payload.ns().to_owned(), payload.name().to_owned()))
            .cloned()
    }

    /// The hooks of an event point, in order.
    pub fn hooks(&self, point: HookPoint) -> &[Arc<dyn EventHook<R>>] {
        self.hooks.get(&point).map(Vec::as_slice).unwrap_or(&[])
    }
}
