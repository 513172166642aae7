//! Whom the host trusts for TLS, for ConductorOne (token endpoint and gRPC) and for the
//! Segment origin alike: the OS certificate store, as baton-sdk's Go runtime does (so an
//! enterprise's inspecting proxy or private CA installed there is trusted), plus the CA
//! certificates of `BATON_C1_CA_CERT` when set. On a system without a certificate store
//! (a bare container image), Mozilla's roots (webpki-roots) stand in for it.

use anyhow::{Context as _, anyhow};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// A PEM file of extra CA certificates to trust, for ConductorOne and for Segment.
pub const CA_CERT_ENV: &str = "BATON_C1_CA_CERT";

/// Where the base roots came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// The OS certificate store (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured).
    Os,
    /// Mozilla's roots, built in: the OS store had none.
    BuiltIn,
}

/// The certificate authorities trusted. Cheap to clone.
#[derive(Clone)]
pub struct Trust {
    base: Base,
    roots: Arc<Vec<CertificateDer<'static>>>,
    extra: Arc<Vec<CertificateDer<'static>>>,
    source: Option<PathBuf>,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("base", &self.base)
            .field("base_roots", &self.roots.len())
            .field("extra_ca", &self.source)
            .field("extra_certs", &self.extra.len())
            .finish()
    }
}

/// The OS store, read once per process (it is a few hundred files).
fn os_roots() -> &'static (Base, Arc<Vec<CertificateDer<'static>>>) {
    static ROOTS: OnceLock<(Base, Arc<Vec<CertificateDer<'static>>>)> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in found.errors.iter().take(3) {
            tracing::debug!("reading the OS certificate store: {e}");
        }
        if found.certs.is_empty() {
            // The built-in roots are trust anchors, not certificates: `root_store` and
            // `tonic` add them themselves.
            tracing::debug!("no OS certificate store found; trusting Mozilla's roots");
            (Base::BuiltIn, Arc::new(Vec::new()))
        } else {
            (Base::Os, Arc::new(found.certs))
        }
    })
}

impl Trust {
    /// The OS store only.
    pub fn system() -> Trust {
        let (base, roots) = os_roots().clone();
        Trust {
            base,
            roots,
            extra: Arc::new(Vec::new()),
            source: None,
        }
    }

    /// The OS store plus `BATON_C1_CA_CERT`'s certificates when it is set.
    pub fn from_env() -> anyhow::Result<Trust> {
        match std::env::var_os(CA_CERT_ENV).filter(|v| !v.is_empty()) {
            Some(path) => Trust::with_ca_file(Path::new(&path)),
            None => Ok(Trust::system()),
        }
    }

    /// The OS store plus the CA certificates in the PEM file at `path`.
    pub fn with_ca_file(path: &Path) -> anyhow::Result<Trust> {
        let pem = std::fs::read(path).with_context(|| {
            format!(
                "cannot read the CA certificate file {} ({CA_CERT_ENV})",
                path.display()
            )
        })?;
        let mut trust = Trust::with_ca_pem(pem)
            .with_context(|| format!("{} ({CA_CERT_ENV}) is not usable", path.display()))?;
        trust.source = Some(path.to_path_buf());
        Ok(trust)
    }

    /// The OS store plus the CA certificates in `pem`.
    pub fn with_ca_pem(pem: impl AsRef<[u8]>) -> anyhow::Result<Trust> {
        let certs = CertificateDer::pem_slice_iter(pem.as_ref())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow!("not a PEM certificate bundle: {e}"))?;
        if certs.is_empty() {
            return Err(anyhow!(
                "it holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)"
            ));
        }
        Ok(Trust {
            extra: Arc::new(certs),
            ..Trust::system()
        })
    }

    pub fn base(&self) -> Base {
        self.base
    }

    /// The extra certificates (`BATON_C1_CA_CERT`).
    pub fn extra(&self) -> &[CertificateDer<'static>] {
        &self.extra
    }

    /// The roots as rustls takes them. Certificates of the OS store that rustls cannot use
    /// are skipped (as Go skips them).
    pub fn root_store(&self) -> rustls::RootCertStore {
        let mut store = rustls::RootCertStore::empty();
        if self.base == Base::BuiltIn {
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        let (_added, _skipped) = store.add_parsable_certificates(self.roots.iter().cloned());
        for cert in self.extra.iter() {
            if let Err(e) = store.add(cert.clone()) {
                tracing::warn!("a certificate of {CA_CERT_ENV} is not usable as a CA: {e}");
            }
        }
        store
    }

    /// A rustls client configuration (ring, TLS 1.2 and 1.3) trusting these roots.
    pub fn client_config(&self) -> anyhow::Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow!("TLS set-up: {e}"))?
            .with_root_certificates(self.root_store())
            .with_no_client_auth())
    }

    /// Every root as PEM (for clients that take PEM, such as tonic's).
    pub fn pem_roots(&self) -> Vec<String> {
        let mut pems: Vec<String> = Vec::new();
        if self.base == Base::BuiltIn {
            // tonic takes the built-in roots through its own feature.
            return self.extra.iter().map(|c| pem(c)).collect();
        }
        pems.extend(self.roots.iter().map(|c| pem(c)));
        pems.extend(self.extra.iter().map(|c| pem(c)));
        pems
    }

    /// tonic's TLS configuration for a ConductorOne endpoint.
    pub fn tonic(&self) -> tonic::transport::ClientTlsConfig {
        let mut config = tonic::transport::ClientTlsConfig::new();
        if self.base == Base::BuiltIn {
            config = config.with_webpki_roots();
        }
        config.ca_certificates(
            self.pem_roots()
                .into_iter()
                .map(tonic::transport::Certificate::from_pem),
        )
    }
}

/// A DER certificate as PEM.
fn pem(cert: &CertificateDer<'_>) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> rcgen::CertifiedKey<rcgen::KeyPair> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        rcgen::CertifiedKey {
            cert,
            signing_key: key,
        }
    }

    #[test]
    fn an_extra_ca_is_trusted_besides_the_base_roots() {
        let ca = ca();
        let trust = Trust::with_ca_pem(ca.cert.pem()).unwrap();
        assert_eq!(trust.extra().len(), 1);
        let base = Trust::system().root_store().len();
        assert_eq!(trust.root_store().len(), base + 1);
        assert!(base > 0, "the OS store, or the built-in roots in its place");
        // PEM round trip: what tonic gets is what was read.
        let pems = trust.pem_roots();
        assert!(
            pems.last()
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        let back = CertificateDer::from_pem_slice(pems.last().unwrap().as_bytes()).unwrap();
        assert_eq!(back.as_ref(), ca.cert.der().as_ref());
    }

    #[test]
    fn unusable_ca_files_are_clear_errors() {
        let e = Trust::with_ca_pem("hello").unwrap_err();
        assert!(format!("{e:#}").contains("no certificate"), "{e:#}");
        let e = Trust::with_ca_file(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(format!("{e:#}").contains(CA_CERT_ENV), "{e:#}");
    }
}
