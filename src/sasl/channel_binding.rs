//! Channel-binding data for the -PLUS mechanisms: `tls-exporter` (RFC 9266, TLS 1.3 only)
//! and `tls-server-end-point` (RFC 5929 §4).

use rsasl::prelude::ChannelBindingCallback;
use sha2::{Digest, Sha256, Sha384, Sha512};

/// `tls-exporter` label of RFC 9266.
const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// The binding data available on one TLS connection.
#[derive(Debug, Clone, Default)]
pub struct ChannelBindings {
    exporter: Option<Vec<u8>>,
    end_point: Option<Vec<u8>>,
}

impl ChannelBindings {
    /// Reads the binding data from an established server-side TLS connection.
    pub fn from_connection(
        connection: &rustls::ServerConnection,
        leaf_certificate: Option<&[u8]>,
    ) -> ChannelBindings {
        let exporter = if connection.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
            let mut out = vec![0u8; 32];
            match connection.export_keying_material(&mut out, EXPORTER_LABEL, None) {
                Ok(_) => Some(out),
                Err(_) => None,
            }
        } else {
            None
        };
        ChannelBindings {
            exporter,
            end_point: leaf_certificate.map(server_end_point_hash),
        }
    }

    /// The binding types that can be offered (XEP-0440), strongest first.
    pub fn types(&self) -> Vec<&'static str> {
        let mut types = Vec::new();
        if self.exporter.is_some() {
            types.push("tls-exporter");
        }
        if self.end_point.is_some() {
            types.push("tls-server-end-point");
        }
        types
    }

    /// True when any binding is available, so that -PLUS mechanisms can be offered.
    pub fn any(&self) -> bool {
        self.exporter.is_some() || self.end_point.is_some()
    }
}

impl ChannelBindingCallback for ChannelBindings {
    fn get_cb_data(&self, cbname: &str) -> Option<&[u8]> {
        match cbname {
            "tls-exporter" => self.exporter.as_deref(),
            "tls-server-end-point" => self.end_point.as_deref(),
            _ => None,
        }
    }
}

/// Hashes the certificate with the hash of its signature algorithm, SHA-256 for MD5/SHA-1
/// and anything unrecognised (RFC 5929 §4.1).
fn server_end_point_hash(certificate: &[u8]) -> Vec<u8> {
    match signature_hash(certificate) {
        SignatureHash::Sha384 => Sha384::digest(certificate).to_vec(),
        SignatureHash::Sha512 => Sha512::digest(certificate).to_vec(),
        SignatureHash::Sha256 => Sha256::digest(certificate).to_vec(),
    }
}

enum SignatureHash {
    Sha256,
    Sha384,
    Sha512,
}

/// Reads the signatureAlgorithm OID of an X.509 certificate (the second field of the outer
/// SEQUENCE) and maps it to its hash.
fn signature_hash(der: &[u8]) -> SignatureHash {
    const SHA384_OIDS: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03], // ecdsa-with-SHA384
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c], // sha384WithRSAEncryption
    ];
    const SHA512_OIDS: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04], // ecdsa-with-SHA512
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d], // sha512WithRSAEncryption
    ];
    let oid = outer_content(der)
        .and_then(|inner| skip_tlv(inner))
        .and_then(|after_tbs| outer_content(after_tbs))
        .and_then(|algorithm| {
            let (tag, content, _) = read_tlv(algorithm)?;
            (tag == 0x06).then_some(content)
        });
    match oid {
        Some(oid) if SHA384_OIDS.contains(&oid) => SignatureHash::Sha384,
        Some(oid) if SHA512_OIDS.contains(&oid) => SignatureHash::Sha512,
        _ => SignatureHash::Sha256,
    }
}

/// Splits a DER TLV into (tag, content, rest).
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let length = rest[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (length, &rest[count..])
    };
    if rest.len() < length {
        return None;
    }
    Some((tag, &rest[..length], &rest[length..]))
}

fn outer_content(input: &[u8]) -> Option<&[u8]> {
    let (tag, content, _) = read_tlv(input)?;
    (tag == 0x30).then_some(content)
}

fn skip_tlv(input: &[u8]) -> Option<&[u8]> {
    read_tlv(input).map(|(_, _, rest)| rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_p256_certificates_hash_with_sha256() {
        let generated = rcgen::generate_simple_self_signed(vec!["example.org".to_owned()])
            .expect("certificate");
        let der = generated.cert.der().to_vec();
        assert!(matches!(signature_hash(&der), SignatureHash::Sha256));
        assert_eq!(server_end_point_hash(&der), Sha256::digest(&der).to_vec());
    }

    #[test]
    fn garbage_falls_back_to_sha256() {
        assert!(matches!(
            signature_hash(&[0x30, 0x80]),
            SignatureHash::Sha256
        ));
    }
}
