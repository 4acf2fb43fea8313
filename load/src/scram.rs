//! Client side of SCRAM (RFC 5802, RFC 7677) without channel binding (gs2 header `n,,`).
//!
//! The salted password (PBKDF2, 4096 iterations) costs the client about a millisecond per
//! login; a real client computes it once and keeps it (RFC 5802 §5.1), and so does this tool,
//! in memory and optionally in a file, so that a login storm measures the server rather than
//! the load generator's PBKDF2.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::distr::Alphanumeric;
use rand::Rng as _;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

/// The SCRAM hash functions the tool can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// SCRAM-SHA-1.
    Sha1,
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl Mechanism {
    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha1 => "SCRAM-SHA-1",
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Parses a SASL mechanism name.
    pub fn parse(name: &str) -> Result<Mechanism> {
        match name.to_ascii_uppercase().as_str() {
            "SCRAM-SHA-1" => Ok(Mechanism::Sha1),
            "SCRAM-SHA-256" => Ok(Mechanism::Sha256),
            "SCRAM-SHA-512" => Ok(Mechanism::Sha512),
            other => bail!("unsupported mechanism {other}"),
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha1 => Sha1::digest(data).to_vec(),
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
            Mechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            let mut mac = <M as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Mechanism::Sha1 => run::<Hmac<Sha1>>(key, data),
            Mechanism::Sha256 => run::<Hmac<Sha256>>(key, data),
            Mechanism::Sha512 => run::<Hmac<Sha512>>(key, data),
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::Sha1 => {
                let mut out = vec![0; 20];
                pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out);
                out
            }
            Mechanism::Sha256 => {
                let mut out = vec![0; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
            Mechanism::Sha512 => {
                let mut out = vec![0; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out
            }
        }
    }
}

/// Salted passwords already computed, keyed by mechanism, account, password, salt and count.
#[derive(Default)]
pub struct SaltedCache {
    entries: Mutex<HashMap<String, Vec<u8>>>,
    path: Option<PathBuf>,
}

impl SaltedCache {
    /// A cache loaded from `path` if the file exists (one `key salted` line per entry).
    pub fn load(path: Option<&Path>) -> Result<SaltedCache> {
        let mut entries = HashMap::new();
        if let Some(path) = path {
            if path.exists() {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                for line in text.lines() {
                    if let Some((key, value)) = line.split_once(' ') {
                        if let Ok(bytes) = B64.decode(value) {
                            entries.insert(key.to_owned(), bytes);
                        }
                    }
                }
            }
        }
        Ok(SaltedCache {
            entries: Mutex::new(entries),
            path: path.map(Path::to_owned),
        })
    }

    /// Writes the cache back to its file, if it has one.
    pub fn save(&self) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let entries = self.entries.lock().map_err(|_| anyhow!("cache lock"))?;
        let mut text = String::with_capacity(entries.len() * 110);
        for (key, value) in entries.iter() {
            text.push_str(key);
            text.push(' ');
            text.push_str(&B64.encode(value));
            text.push('\n');
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    fn key(mech: Mechanism, user: &str, password: &str, salt: &[u8], iterations: u32) -> String {
        let digest = Sha256::digest(
            format!(
                "{}\0{user}\0{password}\0{}\0{iterations}",
                mech.name(),
                B64.encode(salt)
            )
            .as_bytes(),
        );
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn get_or_compute(
        &self,
        mech: Mechanism,
        user: &str,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Vec<u8> {
        let key = Self::key(mech, user, password, salt, iterations);
        if let Some(found) = self.entries.lock().ok().and_then(|e| e.get(&key).cloned()) {
            return found;
        }
        let salted = mech.salted_password(password.as_bytes(), salt, iterations);
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(key, salted.clone());
        }
        salted
    }
}

/// One SCRAM exchange in progress.
pub struct ScramClient {
    mech: Mechanism,
    user: String,
    password: String,
    nonce: String,
    client_first_bare: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// Starts an exchange for `user` (a localpart).
    pub fn new(mech: Mechanism, user: &str, password: &str) -> ScramClient {
        let nonce: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(24)
            .map(char::from)
            .collect();
        let name = user.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            mech,
            user: user.to_owned(),
            password: password.to_owned(),
            client_first_bare: format!("n={name},r={nonce}"),
            nonce,
            server_signature: None,
        }
    }

    /// The client-first-message, sent in `<auth/>`.
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Answers the server-first-message with the client-final-message.
    pub fn client_final(&mut self, server_first: &str, cache: &SaltedCache) -> Result<String> {
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for part in server_first.split(',') {
            match part.split_once('=') {
                Some(("r", value)) => nonce = Some(value),
                Some(("s", value)) => salt = Some(B64.decode(value).context("salt")?),
                Some(("i", value)) => iterations = Some(value.parse::<u32>().context("i")?),
                Some(("m", _)) => bail!("server requires a SCRAM extension"),
                _ => {}
            }
        }
        let nonce = nonce.ok_or_else(|| anyhow!("server-first without nonce"))?;
        let salt = salt.ok_or_else(|| anyhow!("server-first without salt"))?;
        let iterations = iterations.ok_or_else(|| anyhow!("server-first without count"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() <= self.nonce.len() {
            bail!("server nonce does not extend ours");
        }
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let salted = cache.get_or_compute(self.mech, &self.user, &self.password, &salt, iterations);
        let client_key = self.mech.hmac(&salted, b"Client Key");
        let stored_key = self.mech.hash(&client_key);
        let client_signature = self.mech.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = self.mech.hmac(&salted, b"Server Key");
        self.server_signature = Some(self.mech.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Checks the server-final-message (`v=...`), proving the server knew the password.
    pub fn verify_server_final(&self, server_final: &str) -> Result<()> {
        if let Some(error) = server_final.strip_prefix("e=") {
            bail!("server-final error: {error}");
        }
        let value = server_final
            .split(',')
            .find_map(|p| p.strip_prefix("v="))
            .ok_or_else(|| anyhow!("server-final without verifier"))?;
        let expected = self
            .server_signature
            .as_ref()
            .ok_or_else(|| anyhow!("server-final before client-final"))?;
        if B64.decode(value).context("verifier")? != *expected {
            bail!("server signature mismatch");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3 test vector.
    #[test]
    fn rfc7677_exchange_produces_the_published_proof() {
        let mut client = ScramClient::new(Mechanism::Sha256, "user", "pencil");
        client.nonce = "rOprNGfwEbeRWgbNEkqO".into();
        client.client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO".into();
        let cache = SaltedCache::default();
        let server_first =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let final_message = client.client_final(server_first, &cache).unwrap();
        assert_eq!(
            final_message,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        client
            .verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert_eq!(cache.len(), 1);
    }
}
