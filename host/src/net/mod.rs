//! Network plumbing the sandbox and service mode share: which certificate authorities TLS
//! trusts ([`trust`]: the OS store, plus `BATON_C1_CA_CERT`) and how connections go through
//! an enterprise proxy ([`proxy`]: `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`), and which
//! addresses a connection may reach ([`addresses`], enforced at connect time by [`resolve`]).

pub mod addresses;
pub mod proxy;
pub mod resolve;
pub mod trust;

/// The `T` somewhere in `e`'s chain, looking inside io errors too (their `source` skips what
/// they wrap).
pub fn cause<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    if let Some(t) = e.downcast_ref::<T>() {
        return Some(t);
    }
    let wrapped = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .map(|i| i as &(dyn std::error::Error + 'static));
    wrapped
        .and_then(cause::<T>)
        .or_else(|| e.source().and_then(cause::<T>))
}
