//! Sessions that announce `+notify` interests (XEP-0115, XEP-0163 §4), as PEP clients do.

use rempart_xep::caps::ver_string;
use rempart_xep::disco::{DiscoInfo, Identity};

use super::{RawClient, TestServer};

/// Logs in with presence carrying caps that ask for `+notify` on `nodes`, answering the
/// server's disco#info query the way a client does.
pub async fn login_with_interest(
    server: &TestServer,
    user: &str,
    password: &str,
    resource: &str,
    nodes: &[&str],
) -> RawClient {
    let mut client = RawClient::login(server, user, password, resource).await;
    client.request_roster().await;
    let info = DiscoInfo {
        node: None,
        identities: vec![Identity::new("client", "pc").named(&format!("{user}/{resource}"))],
        features: nodes.iter().map(|n| format!("{n}+notify")).collect(),
        forms: vec![],
    };
    let ver = ver_string(&info);
    client
        .send(&format!("<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='urn:test' ver='{ver}'/></presence>"))
        .await;
    let query = client
        .expect_stanza("http://jabber.org/protocol/disco#info")
        .await;
    let id = query
        .split("id='")
        .nth(1)
        .and_then(|v| v.split('\'').next())
        .expect("query id")
        .to_owned();
    let mut features = String::new();
    for node in nodes {
        features.push_str(&format!("<feature var='{node}+notify'/>"));
    }
    client
        .send(&format!("<iq type='result' id='{id}' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='urn:test#{ver}'><identity category='client' type='pc' name='{user}/{resource}'/>{features}</query></iq>"))
        .await;
    client
}
