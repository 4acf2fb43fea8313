//! The SASL2 side of negotiation (XEP-0388): the stream feature with Bind 2, resumption and
//! FAST inline, logins with FAST tokens (XEP-0484), and what follows a success — inline
//! resumption, inline binding (XEP-0386), or binding on the same stream.

use jid::{BareJid, FullJid};
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::sasl::SaslFailure;
use rempart_xep::sasl2::{self, Authenticate, UserAgent};
use rempart_xep::sm;
use tracing::{info, warn};

use super::{take_over, Bound, Framing, Greeting, Negotiated, Negotiation, Sasl2Success, Stream};
use crate::c2s::bind2;
use crate::c2s::negotiation::NegotiationEnd;
use crate::c2s::resumption::Sasl2Reply;
use crate::sasl::devices::Devices;
use crate::sasl::fast;
use crate::sasl::SaslOffer;

impl Negotiation<'_> {
    /// The SASL2 stream feature: the same mechanisms as SASL, with Bind 2 and stream
    /// management resumption inline.
    pub(super) fn sasl2_feature(&self, offer: &SaslOffer) -> Element {
        let registry = &self.ctx.router.registry;
        let mut bind_inline: Vec<&str> = registry.bind_inline.keys().map(String::as_str).collect();
        bind_inline.sort_unstable();
        bind_inline.push(ns::CSI);
        let mut inline = Vec::new();
        if self.ctx.router.config.stream_management.enabled {
            bind_inline.push(ns::SM);
            inline.push(sm::feature());
        }
        inline.insert(0, sasl2::bind_feature(bind_inline));
        inline.push(sasl2::fast_feature(fast::offered(&self.bindings)));
        sasl2::feature(offer.mechanism_names(), inline)
    }

    /// A SASL2 login with a FAST token (XEP-0484): one round trip, no password. `None` when
    /// it failed (the failure was sent); `rotate` when the token is due for replacement.
    pub(super) async fn fast_login(
        &self,
        stream: &mut Stream,
        request: &Authenticate,
    ) -> Result<Option<(BareJid, Vec<u8>, bool)>, NegotiationEnd> {
        let framing = Framing::Sasl2;
        if !fast::offered(&self.bindings).contains(&request.mechanism.as_str()) {
            return self
                .sasl_failure(stream, framing, SaslFailure::InvalidMechanism)
                .await;
        }
        let (Some(device), Some(response)) = (
            request.user_agent.id.as_deref(),
            request.initial_response.as_deref(),
        ) else {
            return self
                .sasl_failure(stream, framing, SaslFailure::MalformedRequest)
                .await;
        };
        let host = self.host.clone().unwrap_or_default();
        let claimed = response.split(|b| *b == 0).next().unwrap_or_default();
        let account = format!("{}@{host}", String::from_utf8_lossy(claimed));
        let throttle = &self.ctx.auth_throttle;
        let ticket = match throttle.begin(self.peer.ip(), &account) {
            Ok(ticket) => ticket,
            Err(throttled) => {
                info!(%throttled, "FAST login refused before the check");
                return self
                    .sasl_failure(stream, framing, SaslFailure::TemporaryAuthFailure)
                    .await;
            }
        };
        let tokens = &self.ctx.fast;
        let verified = tokens
            .verify(&host, device, &request.mechanism, response, &self.bindings)
            .await;
        let login = match verified {
            Ok(Some(login)) => login,
            Ok(None) => {
                info!(account, "FAST token refused");
                return self
                    .sasl_failure(stream, framing, SaslFailure::NotAuthorized)
                    .await;
            }
            Err(error) => {
                warn!(%error, "FAST token lookup failed");
                throttle.withdrawn(&ticket);
                return self
                    .sasl_failure(stream, framing, SaslFailure::TemporaryAuthFailure)
                    .await;
            }
        };
        throttle.succeeded(&ticket);
        let invalidate = request.fast.is_some_and(|fast| fast.invalidate);
        if invalidate {
            if let Err(error) = tokens.revoke(&login.user, device).await {
                warn!(%error, "FAST token could not be invalidated");
            }
        }
        Ok(Some((
            login.user,
            login.additional_data,
            login.rotate && !invalidate,
        )))
    }

    /// A new FAST token for the success, when the client asked for one or its token is due
    /// for rotation, and the client named its device.
    pub(super) async fn hand_out_token(
        &self,
        user: &BareJid,
        request: &Authenticate,
        rotate: bool,
    ) -> Option<Element> {
        let device = request.user_agent.id.as_deref()?;
        let offered = fast::offered(&self.bindings);
        let mechanism = match request.request_token.as_deref() {
            Some(asked) => offered.into_iter().find(|m| *m == asked)?,
            None if rotate => offered.into_iter().find(|m| *m == request.mechanism)?,
            None => return None,
        };
        match self.ctx.fast.issue(user, device, mechanism).await {
            Ok(issued) => Some(sasl2::fast_token(
                &issued.secret,
                &rempart_xep::delay::datetime(issued.expires),
            )),
            Err(error) => {
                warn!(%error, "FAST token could not be issued");
                None
            }
        }
    }

    /// After a SASL2 success: resume inline, bind inline, or send the success and go on to
    /// binding on the same stream.
    pub(super) async fn after_sasl2(
        &mut self,
        mut stream: Stream,
        success: Sasl2Success,
    ) -> Result<Negotiated, NegotiationEnd> {
        let Sasl2Success {
            user,
            additional_data,
            request,
            token,
        } = success;
        self.record_device(&user, &request.user_agent).await;
        let mut extra: Vec<Element> = token.into_iter().collect();
        let sm_enabled = self.ctx.router.config.stream_management.enabled;
        if let Some(resume) = request.resume.as_ref().filter(|_| sm_enabled) {
            match self.find_resumable(&user, resume) {
                Ok(found) => {
                    let reply = Sasl2Reply {
                        additional_data,
                        extra,
                    };
                    return Ok(take_over(stream, found, Some(reply)));
                }
                Err(failed) => extra.push(failed),
            }
        }
        if let Some(bind) = request.bind {
            let resource = bind2::resource(bind.tag.as_deref(), request.user_agent.id.as_deref());
            let Ok(full) = FullJid::new(&format!("{user}/{resource}")) else {
                let failure = sasl2::failure(SaslFailure::TemporaryAuthFailure);
                self.send(&mut stream, failure).await?;
                return Err(NegotiationEnd::Closed("no valid resource".into()));
            };
            let (handle, inbox, overflow) = self.register(full);
            return Ok(Negotiated::Bound(Bound {
                reader: stream.reader,
                writer: stream.writer,
                handle,
                inbox,
                overflow,
                host: self.host.clone().unwrap_or_default(),
                greeting: Some(Greeting {
                    additional_data,
                    inline: bind.inline,
                    extra,
                }),
            }));
        }
        let success = sasl2::success(&additional_data, user.as_str(), extra);
        self.send(&mut stream, success).await?;
        self.bind(stream, user).await
    }

    /// Remembers the device a SASL2 client named, so the user and admins can see it.
    async fn record_device(&self, user: &BareJid, agent: &UserAgent) {
        let devices = Devices::new(self.ctx.router.storage.clone());
        if let Err(error) = devices.record(user, agent).await {
            warn!(%error, "the device record could not be written");
        }
    }
}
