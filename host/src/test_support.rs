//! Helpers shared by the crate's unit tests.

use std::sync::Arc;

/// A fresh self-signed certificate for `names` and a TLS server configuration presenting it.
pub(crate) fn self_signed_server(names: &[&str]) -> (rcgen::Certificate, rustls::ServerConfig) {
    let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let cert = rcgen::generate_simple_self_signed(names).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    (cert.cert, config)
}
