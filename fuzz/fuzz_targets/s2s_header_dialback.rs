//! An inbound server stream: the peer's header, the header the server answers with (which
//! echoes the peer's `from`), and the dialback verification answers, which echo the peer's
//! `from`, `to` and `id`. Whatever the peer sent, what the server writes back must read as
//! exactly what it meant to write, and a dialback key must verify only for its own stream.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use rempart::s2s::connect::header;
use rempart::s2s::dialback::DialbackSecret;
use rempart_fuzz::{opening_header, read_stream, write_element, Read, Split};
use rempart_xep::element::Element;
use rempart_xep::ns;
use rempart_xep::stanza::{Condition, StanzaError};
use rempart_xep::stream::StreamHeader;

/// The domain this server serves in the fuzzed streams.
const LOCAL: &str = "example.org";

static SECRET: LazyLock<DialbackSecret> = LazyLock::new(DialbackSecret::random);

fuzz_target!(|input: &[u8]| {
    let transcript = read_stream(input, Split::Whole);
    let Some(Read::Header(theirs)) = transcript.first() else {
        return;
    };
    let _ = theirs.version_is_supported();
    header_survives_writing(theirs);
    let ours = header(
        LOCAL,
        theirs.from.as_deref().unwrap_or_default(),
        Some("id".into()),
    );
    header_survives_writing(&ours);
    for read in &transcript[1..] {
        if let Read::Element(element) = read {
            if element.ns() == ns::DIALBACK {
                answer_survives_writing(element);
            }
        }
    }
});

/// A header written with `to_xml` reads back as the same header.
fn header_survives_writing(written: &StreamHeader) {
    let xml = written.to_xml();
    match read_stream(xml.as_bytes(), Split::Whole).first() {
        Some(Read::Header(read)) => assert_eq!(written, read, "header written as {xml:?}"),
        other => panic!("header written as {xml:?} reads as {other:?}"),
    }
}

/// The answers of XEP-0220 §2.1.4 and §2.4, built as the inbound stream builds them, read back
/// as written; a key verifies exactly when it is the key of that stream.
fn answer_survives_writing(request: &Element) {
    let from = request.get_attr("from").unwrap_or_default();
    let to = request.get_attr("to").unwrap_or_default();
    let id = request.get_attr("id").unwrap_or_default();
    let key = request.text_content();
    let valid = SECRET.verify(from, to, id, &key);
    assert_eq!(
        valid,
        key == SECRET.key(from, to, id),
        "verify disagrees with key"
    );
    let verdict = Element::new("verify", ns::DIALBACK)
        .attr("from", to)
        .attr("to", from)
        .attr("id", id)
        .attr("type", if valid { "valid" } else { "invalid" });
    let refusal = Element::new("result", ns::DIALBACK)
        .attr("from", to)
        .attr("to", from)
        .attr("type", "error")
        .child(StanzaError::new(Condition::RemoteServerNotFound).to_element());
    for answer in [verdict, refusal] {
        let written = write_element(&answer, ns::SERVER);
        let mut stream = opening_header(ns::SERVER).into_bytes();
        stream.extend_from_slice(&written);
        let wire = String::from_utf8_lossy(&written);
        let mut expected = answer.clone();
        // Stanza errors are built in jabber:client and travel as the stream's content.
        expected.rename_ns(ns::CLIENT, ns::SERVER);
        match read_stream(&stream, Split::Whole).get(1) {
            Some(Read::Element(read)) => assert_eq!(&expected, read, "answer written as {wire:?}"),
            other => panic!("answer written as {wire:?} reads as {other:?}"),
        }
    }
}
