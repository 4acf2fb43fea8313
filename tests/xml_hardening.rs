//! The XML reader and writer against hostile input: bounded memory before authentication
//! whatever the namespaces cost, limits on the stream header, and stanzas forwarded
//! self-contained, whatever the sender declared on its own stream header.

mod common;

use common::{RawClient, TestServer};
use rempart_xep::element::Element;

/// A namespace URI of `len` bytes.
fn long_uri(len: usize) -> String {
    format!("urn:x:{}", "u".repeat(len))
}

/// Sends `xml` after an ordinary stream header on the plaintext port and returns all the
/// server wrote until it closed the connection.
async fn refused_before_authentication(server: &TestServer, xml: &str) -> String {
    let mut client = RawClient::connect(server.starttls).await;
    client.open(&server.domain).await;
    client.send_lossy(xml.as_bytes()).await;
    client.read_to_close().await
}

#[tokio::test]
async fn a_stanza_of_many_elements_sharing_a_long_namespace_is_refused_before_authentication() {
    let server = TestServer::start().await;
    // 3 KB URI, 40,000 elements: 120 MB if every element owned a copy of the URI.
    let mut stanza = format!("<message xmlns:p='{}'>", long_uri(3000));
    stanza.push_str(&"<p:a/>".repeat(40_000));
    stanza.push_str("</message>");
    let reply = refused_before_authentication(&server, &stanza).await;
    assert!(reply.contains("<policy-violation"), "{reply}");
    assert!(reply.contains("parsed stanza size"), "{reply}");
    server.stop().await;
}

#[tokio::test]
async fn a_stanza_of_many_tiny_elements_is_refused_for_what_it_costs_parsed() {
    let server = TestServer::start().await;
    // 200 KB on the wire, under the 256 KiB stanza limit, but ~5 MB once parsed.
    let stanza = format!("<message>{}</message>", "<a/>".repeat(50_000));
    let reply = refused_before_authentication(&server, &stanza).await;
    assert!(reply.contains("<policy-violation"), "{reply}");
    assert!(reply.contains("parsed stanza size"), "{reply}");
    server.stop().await;
}

#[tokio::test]
async fn a_stream_header_larger_than_the_limit_is_refused() {
    let server = TestServer::start().await;
    let mut client = RawClient::connect(server.starttls).await;
    client
        .send_lossy(
            format!(
                "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:p='{}'>",
                long_uri(250_000)
            )
            .as_bytes(),
        )
        .await;
    let reply = client.read_to_close().await;
    assert!(reply.contains("<policy-violation"), "{reply}");
    server.stop().await;
}

#[tokio::test]
async fn a_stream_header_with_too_many_declarations_is_refused() {
    let server = TestServer::start().await;
    let declarations: String = (0..20).map(|i| format!(" xmlns:p{i}='urn:p{i}'")).collect();
    let mut client = RawClient::connect(server.starttls).await;
    client
        .send_lossy(
            format!(
                "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'{declarations}>"
            )
            .as_bytes(),
        )
        .await;
    let reply = client.read_to_close().await;
    assert!(reply.contains("<policy-violation"), "{reply}");
    assert!(reply.contains("namespace declarations"), "{reply}");
    server.stop().await;
}

#[tokio::test]
async fn a_prefix_declared_on_the_sender_stream_header_is_declared_in_what_the_recipient_gets() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "alice-password").await;
    server.add_user("bob@localhost", "bob-password").await;
    let mut bob = RawClient::login(&server, "bob", "bob-password", "phone").await;

    let (mut alice, _) = RawClient::secured(&server).await;
    let outcome = alice
        .authenticate("SCRAM-SHA-256-PLUS", "alice", "alice-password")
        .await;
    assert!(outcome.starts_with("<success"), "{outcome}");
    alice
        .send("<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:p='urn:example:tone'>")
        .await;
    alice.expect("</stream:features>").await;
    alice.bind(Some("laptop")).await;
    alice
        .send("<message to='bob@localhost/phone' type='chat' id='m1'><body p:tone='calm'>hello</body><p:mood>fine</p:mood></message>")
        .await;

    let received = bob.expect_stanza("id='m1'").await;
    let parsed = Element::parse(&received)
        .unwrap_or_else(|e| panic!("the forwarded stanza is not self-contained ({e}): {received}"));
    let body = parsed
        .children()
        .find(|c| c.name() == "body")
        .expect("body");
    assert_eq!(body.get_attr("p:tone"), Some("calm"));
    assert!(
        parsed.children().any(|c| c.is("mood", "urn:example:tone")),
        "{received}"
    );
    server.stop().await;
}
