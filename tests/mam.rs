//! XEP-0313 message archives on the wire: what is archived, the stanza-id on delivery, queries
//! with every filter and paging direction, preferences, access, persistence, and the offline
//! copy of an archived message.

mod common;

use common::{RawClient, TestServer};
use rempart::storage::ArchiveStore;
use time::format_description::well_known::Rfc3339;

const MAM: &str = "urn:xmpp:mam:2";

/// One result of a query, as received.
#[derive(Debug)]
struct Found {
    /// The archive id.
    id: String,
    /// The `<result/>` element's text.
    xml: String,
}

impl Found {
    /// The body of the forwarded message.
    fn body(&self) -> &str {
        between(&self.xml, "<body>", "</body>").unwrap_or("")
    }
}

/// The answer to a query: its results in the order received, and the IQ with the `<fin/>`.
struct Answer {
    results: Vec<Found>,
    iq: String,
}

impl Answer {
    fn bodies(&self) -> Vec<&str> {
        self.results.iter().map(Found::body).collect()
    }

    fn complete(&self) -> bool {
        self.iq.contains("complete='true'")
    }

    fn first(&self) -> &str {
        between(&self.iq, "<first", "</first>")
            .and_then(|first| first.rsplit('>').next())
            .expect("a first id")
    }

    fn last(&self) -> &str {
        between(&self.iq, "<last>", "</last>").expect("a last id")
    }
}

/// The text between the first `start` and the next `end`.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = from + text[from..].find(end)?;
    Some(&text[from..to])
}

/// The value of attribute `name` in the first tag of `text` that opens with `tag`.
fn attribute<'a>(text: &'a str, tag: &str, name: &str) -> Option<&'a str> {
    let at = text.find(tag)?;
    let head = &text[at..at + text[at..].find('>')?];
    between(head, &format!(" {name}='"), "'")
}

/// A form with the given fields (a field given twice has two values).
fn form(fields: &[(&str, &str)]) -> String {
    let mut xml = format!(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>{MAM}</value></field>"
    );
    for (var, value) in fields {
        xml.push_str(&format!(
            "<field var='{var}'><value>{value}</value></field>"
        ));
    }
    xml.push_str("</x>");
    xml
}

/// An RSM `<set/>` with `inner`.
fn rsm(inner: &str) -> String {
    format!("<set xmlns='http://jabber.org/protocol/rsm'>{inner}</set>")
}

/// Queries the client's own archive with `inner` in the `<query/>`, queryid `f<id>`.
async fn query(client: &mut RawClient, id: &str, inner: &str) -> Answer {
    let iq = client
        .iq(
            id,
            &format!(
                "<iq type='set' id='{id}'><query xmlns='{MAM}' queryid='f{id}'>{inner}</query></iq>"
            ),
        )
        .await;
    // Results are sent before the IQ result: they are all in the buffer now.
    let marker = format!("<result xmlns='{MAM}' queryid='f{id}'");
    let mut results = Vec::new();
    let mut rest = client.unread();
    while let Some(at) = rest.find(&marker) {
        let xml = between(&rest[at..], "", "</result>").expect("a whole result");
        results.push(Found {
            id: attribute(xml, "<result", "id")
                .expect("result id")
                .to_owned(),
            xml: xml.to_owned(),
        });
        rest = &rest[at + xml.len()..];
    }
    Answer { results, iq }
}

/// `alice`, `bob` and `carol`, the first two online and available.
async fn trio() -> (TestServer, RawClient, RawClient) {
    trio_with("").await
}

async fn trio_with(config: &str) -> (TestServer, RawClient, RawClient) {
    let server = TestServer::start_with(config).await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    server.add_user("carol@localhost", "singer").await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "phone").await;
    alice.available().await;
    let mut bob = RawClient::login(&server, "bob", "builder", "desk").await;
    bob.available().await;
    (server, alice, bob)
}

/// `from` sends a chat message `id` with `body` to `to`, which receives it; returns the
/// message as received.
async fn chat(from: &mut RawClient, to: &mut RawClient, id: &str, body: &str) -> String {
    let bare = to.jid.split('/').next().expect("bare").to_owned();
    from.send(&format!(
        "<message to='{bare}' type='chat' id='{id}'><body>{body}</body></message>"
    ))
    .await;
    to.expect_stanza(&format!("id='{id}'")).await
}

/// Bob sends alice `count` messages `m1`…; returns their archive ids in alice's archive.
async fn bob_sends(bob: &mut RawClient, alice: &mut RawClient, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 1..=count {
        let received = chat(bob, alice, &format!("m{n}"), &format!("message {n}")).await;
        ids.push(stanza_id(&received, "alice@localhost"));
    }
    ids
}

/// The stanza-id `by` stamped on a received message.
fn stanza_id(message: &str, by: &str) -> String {
    let mut rest = message;
    while let Some(at) = rest.find("<stanza-id") {
        let tag = &rest[at..];
        if attribute(tag, "<stanza-id", "by") == Some(by) {
            return attribute(tag, "<stanza-id", "id")
                .expect("stanza-id id")
                .to_owned();
        }
        rest = &tag[1..];
    }
    panic!("no stanza-id by {by} in {message}");
}

async fn ping(client: &mut RawClient, id: &str) {
    client
        .iq(
            id,
            &format!("<iq type='get' id='{id}'><ping xmlns='urn:xmpp:ping'/></iq>"),
        )
        .await;
}

/// The time an archive id stands for, with its microseconds, as a form value.
fn time_of(id: &str) -> String {
    let id: u64 = id.parse().expect("numeric id");
    ArchiveStore::<String>::time_of_id(id)
        .expect("a time")
        .format(&Rfc3339)
        .expect("formatted")
}

#[tokio::test]
async fn account_disco_advertises_the_archive_and_stanza_ids() {
    let (_server, mut alice, _bob) = trio().await;
    let info = alice
        .iq(
            "d1",
            "<iq type='get' id='d1' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        )
        .await;
    for feature in [MAM, "urn:xmpp:mam:2#extended", "urn:xmpp:sid:0"] {
        assert!(info.contains(&format!("var='{feature}'")), "{info}");
    }
}

#[tokio::test]
async fn a_received_message_carries_the_id_it_is_archived_under() {
    let (_server, mut alice, mut bob) = trio().await;
    let received = chat(&mut bob, &mut alice, "m1", "hello").await;
    let id = stanza_id(&received, "alice@localhost");
    let answer = query(&mut alice, "q1", "").await;
    assert_eq!(answer.results.len(), 1, "{}", answer.iq);
    assert_eq!(answer.results[0].id, id);
    assert!(answer.results[0]
        .xml
        .contains("<delay xmlns='urn:xmpp:delay' stamp='"));
    assert!(answer.results[0].xml.contains("from='bob@localhost/desk'"));
    assert!(answer.complete(), "{}", answer.iq);
}

#[tokio::test]
async fn messages_are_archived_for_sender_and_recipient() {
    let (_server, mut alice, mut bob) = trio().await;
    chat(&mut alice, &mut bob, "a1", "from alice").await;
    chat(&mut bob, &mut alice, "b1", "from bob").await;
    let answer = query(&mut alice, "q1", "").await;
    assert_eq!(answer.bodies(), ["from alice", "from bob"]);
    let answer = query(&mut bob, "q1", "").await;
    assert_eq!(answer.bodies(), ["from alice", "from bob"]);
    assert!(answer.iq.contains("<count>2</count>"), "{}", answer.iq);
}

#[tokio::test]
async fn a_stanza_id_forged_in_the_name_of_the_archive_is_replaced() {
    let (_server, mut alice, mut bob) = trio().await;
    bob.send(
        "<message to='alice@localhost' type='chat' id='m1'><body>trust me</body>\
         <stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='forged'/>\
         <stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='bobs-own'/></message>",
    )
    .await;
    let received = alice.expect_stanza("id='m1'").await;
    assert!(!received.contains("forged"), "{received}");
    assert!(received.contains("bobs-own"), "{received}");
    let id = stanza_id(&received, "alice@localhost");
    let answer = query(&mut alice, "q1", "").await;
    assert_eq!(answer.results[0].id, id);
    assert!(!answer.results[0].xml.contains("forged"));
}

#[tokio::test]
async fn pages_forwards_end_with_a_complete_page() {
    let (_server, mut alice, mut bob) = trio().await;
    let ids = bob_sends(&mut bob, &mut alice, 5).await;
    let first = query(&mut alice, "q1", &rsm("<max>2</max>")).await;
    assert_eq!(first.bodies(), ["message 1", "message 2"]);
    assert!(!first.complete(), "{}", first.iq);
    assert_eq!(first.first(), ids[0]);
    assert_eq!(first.last(), ids[1]);
    assert!(first.iq.contains("<count>5</count>"), "{}", first.iq);
    let second = query(
        &mut alice,
        "q2",
        &rsm(&format!("<max>2</max><after>{}</after>", first.last())),
    )
    .await;
    assert_eq!(second.bodies(), ["message 3", "message 4"]);
    assert!(!second.complete());
    let third = query(
        &mut alice,
        "q3",
        &rsm(&format!("<max>2</max><after>{}</after>", second.last())),
    )
    .await;
    assert_eq!(third.bodies(), ["message 5"]);
    assert!(third.complete(), "{}", third.iq);
}

#[tokio::test]
async fn an_empty_before_asks_for_the_last_page_and_paging_back_reaches_the_start() {
    let (_server, mut alice, mut bob) = trio().await;
    bob_sends(&mut bob, &mut alice, 5).await;
    let last = query(&mut alice, "q1", &rsm("<max>2</max><before/>")).await;
    assert_eq!(last.bodies(), ["message 4", "message 5"]);
    assert!(!last.complete(), "{}", last.iq);
    let middle = query(
        &mut alice,
        "q2",
        &rsm(&format!("<max>2</max><before>{}</before>", last.first())),
    )
    .await;
    assert_eq!(middle.bodies(), ["message 2", "message 3"]);
    assert!(!middle.complete());
    let start = query(
        &mut alice,
        "q3",
        &rsm(&format!("<max>2</max><before>{}</before>", middle.first())),
    )
    .await;
    assert_eq!(start.bodies(), ["message 1"]);
    assert!(start.complete(), "{}", start.iq);
}

#[tokio::test]
async fn a_flipped_page_is_the_same_page_sent_newest_first() {
    let (_server, mut alice, mut bob) = trio().await;
    let ids = bob_sends(&mut bob, &mut alice, 3).await;
    let flipped = query(
        &mut alice,
        "q1",
        &format!("{}<flip-page/>", rsm("<max>2</max><before/>")),
    )
    .await;
    assert_eq!(flipped.bodies(), ["message 3", "message 2"]);
    assert_eq!(flipped.first(), ids[1]);
    assert_eq!(flipped.last(), ids[2]);
}

#[tokio::test]
async fn with_selects_one_conversation() {
    let (server, mut alice, mut bob) = trio().await;
    let mut carol = RawClient::login(&server, "carol", "singer", "home").await;
    carol.available().await;
    chat(&mut bob, &mut alice, "b1", "bob one").await;
    chat(&mut carol, &mut alice, "c1", "carol one").await;
    chat(&mut alice, &mut carol, "a1", "alice to carol").await;
    chat(&mut bob, &mut alice, "b2", "bob two").await;
    let answer = query(&mut alice, "q1", &form(&[("with", "carol@localhost")])).await;
    assert_eq!(answer.bodies(), ["carol one", "alice to carol"]);
    assert!(answer.iq.contains("<count>2</count>"), "{}", answer.iq);
    let resource = query(&mut alice, "q2", &form(&[("with", "bob@localhost/other")])).await;
    assert!(resource.results.is_empty());
    let resource = query(&mut alice, "q3", &form(&[("with", "bob@localhost/desk")])).await;
    assert_eq!(resource.bodies(), ["bob one", "bob two"]);
}

#[tokio::test]
async fn start_and_end_bound_the_results_inclusively() {
    let (_server, mut alice, mut bob) = trio().await;
    let ids = bob_sends(&mut bob, &mut alice, 5).await;
    let answer = query(
        &mut alice,
        "q1",
        &form(&[("start", &time_of(&ids[1])), ("end", &time_of(&ids[3]))]),
    )
    .await;
    assert_eq!(answer.bodies(), ["message 2", "message 3", "message 4"]);
    let future = query(
        &mut alice,
        "q2",
        &form(&[("start", "2999-01-01T00:00:00Z")]),
    )
    .await;
    assert!(future.results.is_empty());
    assert!(future.complete());
}

#[tokio::test]
async fn after_id_and_before_id_select_the_messages_between() {
    let (_server, mut alice, mut bob) = trio().await;
    let ids = bob_sends(&mut bob, &mut alice, 5).await;
    let answer = query(
        &mut alice,
        "q1",
        &form(&[("after-id", &ids[0]), ("before-id", &ids[3])]),
    )
    .await;
    assert_eq!(answer.bodies(), ["message 2", "message 3"]);
    assert!(answer.complete());
}

#[tokio::test]
async fn ids_select_exactly_those_messages_in_archive_order() {
    let (_server, mut alice, mut bob) = trio().await;
    let ids = bob_sends(&mut bob, &mut alice, 4).await;
    let answer = query(
        &mut alice,
        "q1",
        &form(&[("ids", &ids[3]), ("ids", &ids[1])]),
    )
    .await;
    assert_eq!(answer.bodies(), ["message 2", "message 4"]);
}

#[tokio::test]
async fn an_unknown_id_is_item_not_found() {
    let (_server, mut alice, mut bob) = trio().await;
    bob_sends(&mut bob, &mut alice, 1).await;
    for (id, inner) in [
        ("q1", form(&[("after-id", "123")])),
        ("q2", form(&[("before-id", "not-an-id")])),
        ("q3", form(&[("ids", "42")])),
        ("q4", rsm("<after>99</after>")),
    ] {
        let answer = query(&mut alice, id, &inner).await;
        assert!(answer.iq.contains("type='error'"), "{}", answer.iq);
        assert!(answer.iq.contains("<item-not-found"), "{}", answer.iq);
    }
}

#[tokio::test]
async fn paging_by_index_and_unknown_fields_are_not_implemented() {
    let (_server, mut alice, _bob) = trio().await;
    let index = query(&mut alice, "q1", &rsm("<max>1</max><index>3</index>")).await;
    assert!(
        index.iq.contains("<feature-not-implemented"),
        "{}",
        index.iq
    );
    let unknown = query(&mut alice, "q2", &form(&[("fulltext", "hello")])).await;
    assert!(
        unknown.iq.contains("<feature-not-implemented"),
        "{}",
        unknown.iq
    );
}

#[tokio::test]
async fn another_account_may_not_query_the_archive() {
    let (_server, mut alice, mut bob) = trio().await;
    chat(&mut alice, &mut bob, "a1", "private").await;
    let answer = bob
        .iq(
            "q1",
            &format!("<iq type='set' id='q1' to='alice@localhost'><query xmlns='{MAM}' queryid='fq1'/></iq>"),
        )
        .await;
    assert!(answer.contains("<forbidden"), "{answer}");
    ping(&mut bob, "p1").await;
    assert!(!bob.unread().contains("<result"), "{}", bob.unread());
}

#[tokio::test]
async fn preference_never_archives_nothing_and_omits_the_stanza_id() {
    let (_server, mut alice, mut bob) = trio().await;
    let set = alice
        .iq(
            "p1",
            &format!("<iq type='set' id='p1'><prefs xmlns='{MAM}' default='never'/></iq>"),
        )
        .await;
    assert!(set.contains("default='never'"), "{set}");
    let received = chat(&mut bob, &mut alice, "m1", "unrecorded").await;
    assert!(!received.contains("<stanza-id"), "{received}");
    assert!(query(&mut alice, "q1", "").await.results.is_empty());
    let get = alice
        .iq(
            "p2",
            &format!("<iq type='get' id='p2'><prefs xmlns='{MAM}'/></iq>"),
        )
        .await;
    assert!(get.contains("default='never'"), "{get}");
}

#[tokio::test]
async fn preference_roster_archives_only_contacts_in_the_roster() {
    let (server, mut alice, mut bob) = trio().await;
    let mut carol = RawClient::login(&server, "carol", "singer", "home").await;
    carol.available().await;
    alice
        .iq(
            "r1",
            "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='carol@localhost'/></query></iq>",
        )
        .await;
    alice
        .iq(
            "p1",
            &format!(
                "<iq type='set' id='p1'><prefs xmlns='{MAM}' default='roster'>\
                 <always><jid>dave@example.test</jid></always><never/></prefs></iq>"
            ),
        )
        .await;
    chat(&mut bob, &mut alice, "b1", "stranger").await;
    chat(&mut carol, &mut alice, "c1", "contact").await;
    assert_eq!(query(&mut alice, "q1", "").await.bodies(), ["contact"]);
}

#[tokio::test]
async fn a_no_store_hint_keeps_the_message_out_of_the_archive() {
    let (_server, mut alice, mut bob) = trio().await;
    bob.send(
        "<message to='alice@localhost' type='chat' id='m1'><body>off the record</body>\
         <no-store xmlns='urn:xmpp:hints'/></message>",
    )
    .await;
    let received = alice.expect_stanza("id='m1'").await;
    assert!(!received.contains("<stanza-id"), "{received}");
    assert!(query(&mut alice, "q1", "").await.results.is_empty());
}

#[tokio::test]
async fn an_omemo_message_without_body_is_archived_exactly() {
    let (_server, mut alice, mut bob) = trio().await;
    let encrypted = "<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='27183'>\
        <key rid='31415'>a2V5IG1hdGVyaWFs</key><iv>aW5pdGlhbGl6YXRpb24=</iv></header>\
        <payload>Y2lwaGVydGV4dA==</payload></encrypted>";
    bob.send(&format!(
        "<message to='alice@localhost' type='chat' id='o1'>{encrypted}</message>"
    ))
    .await;
    let received = alice.expect_stanza("id='o1'").await;
    let id = stanza_id(&received, "alice@localhost");
    let answer = query(&mut alice, "q1", "").await;
    assert_eq!(answer.results.len(), 1);
    assert_eq!(answer.results[0].id, id);
    assert!(
        answer.results[0].xml.contains(encrypted),
        "{}",
        answer.results[0].xml
    );
}

#[tokio::test]
async fn the_offline_copy_carries_the_same_stanza_id_as_the_archive() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut bob = RawClient::login(&server, "bob", "builder", "desk").await;
    bob.available().await;
    bob.send("<message to='alice@localhost' type='chat' id='m1'><body>while away</body></message>")
        .await;
    // Bob's ping proves the message was archived and stored before alice logs in.
    ping(&mut bob, "p1").await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "phone").await;
    alice.send("<presence/>").await;
    let offline = alice.expect_stanza("id='m1'").await;
    assert!(offline.contains("<delay"), "{offline}");
    let id = stanza_id(&offline, "alice@localhost");
    let answer = query(&mut alice, "q1", "").await;
    assert_eq!(answer.results.len(), 1, "archived once");
    assert_eq!(answer.results[0].id, id);
}

#[tokio::test]
async fn the_archive_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_persistent(dir).await;
    server.add_user("alice@localhost", "wonderland").await;
    server.add_user("bob@localhost", "builder").await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "phone").await;
    alice.available().await;
    let mut bob = RawClient::login(&server, "bob", "builder", "desk").await;
    bob.available().await;
    let ids = bob_sends(&mut bob, &mut alice, 2).await;
    drop((alice, bob));
    let dir = server.stop_keeping_data().await;

    let server = TestServer::start_persistent(dir).await;
    let mut alice = RawClient::login(&server, "alice", "wonderland", "phone").await;
    let answer = query(&mut alice, "q1", "").await;
    assert_eq!(answer.bodies(), ["message 1", "message 2"]);
    let archived: Vec<&str> = answer.results.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(archived, ids);
}

#[tokio::test]
async fn metadata_names_the_first_and_last_messages() {
    let (_server, mut alice, mut bob) = trio().await;
    let empty = alice
        .iq(
            "md0",
            &format!("<iq type='get' id='md0'><metadata xmlns='{MAM}'/></iq>"),
        )
        .await;
    assert!(
        empty.contains(&format!("<metadata xmlns='{MAM}'/>")),
        "{empty}"
    );
    let ids = bob_sends(&mut bob, &mut alice, 3).await;
    let metadata = alice
        .iq(
            "md1",
            &format!("<iq type='get' id='md1'><metadata xmlns='{MAM}'/></iq>"),
        )
        .await;
    assert_eq!(attribute(&metadata, "<start", "id"), Some(ids[0].as_str()));
    assert_eq!(attribute(&metadata, "<end", "id"), Some(ids[2].as_str()));
}

#[tokio::test]
async fn the_query_form_lists_the_supported_fields() {
    let (_server, mut alice, _bob) = trio().await;
    let answer = alice
        .iq(
            "f1",
            &format!("<iq type='get' id='f1'><query xmlns='{MAM}'/></iq>"),
        )
        .await;
    for var in ["with", "start", "end", "before-id", "after-id", "ids"] {
        assert!(answer.contains(&format!("var='{var}'")), "{answer}");
    }
}

#[tokio::test]
async fn a_query_in_mam_1_is_answered_in_mam_1() {
    let (_server, mut alice, mut bob) = trio().await;
    bob_sends(&mut bob, &mut alice, 1).await;
    let answer = alice
        .iq(
            "q1",
            "<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:1' queryid='fq1'/></iq>",
        )
        .await;
    assert!(answer.contains("<fin xmlns='urn:xmpp:mam:1'"), "{answer}");
    assert!(
        alice
            .unread()
            .contains("<result xmlns='urn:xmpp:mam:1' queryid='fq1'"),
        "{}",
        alice.unread()
    );
}

#[tokio::test]
async fn an_account_beyond_its_entry_limit_loses_its_oldest_messages() {
    let (_server, mut alice, mut bob) =
        trio_with("[modules.mam]\nmax_entries_per_account = 2\n").await;
    bob_sends(&mut bob, &mut alice, 4).await;
    assert_eq!(
        query(&mut alice, "q1", "").await.bodies(),
        ["message 3", "message 4"]
    );
}

#[tokio::test]
async fn a_page_that_would_crowd_the_inbox_is_cut_short_and_paging_goes_on() {
    let (_server, mut alice, mut bob) = trio_with("[limits]\nsession_queue_bytes = 8192\n").await;
    let body = "x".repeat(1500);
    for n in 1..=4 {
        chat(
            &mut bob,
            &mut alice,
            &format!("m{n}"),
            &format!("{n} {body}"),
        )
        .await;
    }
    let first = query(&mut alice, "q1", &rsm("<max>4</max>")).await;
    assert!(first.results.len() < 4, "{} results", first.results.len());
    assert!(!first.complete(), "{}", first.iq);
    let rest = query(
        &mut alice,
        "q2",
        &rsm(&format!("<max>4</max><after>{}</after>", first.last())),
    )
    .await;
    assert_eq!(first.results.len() + rest.results.len(), 4);
}

#[tokio::test]
async fn a_server_deleting_old_entries_keeps_recent_ones_and_stops_cleanly() {
    let (server, mut alice, mut bob) = trio_with("[modules.mam]\nmax_age_days = 30\n").await;
    bob_sends(&mut bob, &mut alice, 2).await;
    assert_eq!(query(&mut alice, "q1", "").await.results.len(), 2);
    server.stop().await;
}
