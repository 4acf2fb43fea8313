//! The server side of SASL as c2s negotiation runs it (username claim, account lookup, rsasl
//! with our credential callback), fed arbitrary client messages: it must answer with a
//! challenge, a failure or a success, never panic, and never succeed without the password.
//!
//! Input: one selector byte, then client messages separated by 0xFF (a byte UTF-8 never uses).
//! Selector bits 0-1: SCRAM-SHA-1, SCRAM-SHA-256, SCRAM-SHA-512, PLAIN; bit 2: the claimed
//! account exists; bit 3: play an honest SCRAM client around the fuzzed nonce, extension and
//! password instead of sending the messages as they are.

#![no_main]

use std::sync::LazyLock;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use digest::core_api::BlockSizeUser;
use digest::{Digest, FixedOutputReset};
use hmac::{Mac, SimpleHmac};
use jid::BareJid;
use libfuzzer_sys::fuzz_target;
use rempart::accounts::{Account, LoginAccount};
use rempart::sasl::channel_binding::ChannelBindings;
use rempart::sasl::credentials::{derive_credentials, prepare_password};
use rempart::sasl::{claimed_username, Exchange, SaslOffer, Step};
use rsasl::mechanisms::scram::tools::hash_password;

const MECHANISMS: [&str; 4] = ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"];
const HOST: &str = "example.org";
const USER: &str = "juliet";
const PASSWORD: &str = "pencil";
/// Rounds of one exchange; SCRAM needs two, more only loops on garbage.
const MAX_ROUNDS: usize = 4;

/// juliet's stored credentials; one PBKDF2 iteration keeps each run fast.
static ACCOUNT: LazyLock<Account> = LazyLock::new(|| Account {
    credentials: derive_credentials(PASSWORD, 1).expect("valid password"),
    created: 0,
});

fuzz_target!(|input: &[u8]| {
    let Some((&selector, rest)) = input.split_first() else {
        return;
    };
    let mechanism = MECHANISMS[usize::from(selector & 3)];
    let account_exists = selector & 4 != 0;
    let mut messages = rest.split(|&byte| byte == 0xFF);
    if selector & 8 != 0 && mechanism != "PLAIN" {
        honest_client(mechanism, account_exists, &mut messages);
    } else {
        raw_messages(mechanism, account_exists, &mut messages);
    }
});

/// Starts the exchange as c2s negotiation does, from the client's first message.
fn start(mechanism: &str, account_exists: bool, first: &[u8]) -> Option<Exchange> {
    let offer = SaslOffer::new(ChannelBindings::default(), true, true);
    let claim = claimed_username(mechanism, first)?;
    let user = BareJid::new(&format!("{}@{HOST}", claim.username)).ok()?;
    // A name without an account runs against a decoy that must match no password, not even
    // juliet's: the decoy here carries her very credentials.
    let login = LoginAccount {
        account: ACCOUNT.clone(),
        exists: account_exists && user.node().map(|n| n.as_str()) == Some(USER),
    };
    Exchange::start(&offer, mechanism, &claim.username, user.as_str(), login).ok()
}

fn raw_messages<'a>(
    mechanism: &str,
    account_exists: bool,
    messages: &mut impl Iterator<Item = &'a [u8]>,
) {
    let first = messages.next().unwrap_or_default();
    let Some(mut exchange) = start(mechanism, account_exists, first) else {
        return;
    };
    let mut input = first;
    for _ in 0..MAX_ROUNDS {
        match exchange.step(input) {
            Step::Challenge(_) => match messages.next() {
                Some(next) => input = next,
                None => return,
            },
            Step::Success(_) => {
                assert!(account_exists, "success for an account that does not exist");
                assert_eq!(mechanism, "PLAIN", "SCRAM success without a proof");
                assert!(
                    plain_password_is_right(first),
                    "PLAIN success with a wrong password"
                );
                return;
            }
            Step::Failure(_) => return,
        }
    }
}

fn plain_password_is_right(message: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(message) else {
        return false;
    };
    let fields: Vec<&str> = text.split('\0').collect();
    fields.len() == 3 && prepare_password(fields[2]).as_deref() == Ok(PASSWORD)
}

/// A correct SCRAM client (RFC 5802) whose nonce, optional extension and password come from
/// the fuzzer: the server must accept exactly the right password, and only for juliet.
fn honest_client<'a>(
    mechanism: &str,
    account_exists: bool,
    messages: &mut impl Iterator<Item = &'a [u8]>,
) {
    // The raw path covers malformed first messages; here the nonce is always a valid one.
    let mut nonce: String = messages
        .next()
        .unwrap_or_default()
        .iter()
        .filter(|&&b| (0x21..=0x7e).contains(&b) && b != b',')
        .map(|&b| char::from(b))
        .collect();
    if nonce.is_empty() {
        nonce.push('x');
    }
    let extension = String::from_utf8_lossy(messages.next().unwrap_or_default()).into_owned();
    let password = match messages.next() {
        Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        None => PASSWORD.to_owned(),
    };
    let first_bare = format!("n={USER},r={nonce}");
    let first = format!("n,,{first_bare}");
    let Some(mut exchange) = start(mechanism, account_exists, first.as_bytes()) else {
        return;
    };
    let Step::Challenge(server_first) = exchange.step(first.as_bytes()) else {
        return;
    };
    let server_first = String::from_utf8(server_first).expect("the server writes UTF-8");
    let (server_nonce, salt, iterations) = read_server_first(&server_first);
    assert!(
        server_nonce.starts_with(&nonce),
        "the server dropped the client nonce"
    );
    let mut without_proof = format!("c=biws,r={server_nonce}");
    if !extension.is_empty() {
        without_proof.push(',');
        without_proof.push_str(&extension);
    }
    let auth_message = format!("{first_bare},{server_first},{without_proof}");
    let (proof, server_signature) = match mechanism {
        "SCRAM-SHA-1" => proof::<sha1::Sha1>(&password, &salt, iterations, &auth_message),
        "SCRAM-SHA-256" => proof::<sha2::Sha256>(&password, &salt, iterations, &auth_message),
        _ => proof::<sha2::Sha512>(&password, &salt, iterations, &auth_message),
    };
    let last = format!("{without_proof},p={}", BASE64.encode(proof));
    let honest = account_exists && prepare_password(&password).as_deref() == Ok(PASSWORD);
    match exchange.step(last.as_bytes()) {
        Step::Success(server_final) => {
            assert!(
                honest,
                "SCRAM success without the right password for an existing account"
            );
            let expected = format!("v={}", BASE64.encode(server_signature));
            assert_eq!(String::from_utf8_lossy(&server_final), expected);
        }
        other => assert!(
            !(honest && extension.is_empty()),
            "the right password was refused: {other:?}, nonce {nonce:?}"
        ),
    }
}

fn read_server_first(message: &str) -> (String, Vec<u8>, u32) {
    let field = |name: &str| {
        message
            .split(',')
            .find_map(|part| part.strip_prefix(name))
            .unwrap_or_else(|| panic!("server-first-message {message:?} lacks {name}"))
    };
    let salt = BASE64.decode(field("s=")).expect("the salt is base64");
    let iterations = field("i=")
        .parse()
        .expect("the iteration count is a number");
    (field("r=").to_owned(), salt, iterations)
}

/// ClientProof and ServerSignature of RFC 5802 §3.
fn proof<D>(password: &str, salt: &[u8], iterations: u32, auth_message: &str) -> (Vec<u8>, Vec<u8>)
where
    D: Digest + BlockSizeUser + Clone + Sync + FixedOutputReset,
{
    let prepared = prepare_password(password).unwrap_or_else(|_| password.to_owned());
    let mut salted = digest::Output::<D>::default();
    hash_password::<D>(prepared.as_bytes(), iterations, salt, &mut salted);
    let hmac = |key: &[u8], data: &[u8]| {
        let mut mac = SimpleHmac::<D>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    };
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = D::digest(&client_key);
    let client_signature = hmac(&stored_key, auth_message.as_bytes());
    let proof = client_key
        .iter()
        .zip(&client_signature)
        .map(|(key, signature)| key ^ signature)
        .collect();
    let server_key = hmac(&salted, b"Server Key");
    (proof, hmac(&server_key, auth_message.as_bytes()))
}
