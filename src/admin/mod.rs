//! Administration: every action is defined once here, then exposed through the CLI (over
//! the local admin socket or directly on the store) and, later, ad-hoc commands and HTTP.

pub mod socket;

use jid::BareJid;
use serde::{Deserialize, Serialize};

use rempart_xep::stream::{StreamError, StreamErrorCondition};

use crate::accounts::{AccountError, Accounts};
use crate::router::Router;
use crate::sasl::devices::{DeviceRecord, Devices};

pub use socket::AdminService;

/// An administrative action.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum AdminRequest {
    /// Create an account.
    UserAdd {
        /// The account's bare JID.
        jid: String,
        /// Its password.
        password: String,
    },
    /// Delete an account and its data.
    UserRemove {
        /// The account's bare JID.
        jid: String,
    },
    /// Change an account's password.
    UserPasswd {
        /// The account's bare JID.
        jid: String,
        /// The new password.
        password: String,
    },
    /// List all accounts.
    UserList,
    /// List the devices an account logged in from with SASL2.
    DeviceList {
        /// The account's bare JID.
        jid: String,
    },
    /// Forget a device and its FAST tokens: it must log in with the password again.
    DeviceRevoke {
        /// The account's bare JID.
        jid: String,
        /// The device's id, as listed.
        device: String,
    },
    /// Count bound sessions.
    Stats,
}

/// The answer to an action.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminResponse {
    /// Whether the action succeeded.
    pub ok: bool,
    /// A sentence for the operator.
    pub message: String,
    /// Listed accounts, for `UserList`.
    #[serde(default)]
    pub users: Vec<String>,
}

impl AdminResponse {
    fn done(message: impl Into<String>) -> Self {
        AdminResponse {
            ok: true,
            message: message.into(),
            users: Vec::new(),
        }
    }

    fn failed(message: impl Into<String>) -> Self {
        AdminResponse {
            ok: false,
            message: message.into(),
            users: Vec::new(),
        }
    }
}

fn parse_account(jid: &str) -> Result<BareJid, AdminResponse> {
    match BareJid::new(jid) {
        Ok(bare) if bare.node().is_some() => Ok(bare),
        _ => Err(AdminResponse::failed(format!(
            "{jid:?} is not an account address (user@domain)"
        ))),
    }
}

fn outcome(result: Result<(), AccountError>, success: String) -> AdminResponse {
    match result {
        Ok(()) => AdminResponse::done(success),
        Err(error) => AdminResponse::failed(error.to_string()),
    }
}

/// Runs an action against the account service (and the router when the server runs).
pub async fn execute(
    request: AdminRequest,
    accounts: &Accounts,
    router: Option<&Router>,
) -> AdminResponse {
    match request {
        AdminRequest::UserAdd { jid, password } => match parse_account(&jid) {
            Ok(bare) => outcome(
                accounts.create(&bare, &password).await,
                format!("created {bare}"),
            ),
            Err(response) => response,
        },
        AdminRequest::UserRemove { jid } => match parse_account(&jid) {
            Ok(bare) => {
                let result = accounts.remove(&bare).await;
                if result.is_ok() {
                    end_sessions(router, &bare, "account removed");
                }
                outcome(result, format!("removed {bare}"))
            }
            Err(response) => response,
        },
        AdminRequest::UserPasswd { jid, password } => match parse_account(&jid) {
            Ok(bare) => {
                let result = accounts.set_password(&bare, &password).await;
                if result.is_ok() {
                    end_sessions(router, &bare, "password changed");
                }
                outcome(result, format!("password of {bare} changed"))
            }
            Err(response) => response,
        },
        AdminRequest::UserList => match accounts.list().await {
            Ok(users) => AdminResponse {
                ok: true,
                message: format!("{} accounts", users.len()),
                users: users.iter().map(ToString::to_string).collect(),
            },
            Err(error) => AdminResponse::failed(error.to_string()),
        },
        AdminRequest::DeviceList { jid } => match parse_account(&jid) {
            Ok(bare) => match Devices::new(accounts.storage()).list(&bare).await {
                Ok(devices) => AdminResponse {
                    ok: true,
                    message: format!("{} devices", devices.len()),
                    users: devices
                        .iter()
                        .map(|(id, record)| describe(id, record))
                        .collect(),
                },
                Err(error) => AdminResponse::failed(error.to_string()),
            },
            Err(response) => response,
        },
        AdminRequest::DeviceRevoke { jid, device } => match parse_account(&jid) {
            Ok(bare) => match Devices::new(accounts.storage())
                .revoke(&bare, &device)
                .await
            {
                Ok(true) => AdminResponse::done(format!("device {device} of {bare} revoked")),
                Ok(false) => AdminResponse::failed(format!("{bare} has no device {device}")),
                Err(error) => AdminResponse::failed(error.to_string()),
            },
            Err(response) => response,
        },
        AdminRequest::Stats => match router {
            Some(router) => AdminResponse::done(format!("{} sessions", router.sessions.count())),
            None => AdminResponse::failed("the server is not running"),
        },
    }
}

/// One line per device: its id, what it runs, and when it last logged in.
fn describe(id: &str, record: &DeviceRecord) -> String {
    let last = time::OffsetDateTime::from_unix_timestamp(record.last_login)
        .map(rempart_xep::delay::datetime)
        .unwrap_or_default();
    format!(
        "{id}\t{}\t{}\tlast login {last}",
        record.software.as_deref().unwrap_or("unknown software"),
        record.device.as_deref().unwrap_or("unknown device"),
    )
}

/// Closes every live session of an account whose credentials no longer hold, with
/// `<not-authorized/>` (RFC 6120 §4.9.3.12): the client must authenticate again.
fn end_sessions(router: Option<&Router>, account: &BareJid, reason: &str) {
    let Some(router) = router else {
        return;
    };
    for session in router.sessions.of_account(account) {
        session.handle.close(StreamError::with_text(
            StreamErrorCondition::NotAuthorized,
            reason,
        ));
    }
}
