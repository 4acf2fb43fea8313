//! Accounts: existence and SCRAM credentials per bare JID. Admin actions and SASL use this.

use jid::BareJid;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::sasl::credentials::{derive_credentials, PasswordError, ScramCredential, ScramHash};
use crate::sasl::decoy::DecoySecret;
use crate::storage::{KvStore, Storage, StorageError};

/// Module name under which accounts are stored.
const STORE: &str = "accounts";

/// What is stored per account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    /// One verifier per SCRAM hash.
    pub credentials: Vec<ScramCredential>,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
}

impl Account {
    /// The verifier for one hash.
    pub fn credential(&self, hash: ScramHash) -> Option<&ScramCredential> {
        self.credentials.iter().find(|c| c.hash == hash)
    }
}

/// What authentication runs against: the account, or for a name without one a decoy that
/// looks the same on the wire and matches no password.
#[derive(Debug, Clone)]
pub struct LoginAccount {
    /// The stored account or the decoy.
    pub account: Account,
    /// False for a decoy.
    pub exists: bool,
}

/// Why an account operation failed.
#[derive(Debug, Error)]
pub enum AccountError {
    /// The JID has no localpart or names a host not served here.
    #[error("{0} is not an account on a host served here")]
    NotLocal(String),
    /// The account exists already.
    #[error("{0} already exists")]
    Exists(String),
    /// The account does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// The password was refused.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The key derivation task failed.
    #[error("password hashing failed")]
    Hashing,
    /// The task loading the decoy secret failed.
    #[error("the decoy credential secret could not be loaded")]
    DecoySecret,
}

/// The account service.
#[derive(Clone)]
pub struct Accounts {
    storage: Storage,
    hosts: Vec<String>,
    iterations: u32,
    decoy: Arc<OnceCell<DecoySecret>>,
}

impl Accounts {
    /// The store the accounts live in, for actions on what belongs to an account.
    pub fn storage(&self) -> Storage {
        self.storage.clone()
    }

    /// Accounts of `hosts`, new credentials derived with `iterations`.
    pub fn new(storage: Storage, hosts: Vec<String>, iterations: u32) -> Accounts {
        Accounts {
            storage,
            hosts,
            iterations,
            decoy: Arc::new(OnceCell::new()),
        }
    }

    fn store(&self, host: &str) -> KvStore<Account> {
        self.storage.kv(host, STORE)
    }

    fn split<'a>(&self, jid: &'a BareJid) -> Result<(&'a str, &'a str), AccountError> {
        let node = jid
            .node()
            .ok_or_else(|| AccountError::NotLocal(jid.to_string()))?;
        let host = jid.domain().as_str();
        if !self.hosts.iter().any(|h| h == host) {
            return Err(AccountError::NotLocal(jid.to_string()));
        }
        Ok((node.as_str(), host))
    }

    /// The account, if it exists.
    pub async fn get(&self, jid: &BareJid) -> Result<Option<Account>, AccountError> {
        let (user, host) = self.split(jid)?;
        Ok(self.store(host).get(user).await?)
    }

    /// The account to authenticate `jid` against: the stored one, or a decoy with the
    /// configured iteration count and a salt that is stable for the name.
    pub async fn login_account(&self, jid: &BareJid) -> Result<LoginAccount, AccountError> {
        if let Some(account) = self.get(jid).await? {
            return Ok(LoginAccount {
                account,
                exists: true,
            });
        }
        let secret = self
            .decoy
            .get_or_try_init(|| {
                let backend = self.storage.backend();
                async move {
                    tokio::task::spawn_blocking(move || {
                        DecoySecret::load_or_create(backend.as_ref())
                    })
                    .await
                    .map_err(|_| AccountError::DecoySecret)?
                    .map_err(AccountError::from)
                }
            })
            .await?;
        Ok(LoginAccount {
            account: Account {
                credentials: secret.credentials(jid.as_str(), self.iterations),
                created: 0,
            },
            exists: false,
        })
    }

    /// True when the account exists.
    pub async fn exists(&self, jid: &BareJid) -> Result<bool, AccountError> {
        Ok(self.get(jid).await?.is_some())
    }

    /// Creates an account; refuses to overwrite an existing one.
    pub async fn create(&self, jid: &BareJid, password: &str) -> Result<(), AccountError> {
        let (user, host) = self.split(jid)?;
        if self.store(host).get(user).await?.is_some() {
            return Err(AccountError::Exists(jid.to_string()));
        }
        let account = Account {
            credentials: self.derive(password).await?,
            created: time::OffsetDateTime::now_utc().unix_timestamp(),
        };
        self.store(host).set(user, &account).await?;
        Ok(())
    }

    /// Replaces the password of an existing account.
    pub async fn set_password(&self, jid: &BareJid, password: &str) -> Result<(), AccountError> {
        let (user, host) = self.split(jid)?;
        let store = self.store(host);
        let mut account = store
            .get(user)
            .await?
            .ok_or_else(|| AccountError::NotFound(jid.to_string()))?;
        account.credentials = self.derive(password).await?;
        store.set(user, &account).await?;
        Ok(())
    }

    /// Removes an account and everything stored for it.
    pub async fn remove(&self, jid: &BareJid) -> Result<(), AccountError> {
        let (user, host) = self.split(jid)?;
        if self.store(host).get(user).await?.is_none() {
            return Err(AccountError::NotFound(jid.to_string()));
        }
        self.storage.delete_user(host, user).await?;
        Ok(())
    }

    /// All accounts of all hosts, sorted.
    pub async fn list(&self) -> Result<Vec<BareJid>, AccountError> {
        let mut all = Vec::new();
        for host in &self.hosts {
            for user in self.store(host).users().await? {
                if let Ok(jid) = BareJid::new(&format!("{user}@{host}")) {
                    all.push(jid);
                }
            }
        }
        Ok(all)
    }

    async fn derive(&self, password: &str) -> Result<Vec<ScramCredential>, AccountError> {
        let password = password.to_owned();
        let iterations = self.iterations;
        tokio::task::spawn_blocking(move || derive_credentials(&password, iterations))
            .await
            .map_err(|_| AccountError::Hashing)?
            .map_err(AccountError::from)
    }
}
