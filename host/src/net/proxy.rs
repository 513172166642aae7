//! Outbound proxies, as Go's `net/http` and grpc-go choose them (so a manifest written for
//! the Go connector behaves the same): `HTTPS_PROXY` for `https` destinations, `HTTP_PROXY`
//! for `http` ones (upper case first, then lower case), `NO_PROXY` for the exceptions, and
//! never a proxy for `localhost` or a loopback address.
//!
//! `NO_PROXY` is a comma-separated list: `*` (no proxy at all), domain names (`example.com`
//! matches it and its subdomains, `.example.com` only subdomains), IP addresses and CIDR
//! ranges, each optionally with `:port`.
//!
//! The proxy is the host's business: connections go through an HTTP `CONNECT` tunnel to the
//! destination (plain `http` destinations too), TLS runs end to end inside it, and what is
//! sent (and, for Segment, the sandbox's origin check) is exactly what it would be without a
//! proxy. Proxy credentials come from the proxy URL (`http://user:password@proxy:3128`) and
//! go in `Proxy-Authorization`, to the proxy only.

use super::addresses::AddressPolicy;
use super::resolve::{GuardedResolver, check_name};
use anyhow::{Context as _, anyhow};
use base64::Engine as _;
use http::Uri;
use hyper_util::rt::TokioIo;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HTTP proxy: where it listens and its credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyServer {
    pub host: String,
    pub port: u16,
    /// `Basic <base64(user:password)>`, from the proxy URL's user info.
    authorization: Option<String>,
}

impl std::fmt::Debug for ProxyServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyServer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "credentials",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl ProxyServer {
    /// Parses a proxy setting: `http://[user:password@]host[:port]`, or the same without
    /// the scheme (Go reads a bare `host:port` as `http://`).
    pub fn parse(value: &str) -> anyhow::Result<ProxyServer> {
        let value = value.trim();
        let with_scheme = if value.contains("://") {
            value.to_string()
        } else {
            format!("http://{value}")
        };
        let url = url::Url::parse(&with_scheme)
            .map_err(|e| anyhow!("the proxy {} is not a URL: {e}", redact(value)))?;
        if url.scheme() != "http" {
            return Err(anyhow!(
                "the proxy {} uses {}://; only http:// proxies (with CONNECT) are supported",
                redact(value),
                url.scheme()
            ));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| anyhow!("the proxy {} has no host", redact(value)))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let authorization = (!url.username().is_empty()).then(|| {
            let user = percent_decode(url.username());
            let password = percent_decode(url.password().unwrap_or_default());
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{user}:{password}").as_bytes());
            format!("Basic {token}")
        });
        Ok(ProxyServer {
            host,
            port: url.port().unwrap_or(80),
            authorization,
        })
    }

    /// `host:port` for a connect call.
    fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A proxy setting for messages: the credentials left out.
fn redact(value: &str) -> String {
    match value.rsplit_once('@') {
        Some((before, host)) => {
            let scheme = before.split_once("://").map_or("", |(s, _)| s);
            if scheme.is_empty() {
                format!("<credentials>@{host}")
            } else {
                format!("{scheme}://<credentials>@{host}")
            }
        }
        None => value.to_string(),
    }
}

/// One `NO_PROXY` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Exception {
    All,
    /// A domain and its subdomains, or (`subdomains_only`) only its subdomains.
    Domain {
        name: String,
        subdomains_only: bool,
        port: Option<u16>,
    },
    Ip {
        addr: IpAddr,
        port: Option<u16>,
    },
    Cidr {
        net: IpAddr,
        bits: u8,
    },
}

fn parse_exception(entry: &str) -> Option<Exception> {
    let entry = entry.trim().to_ascii_lowercase();
    if entry.is_empty() {
        return None;
    }
    if entry == "*" {
        return Some(Exception::All);
    }
    if let Some((net, bits)) = entry.split_once('/') {
        let net: IpAddr = net.parse().ok()?;
        let bits: u8 = bits.parse().ok()?;
        return Some(Exception::Cidr { net, bits });
    }
    if let Ok(addr) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Some(Exception::Ip { addr, port: None });
    }
    let (host, port) = match entry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.to_string(), p.parse::<u16>().ok()),
        _ => (entry.clone(), None),
    };
    let host = host.trim_matches(['[', ']']).to_string();
    if let Ok(addr) = host.parse::<IpAddr>() {
        return Some(Exception::Ip { addr, port });
    }
    let (name, subdomains_only) = match host.strip_prefix("*.").or(host.strip_prefix('.')) {
        Some(rest) => (rest.to_string(), true),
        None => (host, false),
    };
    Some(Exception::Domain {
        name,
        subdomains_only,
        port,
    })
}

fn in_cidr(addr: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The proxy settings of the process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies {
    https: Option<ProxyServer>,
    http: Option<ProxyServer>,
    exceptions: Vec<Exception>,
}

impl Proxies {
    /// No proxy at all.
    pub fn none() -> Proxies {
        Proxies::default()
    }

    /// From the environment: `HTTPS_PROXY`/`https_proxy`, `HTTP_PROXY`/`http_proxy`,
    /// `NO_PROXY`/`no_proxy`.
    pub fn from_env() -> anyhow::Result<Proxies> {
        let var = |upper: &str, lower: &str| {
            std::env::var(upper)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .or_else(|| std::env::var(lower).ok().filter(|v| !v.trim().is_empty()))
        };
        Proxies::from_values(
            var("HTTPS_PROXY", "https_proxy").as_deref(),
            var("HTTP_PROXY", "http_proxy").as_deref(),
            var("NO_PROXY", "no_proxy").as_deref(),
        )
    }

    /// From explicit values (what the variables would hold).
    pub fn from_values(
        https: Option<&str>,
        http: Option<&str>,
        no_proxy: Option<&str>,
    ) -> anyhow::Result<Proxies> {
        Ok(Proxies {
            https: https
                .map(ProxyServer::parse)
                .transpose()
                .context("HTTPS_PROXY")?,
            http: http
                .map(ProxyServer::parse)
                .transpose()
                .context("HTTP_PROXY")?,
            exceptions: no_proxy
                .unwrap_or_default()
                .split(',')
                .filter_map(parse_exception)
                .collect(),
        })
    }

    /// The process's settings, read from the environment once. A malformed setting is
    /// reported once and means no proxy (the check at start-up, [`Proxies::from_env`],
    /// refuses to run with one).
    pub fn global() -> Arc<Proxies> {
        static GLOBAL: OnceLock<Arc<Proxies>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| match Proxies::from_env() {
                Ok(p) => Arc::new(p),
                Err(e) => {
                    tracing::warn!("ignoring the proxy settings: {e:#}");
                    Arc::new(Proxies::none())
                }
            })
            .clone()
    }

    pub fn is_empty(&self) -> bool {
        self.https.is_none() && self.http.is_none()
    }

    /// The proxy for a destination (`scheme`, `host`, `port`), if one applies.
    pub fn for_destination(&self, scheme: &str, host: &str, port: u16) -> Option<&ProxyServer> {
        let proxy = match scheme {
            "https" => self.https.as_ref(),
            "http" => self.http.as_ref(),
            _ => None,
        }?;
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        // Go never proxies these.
        if host == "localhost" {
            return None;
        }
        let ip = host.parse::<IpAddr>().ok();
        if ip.is_some_and(|ip| ip.is_loopback()) {
            return None;
        }
        let excepted = self.exceptions.iter().any(|e| match e {
            Exception::All => true,
            Exception::Ip { addr, port: p } => Some(*addr) == ip && p.is_none_or(|p| p == port),
            Exception::Cidr { net, bits } => ip.is_some_and(|ip| in_cidr(ip, *net, *bits)),
            Exception::Domain {
                name,
                subdomains_only,
                port: p,
            } => {
                let sub = host.ends_with(&format!(".{name}"));
                let matches = if *subdomains_only {
                    sub
                } else {
                    sub || host == *name
                };
                matches && p.is_none_or(|p| p == port)
            }
        });
        (!excepted).then_some(proxy)
    }

    /// The proxy for `uri`, if one applies.
    pub fn for_uri(&self, uri: &Uri) -> Option<&ProxyServer> {
        let scheme = uri.scheme_str()?;
        let host = uri.host()?;
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        self.for_destination(scheme, host, port)
    }

    /// The proxy URL for reqwest (credentials included), if one applies to `url`.
    pub fn reqwest_proxy(self: &Arc<Self>) -> reqwest::Proxy {
        let proxies = self.clone();
        reqwest::Proxy::custom(move |url| {
            let host = url.host_str()?;
            let port = url.port_or_known_default()?;
            let p = proxies.for_destination(url.scheme(), host, port)?;
            let mut proxy = url::Url::parse(&format!("http://{}", p.address())).ok()?;
            if let Some(auth) = &p.authorization {
                // reqwest takes the credentials from the URL.
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim_start_matches("Basic "))
                    .ok()?;
                let decoded = String::from_utf8(decoded).ok()?;
                let (user, password) = decoded.split_once(':')?;
                proxy.set_username(user).ok()?;
                proxy.set_password(Some(password)).ok()?;
            }
            Some(proxy)
        })
    }
}

/// How long the proxy may take to open the tunnel.
const TUNNEL_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest proxy answer head read.
const MAX_HEAD: usize = 16 * 1024;

/// Opens a `CONNECT` tunnel through `proxy` to `host:port`: the stream, ready for TLS to the
/// destination. Errors name the proxy and its answer.
pub async fn tunnel(
    proxy: &ProxyServer,
    host: &str,
    port: u16,
    connect_timeout: Duration,
) -> std::io::Result<TcpStream> {
    let io_error = |msg: String| std::io::Error::other(msg);
    let mut stream = tokio::time::timeout(connect_timeout, TcpStream::connect(proxy.address()))
        .await
        .map_err(|_| {
            io_error(format!(
                "connecting to the proxy {} timed out",
                proxy.address()
            ))
        })?
        .map_err(|e| {
            io_error(format!(
                "cannot connect to the proxy {}: {e}",
                proxy.address()
            ))
        })?;
    let _ = stream.set_nodelay(true);
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = &proxy.authorization {
        request.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    request.push_str("\r\n");
    let handshake = async {
        stream.write_all(request.as_bytes()).await?;
        // Read the answer's head byte by byte: nothing of the tunnel may be consumed.
        let mut head = Vec::with_capacity(256);
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await? == 0 {
                return Err(io_error(format!(
                    "the proxy {} closed the connection before answering CONNECT",
                    proxy.address()
                )));
            }
            head.push(byte[0]);
            if head.len() > MAX_HEAD {
                return Err(io_error(format!(
                    "the proxy {} sent an over-long answer",
                    proxy.address()
                )));
            }
        }
        let status_line = String::from_utf8_lossy(&head);
        let status_line = status_line.lines().next().unwrap_or_default().to_string();
        let code = status_line.split_whitespace().nth(1).unwrap_or_default();
        if !code.starts_with('2') {
            return Err(io_error(format!(
                "the proxy {} refused to connect to {authority}: {status_line}",
                proxy.address()
            )));
        }
        Ok(())
    };
    tokio::time::timeout(TUNNEL_TIMEOUT, handshake)
        .await
        .map_err(|_| {
            io_error(format!(
                "the proxy {} did not answer CONNECT",
                proxy.address()
            ))
        })??;
    Ok(stream)
}

/// A connector (a tower service from URI to connection) that goes through the proxy the
/// settings name for each destination, and straight there otherwise. TLS, when the
/// destination needs it, is the caller's (hyper-rustls, tonic).
#[derive(Clone)]
pub struct ProxyConnector {
    proxies: Arc<Proxies>,
    direct: hyper_util::client::legacy::connect::HttpConnector<GuardedResolver>,
    connect_timeout: Duration,
    /// Where connections may go (checked on the resolved addresses).
    addresses: AddressPolicy,
}

impl ProxyConnector {
    pub fn new(proxies: Arc<Proxies>, connect_timeout: Duration) -> ProxyConnector {
        ProxyConnector::guarded(proxies, connect_timeout, AddressPolicy::any())
    }

    /// A connector whose connections reach only what `addresses` allows: direct ones are
    /// checked on the addresses they connect to; through a proxy (which resolves the name
    /// itself) the name is resolved and checked here first.
    pub fn guarded(
        proxies: Arc<Proxies>,
        connect_timeout: Duration,
        addresses: AddressPolicy,
    ) -> ProxyConnector {
        let mut direct = hyper_util::client::legacy::connect::HttpConnector::new_with_resolver(
            GuardedResolver::new(addresses.clone()),
        );
        // The scheme decides TLS, not this connector.
        direct.enforce_http(false);
        direct.set_connect_timeout(Some(connect_timeout));
        direct.set_nodelay(true);
        ProxyConnector {
            proxies,
            direct,
            connect_timeout,
            addresses,
        }
    }
}

impl tower_service::Service<Uri> for ProxyConnector {
    type Response = TokioIo<TcpStream>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.direct.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        match self.proxies.for_uri(&uri).cloned() {
            None => {
                let fut = self.direct.call(uri);
                Box::pin(async move { fut.await.map_err(Into::into) })
            }
            Some(proxy) => {
                let timeout = self.connect_timeout;
                let addresses = self.addresses.clone();
                Box::pin(async move {
                    let host = uri.host().unwrap_or_default().to_string();
                    check_name(&addresses, &host).await?;
                    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
                        Some("https") => 443,
                        _ => 80,
                    });
                    tracing::debug!(proxy = %proxy.address(), destination = %format!("{host}:{port}"), "connecting through the proxy");
                    let stream =
                        tunnel(&proxy, host.trim_matches(['[', ']']), port, timeout).await?;
                    Ok(TokioIo::new(stream))
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(no_proxy: &str) -> Proxies {
        Proxies::from_values(
            Some("http://proxy.corp:3128"),
            Some("proxy.corp:8080"),
            Some(no_proxy),
        )
        .unwrap()
    }

    #[test]
    fn the_scheme_chooses_the_variable() {
        let p = proxies("");
        assert_eq!(
            p.for_destination("https", "api.segmentapis.com", 443)
                .unwrap()
                .port,
            3128
        );
        assert_eq!(
            p.for_destination("http", "example.com", 80).unwrap().port,
            8080
        );
        // HTTPS_PROXY alone says nothing about http destinations, and the other way round.
        let only_https = Proxies::from_values(Some("p:1"), None, None).unwrap();
        assert!(
            only_https
                .for_destination("http", "example.com", 80)
                .is_none()
        );
    }

    #[test]
    fn loopback_and_localhost_are_never_proxied() {
        let p = proxies("");
        for host in ["localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"] {
            assert!(p.for_destination("https", host, 443).is_none(), "{host}");
        }
    }

    #[test]
    fn no_proxy_as_go_reads_it() {
        let p = proxies("example.com, .internal.corp,10.0.0.0/8, 192.168.1.7 ,api.test:8443");
        let via = |host: &str, port: u16| p.for_destination("https", host, port).is_some();
        // A domain: itself and its subdomains.
        assert!(!via("example.com", 443) && !via("a.b.example.com", 443));
        assert!(via("notexample.com", 443));
        // A leading dot: subdomains only.
        assert!(!via("x.internal.corp", 443) && via("internal.corp", 443));
        // IPs and ranges.
        assert!(!via("10.1.2.3", 443) && via("11.1.2.3", 443));
        assert!(!via("192.168.1.7", 443) && via("192.168.1.8", 443));
        // With a port: that port only.
        assert!(!via("api.test", 8443) && via("api.test", 443));
        // Case does not matter.
        assert!(!via("EXAMPLE.com", 443));
        // `*`: nothing is proxied.
        assert!(
            proxies("*")
                .for_destination("https", "example.com", 443)
                .is_none()
        );
    }

    #[test]
    fn proxy_urls_and_their_credentials() {
        let p = ProxyServer::parse("http://alice:s%40cret@proxy.corp:3128").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.corp", 3128));
        let expected = base64::engine::general_purpose::STANDARD.encode("alice:s@cret");
        assert_eq!(
            p.authorization.as_deref(),
            Some(format!("Basic {expected}").as_str())
        );
        assert!(!format!("{p:?}").contains("cret"));
        assert_eq!(ProxyServer::parse("proxy.corp").unwrap().port, 80);
        let e = ProxyServer::parse("socks5://u:secretpw@p:1080").unwrap_err();
        assert!(e.to_string().contains("only http://"), "{e}");
        assert!(!e.to_string().contains("secretpw"), "{e}");
        assert!(Proxies::from_values(Some("http://"), None, None).is_err());
    }

    /// Through a proxy the proxy resolves the name; a restricted connector resolves it first
    /// and refuses a private answer before the proxy is asked anything.
    #[tokio::test]
    async fn a_restricted_connector_checks_the_name_before_the_proxy_tunnels() {
        use crate::net::addresses::{AddressClass, AddressPolicy};
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tower_service::Service;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = format!("http://{}", listener.local_addr().unwrap());
        let asked = Arc::new(AtomicUsize::new(0));
        let count = asked.clone();
        tokio::spawn(async move {
            while let Ok(_conn) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        let proxies = Arc::new(Proxies::from_values(None, Some(&proxy), None).unwrap());
        // A private destination (loopback ones never go through a proxy).
        let uri: Uri = "http://10.255.255.1:8080/".parse().unwrap();
        assert!(proxies.for_uri(&uri).is_some());
        let mut strict = ProxyConnector::guarded(
            proxies.clone(),
            Duration::from_secs(5),
            AddressPolicy::public_and(&[]),
        );
        let Err(err) = strict.call(uri).await else {
            panic!("a private destination was let through");
        };
        let refused =
            crate::net::resolve::prohibited_cause(err.as_ref()).unwrap_or_else(|| panic!("{err}"));
        assert_eq!(refused.class, AddressClass::Private);
        assert_eq!(asked.load(Ordering::SeqCst), 0, "the proxy was not asked");
    }
}
