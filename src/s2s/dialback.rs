//! XEP-0220 §2.1.2 / XEP-0185: dialback keys, HMAC-SHA256 keyed with the hex SHA-256 of a
//! per-server secret over "Receiving Server, Originating Server, Stream ID".

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// A server's dialback secret.
#[derive(Clone)]
pub struct DialbackSecret(Vec<u8>);

impl DialbackSecret {
    /// A fresh random secret (keys stay valid for this process's lifetime).
    pub fn random() -> DialbackSecret {
        use rand::RngCore as _;
        let mut secret = vec![0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        DialbackSecret(secret)
    }

    /// The key for a stream from `originating` to `receiving` with id `stream_id`.
    pub fn key(&self, receiving: &str, originating: &str, stream_id: &str) -> String {
        // XEP-0185: the HMAC key is the hex form of SHA-256(secret).
        let hashed = hex(&Sha256::digest(&self.0));
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(hashed.as_bytes()) else {
            return String::new();
        };
        mac.update(format!("{receiving} {originating} {stream_id}").as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// Checks a key in constant time.
    pub fn verify(&self, receiving: &str, originating: &str, stream_id: &str, key: &str) -> bool {
        let expected = self.key(receiving, originating, stream_id);
        expected.len() == key.len()
            && expected
                .bytes()
                .zip(key.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_example_of_the_specification() {
        // XEP-0220 §2.1.2: capulet.example's secret, a stream from capulet to montague.
        let secret = DialbackSecret(b"s3cr3tf0rd14lb4ck".to_vec());
        assert_eq!(
            secret.key("montague.example", "capulet.example", "D60000229F"),
            "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3"
        );
    }

    #[test]
    fn a_key_for_another_stream_is_refused() {
        let secret = DialbackSecret::random();
        let key = secret.key("a.example", "b.example", "id1");
        assert!(secret.verify("a.example", "b.example", "id1", &key));
        assert!(!secret.verify("a.example", "b.example", "id2", &key));
    }
}
