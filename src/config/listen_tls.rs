//! `listen.tls_cert`, `listen.tls_key`, `listen.tls_client_ca`: the HTTP listener's
//! certificate pair and optional client CA (README, "HTTPS"), read and turned into a
//! rustls server configuration whenever the config is loaded — at start, by
//! `validate`, and on SIGHUP — so a bad pair is a config error at start and a rejected
//! reload (the running configuration, TLS included, stays) while serving.
//!
//! Invariants:
//! - the files are read with the bounded, non-blocking reader (a FIFO or a huge file
//!   never hangs a start or a reload); symbolic links are followed (certbot's `live/`
//!   directory is made of them);
//! - errors name the key and the file and say what is wrong, never the contents;
//! - the ring provider, as for MySQL; TLS 1.2 and 1.3; ALPN offers HTTP/1.x only.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::smallfile::{self, Links};

/// Far more than any certificate chain or key in PEM.
const MAX_PEM: u64 = 1 << 20;

/// The HTTP listener's TLS settings, and the server configuration built from them.
#[derive(Clone)]
pub(crate) struct ListenTls {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) client_ca: Option<PathBuf>,
    pub(crate) server: Arc<ServerConfig>,
}

impl fmt::Debug for ListenTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenTls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("client_ca", &self.client_ca)
            .finish_non_exhaustive()
    }
}

/// Two loads of the same files are equal settings (the files' contents may differ:
/// what was read is compared by identity).
impl PartialEq for ListenTls {
    fn eq(&self, other: &Self) -> bool {
        self.cert == other.cert
            && self.key == other.key
            && self.client_ca == other.client_ca
            && Arc::ptr_eq(&self.server, &other.server)
    }
}

fn read(key: &str, p: &Path) -> Result<Vec<u8>, String> {
    smallfile::read(p, MAX_PEM, Links::Follow)
        .map_err(|e| format!("listen.{key} = {:?}: {e}", p.display().to_string()))
}

fn certificates(key: &str, p: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(key, p)?;
    let shown = p.display().to_string();
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("listen.{key} = {shown:?}: not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "listen.{key} = {shown:?}: no PEM certificate (BEGIN CERTIFICATE) in it"
        ));
    }
    Ok(certs)
}

/// Read the files and build the server configuration. Each error is one line.
pub(crate) fn load(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<ListenTls, String> {
    let certs = certificates("tls_cert", cert)?;
    let key_bytes = read("tls_key", key)?;
    // The parser's error names only the PEM section kind, never the contents.
    let private = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| {
        format!(
            "listen.tls_key = {:?}: no usable PEM private key in it ({e})",
            key.display().to_string()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("listen.tls_cert: {e}"))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certificates("tls_client_ca", ca)? {
                roots.add(c).map_err(|e| {
                    format!("listen.tls_client_ca = {:?}: {e}", ca.display().to_string())
                })?;
            }
            // Required, not optional: a client without a certificate signed by this
            // CA is refused at the handshake.
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .map_err(|e| {
                    format!("listen.tls_client_ca = {:?}: {e}", ca.display().to_string())
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder.with_single_cert(certs, private).map_err(|e| {
        format!(
            "listen.tls_cert = {:?} and listen.tls_key = {:?} are not a usable pair: {e}",
            cert.display().to_string(),
            key.display().to_string()
        )
    })?;
    // Only HTTP/1.x is spoken; a client offering only h2 is refused rather than
    // answered in a protocol it did not ask for.
    server.alpn_protocols = vec![b"http/1.1".to_vec(), b"http/1.0".to_vec()];
    Ok(ListenTls {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        client_ca: client_ca.map(Path::to_path_buf),
        server: Arc::new(server),
    })
}
