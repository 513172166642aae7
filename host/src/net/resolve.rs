//! The resolver of the sandbox's HTTP client: names are resolved at connect time and every
//! address is checked against the run's [`AddressPolicy`], so a name cannot point the host at
//! a private address after it was checked (DNS rebinding). IP literals never reach a resolver;
//! the sandbox checks those before sending (`SandboxHooks::send_request`). Through a proxy the
//! proxy resolves the name: [`check_name`] checks what it resolves to here first.

use super::addresses::{AddressClass, AddressPolicy};
use hyper_util::client::legacy::connect::dns::Name;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A connection refused because of where it would go (the guest sees
/// `destination-IP-prohibited`, and it is not retried).
#[derive(Debug)]
pub struct Prohibited {
    pub host: String,
    pub ip: IpAddr,
    pub class: AddressClass,
}

impl std::fmt::Display for Prohibited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resolves to {}, a {} address, which this run may not reach",
            self.host, self.ip, self.class
        )
    }
}

impl std::error::Error for Prohibited {}

#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: AddressPolicy,
}

impl GuardedResolver {
    pub fn new(policy: AddressPolicy) -> GuardedResolver {
        GuardedResolver { policy }
    }
}

type Resolving =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, std::io::Error>> + Send>>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            resolve_checked(&policy, name.as_str())
                .await
                .map(Vec::into_iter)
        })
    }
}

/// `host`'s addresses, if the policy allows every one of them. One refused address refuses
/// the name: a name that mixes public and private answers is not one to trust with the token.
async fn resolve_checked(policy: &AddressPolicy, host: &str) -> std::io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
    for addr in &addrs {
        if let Err(class) = policy.check(addr.ip()) {
            let refused = Prohibited {
                host: host.to_string(),
                ip: addr.ip(),
                class,
            };
            tracing::warn!(target: "sandbox", "refused to connect: {refused}");
            return Err(std::io::Error::other(refused));
        }
    }
    Ok(addrs)
}

/// Checks where `host` (a name or an IP literal) resolves to from here, for a connection the
/// host does not resolve itself (through a proxy). Nothing to check for an unrestricted policy.
pub async fn check_name(policy: &AddressPolicy, host: &str) -> std::io::Result<()> {
    if !policy.restricted {
        return Ok(());
    }
    resolve_checked(policy, host.trim_matches(['[', ']']))
        .await
        .map(|_| ())
}

/// The [`Prohibited`] somewhere in `e`'s chain.
pub fn prohibited_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Prohibited> {
    super::cause(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_service::Service;

    #[tokio::test]
    async fn localhost_is_refused_when_loopback_is_not_allowed() {
        let mut strict = GuardedResolver::new(AddressPolicy::public_and(&[]));
        let err = strict.call("localhost".parse().unwrap()).await.unwrap_err();
        let p = prohibited_cause(&err).expect("refused as prohibited");
        assert_eq!(p.class, AddressClass::Loopback);
        let mut local = GuardedResolver::new(AddressPolicy::public_and(&[AddressClass::Loopback]));
        assert!(local.call("localhost".parse().unwrap()).await.is_ok());
    }
}
