//! A throw-away PKI made with the `openssl` command: a CA, a server certificate for
//! 127.0.0.1/localhost and a client certificate, and the rustls/reqwest pieces tests serve with.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{require_tool, run_ok};

pub struct TestPki {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    dir: tempfile::TempDir,
}

impl TestPki {
    pub fn new() -> TestPki {
        let openssl = require_tool("openssl", "openssl");
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        run_ok(
            Command::new(&openssl).current_dir(d).args(["req", "-x509"]).args(ec).args([
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=redline test CA",
            ]),
            "openssl: make the CA",
        );
        for (name, ext) in [
            ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ] {
            std::fs::write(d.join(format!("{name}.ext")), format!("basicConstraints=CA:FALSE\n{ext}")).expect("ext");
            run_ok(
                Command::new(&openssl).current_dir(d).arg("req").args(ec).args([
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    &format!("/CN=redline test {name}"),
                ]),
                "openssl: make a key and request",
            );
            run_ok(
                Command::new(&openssl).current_dir(d).args(["x509", "-req", "-days", "2", "-CA", "ca.crt"]).args([
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-in",
                    &format!("{name}.csr"),
                    "-out",
                    &format!("{name}.crt"),
                    "-extfile",
                    &format!("{name}.ext"),
                ]),
                "openssl: sign a certificate",
            );
        }
        TestPki {
            ca_cert: d.join("ca.crt"),
            server_cert: d.join("server.crt"),
            server_key: d.join("server.key"),
            client_cert: d.join("client.crt"),
            client_key: d.join("client.key"),
            dir,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A TLS acceptor with the server certificate; with `client_auth`, it refuses clients
    /// without a certificate from this CA. ALPN offers h2 and http/1.1.
    pub fn acceptor(&self, client_auth: bool) -> tokio_rustls::TlsAcceptor {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("TLS versions");
        let builder = if client_auth {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs(&self.ca_cert) {
                roots.add(cert).expect("CA");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::from_pem_file(&self.server_key).expect("server key");
        let mut config = builder.with_single_cert(certs(&self.server_cert), key).expect("server certificate");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// An HTTP client that trusts this CA (and the platform's roots).
    pub fn client(&self) -> reqwest::Client {
        let files = redline::tls::ClientTlsFiles { ca_file: Some(self.ca_cert.clone()), identity: None };
        let config = redline::tls::client_config(&files).expect("client TLS");
        reqwest::Client::builder().tls_backend_preconfigured(config).build().expect("https client")
    }
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path).expect("PEM file").collect::<Result<_, _>>().expect("PEM certificates")
}
