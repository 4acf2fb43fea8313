//! The catalogue of implemented specifications, generated from the modules' declarations:
//! the README's table and the XEP-0453 DOAP file. Never written by hand.

use std::sync::Arc;

use rempart_xep::element::escape;

use crate::modules::Module;
use crate::router::Implements;

/// What the core (streams, TLS, SASL, binding) implements outside any module.
pub static CORE_IMPLEMENTS: &[Implements] = &[
    Implements {
        spec: "RFC 6120",
        version: "2011",
        note: "streams, STARTTLS, SASL, resource binding, stream and stanza errors",
    },
    Implements {
        spec: "RFC 6125",
        version: "2011",
        note: "peer server certificates checked for DNS-ID, SRV-ID and XmppAddr",
    },
    Implements {
        spec: "RFC 7590",
        version: "2015",
        note: "TLS 1.2/1.3 only, SNI certificate selection, server links always encrypted",
    },
    Implements {
        spec: "RFC 9266",
        version: "2022",
        note: "SCRAM -PLUS with tls-exporter (and tls-server-end-point)",
    },
    Implements {
        spec: "XEP-0368",
        version: "1.1.0",
        note: "direct TLS listeners (ALPN xmpp-client, xmpp-server); _xmpps-server SRV followed",
    },
    Implements {
        spec: "XEP-0178",
        version: "1.2",
        note: "SASL EXTERNAL with certificates on server links, both ways",
    },
    Implements {
        spec: "XEP-0185",
        version: "1.0",
        note: "dialback keys from a per-server secret",
    },
    Implements {
        spec: "XEP-0198",
        version: "1.6.3",
        note: "acks and resumption, also inline with SASL2 and across a server restart",
    },
    Implements {
        spec: "XEP-0220",
        version: "1.1.1",
        note: "server dialback both ways, dialback errors, policy per remote domain",
    },
    Implements {
        spec: "XEP-0344",
        version: "0.4",
        note: "dialback needs no verification round trip when the certificate proves the domain",
    },
    Implements {
        spec: "XEP-0352",
        version: "1.0.0",
        note: "presence, chat states and notifications wait while a client is inactive",
    },
    Implements {
        spec: "XEP-0386",
        version: "1.1.0",
        note: "Bind 2 with stream management and client state inline; a stable resource per device",
    },
    Implements {
        spec: "XEP-0388",
        version: "1.0.4",
        note: "SASL2 with user agents, inline binding and resumption",
    },
    Implements {
        spec: "XEP-0440",
        version: "1.0.0",
        note: "channel-binding types advertised",
    },
    Implements {
        spec: "XEP-0484",
        version: "0.2.0",
        note: "FAST tokens per device: HT-SHA-256-NONE, -ENDP, -EXPR, rotation, invalidation",
    },
];

/// The Markdown table of implemented specifications, as the README shows it.
pub fn implements_table(modules: &[Arc<dyn Module>]) -> String {
    let mut table =
        String::from("| Specification | Version | Module | Support |\n|---|---|---|---|\n");
    for (spec, version, module, note) in rows(modules) {
        table.push_str(&format!("| {spec} | {version} | {module} | {note} |\n"));
    }
    table
}

/// Every (specification, version, module, note), sorted, the core's included.
fn rows(
    modules: &[Arc<dyn Module>],
) -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
    let core = CORE_IMPLEMENTS
        .iter()
        .map(|i| (i.spec, i.version, "core", i.note));
    let mut rows: Vec<(&str, &str, &str, &str)> = modules
        .iter()
        .flat_map(|m| {
            m.implements()
                .iter()
                .map(move |i| (i.spec, i.version, m.name(), i.note))
        })
        .chain(core)
        .collect();
    rows.sort();
    rows
}

/// The XEP-0453 DOAP description of the server.
pub fn doap(modules: &[Arc<dyn Module>]) -> String {
    let mut out = String::from(
        "<?xml version='1.0' encoding='UTF-8'?>\n<rdf:RDF xmlns='http://usefulinc.com/ns/doap#' xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#' xmlns:xmpp='https://linkmauve.fr/ns/xmpp-doap#'>\n  <Project>\n    <name>Rempart</name>\n    <shortdesc>An XMPP server with first-class OMEMO support</shortdesc>\n    <programming-language>Rust</programming-language>\n    <category rdf:resource='https://linkmauve.fr/ns/xmpp-doap#category-server'/>\n",
    );
    let mut seen = Vec::new();
    for (spec, version, _, note) in rows(modules) {
        if seen.contains(&spec) {
            continue;
        }
        seen.push(spec);
        if let Some(number) = spec.strip_prefix("RFC ") {
            out.push_str(&format!(
                "    <implements rdf:resource='https://www.rfc-editor.org/info/rfc{number}'/>\n"
            ));
        } else if let Some(number) = spec.strip_prefix("XEP-") {
            out.push_str(&format!(
                "    <implements>\n      <xmpp:SupportedXep>\n        <xmpp:xep rdf:resource='https://xmpp.org/extensions/xep-{number}.html'/>\n        <xmpp:version>{version}</xmpp:version>\n        <xmpp:note>{}</xmpp:note>\n      </xmpp:SupportedXep>\n    </implements>\n",
                escape(note)
            ));
        }
    }
    out.push_str("  </Project>\n</rdf:RDF>\n");
    out
}
