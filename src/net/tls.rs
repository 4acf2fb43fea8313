//! TLS for every listener: one certificate per host chosen by SNI, TLS 1.2 and 1.3 only,
//! rustls' default aws-lc-rs provider (which offers X25519MLKEM768 first).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

use crate::config::Config;
use crate::s2s::certificate::DecideAfterHandshake;

/// ALPN protocol of XEP-0368 direct TLS client connections.
pub const ALPN_XMPP_CLIENT: &[u8] = b"xmpp-client";
/// ALPN protocol of XEP-0368 direct TLS server connections.
pub const ALPN_XMPP_SERVER: &[u8] = b"xmpp-server";

/// Why TLS could not be set up.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// A PEM file held no usable certificate or key.
    #[error("{path}: {reason}")]
    Pem {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Generating a self-signed certificate failed.
    #[error("generating a certificate for {host}: {reason}")]
    Generate {
        /// The host the certificate was for.
        host: String,
        /// The generator's error.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A host's certificate as loaded, with the leaf kept for `tls-server-end-point`.
#[derive(Debug)]
struct HostCertificate {
    certified: Arc<CertifiedKey>,
}

/// Picks the certificate by SNI; without SNI (or an unknown name) the first host's.
#[derive(Debug)]
pub struct SniResolver {
    by_host: HashMap<String, HostCertificate>,
    default_host: String,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let host = hello
            .server_name()
            .filter(|name| self.by_host.contains_key(*name))
            .unwrap_or(&self.default_host);
        self.by_host.get(host).map(|c| c.certified.clone())
    }
}

impl SniResolver {
    /// The DER leaf certificate served for `sni` (same choice as `resolve`).
    pub fn leaf_for(&self, sni: Option<&str>) -> Option<&CertificateDer<'static>> {
        let host = sni
            .filter(|name| self.by_host.contains_key(*name))
            .unwrap_or(&self.default_host);
        self.by_host.get(host)?.certified.cert.first()
    }

    /// The certificate and key of `host`, presented when this server connects to others.
    pub fn certified(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        self.by_host.get(host).map(|c| c.certified.clone())
    }
}

/// The server-side TLS configurations shared by all listeners.
#[derive(Clone)]
pub struct TlsContext {
    /// For STARTTLS (no ALPN).
    pub starttls: Arc<rustls::ServerConfig>,
    /// For direct TLS (ALPN `xmpp-client`).
    pub direct: Arc<rustls::ServerConfig>,
    /// For STARTTLS on server links: asks for the peer's certificate (XEP-0178).
    pub s2s_starttls: Arc<rustls::ServerConfig>,
    /// For direct TLS on server links (ALPN `xmpp-server`), asking for a certificate too.
    pub s2s_direct: Arc<rustls::ServerConfig>,
    /// The certificate chooser, for channel-binding data.
    pub resolver: Arc<SniResolver>,
}

impl TlsContext {
    /// Loads configured certificates and generates self-signed ones for the other hosts.
    pub fn load(config: &Config) -> Result<TlsContext, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut by_host = HashMap::new();
        for host in &config.server.hosts {
            let (cert_path, key_path) =
                match config.tls.certificates.iter().find(|c| &c.host == host) {
                    Some(entry) => (entry.cert.clone(), entry.key.clone()),
                    None => ensure_self_signed(&config.server.data_dir, host)?,
                };
            let chain = load_chain(&cert_path)?;
            let key = load_key(&key_path)?;
            let certified = CertifiedKey::from_der(chain, key, &provider)?;
            by_host.insert(
                host.clone(),
                HostCertificate {
                    certified: Arc::new(certified),
                },
            );
        }
        let resolver = Arc::new(SniResolver {
            by_host,
            default_host: config.server.hosts.first().cloned().unwrap_or_default(),
        });
        let build = |alpn: &[u8], peers_certificate: bool| {
            let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
            // Servers' certificates are judged after the handshake, by federation policy.
            let builder = if peers_certificate {
                builder.with_client_cert_verifier(Arc::new(DecideAfterHandshake(provider.clone())))
            } else {
                builder.with_no_client_auth()
            };
            let mut server = builder.with_cert_resolver(resolver.clone());
            if !alpn.is_empty() {
                server.alpn_protocols = vec![alpn.to_vec()];
            }
            Ok::<_, TlsError>(Arc::new(server))
        };
        Ok(TlsContext {
            starttls: build(&[], false)?,
            direct: build(ALPN_XMPP_CLIENT, false)?,
            s2s_starttls: build(&[], true)?,
            s2s_direct: build(ALPN_XMPP_SERVER, true)?,
            resolver: resolver.clone(),
        })
    }
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = fs::read(path).map_err(|source| TlsError::File {
        path: path.to_owned(),
        source,
    })?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            reason: "no CERTIFICATE block".into(),
        });
    }
    Ok(chain)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = fs::read(path).map_err(|source| TlsError::File {
        path: path.to_owned(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Returns the paths of the generated certificate for `host`, creating it on first use.
fn ensure_self_signed(data_dir: &Path, host: &str) -> Result<(PathBuf, PathBuf), TlsError> {
    let dir = data_dir.join("certs");
    let cert_path = dir.join(format!("{host}.crt"));
    let key_path = dir.join(format!("{host}.key"));
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let file_error = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::File { path, source }
    };
    fs::create_dir_all(&dir).map_err(file_error(&dir))?;
    let generate_error = |e: rcgen::Error| TlsError::Generate {
        host: host.to_owned(),
        reason: e.to_string(),
    };
    let signing_key = rcgen::KeyPair::generate().map_err(generate_error)?;
    let mut params =
        rcgen::CertificateParams::new(vec![host.to_owned()]).map_err(generate_error)?;
    // Ten years: peers such as ejabberd refuse certificates valid until the far future.
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    let certificate = params.self_signed(&signing_key).map_err(generate_error)?;
    write_private(&key_path, signing_key.serialize_pem().as_bytes())
        .map_err(file_error(&key_path))?;
    fs::write(&cert_path, certificate.pem()).map_err(file_error(&cert_path))?;
    tracing::info!(host, path = %cert_path.display(), "generated a self-signed certificate");
    Ok((cert_path, key_path))
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}
