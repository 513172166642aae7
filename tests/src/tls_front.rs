//! TLS in front of a plain-HTTP fake: a throwaway CA signs a certificate for the names given
//! (e.g. `segment.example.test`), and every connection is decrypted and passed on to the
//! backend's port. With a [`crate::net::proxy::ConnectProxy`] resolving those names, a client sees
//! what it sees on the internet: an `https://` origin behind a proxy, trusted through a
//! private CA (`BATON_C1_CA_CERT`).

use crate::server::ServerHandle;
use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A running TLS front. Dropping it stops it.
pub struct TlsFront {
    addr: SocketAddr,
    ca_pem: String,
    _server: ServerHandle,
}

impl TlsFront {
    /// Serves TLS for `names` on `127.0.0.1:0`, passing every connection to `backend`.
    pub async fn start(backend: SocketAddr, names: &[&str]) -> anyhow::Result<TlsFront> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "test private CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let mut leaf =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate()?;
        let cert = leaf.signed_by(&leaf_key, &ca)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .context("the front's certificate")?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, mut rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((socket, _)) = accepted else { continue };
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            let Ok(mut tls) = acceptor.accept(socket).await else { return };
                            let Ok(mut plain) = TcpStream::connect(backend).await else { return };
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                        });
                    }
                    _ = rx.changed() => return,
                }
            }
        });
        Ok(TlsFront {
            addr,
            ca_pem: ca.pem(),
            _server: ServerHandle::new(tx, task),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The PEM of the CA that signed the front's certificate.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }
}
