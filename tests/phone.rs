//! A day in the life of a phone, end to end on the wire: it logs in with SASL2 and Bind 2 with
//! stream management inline, registers for push, loses its network while a contact writes to
//! it, is woken by a push notification, resumes and gets each message exactly once; the
//! laptop beside it gets carbons; a tablet added later syncs the conversation from the archive.

mod common;

use common::{attribute, text_of, RawClient, TestServer};

const SM: &str = "urn:xmpp:sm:3";
const AGENT: &str =
    "<user-agent id='0b7e9a3c-5d1f-4c7a-9e2b-6f1d2c3b4a59'><software>Phone</software></user-agent>";

async fn chat(from: &mut RawClient, to: &str, id: &str) {
    from.send(&format!(
        "<message to='{to}' type='chat' id='{id}'><body>{id}</body></message>"
    ))
    .await;
}

#[tokio::test]
async fn a_phone_loses_its_network_is_woken_resumes_and_every_device_stays_in_step() {
    let server = TestServer::start().await;
    for (user, password) in [
        ("alice", "wonderland"),
        ("bob", "builder"),
        ("pusher", "app"),
    ] {
        server
            .add_user(&format!("{user}@localhost"), password)
            .await;
    }
    let mut app_server = RawClient::login(&server, "pusher", "app", "app").await;
    app_server.available().await;

    // The phone: one round trip from TLS to a bound, resumable session.
    let (mut phone, _) = RawClient::secured(&server).await;
    let inline = format!(
        "{AGENT}<bind xmlns='urn:xmpp:bind:0'><tag>Phone</tag><enable xmlns='{SM}' resume='true'/></bind>"
    );
    let success = phone
        .authenticate_sasl2("alice", "wonderland", &inline)
        .await;
    let previd = attribute(success.split("<enabled").nth(1).expect("enabled"), "id");
    let phone_jid = text_of(&success, "authorization-identifier");
    phone.send("<presence/>").await;
    phone.expect_stanza(&format!("from='{phone_jid}'")).await;
    let enabled = phone
        .iq(
            "push",
            "<iq type='set' id='push'><enable xmlns='urn:xmpp:push:0' jid='pusher@localhost/app' node='alice-phone'/></iq>",
        )
        .await;
    assert!(enabled.contains("type='result'"), "{enabled}");

    // The laptop: carbons on.
    let mut laptop = RawClient::login(&server, "alice", "wonderland", "laptop").await;
    laptop.available().await;
    let carbons = laptop
        .iq(
            "c1",
            "<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>",
        )
        .await;
    assert!(carbons.contains("type='result'"), "{carbons}");

    let mut bob = RawClient::login(&server, "bob", "builder", "desk").await;
    bob.available().await;
    chat(&mut bob, &phone_jid, "hello").await;
    phone.expect_stanza("id='hello'").await;
    let copy = laptop
        .expect_stanza("<received xmlns='urn:xmpp:carbons:2'>")
        .await;
    assert!(copy.contains("id='hello'"), "{copy}");

    // The phone's network goes away without a word; Bob writes on.
    drop(phone);
    chat(&mut bob, &phone_jid, "while-away").await;
    let notification = app_server.expect_stanza("urn:xmpp:push:0").await;
    assert!(
        notification.contains("node='alice-phone'"),
        "{notification}"
    );
    assert!(notification.contains("message-count"), "{notification}");
    assert!(
        !notification.contains("while-away</value>"),
        "no body by default: {notification}"
    );
    let id = attribute(&notification, "id");
    app_server
        .send(&format!(
            "<iq type='result' id='{id}' to='alice@localhost'/>"
        ))
        .await;
    let copy = laptop.expect_stanza("id='while-away'").await;
    assert!(copy.contains("<received"), "{copy}");

    // Woken, the phone resumes in one round trip and gets what it missed, once. It had
    // handled four stanzas: its own presence, the push result, the laptop's presence, "hello".
    let (mut phone, _) = RawClient::secured(&server).await;
    let resume = format!("{AGENT}<resume xmlns='{SM}' previd='{previd}' h='4'/>");
    let success = phone
        .authenticate_sasl2("alice", "wonderland", &resume)
        .await;
    assert!(success.contains("<resumed"), "{success}");
    let missed = phone.expect_stanza("<body>").await;
    assert!(missed.contains("id='while-away'"), "{missed}");
    phone.send(&format!("<a xmlns='{SM}' h='5'/>")).await;
    phone
        .iq(
            "p1",
            "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await;
    assert!(!phone.unread().contains("<body>"), "{}", phone.unread());

    // A tablet added today reads the conversation from the archive.
    let mut tablet = RawClient::login(&server, "alice", "wonderland", "tablet").await;
    tablet
        .send("<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:2' queryid='sync'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field><field var='with'><value>bob@localhost</value></field></x></query></iq>")
        .await;
    let fin = tablet.expect_stanza("id='q1'").await;
    assert!(fin.contains("<fin"), "{fin}");
    let history = tablet.unread().to_owned();
    let hello = history.find("<body>hello</body>").expect("hello archived");
    let away = history
        .find("<body>while-away</body>")
        .expect("while-away archived");
    assert!(hello < away, "{history}");
    assert_eq!(
        history.matches("<body>while-away</body>").count(),
        1,
        "{history}"
    );
}
