//! How the sandbox's client reaches the Segment origin: trusting the OS certificate store
//! plus `BATON_C1_CA_CERT` (see [`crate::net::trust`]), and through the proxy the environment
//! names (see [`crate::net::proxy`]), over TCP connections that ACK at once (see
//! [`super::tcp`]), offering HTTP/2 over TLS. The sandbox has checked the destination origin
//! before a request gets here; the guest never learns that a proxy exists.

use super::tcp::QuickAckConnector;
use crate::net::addresses::AddressPolicy;
use crate::net::proxy::{Proxies, ProxyConnector};
use crate::net::trust::Trust;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub type SegmentConnector = hyper_rustls::HttpsConnector<QuickAckConnector<ProxyConnector>>;

/// The TLS configuration for Segment, built once per process from the environment.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let trust = Trust::from_env().unwrap_or_else(|e| {
                tracing::warn!("{e:#}; trusting the OS certificate store only");
                Trust::system()
            });
            let config = trust
                .client_config()
                .unwrap_or_else(|e| panic!("the ring provider supports TLS 1.2 and 1.3: {e}"));
            Arc::new(config)
        })
        .clone()
}

/// A connector for one run's pooled client, reaching only what `addresses` allows.
pub fn connector(connect_timeout: Duration, addresses: AddressPolicy) -> SegmentConnector {
    connector_with((*tls_config()).clone(), connect_timeout, addresses)
}

/// A connector trusting what `tls` trusts.
pub fn connector_with(
    tls: rustls::ClientConfig,
    connect_timeout: Duration,
    addresses: AddressPolicy,
) -> SegmentConnector {
    let direct_or_proxied = ProxyConnector::guarded(Proxies::global(), connect_timeout, addresses);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(QuickAckConnector::new(direct_or_proxied))
}
