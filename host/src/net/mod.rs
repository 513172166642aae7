//! Network plumbing the sandbox and service mode share: which certificate authorities TLS
//! trusts ([`trust`]: the OS store, plus `BATON_C1_CA_CERT`) and how connections go through
//! an enterprise proxy ([`proxy`]: `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`), and which
//! addresses a connection may reach ([`addresses`], enforced at connect time by [`resolve`]).

pub mod addresses;
pub mod proxy;
pub mod resolve;
pub mod trust;
