//! XEP-0484 FAST: a device that logged in once with its password gets a token and logs in
//! again in one round trip with an HT-* mechanism (draft-schmaus-kitten-sasl-ht): the client
//! proves the token with HMAC-SHA-256(token, "Initiator" || channel binding), the server answers
//! with HMAC-SHA-256(token, "Responder" || channel binding).
//!
//! Tokens are kept per (account, device) in two slots, `current` and `new` (XEP-0484 §7): a
//! rotated token waits in `new` until the device uses it, so a device that missed the rotation
//! still logs in with the old one.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use jid::BareJid;
use rand::RngCore;
use rsasl::prelude::ChannelBindingCallback;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::sasl::channel_binding::ChannelBindings;
use crate::storage::{Storage, StorageError};

/// The storage module name of FAST tokens.
const STORE: &str = "fast";

/// How long a token lives.
const LIFETIME_SECS: i64 = 30 * 24 * 3600;

/// A token used in its last quarter of life is rotated.
const ROTATE_WITHIN_SECS: i64 = LIFETIME_SECS / 4;

/// The HT mechanisms with SHA-256, and the channel binding each uses.
pub const MECHANISMS: [(&str, Option<&str>); 3] = [
    ("HT-SHA-256-EXPR", Some("tls-exporter")),
    ("HT-SHA-256-ENDP", Some("tls-server-end-point")),
    ("HT-SHA-256-NONE", None),
];

type HmacSha256 = Hmac<Sha256>;

/// One token as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredToken {
    secret: String,
    mechanism: String,
    expires: i64,
}

/// The two token slots of one device.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DeviceTokens {
    current: Option<StoredToken>,
    new: Option<StoredToken>,
}

/// A token handed to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The secret, as the client uses it.
    pub secret: String,
    /// When it expires.
    pub expires: OffsetDateTime,
}

/// A successful FAST login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastLogin {
    /// The account.
    pub user: BareJid,
    /// The server's proof, for the SASL2 additional data.
    pub additional_data: Vec<u8>,
    /// The token is due for rotation.
    pub rotate: bool,
}

/// The mechanisms that can be offered on a connection with these bindings.
pub fn offered(bindings: &ChannelBindings) -> Vec<&'static str> {
    MECHANISMS
        .iter()
        .filter(|(_, binding)| binding.is_none_or(|name| bindings.get_cb_data(name).is_some()))
        .map(|(name, _)| *name)
        .collect()
}

/// The FAST tokens of every account.
#[derive(Clone)]
pub struct FastTokens {
    storage: Storage,
}

impl FastTokens {
    /// Tokens kept in `storage`.
    pub fn new(storage: Storage) -> FastTokens {
        FastTokens { storage }
    }

    /// Checks an HT initial response (`authcid NUL proof`) for the device `device` of an
    /// account of `host`; `None` when it does not prove a live token for that mechanism.
    pub async fn verify(
        &self,
        host: &str,
        device: &str,
        mechanism: &str,
        response: &[u8],
        bindings: &ChannelBindings,
    ) -> Result<Option<FastLogin>, StorageError> {
        let Some(cb_data) = binding_data(mechanism, bindings) else {
            return Ok(None);
        };
        let Some(split) = response.iter().position(|b| *b == 0) else {
            return Ok(None);
        };
        let (username, proof) = (&response[..split], &response[split + 1..]);
        let Ok(username) = std::str::from_utf8(username) else {
            return Ok(None);
        };
        let Ok(user) = BareJid::new(&format!("{username}@{host}")) else {
            return Ok(None);
        };
        let store = self.storage.map::<DeviceTokens>(host, STORE);
        let Some(mut tokens) = store.get(username, device).await? else {
            return Ok(None);
        };
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let matches = |token: &StoredToken| {
            token.mechanism == mechanism
                && token.expires > now
                && proves(&token.secret, b"Initiator", cb_data, proof)
        };
        let used = if tokens.new.as_ref().is_some_and(matches) {
            // The device has the rotated token: the old one is no longer needed.
            tokens.current = tokens.new.take();
            store.set(username, device, &tokens).await?;
            tokens.current.clone()
        } else if tokens.current.as_ref().is_some_and(matches) {
            tokens.current.clone()
        } else {
            None
        };
        let Some(token) = used else {
            return Ok(None);
        };
        Ok(Some(FastLogin {
            user,
            additional_data: hmac(&token.secret, b"Responder", cb_data),
            rotate: token.expires - now < ROTATE_WITHIN_SECS,
        }))
    }

    /// Issues a token for `mechanism` to a device, in its `new` slot.
    pub async fn issue(
        &self,
        user: &BareJid,
        device: &str,
        mechanism: &str,
    ) -> Result<IssuedToken, StorageError> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let expires = OffsetDateTime::now_utc().unix_timestamp() + LIFETIME_SECS;
        let store = self
            .storage
            .map::<DeviceTokens>(user.domain().as_str(), STORE);
        let name = user.node().map(|n| n.as_str()).unwrap_or_default();
        let mut tokens = store.get(name, device).await?.unwrap_or_default();
        tokens.new = Some(StoredToken {
            secret: secret.clone(),
            mechanism: mechanism.to_owned(),
            expires,
        });
        store.set(name, device, &tokens).await?;
        Ok(IssuedToken {
            secret,
            expires: OffsetDateTime::from_unix_timestamp(expires)
                .unwrap_or_else(|_| OffsetDateTime::now_utc()),
        })
    }

    /// Forgets every token of a device (the device logged out, or its owner or an admin
    /// revoked it).
    pub async fn revoke(&self, user: &BareJid, device: &str) -> Result<(), StorageError> {
        let store = self
            .storage
            .map::<DeviceTokens>(user.domain().as_str(), STORE);
        let name = user.node().map(|n| n.as_str()).unwrap_or_default();
        store.delete(name, device).await
    }
}

/// The channel-binding data a mechanism uses; `None` when it is unknown or unavailable.
fn binding_data<'a>(mechanism: &str, bindings: &'a ChannelBindings) -> Option<&'a [u8]> {
    let (_, binding) = MECHANISMS.iter().find(|(name, _)| *name == mechanism)?;
    match binding {
        None => Some(&[]),
        Some(name) => bindings.get_cb_data(name),
    }
}

fn hmac(secret: &str, label: &[u8], cb_data: &[u8]) -> Vec<u8> {
    match keyed(secret, label, cb_data) {
        Some(mac) => mac.finalize().into_bytes().to_vec(),
        None => Vec::new(),
    }
}

/// Constant-time check of a proof.
fn proves(secret: &str, label: &[u8], cb_data: &[u8], proof: &[u8]) -> bool {
    keyed(secret, label, cb_data).is_some_and(|mac| mac.verify_slice(proof).is_ok())
}

/// HMAC-SHA-256 keyed with the token over `label || cb_data` (HMAC takes keys of any
/// length, so this is never `None` in practice).
fn keyed(secret: &str, label: &[u8], cb_data: &[u8]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(label);
    mac.update(cb_data);
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> BareJid {
        BareJid::new("alice@localhost").expect("valid")
    }

    fn response(secret: &str) -> Vec<u8> {
        let mut response = b"alice\0".to_vec();
        response.extend(hmac(secret, b"Initiator", &[]));
        response
    }

    #[tokio::test]
    async fn an_issued_token_logs_the_device_in_and_nothing_else_does() {
        let tokens = FastTokens::new(Storage::memory());
        let bindings = ChannelBindings::default();
        let issued = tokens
            .issue(&alice(), "phone", "HT-SHA-256-NONE")
            .await
            .expect("issued");
        let login = tokens
            .verify(
                "localhost",
                "phone",
                "HT-SHA-256-NONE",
                &response(&issued.secret),
                &bindings,
            )
            .await
            .expect("storage")
            .expect("valid token");
        assert_eq!(login.user, alice());
        assert_eq!(
            login.additional_data,
            hmac(&issued.secret, b"Responder", &[])
        );
        assert!(!login.rotate);
        for (device, mechanism, secret) in [
            ("laptop", "HT-SHA-256-NONE", issued.secret.as_str()),
            ("phone", "HT-SHA-256-EXPR", issued.secret.as_str()),
            ("phone", "HT-SHA-256-NONE", "wrong"),
        ] {
            let refused = tokens
                .verify("localhost", device, mechanism, &response(secret), &bindings)
                .await
                .expect("storage");
            assert!(refused.is_none(), "{device} {mechanism}");
        }
    }

    #[tokio::test]
    async fn the_old_token_works_until_the_rotated_one_is_used_then_never_again() {
        let tokens = FastTokens::new(Storage::memory());
        let bindings = ChannelBindings::default();
        let verify = |secret: String| {
            let tokens = tokens.clone();
            let bindings = bindings.clone();
            async move {
                tokens
                    .verify(
                        "localhost",
                        "phone",
                        "HT-SHA-256-NONE",
                        &response(&secret),
                        &bindings,
                    )
                    .await
                    .expect("storage")
                    .is_some()
            }
        };
        let first = tokens
            .issue(&alice(), "phone", "HT-SHA-256-NONE")
            .await
            .expect("issued");
        assert!(verify(first.secret.clone()).await);
        let second = tokens
            .issue(&alice(), "phone", "HT-SHA-256-NONE")
            .await
            .expect("issued");
        assert!(verify(first.secret.clone()).await, "not yet replaced");
        assert!(verify(second.secret.clone()).await);
        assert!(
            !verify(first.secret.clone()).await,
            "replaced once the new one was used"
        );
        tokens.revoke(&alice(), "phone").await.expect("revoked");
        assert!(!verify(second.secret).await);
    }
}
