//! TLS for redline's outgoing connections (OTLP collectors, Alertmanager, Prometheus and the
//! other peers it asks): the roots it trusts, the identity it shows, and its HTTP clients.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// Extra trust and a client identity for one peer, from files in PEM form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// CA certificates trusted for this peer on top of the platform's roots.
    pub ca_file: Option<PathBuf>,
    /// A certificate chain and its private key, shown when the peer asks for one (mutual TLS).
    pub identity: Option<Identity>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The client TLS settings for `files`: the platform's roots plus `files.ca_file`, and the
/// client identity if one is given. Errors name the file and what is wrong with it.
pub fn client_config(files: &ClientTlsFiles) -> Result<ClientConfig, String> {
    let mut roots = platform_roots()?.as_ref().clone();
    if let Some(ca_file) = &files.ca_file {
        for cert in read_certificates(ca_file)? {
            roots.add(cert).map_err(|e| format!("{}: not a usable CA certificate: {e}", ca_file.display()))?;
        }
    }
    // ring, passed explicitly rather than installed process-wide, so no caller depends on
    // another having installed it first.
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match &files.identity {
        None => Ok(builder.with_no_client_auth()),
        Some(identity) => {
            let chain = read_certificates(&identity.cert_file)?;
            let key = PrivateKeyDer::from_pem_file(&identity.key_file)
                .map_err(|e| format!("{}: expected a PEM private key: {e}", identity.key_file.display()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!(
                    "{} and {}: the key does not go with the certificate: {e}",
                    identity.cert_file.display(),
                    identity.key_file.display()
                )
            })
        }
    }
}

/// An HTTP client builder that trusts the platform's roots; every reqwest client in redline
/// starts here (reqwest is built without a crypto provider of its own).
pub fn http_client() -> Result<reqwest::ClientBuilder, String> {
    Ok(reqwest::Client::builder().tls_backend_preconfigured(client_config(&ClientTlsFiles::default())?))
}

/// The platform's trusted roots, read once: the system store, or `SSL_CERT_FILE` /
/// `SSL_CERT_DIR` when set, as OpenSSL reads them.
fn platform_roots() -> Result<&'static Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            // A missing system store is normal in a scratch image (only https peers fail, each
            // saying the issuer is unknown); a store the operator named and we cannot read is not.
            if let Some(e) = found.errors.first() {
                for var in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
                    if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
                        return Err(format!("{var}: cannot read the trusted certificates: {e}"));
                    }
                }
            }
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(found.certs);
            Ok(Arc::new(roots))
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: expected PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: expected PEM certificates, found none", path.display()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn files_that_are_not_pem_certificates_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = write(dir.path(), "empty.pem", "");
        let e = client_config(&ClientTlsFiles { ca_file: Some(empty.clone()), identity: None }).unwrap_err();
        assert!(e.contains("empty.pem") && e.contains("found none"), "{e}");

        let missing = dir.path().join("missing.pem");
        let e = client_config(&ClientTlsFiles { ca_file: Some(missing), identity: None }).unwrap_err();
        assert!(e.contains("missing.pem") && e.contains("expected PEM certificates"), "{e}");

        let garbage =
            write(dir.path(), "garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n");
        let e = client_config(&ClientTlsFiles { ca_file: Some(garbage), identity: None }).unwrap_err();
        assert!(e.contains("garbage.pem"), "{e}");
    }

    #[test]
    fn a_client_identity_needs_a_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let no_key = write(dir.path(), "client.key", "just text\n");
        let identity = Identity { cert_file: dir.path().join("client.crt"), key_file: no_key };
        let e = client_config(&ClientTlsFiles { ca_file: None, identity: Some(identity) }).unwrap_err();
        assert!(e.contains("client.crt"), "the missing certificate is named first: {e}");
    }

    #[test]
    fn plain_settings_build() {
        assert!(client_config(&ClientTlsFiles::default()).is_ok());
        assert!(http_client().and_then(|b| b.build().map_err(|e| e.to_string())).is_ok());
    }
}
