//! SASL authentication (RFC 6120 §6) run by rsasl: SCRAM-SHA-1/256/512 with their -PLUS
//! forms, and PLAIN over TLS when enabled. We supply the credential lookup and the verdict.

pub mod channel_binding;
pub mod credentials;
pub mod decoy;
pub mod devices;
pub mod fast;
pub mod rate_limit;

use std::sync::{Arc, LazyLock};

use base64::Engine as _;
use rempart_xep::sasl::SaslFailure;
use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::plain::PLAIN;
use rsasl::mechanisms::scram::properties::ScramStoredPassword;
use rsasl::mechanisms::scram::{
    SCRAM_SHA1, SCRAM_SHA1_PLUS, SCRAM_SHA256, SCRAM_SHA256_PLUS, SCRAM_SHA512, SCRAM_SHA512_PLUS,
};
use rsasl::prelude::{Mechname, Registry, SASLConfig, SASLServer, Session, SessionError, State};
use rsasl::property::{AuthId, AuthzId, Password};
use rsasl::validate::{Validate, Validation, ValidationError};

use crate::accounts::LoginAccount;
use channel_binding::ChannelBindings;
use credentials::{verify_password, ScramHash};

/// The mechanisms in order of preference, -PLUS first.
static WITH_BINDING: LazyLock<&'static [rsasl::prelude::Mechanism]> = LazyLock::new(|| {
    Box::leak(Box::new([
        SCRAM_SHA512_PLUS,
        SCRAM_SHA256_PLUS,
        SCRAM_SHA1_PLUS,
        SCRAM_SHA512,
        SCRAM_SHA256,
        SCRAM_SHA1,
        PLAIN,
    ]))
});

/// The mechanisms when no channel binding is available.
static WITHOUT_BINDING: LazyLock<&'static [rsasl::prelude::Mechanism]> =
    LazyLock::new(|| Box::leak(Box::new([SCRAM_SHA512, SCRAM_SHA256, SCRAM_SHA1, PLAIN])));

/// What the connection offers, decided once per stream.
#[derive(Debug, Clone)]
pub struct SaslOffer {
    bindings: ChannelBindings,
    plain: bool,
}

impl SaslOffer {
    /// PLAIN is only offered over TLS and when the configuration allows it.
    pub fn new(bindings: ChannelBindings, tls: bool, allow_plain: bool) -> SaslOffer {
        SaslOffer {
            bindings,
            plain: tls && allow_plain,
        }
    }

    /// Mechanism names to advertise, strongest first.
    pub fn mechanism_names(&self) -> Vec<&'static str> {
        self.registry_mechanisms()
            .iter()
            .map(|m| m.mechanism.as_str())
            .filter(|name| *name != "PLAIN" || self.plain)
            .collect()
    }

    /// Channel-binding types for XEP-0440.
    pub fn binding_types(&self) -> Vec<&'static str> {
        self.bindings.types()
    }

    fn registry_mechanisms(&self) -> &'static [rsasl::prelude::Mechanism] {
        if self.bindings.any() {
            &WITH_BINDING
        } else {
            &WITHOUT_BINDING
        }
    }
}

/// Who is trying to authenticate, read from the mechanism's first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The authentication identity as sent (a localpart).
    pub username: String,
}

/// Reads the claimed username from an initial response, so the account can be fetched
/// asynchronously before rsasl runs.
pub fn claimed_username(mechanism: &str, initial: &[u8]) -> Option<Claim> {
    let text = std::str::from_utf8(initial).ok()?;
    let username = if mechanism == "PLAIN" {
        let mut parts = text.split('\0');
        let _authzid = parts.next()?;
        parts.next()?.to_owned()
    } else {
        // gs2-header: cbind-flag "," [authzid] "," then "n=" username
        let mut fields = text.splitn(3, ',');
        let _flag = fields.next()?;
        let _authzid = fields.next()?;
        let bare = fields.next()?;
        let name = bare.split(',').next()?.strip_prefix("n=")?;
        name.replace("=2C", ",").replace("=3D", "=")
    };
    (!username.is_empty()).then_some(Claim { username })
}

/// The verdict the callback hands back through rsasl.
struct Verdict;

impl Validation for Verdict {
    type Value = Result<(), SaslFailure>;
}

/// Answers rsasl's questions from the prefetched account (or its decoy).
struct AccountCallback {
    username: String,
    bare_jid: String,
    login: LoginAccount,
}

impl SessionCallback for AccountCallback {
    fn callback(
        &self,
        session_data: &SessionData,
        context: &Context,
        request: &mut Request,
    ) -> Result<(), SessionError> {
        let account = &self.login.account;
        if context.get_ref::<AuthId>() != Some(self.username.as_str()) {
            return Ok(());
        }
        let mechanism = session_data.mechanism().mechanism.as_str();
        if let Some(credential) =
            ScramHash::of_mechanism(mechanism).and_then(|h| account.credential(h))
        {
            request.satisfy::<ScramStoredPassword>(&ScramStoredPassword::new(
                credential.iterations,
                &credential.salt,
                &credential.stored_key,
                &credential.server_key,
            ))?;
        }
        Ok(())
    }

    fn validate(
        &self,
        session_data: &SessionData,
        context: &Context,
        validate: &mut Validate<'_>,
    ) -> Result<(), ValidationError> {
        let verdict = self.judge(session_data.mechanism().mechanism.as_str(), context);
        validate.with::<Verdict, _>(|| Ok(verdict))?;
        Ok(())
    }
}

impl AccountCallback {
    fn judge(&self, mechanism: &str, context: &Context) -> Result<(), SaslFailure> {
        let account = &self.login.account;
        if context.get_ref::<AuthId>() != Some(self.username.as_str()) {
            return Err(SaslFailure::NotAuthorized);
        }
        match context.get_ref::<AuthzId>() {
            None | Some("") => {}
            Some(authzid) if authzid == self.bare_jid || authzid == self.username => {}
            Some(_) => return Err(SaslFailure::InvalidAuthzid),
        }
        if mechanism == "PLAIN" {
            let password = context
                .get_ref::<Password>()
                .and_then(|p| std::str::from_utf8(p).ok());
            let verified = password.is_some_and(|password| {
                account
                    .credential(ScramHash::Sha256)
                    .is_some_and(|c| verify_password(c, password))
            });
            if !verified {
                return Err(SaslFailure::NotAuthorized);
            }
        }
        // A decoy matches no password; checked last so that it costs what a real check does.
        if !self.login.exists {
            return Err(SaslFailure::NotAuthorized);
        }
        Ok(())
    }
}

/// The outcome of one step of an exchange.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send a `<challenge/>` with this data and wait for a `<response/>`.
    Challenge(Vec<u8>),
    /// Send `<success/>` with this additional data (possibly empty).
    Success(Vec<u8>),
    /// Send `<failure/>`.
    Failure(SaslFailure),
}

/// One running SASL exchange.
pub struct Exchange {
    session: Session<Verdict, ChannelBindings>,
    scram: bool,
    steps: u32,
}

impl Exchange {
    /// Starts `mechanism` for a user whose account (or its decoy) was already fetched.
    pub fn start(
        offer: &SaslOffer,
        mechanism: &str,
        username: &str,
        bare_jid: &str,
        login: LoginAccount,
    ) -> Result<Exchange, SaslFailure> {
        if !offer.mechanism_names().contains(&mechanism) {
            return Err(SaslFailure::InvalidMechanism);
        }
        let callback = AccountCallback {
            username: username.to_owned(),
            bare_jid: bare_jid.to_owned(),
            login,
        };
        let config: Arc<SASLConfig> = SASLConfig::builder()
            .with_registry(Registry::with_mechanisms(offer.registry_mechanisms()))
            .with_callback(callback)
            .map_err(|_| SaslFailure::TemporaryAuthFailure)?;
        let server =
            SASLServer::<Verdict, ChannelBindings>::with_cb(config, offer.bindings.clone());
        let name =
            Mechname::parse(mechanism.as_bytes()).map_err(|_| SaslFailure::InvalidMechanism)?;
        let session = server
            .start_suggested(name)
            .map_err(|_| SaslFailure::InvalidMechanism)?;
        Ok(Exchange {
            session,
            scram: mechanism.starts_with("SCRAM-"),
            steps: 0,
        })
    }

    /// Feeds the client's data and says what to answer. PLAIN runs PBKDF2 here, so callers
    /// run this off the async workers.
    pub fn step(&mut self, input: &[u8]) -> Step {
        // rsasl 2.3 slices SCRAM attributes without checking their length and panics on one
        // shorter than `x=`, or on an empty message: refuse such messages first. (Negotiation
        // asks for the client-first message before starting, so no SCRAM step is empty.)
        let first = self.steps == 0;
        self.steps += 1;
        if self.scram && !is_scram_message(input, first) {
            return Step::Failure(SaslFailure::MalformedRequest);
        }
        let mut output = Vec::new();
        let session = &mut self.session;
        let stepped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            session.step(Some(input), &mut output)
        }));
        let Ok(stepped) = stepped else {
            return Step::Failure(SaslFailure::MalformedRequest);
        };
        match stepped {
            Ok(State::Running) => Step::Challenge(output),
            Ok(State::Finished(_)) => match self.session.validation() {
                Some(Ok(())) => Step::Success(output),
                Some(Err(failure)) => Step::Failure(failure),
                None => Step::Failure(SaslFailure::NotAuthorized),
            },
            Err(error) => Step::Failure(failure_of(&error)),
        }
    }
}

/// True for the shape of a SCRAM client message (RFC 5802 §7): the client-first message (a
/// GS2 header, then attributes) when `first`, else the client-final one (attributes only),
/// every attribute being `<letter>=<value>`.
fn is_scram_message(message: &[u8], first: bool) -> bool {
    let is_attribute = |part: &[u8]| matches!(part, [name, b'=', ..] if name.is_ascii_alphabetic());
    let mut parts = message.split(|&byte| byte == b',');
    if first {
        let flag_ok = parts
            .next()
            .is_some_and(|flag| matches!(flag, b"n" | b"y" | [b'p', b'=', ..]));
        let authzid_ok = parts
            .next()
            .is_some_and(|authzid| authzid.is_empty() || authzid.starts_with(b"a="));
        if !(flag_ok && authzid_ok) {
            return false;
        }
    }
    parts.all(is_attribute)
}

fn failure_of(error: &SessionError) -> SaslFailure {
    match error {
        SessionError::ValidationError(_) | SessionError::MechanismError(_) => {
            SaslFailure::NotAuthorized
        }
        _ => SaslFailure::MalformedRequest,
    }
}

/// Decodes the base64 payload of `<auth/>` or `<response/>` (`=` means empty).
pub fn decode_payload(text: &str) -> Result<Vec<u8>, SaslFailure> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed == "=" {
        return Ok(Vec::new());
    }
    base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .map_err(|_| SaslFailure::MalformedRequest)
}

/// Encodes data for `<challenge/>` or `<success/>` (`=` for empty, RFC 6120 §6.4.2).
pub fn encode_payload(data: &[u8]) -> String {
    if data.is_empty() {
        "=".to_owned()
    } else {
        base64::engine::general_purpose::STANDARD.encode(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_username_from_scram_and_plain() {
        assert_eq!(
            claimed_username("SCRAM-SHA-256", b"n,,n=user,r=abc"),
            Some(Claim {
                username: "user".into()
            })
        );
        assert_eq!(
            claimed_username("SCRAM-SHA-1-PLUS", b"p=tls-exporter,,n=a=2Cb,r=x"),
            Some(Claim {
                username: "a,b".into()
            })
        );
        assert_eq!(
            claimed_username("PLAIN", b"\0juliet\0secret"),
            Some(Claim {
                username: "juliet".into()
            })
        );
        assert_eq!(claimed_username("SCRAM-SHA-1", b"garbage"), None);
    }

    #[test]
    fn scram_messages_are_checked_for_their_shape() {
        assert!(is_scram_message(b"n,,n=user,r=abc", true));
        assert!(is_scram_message(
            b"p=tls-exporter,a=user@host,n=user,r=abc",
            true
        ));
        assert!(is_scram_message(b"c=biws,r=abcdef,p=AAAA", false));
        assert!(!is_scram_message(b"n,,n=user,r", true));
        assert!(!is_scram_message(b"n,a,n=user,r=abc", true));
        assert!(!is_scram_message(b"c=biws,r=abc", true));
        assert!(!is_scram_message(b"n,,n=user,r=abc", false));
        assert!(!is_scram_message(b"c=biws,r=abcdef,,p=AAAA", false));
        assert!(!is_scram_message(b"c=biws,r=abc,x", false));
        assert!(!is_scram_message(b"", false));
    }

    #[test]
    fn plain_is_only_offered_over_tls_when_enabled() {
        let offer = SaslOffer::new(ChannelBindings::default(), true, true);
        assert!(offer.mechanism_names().contains(&"PLAIN"));
        let offer = SaslOffer::new(ChannelBindings::default(), false, true);
        assert!(!offer.mechanism_names().contains(&"PLAIN"));
        assert!(!offer.mechanism_names().iter().any(|m| m.ends_with("-PLUS")));
    }
}
