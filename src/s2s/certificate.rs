//! Server certificate verification for federation (RFC 6120 §13.7.2, RFC 6125, RFC 7590): a
//! chain to a configured trust anchor, then the domain among the certificate's identifiers —
//! DNS-ID (with a left-most wildcard), SRV-ID `_xmpp-server.<domain>` and XmppAddr, with the
//! subject's CN only when it has none of those.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use thiserror::Error;
use x509_parser::asn1_rs::{Any, FromDer};
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::Oid;
use x509_parser::prelude::X509Certificate;

/// id-on-xmppAddr (RFC 6120 §13.7.1.4).
const XMPP_ADDR: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 8, 5];
/// id-on-dnsSRV (RFC 4985).
const SRV_NAME: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 8, 7];

/// Why a peer's certificate does not authenticate a domain.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CertificateProblem {
    /// The peer presented none.
    #[error("no certificate was presented")]
    Missing,
    /// The chain does not lead to a trust anchor, has expired, or cannot be parsed.
    #[error("the certificate is not trusted: {0}")]
    Untrusted(String),
    /// The chain is trusted but names other domains.
    #[error("the certificate is for {names}, not {domain}")]
    WrongName {
        /// The domain that was expected.
        domain: String,
        /// The identifiers the certificate holds.
        names: String,
    },
}

/// The certificate authorities trusted for server certificates.
#[derive(Debug, Clone)]
pub struct TrustAnchors {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

/// Why trust anchors could not be loaded.
#[derive(Debug, Error)]
#[error("{path}: {reason}")]
pub struct TrustAnchorError {
    /// The file concerned.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

impl TrustAnchors {
    /// Loads every certificate of the PEM files in `paths`; a missing file is an error.
    pub fn load(paths: &[PathBuf]) -> Result<TrustAnchors, TrustAnchorError> {
        let mut roots = RootCertStore::empty();
        for path in paths {
            let error = |reason: String| TrustAnchorError {
                path: path.clone(),
                reason,
            };
            let bytes = fs::read(path).map_err(|e| error(e.to_string()))?;
            for certificate in CertificateDer::pem_slice_iter(&bytes) {
                let certificate = certificate.map_err(|e| error(e.to_string()))?;
                roots
                    .add(certificate)
                    .map_err(|e| error(format!("not a usable CA certificate: {e}")))?;
            }
        }
        Ok(TrustAnchors::from_store(roots))
    }

    /// The system's bundle when it exists (Debian and derivatives), none otherwise.
    pub fn system_default() -> TrustAnchors {
        let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
        if bundle.exists() {
            if let Ok(anchors) = TrustAnchors::load(&[bundle.to_owned()]) {
                return anchors;
            }
        }
        TrustAnchors::from_store(RootCertStore::empty())
    }

    fn from_store(roots: RootCertStore) -> TrustAnchors {
        TrustAnchors {
            roots: Arc::new(roots),
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        }
    }

    /// How many authorities are trusted.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// True when no authority is trusted (every certificate is then invalid).
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Checks that `chain` (leaf first) is trusted now and names `domain`.
    pub fn verify(
        &self,
        chain: &[CertificateDer<'_>],
        domain: &str,
    ) -> Result<(), CertificateProblem> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(CertificateProblem::Missing);
        };
        let untrusted = |e: rustls::Error| CertificateProblem::Untrusted(e.to_string());
        let parsed = ParsedCertificate::try_from(leaf).map_err(untrusted)?;
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            UnixTime::now(),
            self.provider.signature_verification_algorithms.all,
        )
        .map_err(untrusted)?;
        let identities = Identities::of(leaf)
            .ok_or_else(|| CertificateProblem::Untrusted("unparsable certificate".into()))?;
        if identities.names(domain) {
            Ok(())
        } else {
            Err(CertificateProblem::WrongName {
                domain: domain.to_owned(),
                names: identities.to_string(),
            })
        }
    }
}

/// The identifiers a certificate presents (RFC 6125 §6).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Identities {
    dns: Vec<String>,
    srv: Vec<String>,
    xmpp: Vec<String>,
    common_names: Vec<String>,
}

impl Identities {
    /// Reads the identifiers of a DER certificate.
    pub fn of(certificate: &CertificateDer<'_>) -> Option<Identities> {
        let (_, parsed) = X509Certificate::from_der(certificate.as_ref()).ok()?;
        let mut identities = Identities::default();
        if let Ok(Some(san)) = parsed.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => identities.dns.push(dns.to_ascii_lowercase()),
                    GeneralName::OtherName(oid, value) => {
                        let Some(text) = other_name_text(value) else {
                            continue;
                        };
                        if oid_is(oid, XMPP_ADDR) {
                            identities.xmpp.push(text);
                        } else if oid_is(oid, SRV_NAME) {
                            identities.srv.push(text.to_ascii_lowercase());
                        }
                    }
                    _ => {}
                }
            }
        }
        for common_name in parsed.subject().iter_common_name() {
            if let Ok(name) = common_name.as_str() {
                identities.common_names.push(name.to_ascii_lowercase());
            }
        }
        Some(identities)
    }

    /// Whether these identifiers authenticate `domain` as an XMPP server.
    pub fn names(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let srv = format!("_xmpp-server.{domain}");
        let dns_matches = |pattern: &String| dns_id_matches(pattern, &domain);
        if self.dns.iter().any(dns_matches)
            || self.srv.contains(&srv)
            || self.xmpp.contains(&domain)
        {
            return true;
        }
        // RFC 6125 §6.4.4: the CN only counts when there is no subjectAltName identifier.
        self.dns.is_empty()
            && self.srv.is_empty()
            && self.xmpp.is_empty()
            && self.common_names.iter().any(dns_matches)
    }
}

impl fmt::Display for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self
            .dns
            .iter()
            .map(|d| format!("DNS:{d}"))
            .chain(self.srv.iter().map(|s| format!("SRV:{s}")))
            .chain(self.xmpp.iter().map(|x| format!("XmppAddr:{x}")))
            .chain(self.common_names.iter().map(|c| format!("CN:{c}")))
            .collect();
        if all.is_empty() {
            f.write_str("no identifier")
        } else {
            f.write_str(&all.join(", "))
        }
    }
}

fn oid_is(oid: &Oid<'_>, arcs: &[u64]) -> bool {
    oid.iter().is_some_and(|own| own.eq(arcs.iter().copied()))
}

/// The string inside an otherName value: `[0] EXPLICIT` around a UTF8String or IA5String.
fn other_name_text(value: &[u8]) -> Option<String> {
    let (_, explicit) = Any::from_der(value).ok()?;
    let (_, inner) = Any::from_der(explicit.data).ok()?;
    std::str::from_utf8(inner.data).ok().map(str::to_owned)
}

/// RFC 6125 §6.4.3: a wildcard only as the whole left-most label, matching one label.
fn dns_id_matches(pattern: &str, domain: &str) -> bool {
    let pattern = pattern.trim_end_matches('.');
    match pattern.strip_prefix("*.") {
        Some(parent) => domain
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => pattern == domain,
    }
}

/// Accepts whatever certificate the other side presents while still checking its handshake
/// signatures: which domains the certificate authenticates is decided after the handshake,
/// by policy, because an unverified peer may still prove itself with dialback.
#[derive(Debug)]
pub struct DecideAfterHandshake(pub Arc<CryptoProvider>);

impl DecideAfterHandshake {
    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl ServerCertVerifier for DecideAfterHandshake {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

impl ClientCertVerifier for DecideAfterHandshake {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identities(dns: &[&str], srv: &[&str], xmpp: &[&str], cn: &[&str]) -> Identities {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Identities {
            dns: owned(dns),
            srv: owned(srv),
            xmpp: owned(xmpp),
            common_names: owned(cn),
        }
    }

    #[test]
    fn dns_ids_match_exactly_or_by_one_left_most_wildcard_label() {
        let ids = identities(&["example.org", "*.chat.example.org"], &[], &[], &[]);
        assert!(ids.names("example.org"));
        assert!(ids.names("EXAMPLE.org."));
        assert!(ids.names("muc.chat.example.org"));
        assert!(!ids.names("chat.example.org"));
        assert!(!ids.names("a.muc.chat.example.org"));
        assert!(!ids.names("other.org"));
    }

    #[test]
    fn srv_and_xmpp_addr_identifiers_name_the_server() {
        assert!(identities(&[], &["_xmpp-server.example.org"], &[], &[]).names("example.org"));
        assert!(!identities(&[], &["_xmpp-client.example.org"], &[], &[]).names("example.org"));
        assert!(identities(&[], &[], &["example.org"], &[]).names("example.org"));
    }

    #[test]
    fn the_common_name_counts_only_without_alternative_names() {
        assert!(identities(&[], &[], &[], &["example.org"]).names("example.org"));
        assert!(!identities(&["other.org"], &[], &[], &["example.org"]).names("example.org"));
    }

    #[test]
    fn identifiers_are_read_from_a_generated_certificate() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["example.org".to_owned()]).expect("params");
        params.subject_alt_names.push(rcgen::SanType::OtherName((
            XMPP_ADDR.to_vec(),
            rcgen::OtherNameValue::Utf8String("xmpp.example.org".to_owned()),
        )));
        let certificate = params.self_signed(&key).expect("certificate");
        let ids = Identities::of(certificate.der()).expect("parsable");
        assert!(ids.names("example.org"));
        assert!(ids.names("xmpp.example.org"));
        assert!(!ids.names("other.example.org"));
    }

    #[test]
    fn a_self_signed_certificate_is_untrusted_and_a_missing_one_reported() {
        let anchors = TrustAnchors::from_store(RootCertStore::empty());
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["example.org".to_owned()]).expect("p");
        let certificate = params.self_signed(&key).expect("certificate");
        let chain = [certificate.der().clone()];
        assert!(matches!(
            anchors.verify(&chain, "example.org"),
            Err(CertificateProblem::Untrusted(_))
        ));
        assert_eq!(
            anchors.verify(&[], "example.org"),
            Err(CertificateProblem::Missing)
        );
    }

    #[test]
    fn a_certificate_from_a_trusted_authority_is_checked_for_the_domain() {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("p");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let leaf = rcgen::CertificateParams::new(vec!["example.org".to_owned()])
            .expect("p")
            .signed_by(&leaf_key, &issuer)
            .expect("leaf");
        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).expect("root");
        let anchors = TrustAnchors::from_store(roots);
        let chain = [leaf.der().clone()];
        assert_eq!(anchors.verify(&chain, "example.org"), Ok(()));
        assert!(matches!(
            anchors.verify(&chain, "other.org"),
            Err(CertificateProblem::WrongName { .. })
        ));
    }
}
