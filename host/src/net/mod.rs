//! Network plumbing the sandbox and service mode share: which certificate authorities TLS
//! trusts ([`trust`]: the OS store, plus `BATON_C1_CA_CERT`) and how connections go through
//! an enterprise proxy ([`proxy`]: `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`).

pub mod proxy;
pub mod trust;
