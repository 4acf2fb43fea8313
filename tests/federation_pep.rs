//! XEP-0163 across server-to-server links: a contact on another server who announces
//! `+notify` interests in its caps gets PEP notifications and last items, as OMEMO needs when
//! a device is added; someone without a presence subscription gets nothing.

mod common;

use common::federation::{befriend, pair};
use common::RawClient;
use rempart_xep::caps::ver_string;
use rempart_xep::disco::{DiscoInfo, Identity};

const DEVICES: &str = "urn:xmpp:omemo:2:devices";
const CAPS_NODE: &str = "urn:test:omemo-client";

/// What a client that wants notifications for OMEMO device lists says about itself.
fn client_info() -> DiscoInfo {
    DiscoInfo {
        node: None,
        identities: vec![Identity::new("client", "pc").named("OMEMO Test Client")],
        features: vec![format!("{DEVICES}+notify")],
        forms: vec![],
    }
}

/// The caps element of that client.
fn caps() -> String {
    format!(
        "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='{CAPS_NODE}' ver='{}'/>",
        ver_string(&client_info())
    )
}

fn attr(stanza: &str, name: &str) -> String {
    stanza
        .split(&format!(" {name}='"))
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no {name} in {stanza}"))
        .to_owned()
}

/// Answers a.test's disco#info query about the client's caps, as a client does. (b.test asks
/// its own client too; that question is left unanswered, it does not matter here.)
async fn answer_query_from_a(client: &mut RawClient) {
    let query = client.expect_stanza("from='a.test'").await;
    assert!(
        query.contains("http://jabber.org/protocol/disco#info"),
        "{query}"
    );
    let ver = ver_string(&client_info());
    client
        .send(&format!(
            "<iq type='result' id='{}' to='a.test'><query xmlns='http://jabber.org/protocol/disco#info' node='{CAPS_NODE}#{ver}'><identity category='client' type='pc' name='OMEMO Test Client'/><feature var='{DEVICES}+notify'/></query></iq>",
            attr(&query, "id")
        ))
        .await;
}

/// An open node of alice's that anyone may subscribe to: its notifications serve as a barrier,
/// since alice's notifications leave a.test in publication order over the one link to b.test.
const BARRIER: &str = "urn:test:barrier";

async fn publish_barrier(alice: &mut RawClient, item: &str) {
    let reply = alice
        .iq(item, &format!("<iq type='set' id='{item}'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='{BARRIER}'><item id='{item}'><mark xmlns='urn:test'/></item></publish><publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#access_model'><value>open</value></field></x></publish-options></pubsub></iq>"))
        .await;
    assert!(reply.contains("type='result'"), "{reply}");
}

/// Subscribes `client` (on b.test) to alice's barrier node and waits for its last item.
async fn subscribe_to_barrier(client: &mut RawClient) {
    let jid = client.jid.clone();
    let reply = client
        .iq("sb", &format!("<iq type='set' id='sb' to='alice@a.test'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='{BARRIER}' jid='{jid}'/></pubsub></iq>"))
        .await;
    assert!(reply.contains("subscription='subscribed'"), "{reply}");
    client.expect_stanza("id='b0'").await;
}

async fn publish_devices(alice: &mut RawClient, id: &str, devices: &[u32]) {
    let mut list = String::new();
    for device in devices {
        list.push_str(&format!("<device id='{device}'/>"));
    }
    let reply = alice
        .iq(id, &format!("<iq type='set' id='{id}'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='{DEVICES}'><item id='current'><devices xmlns='urn:xmpp:omemo:2'>{list}</devices></item></publish></pubsub></iq>"))
        .await;
    assert!(reply.contains("type='result'"), "{reply}");
}

#[tokio::test]
async fn device_list_notification_reaches_a_contact_on_the_other_server() {
    let (_a, _b, mut alice, mut bob) = pair().await;
    befriend(&mut alice, &mut bob).await;
    publish_devices(&mut alice, "p1", &[1]).await;
    bob.send(&format!("<presence>{}</presence>", caps())).await;
    answer_query_from_a(&mut bob).await;
    // The last item shows a.test has learnt what bob wants; then comes the new device.
    let last = bob.expect_stanza("<device id='1'/>").await;
    assert!(last.contains("urn:xmpp:delay"), "{last}");
    publish_devices(&mut alice, "p2", &[1, 2]).await;
    let event = bob.expect_stanza("<device id='2'/>").await;
    assert!(event.contains("from='alice@a.test'"), "{event}");
    assert!(event.contains("to='bob@b.test/r'"), "{event}");
    assert!(
        event.contains(&format!("<items node='{DEVICES}'>")),
        "{event}"
    );
    assert!(!event.contains("urn:xmpp:delay"), "a live event: {event}");
}

#[tokio::test]
async fn a_contact_coming_online_on_the_other_server_gets_the_last_device_list() {
    let (_a, b, mut alice, mut bob) = pair().await;
    befriend(&mut alice, &mut bob).await;
    publish_devices(&mut alice, "p1", &[7]).await;
    let mut phone = RawClient::login(&b, "bob", "builder", "phone").await;
    phone
        .send(&format!("<presence>{}</presence>", caps()))
        .await;
    answer_query_from_a(&mut phone).await;
    let last = phone.expect_stanza("<device id='7'/>").await;
    assert!(last.contains("from='alice@a.test'"), "{last}");
    assert!(last.contains("to='bob@b.test/phone'"), "{last}");
    assert!(last.contains("urn:xmpp:delay"), "{last}");
}

#[tokio::test]
async fn a_user_without_a_subscription_on_the_other_server_gets_no_device_list() {
    let (_a, b, mut alice, mut bob) = pair().await;
    b.add_user("carol@b.test", "secret").await;
    befriend(&mut alice, &mut bob).await;
    publish_devices(&mut alice, "p1", &[1]).await;
    // Bob's caps get verified and cached on a.test: carol's identical caps need no question.
    bob.send(&format!("<presence>{}</presence>", caps())).await;
    answer_query_from_a(&mut bob).await;
    bob.expect_stanza("<device id='1'/>").await;
    publish_barrier(&mut alice, "b0").await;
    let mut carol = RawClient::login(&b, "carol", "secret", "r").await;
    subscribe_to_barrier(&mut carol).await;
    carol
        .send(&format!(
            "<presence to='alice@a.test'>{}</presence>",
            caps()
        ))
        .await;
    // a.test has run its presence hooks for carol: she is no contact, so no interest of
    // hers is tracked and no last item is on its way.
    alice.expect_stanza("from='carol@b.test/r'").await;
    publish_devices(&mut alice, "p2", &[1, 2]).await;
    bob.expect_stanza("<device id='2'/>").await;
    // Published after the device list: once it is here, the device list's notifications
    // have all left a.test.
    publish_barrier(&mut alice, "b1").await;
    carol.expect_stanza("id='b1'").await;
    assert!(
        !carol.unread().contains(DEVICES),
        "carol may not read alice's presence-access node: {}",
        carol.unread()
    );
}

#[tokio::test]
async fn a_contact_whose_subscription_was_revoked_gets_no_more_device_lists() {
    let (_a, _b, mut alice, mut bob) = pair().await;
    befriend(&mut alice, &mut bob).await;
    publish_devices(&mut alice, "p1", &[1]).await;
    bob.send(&format!("<presence>{}</presence>", caps())).await;
    answer_query_from_a(&mut bob).await;
    bob.expect_stanza("<device id='1'/>").await;
    publish_barrier(&mut alice, "b0").await;
    subscribe_to_barrier(&mut bob).await;
    alice
        .send("<presence to='bob@b.test' type='unsubscribed'/>")
        .await;
    bob.expect_stanza("type='unsubscribed'").await;
    publish_devices(&mut alice, "p2", &[1, 2]).await;
    // Published after the device list: once it is here, the device list's notifications
    // have all left a.test.
    publish_barrier(&mut alice, "b1").await;
    bob.expect_stanza("id='b1'").await;
    assert!(
        !bob.unread().contains("<device id='2'/>"),
        "bob no longer sees alice's presence: {}",
        bob.unread()
    );
}
