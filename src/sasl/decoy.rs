//! Decoy SCRAM credentials for names without an account, so that the server-first-message
//! (salt and iteration count) does not tell an unknown user from a real one. The salt is an
//! HMAC of the name under a secret kept in storage: the same name gets the same salt on every
//! attempt and after a restart, as a real account would.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha512;

use crate::sasl::credentials::{ScramCredential, ScramHash, SALT_LEN};
use crate::storage::trees::Tree;
use crate::storage::{Backend, StorageError, WriteOp};

/// The key of [`Tree::Meta`] holding the secret.
const SECRET_KEY: &[u8] = b"scram_decoy_secret";

/// Bytes of the secret.
const SECRET_LEN: usize = 32;

/// The server-wide secret the decoys are derived from.
#[derive(Clone)]
pub struct DecoySecret(Arc<[u8]>);

impl fmt::Debug for DecoySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DecoySecret(..)")
    }
}

impl DecoySecret {
    /// Reads the stored secret, or creates and stores one. Blocks: run it off the async
    /// workers.
    pub fn load_or_create(backend: &dyn Backend) -> Result<DecoySecret, StorageError> {
        if let Some(stored) = backend.get(Tree::Meta, SECRET_KEY)? {
            if stored.len() == SECRET_LEN {
                return Ok(DecoySecret(stored.into()));
            }
        }
        let mut secret = vec![0u8; SECRET_LEN];
        rand::rng().fill_bytes(&mut secret);
        backend.apply(&[WriteOp::Put {
            tree: Tree::Meta,
            key: SECRET_KEY.to_vec(),
            value: secret.clone(),
        }])?;
        Ok(DecoySecret(secret.into()))
    }

    /// Credentials for every hash that look like a real account's and match no password.
    pub fn credentials(&self, username: &str, iterations: u32) -> Vec<ScramCredential> {
        ScramHash::ALL
            .iter()
            .map(|&hash| {
                let key_len = match hash {
                    ScramHash::Sha1 => 20,
                    ScramHash::Sha256 => 32,
                    ScramHash::Sha512 => 64,
                };
                ScramCredential {
                    hash,
                    salt: self.derive(b"salt", hash, username, SALT_LEN),
                    iterations,
                    stored_key: self.derive(b"stored-key", hash, username, key_len),
                    server_key: self.derive(b"server-key", hash, username, key_len),
                }
            })
            .collect()
    }

    /// HMAC-SHA-512 of (purpose, hash, name) under the secret, cut to `len` (at most 64).
    fn derive(&self, purpose: &[u8], hash: ScramHash, username: &str, len: usize) -> Vec<u8> {
        let Ok(mut mac) = Hmac::<Sha512>::new_from_slice(&self.0) else {
            return vec![0u8; len];
        };
        mac.update(purpose);
        mac.update(&[0, hash as u8, 0]);
        mac.update(username.as_bytes());
        let mut bytes = mac.finalize().into_bytes().to_vec();
        bytes.truncate(len);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;

    #[test]
    fn decoys_are_stable_per_name_and_differ_between_names() {
        let storage = Storage::memory();
        let secret = DecoySecret::load_or_create(storage.backend().as_ref()).expect("secret");
        let again = DecoySecret::load_or_create(storage.backend().as_ref()).expect("secret");
        let first = secret.credentials("nobody", 4096);
        assert_eq!(first, again.credentials("nobody", 4096));
        assert_ne!(first[0].salt, secret.credentials("somebody", 4096)[0].salt);
        for credential in &first {
            assert_eq!(credential.salt.len(), SALT_LEN);
            assert_eq!(credential.iterations, 4096);
        }
    }
}
