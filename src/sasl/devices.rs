//! The devices of each account, as SASL2 clients name themselves (XEP-0388 user agents):
//! recorded at every login, listed for the user and the admin, and revoked with their FAST
//! tokens (XEP-0484) so that a lost phone can no longer log in without the password.

use jid::BareJid;
use rempart_xep::sasl2::UserAgent;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::sasl::fast::FastTokens;
use crate::storage::{Storage, StorageError};

/// The storage module name of device records.
const STORE: &str = "devices";

/// What the server remembers of a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// The client software, as it named itself.
    pub software: Option<String>,
    /// The device, as the client named it.
    pub device: Option<String>,
    /// The last login, Unix seconds.
    pub last_login: i64,
}

/// The device records of every account.
#[derive(Clone)]
pub struct Devices {
    storage: Storage,
}

impl Devices {
    /// Devices kept in `storage`.
    pub fn new(storage: Storage) -> Devices {
        Devices { storage }
    }

    /// Records a login from a client that named its installation.
    pub async fn record(&self, user: &BareJid, agent: &UserAgent) -> Result<(), StorageError> {
        let Some(id) = agent.id.as_deref() else {
            return Ok(());
        };
        let record = DeviceRecord {
            software: agent.software.clone(),
            device: agent.device.clone(),
            last_login: OffsetDateTime::now_utc().unix_timestamp(),
        };
        self.store(user).set(localpart(user), id, &record).await
    }

    /// The account's devices by id.
    pub async fn list(&self, user: &BareJid) -> Result<Vec<(String, DeviceRecord)>, StorageError> {
        self.store(user).all(localpart(user)).await
    }

    /// Forgets a device and its FAST tokens; false when the account has no such device.
    pub async fn revoke(&self, user: &BareJid, id: &str) -> Result<bool, StorageError> {
        let store = self.store(user);
        let known = store.get(localpart(user), id).await?.is_some();
        FastTokens::new(self.storage.clone())
            .revoke(user, id)
            .await?;
        store.delete(localpart(user), id).await?;
        Ok(known)
    }

    fn store(&self, user: &BareJid) -> crate::storage::MapStore<DeviceRecord> {
        self.storage.map(user.domain().as_str(), STORE)
    }
}

fn localpart(user: &BareJid) -> &str {
    user.node().map(|n| n.as_str()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_recorded_device_is_listed_until_revoked() {
        let devices = Devices::new(Storage::memory());
        let alice = BareJid::new("alice@localhost").expect("valid");
        let agent = UserAgent {
            id: Some("phone-1".into()),
            software: Some("Conversations".into()),
            device: Some("Pixel".into()),
        };
        devices.record(&alice, &agent).await.expect("recorded");
        let listed = devices.list(&alice).await.expect("listed");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].1.software.as_deref(), Some("Conversations"));
        assert!(devices.revoke(&alice, "phone-1").await.expect("revoked"));
        assert!(devices.list(&alice).await.expect("listed").is_empty());
        assert!(!devices
            .revoke(&alice, "phone-1")
            .await
            .expect("nothing left"));
    }
}
