//! HTTPS for `serve` (rustls with the *ring* provider): a certificate and key from PEM files,
//! or a self-signed certificate generated at start (rcgen) whose SHA-256 fingerprint is printed
//! so a person can check it in the browser's warning. Browsers give WebCodecs (H.264) only to
//! secure contexts, and a page opened by address from another machine is one only over HTTPS.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A TLS configuration ready to serve, and the fingerprint of its (first) certificate.
pub struct Tls {
    /// The server configuration (HTTP/1.1 only) that `serve`'s accept loop handshakes with.
    pub config: Arc<ServerConfig>,
    /// SHA-256 of the certificate (DER), as colon-separated upper-case hex, the way browsers
    /// show it.
    pub fingerprint: String,
}

fn fingerprint(cert: &CertificateDer<'_>) -> String {
    ring::digest::digest(&ring::digest::SHA256, cert.as_ref())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A TLS configuration from a certificate chain and its key.
pub(crate) fn build(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<Tls> {
    let first = certs
        .first()
        .context("the certificate file holds no certificate")?;
    let fingerprint = fingerprint(first);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and the key do not belong together")?;
    // WebSockets need HTTP/1.1 (the upgrade); no h2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        config: Arc::new(config),
        fingerprint,
    })
}

/// TLS from a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn from_files(cert: &Path, key: &Path) -> anyhow::Result<Tls> {
    // Each error says which file (the certificate or the key) and its path.
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| {
            format!(
                "cannot read the TLS certificate (--tls-cert) {}",
                cert.display()
            )
        })?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| {
            format!(
                "the TLS certificate (--tls-cert) {} is not a PEM certificate chain",
                cert.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!(
            "the TLS certificate (--tls-cert) {} holds no PEM certificate",
            cert.display()
        );
    }
    let key_der = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "cannot read a PEM private key from the TLS key (--tls-key) {}",
            key.display()
        )
    })?;
    build(certs, key_der).with_context(|| {
        format!(
            "--tls-cert {} and --tls-key {}",
            cert.display(),
            key.display()
        )
    })
}

/// A self-signed certificate for `localhost` and `addrs`, made now (a new key each start).
pub fn self_signed(addrs: &[SocketAddr]) -> anyhow::Result<Tls> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    for ip in addrs.iter().map(SocketAddr::ip) {
        let name = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => v6.to_string(),
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let certified =
        rcgen::generate_simple_self_signed(names).context("cannot make a certificate")?;
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    build(vec![cert], key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificates_load_and_have_a_fingerprint() {
        let addr: SocketAddr = "192.0.2.7:8443".parse().unwrap();
        let tls = self_signed(&[addr]).unwrap();
        assert_eq!(tls.fingerprint.len(), 32 * 3 - 1);
        assert!(tls
            .fingerprint
            .split(':')
            .all(|b| b.len() == 2 && u8::from_str_radix(b, 16).is_ok()));
        // Written out and read back as files, the same certificate.
        let dir = std::env::temp_dir().join(format!("pixelflux-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.join("cert.pem"), certified.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
        let from_disk = from_files(&dir.join("cert.pem"), &dir.join("key.pem")).unwrap();
        assert_eq!(from_disk.fingerprint, fingerprint(certified.cert.der()));
        // A key that is not the certificate's is refused.
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(dir.join("other.pem"), other.serialize_pem()).unwrap();
        assert!(from_files(&dir.join("cert.pem"), &dir.join("other.pem")).is_err());
        assert!(from_files(&dir.join("missing.pem"), &dir.join("key.pem")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
