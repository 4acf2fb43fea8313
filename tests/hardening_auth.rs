//! Authentication and negotiation hardening as a client sees it: SASL throttling that parallel
//! connections cannot multiply and strangers cannot turn into a lock-out, unknown users that
//! look like real ones, password changes that end live sessions, and negotiation that never
//! holds a connection slot for a client that stops reading or talking.

mod common;

use std::net::IpAddr;

use base64::Engine as _;
use common::{RawClient, TestServer, GUARD};
use rempart::admin::{execute, AdminRequest};

const OTHER_ADDRESS: &str = "127.0.0.2";

fn other_address() -> IpAddr {
    OTHER_ADDRESS.parse().expect("address")
}

/// The `<auth/>` of SCRAM-SHA-256 with a client-first-message for `user`.
fn scram_auth(user: &str) -> String {
    let first = base64::engine::general_purpose::STANDARD.encode(format!("n,,n={user},r=abcdef"));
    format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{first}</auth>"
    )
}

/// The server's first answer to `<auth/>`: a challenge or a failure with its condition.
async fn first_answer(client: &mut RawClient) -> String {
    client.expect("</").await
}

/// The fields of a SCRAM server-first-message in a `<challenge/>`.
fn server_first(answer: &str) -> (String, String) {
    let data = answer
        .split_once('>')
        .map(|(_, rest)| rest.trim_end_matches("</"))
        .expect("challenge data");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("base64 challenge");
    let text = String::from_utf8(decoded).expect("utf-8 challenge");
    let field = |name: &str| {
        text.split(',')
            .find_map(|f| f.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_owned()
    };
    (field("s="), field("i="))
}

/// A plaintext-listener stream, opened, from the default or another loopback address.
async fn opened(server: &TestServer, source: Option<IpAddr>) -> RawClient {
    let mut client = match source {
        Some(source) => RawClient::connect_from(server.plaintext, source).await,
        None => RawClient::connect(server.plaintext).await,
    };
    client.open("localhost").await;
    client
}

/// One SCRAM-SHA-256 login attempt on a fresh connection; the server's final element.
async fn attempt(server: &TestServer, source: Option<IpAddr>, user: &str, pw: &str) -> String {
    let mut client = opened(server, source).await;
    client.authenticate("SCRAM-SHA-256", user, pw).await
}

/// Starts `count` exchanges for `user` at once and counts (challenges, refusals).
async fn parallel_starts(server: &TestServer, count: usize, user: &str) -> (usize, usize) {
    let mut clients = Vec::new();
    for _ in 0..count {
        clients.push(opened(server, None).await);
    }
    for client in &mut clients {
        client.send(&scram_auth(user)).await;
    }
    let (mut challenges, mut refusals) = (0, 0);
    for client in &mut clients {
        let answer = first_answer(client).await;
        if answer.contains("<challenge") {
            challenges += 1;
        } else {
            assert!(answer.contains("<temporary-auth-failure/>"), "{answer}");
            refusals += 1;
        }
    }
    (challenges, refusals)
}

#[tokio::test]
async fn parallel_connections_from_one_address_share_its_budget() {
    let server = TestServer::start_with(
        "[auth]\nmax_failures_per_address = 3\nfailures_before_delay = 100\n",
    )
    .await;
    server.add_user("alice@localhost", "wonderland").await;
    assert_eq!(parallel_starts(&server, 8, "alice").await, (3, 5));
}

#[tokio::test]
async fn parallel_guesses_on_one_account_share_its_budget() {
    let server = TestServer::start_with("[auth]\nfailures_before_delay = 2\n").await;
    server.add_user("alice@localhost", "wonderland").await;
    assert_eq!(parallel_starts(&server, 5, "alice").await, (2, 3));
}

#[tokio::test]
async fn a_delayed_account_still_logs_in_from_another_address() {
    let server = TestServer::start_with(
        "[auth]\nfailures_before_delay = 1\nfailure_delay_secs = 3600\nmax_failure_delay_secs = 3600\n",
    )
    .await;
    server.add_user("alice@localhost", "wonderland").await;
    let stranger = Some(other_address());
    let guess = attempt(&server, stranger, "alice", "guess").await;
    assert!(guess.contains("<not-authorized/>"), "{guess}");
    let delayed = attempt(&server, stranger, "alice", "wonderland").await;
    assert!(delayed.contains("<temporary-auth-failure/>"), "{delayed}");
    let owner = attempt(&server, None, "alice", "wonderland").await;
    assert!(owner.starts_with("<success"), "{owner}");
}

#[tokio::test]
async fn an_address_over_its_budget_is_refused_for_every_account() {
    let server = TestServer::start_with(
        "[auth]\nmax_failures_per_address = 2\nfailures_before_delay = 100\n",
    )
    .await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let stranger = Some(other_address());
    for user in ["alice", "bob"] {
        let guess = attempt(&server, stranger, user, "guess").await;
        assert!(guess.contains("<not-authorized/>"), "{guess}");
    }
    let refused = attempt(&server, stranger, "bob", "builder").await;
    assert!(refused.contains("<temporary-auth-failure/>"), "{refused}");
    let elsewhere = attempt(&server, None, "bob", "builder").await;
    assert!(elsewhere.starts_with("<success"), "{elsewhere}");
}

#[tokio::test]
async fn successful_logins_do_not_use_up_the_address_budget() {
    let server = TestServer::start_with(
        "[auth]\nmax_failures_per_address = 1\nfailures_before_delay = 1\nfailure_delay_secs = 3600\nmax_failure_delay_secs = 3600\n",
    )
    .await;
    server.add_user("alice@localhost", "wonderland").await;
    for _ in 0..4 {
        let outcome = attempt(&server, None, "alice", "wonderland").await;
        assert!(outcome.starts_with("<success"), "{outcome}");
    }
}

#[tokio::test]
async fn unknown_user_gets_a_challenge_shaped_like_a_real_ones() {
    let server = TestServer::start_with("[auth]\nscram_iterations = 5000\n").await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut salts = Vec::new();
    for user in ["nobody", "nobody", "alice"] {
        let mut client = opened(&server, None).await;
        client.send(&scram_auth(user)).await;
        let answer = first_answer(&mut client).await;
        assert!(answer.contains("<challenge"), "{answer}");
        let (salt, iterations) = server_first(&answer);
        assert_eq!(iterations, "5000", "{user}");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&salt)
            .expect("base64 salt");
        assert_eq!(raw.len(), 16, "{user}");
        salts.push(salt);
    }
    assert_eq!(salts[0], salts[1], "the same name gets the same salt");
    assert_ne!(salts[0], salts[2]);
    let outcome = attempt(&server, None, "nobody", "anything").await;
    assert!(outcome.contains("<not-authorized/>"), "{outcome}");
}

#[tokio::test]
async fn unknown_users_salt_survives_a_restart() {
    async fn salt_of_nobody(server: &TestServer) -> String {
        let mut client = opened(server, None).await;
        client.send(&scram_auth("nobody")).await;
        server_first(&first_answer(&mut client).await).0
    }
    let server = TestServer::start_persistent(tempfile::tempdir().expect("tempdir")).await;
    let before = salt_of_nobody(&server).await;
    let dir = server.stop_keeping_data().await;
    let server = TestServer::start_persistent(dir).await;
    assert_eq!(salt_of_nobody(&server).await, before);
}

#[tokio::test]
async fn password_change_ends_live_sessions_and_only_the_new_password_works() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut live = RawClient::login(&server, "alice", "wonderland", "phone").await;
    let changed = execute(
        AdminRequest::UserPasswd {
            jid: "alice@localhost".into(),
            password: "looking-glass".into(),
        },
        &server.router.accounts,
        Some(&server.router),
    )
    .await;
    assert!(changed.ok, "{}", changed.message);
    let closed = live.read_to_close().await;
    assert!(
        closed.contains("<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"),
        "{closed}"
    );
    let old = attempt(&server, None, "alice", "wonderland").await;
    assert!(old.contains("<not-authorized/>"), "{old}");
    let new = attempt(&server, None, "alice", "looking-glass").await;
    assert!(new.starts_with("<success"), "{new}");
}

#[tokio::test]
async fn silent_connection_gets_connection_timeout() {
    let server = TestServer::start_with("[limits]\nnegotiation_timeout_secs = 1\n").await;
    let mut client = RawClient::connect(server.starttls).await;
    let reply = client.read_to_close().await;
    assert!(reply.contains("<stream:stream"), "{reply}");
    assert!(reply.contains("<connection-timeout"), "{reply}");
}

#[tokio::test]
async fn client_that_stops_mid_negotiation_gets_connection_timeout() {
    let server = TestServer::start_with("[limits]\nnegotiation_timeout_secs = 1\n").await;
    let mut client = RawClient::connect(server.starttls).await;
    let features = client.open("localhost").await;
    assert!(features.contains("<starttls"), "{features}");
    let reply = client.read_to_close().await;
    assert!(reply.contains("<connection-timeout"), "{reply}");
    assert!(reply.ends_with("</stream:stream>"), "{reply}");
}

#[tokio::test]
async fn client_that_never_reads_is_disconnected_during_negotiation() {
    // The negotiation deadline is far away: only the write timeout can free the slot.
    let server = TestServer::start_with(
        "[limits]\nnegotiation_timeout_secs = 3600\nwrite_timeout_secs = 1\n",
    )
    .await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut client = RawClient::connect_with(server.plaintext, None, Some(4096)).await;
    client.open("localhost").await;
    let outcome = client
        .authenticate("SCRAM-SHA-256", "alice", "wonderland")
        .await;
    assert!(outcome.starts_with("<success"), "{outcome}");
    client.open("localhost").await;
    // Each refused bind echoes its 64 KiB id; the client reads none of the answers.
    let request = format!(
        "<iq type='set' id='{}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{}</resource></bind></iq>",
        "i".repeat(64 * 1024),
        "r".repeat(1100)
    );
    let closed = tokio::time::timeout(GUARD, async {
        while client.try_send(request.as_bytes()).await.is_ok() {}
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server still holds the connection of a client that does not read"
    );
}

#[tokio::test]
async fn a_stream_is_closed_with_policy_violation_after_its_failures() {
    let server = TestServer::start_with(
        "[auth]\nmax_failures_per_stream = 2\nfailures_before_delay = 100\n",
    )
    .await;
    server.add_user("alice@localhost", "wonderland").await;
    let mut client = opened(&server, None).await;
    let first = client.authenticate("SCRAM-SHA-256", "alice", "guess").await;
    assert!(first.contains("<not-authorized/>"), "{first}");
    let second = client.authenticate("SCRAM-SHA-256", "alice", "guess").await;
    assert!(second.contains("<not-authorized/>"), "{second}");
    let closed = client.read_to_close().await;
    assert!(closed.contains("<policy-violation"), "{closed}");
    assert!(closed.ends_with("</stream:stream>"), "{closed}");
}

#[tokio::test]
async fn a_client_final_message_with_a_truncated_attribute_gets_malformed_request() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "alice-password").await;
    for client_final in ["c=biws,r=abcdef,,p=AAAA", "c=biws,r=abcdef,x"] {
        let mut client = opened(&server, None).await;
        client.send(&scram_auth("alice")).await;
        let answer = first_answer(&mut client).await;
        assert!(answer.contains("<challenge"), "{answer}");
        let response = base64::engine::general_purpose::STANDARD.encode(client_final);
        client
            .send(&format!(
                "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{response}</response>"
            ))
            .await;
        let failure = client.expect("</failure>").await;
        assert!(failure.contains("<malformed-request/>"), "{failure}");
    }
    server.stop().await;
}
