//! SCRAM credentials as stored: salt, iterations, StoredKey and ServerKey per hash, never the
//! password (RFC 5802 §3).

use digest::{Digest, FixedOutputReset};
use rand::RngCore as _;
use rsasl::mechanisms::scram::tools::{derive_keys, hash_password};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use thiserror::Error;

/// Bytes of a stored salt.
pub const SALT_LEN: usize = 16;

/// A hash function SCRAM runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScramHash {
    /// SCRAM-SHA-1 (RFC 5802), still used by older clients.
    Sha1,
    /// SCRAM-SHA-256 (RFC 7677).
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl ScramHash {
    /// All hashes a credential set is derived for.
    pub const ALL: [ScramHash; 3] = [ScramHash::Sha1, ScramHash::Sha256, ScramHash::Sha512];

    /// The hash used by a SCRAM mechanism name, if it is one.
    pub fn of_mechanism(name: &str) -> Option<ScramHash> {
        let base = name.strip_suffix("-PLUS").unwrap_or(name);
        match base {
            "SCRAM-SHA-1" => Some(ScramHash::Sha1),
            "SCRAM-SHA-256" => Some(ScramHash::Sha256),
            "SCRAM-SHA-512" => Some(ScramHash::Sha512),
            _ => None,
        }
    }
}

/// The verifier for one hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// Which hash the keys belong to.
    pub hash: ScramHash,
    /// Random salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iteration count.
    pub iterations: u32,
    /// H(ClientKey).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

/// Why a password could not be turned into credentials.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PasswordError {
    /// SASLprep (RFC 4013) refused the password.
    #[error("the password contains characters SASLprep does not allow")]
    Prohibited,
    /// The password is empty.
    #[error("the password is empty")]
    Empty,
}

/// Normalizes a password with SASLprep, as SCRAM clients do before hashing.
pub fn prepare_password(password: &str) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    stringprep::saslprep(password)
        .map(|p| p.into_owned())
        .map_err(|_| PasswordError::Prohibited)
}

/// Derives the stored credentials of every hash from a password.
pub fn derive_credentials(
    password: &str,
    iterations: u32,
) -> Result<Vec<ScramCredential>, PasswordError> {
    let prepared = prepare_password(password)?;
    Ok(ScramHash::ALL
        .iter()
        .map(|&hash| {
            let mut salt = vec![0u8; SALT_LEN];
            rand::rng().fill_bytes(&mut salt);
            let (stored_key, server_key) = match hash {
                ScramHash::Sha1 => keys::<Sha1>(prepared.as_bytes(), iterations, &salt),
                ScramHash::Sha256 => keys::<Sha256>(prepared.as_bytes(), iterations, &salt),
                ScramHash::Sha512 => keys::<Sha512>(prepared.as_bytes(), iterations, &salt),
            };
            ScramCredential {
                hash,
                salt,
                iterations,
                stored_key,
                server_key,
            }
        })
        .collect())
}

/// Checks a plaintext password (SASL PLAIN) against a stored credential.
pub fn verify_password(credential: &ScramCredential, password: &str) -> bool {
    let Ok(prepared) = prepare_password(password) else {
        return false;
    };
    let (stored_key, _) = match credential.hash {
        ScramHash::Sha1 => {
            keys::<Sha1>(prepared.as_bytes(), credential.iterations, &credential.salt)
        }
        ScramHash::Sha256 => {
            keys::<Sha256>(prepared.as_bytes(), credential.iterations, &credential.salt)
        }
        ScramHash::Sha512 => {
            keys::<Sha512>(prepared.as_bytes(), credential.iterations, &credential.salt)
        }
    };
    constant_time_eq(&stored_key, &credential.stored_key)
}

fn keys<D>(password: &[u8], iterations: u32, salt: &[u8]) -> (Vec<u8>, Vec<u8>)
where
    D: Digest + digest::core_api::BlockSizeUser + Clone + Sync + FixedOutputReset,
{
    let mut salted = digest::Output::<D>::default();
    hash_password::<D>(password, iterations, salt, &mut salted);
    let (client_key, server_key) = derive_keys::<D>(salted.as_slice());
    (D::digest(client_key).to_vec(), server_key.to_vec())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_credentials_verify_the_same_password_only() {
        let credentials = derive_credentials("pencil", 4096).expect("valid password");
        assert_eq!(credentials.len(), 3);
        for credential in &credentials {
            assert!(verify_password(credential, "pencil"));
            assert!(!verify_password(credential, "pencil2"));
        }
    }

    #[test]
    fn saslprep_maps_non_ascii_spaces() {
        assert_eq!(prepare_password("a\u{00A0}b").as_deref(), Ok("a b"));
        assert_eq!(prepare_password(""), Err(PasswordError::Empty));
    }
}
