//! XEP-0215 external service discovery: STUN/TURN servers from the configuration, with
//! TURN credentials a TURN server checks against its shared secret.

mod common;

use base64::Engine as _;
use common::{RawClient, TestServer};
use hmac::{Hmac, Mac};
use sha1::Sha1;

const EXTDISCO: &str = "urn:xmpp:extdisco:2";

const SERVICES: &str = r#"
[modules.external_services]
credentials_ttl_secs = 3600
[[modules.external_services.services]]
type = "stun"
host = "stun.localhost"
port = 3478
transport = "udp"
[[modules.external_services.services]]
type = "turn"
host = "turn.localhost"
port = 3478
transport = "udp"
secret = "shared-with-coturn"
"#;

async fn alice() -> (TestServer, RawClient) {
    let server = TestServer::start_with(SERVICES).await;
    server.add_user("alice@localhost", "wonderland").await;
    let client = RawClient::login(&server, "alice", "wonderland", "phone").await;
    (server, client)
}

/// The value of attribute `name` in the first element of `xml` that has it.
fn attribute<'a>(xml: &'a str, name: &str) -> &'a str {
    xml.split(&format!(" {name}='"))
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no {name} in {xml}"))
}

/// What coturn computes from the user name to check the password.
fn expected_password(username: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(b"shared-with-coturn").expect("key");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn the_server_advertises_external_service_discovery() {
    let (_server, mut client) = alice().await;
    let info = client
        .iq("d", "<iq type='get' id='d' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    assert!(info.contains(&format!("var='{EXTDISCO}'")), "{info}");
}

#[tokio::test]
async fn all_services_are_listed_and_turn_carries_time_limited_credentials() {
    let (_server, mut client) = alice().await;
    let reply = client
        .iq(
            "s1",
            &format!("<iq type='get' id='s1' to='localhost'><services xmlns='{EXTDISCO}'/></iq>"),
        )
        .await;
    assert!(reply.contains("type='result'"), "{reply}");
    let stun = reply
        .split("<service ")
        .find(|s| s.contains("type='stun'"))
        .expect("the STUN service");
    assert!(stun.contains("host='stun.localhost'"), "{stun}");
    assert!(stun.contains("port='3478'"), "{stun}");
    assert!(!stun.contains("username="), "{stun}");
    let turn = reply
        .split("<service ")
        .find(|s| s.contains("type='turn'"))
        .expect("the TURN service");
    let username = attribute(turn, "username");
    let (expiry, user) = username.split_once(':').expect("expiry:jid");
    assert_eq!(user, "alice@localhost");
    let expiry: u64 = expiry.parse().expect("unix time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(expiry > now, "credentials already expired: {expiry}");
    assert_eq!(attribute(turn, "password"), expected_password(username));
    assert!(turn.contains("restricted='true'"), "{turn}");
    assert!(attribute(turn, "expires").ends_with('Z'), "{turn}");
}

#[tokio::test]
async fn services_of_one_type_are_listed_alone() {
    let (_server, mut client) = alice().await;
    let reply = client
        .iq(
            "s2",
            &format!("<iq type='get' id='s2' to='localhost'><services xmlns='{EXTDISCO}' type='stun'/></iq>"),
        )
        .await;
    assert!(reply.contains("host='stun.localhost'"), "{reply}");
    assert!(!reply.contains("turn.localhost"), "{reply}");
}

#[tokio::test]
async fn credentials_are_given_for_a_turn_service_and_refused_for_an_unknown_one() {
    let (_server, mut client) = alice().await;
    let reply = client
        .iq(
            "c1",
            &format!("<iq type='get' id='c1' to='localhost'><credentials xmlns='{EXTDISCO}'><service host='turn.localhost' type='turn'/></credentials></iq>"),
        )
        .await;
    assert!(reply.contains("<credentials"), "{reply}");
    let username = attribute(&reply, "username");
    assert_eq!(attribute(&reply, "password"), expected_password(username));
    let unknown = client
        .iq(
            "c2",
            &format!("<iq type='get' id='c2' to='localhost'><credentials xmlns='{EXTDISCO}'><service host='stun.localhost' type='stun'/></credentials></iq>"),
        )
        .await;
    assert!(unknown.contains("<item-not-found"), "{unknown}");
}
