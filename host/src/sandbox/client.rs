//! The HTTP client behind the sandbox: one per run (a tenant's sync or task, never shared
//! between tenants), keeping connections to Segment open between requests so a sync does not
//! pay a TCP and TLS handshake for every one. Over TLS it offers HTTP/2 (ALPN) and, where the
//! server takes it, sends the run's requests as streams of one connection; otherwise HTTP/1.1
//! with one connection per request in flight. Trust, proxies and TCP: see [`super::connect`].

use crate::net::addresses::AddressPolicy;
use crate::net::resolve::prohibited_cause;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;
use wasmtime_wasi_http::Error;

pub type PooledClient = Client<super::connect::SegmentConnector, Full<Bytes>>;

/// Idle connections are closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest response head (status line and headers) read from a server; a larger one is
/// refused as `HttpResponseHeaderSectionSize` (hyper's own default is about 400 KiB). hyper
/// checks its read buffer only while the head is incomplete, and one read adds up to the
/// buffer's size, so the buffer is half of this: heads under 32 KiB always pass, heads over
/// 64 KiB never do. Over HTTP/2 the host measures the header list itself ([`accept_head`]).
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// A run's client, connecting only where `addresses` allows.
pub fn pooled(
    connect_timeout: Duration,
    max_idle: usize,
    addresses: AddressPolicy,
) -> PooledClient {
    pooled_with(
        super::connect::connector(connect_timeout, addresses),
        max_idle,
    )
}

fn pooled_with(https: super::connect::SegmentConnector, max_idle: usize) -> PooledClient {
    Client::builder(TokioExecutor::new())
        .http1_max_buf_size(MAX_RESPONSE_HEAD / 2)
        // Over HTTP/2 the header list size is announced to the server. A list over it is
        // refused by the protocol layer with an error that says nothing of its size, so the
        // announced bound is twice ours and [`accept_head`] applies ours.
        .http2_max_header_list_size(2 * MAX_RESPONSE_HEAD as u32)
        .pool_idle_timeout(IDLE_TIMEOUT)
        .pool_max_idle_per_host(max_idle)
        .build(https)
}

/// A response whose head is within [`MAX_RESPONSE_HEAD`] (counted as HTTP/2 counts a header
/// list: name, value and 32 bytes a field); over HTTP/1.1 hyper's buffer limit has already
/// seen to it.
pub fn accept_head<B>(response: http::Response<B>) -> Result<http::Response<B>, Error> {
    if response.version() != http::Version::HTTP_2 {
        return Ok(response);
    }
    let size: usize = response
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum();
    if size > MAX_RESPONSE_HEAD {
        return Err(head_too_large());
    }
    Ok(response)
}

fn head_too_large() -> Error {
    tracing::warn!(target: "sandbox", "the server's response head is larger than {} KiB; refused", MAX_RESPONSE_HEAD >> 10);
    Error::HttpResponseHeaderSectionSize(Some(MAX_RESPONSE_HEAD as u32))
}

/// The hyper error somewhere in `e`'s chain.
fn hyper_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a hyper::Error> {
    e.downcast_ref::<hyper::Error>()
        .or_else(|| e.source().and_then(hyper_cause))
}

/// The guest-facing error for a failed request: certificate problems, refused destinations and
/// oversized response heads are told apart (and not retried), failures to connect are
/// `Connect` (retried), anything else a dropped connection.
pub fn error(e: hyper_util::client::legacy::Error) -> Error {
    if let Some(refused) = prohibited_cause(&e) {
        tracing::debug!(target: "sandbox", "{refused}");
        return Error::DestinationIpProhibited;
    }
    if hyper_cause(&e).is_some_and(|h| h.is_parse_too_large()) {
        return head_too_large();
    }
    // HTTP/2: the client itself reset the stream for a malformed response (or a header list
    // over the announced bound). Sending it again would get the same.
    if let Some(h2) = crate::net::cause::<h2::Error>(&e)
        && h2.is_reset()
        && h2.is_library()
        && h2.reason() == Some(h2::Reason::PROTOCOL_ERROR)
    {
        tracing::warn!(target: "sandbox", "the server's HTTP/2 response was malformed (or its head larger than {} KiB); refused", (2 * MAX_RESPONSE_HEAD) >> 10);
        return Error::HttpProtocolError;
    }
    if let Some(tls) = crate::net::cause::<rustls::Error>(&e) {
        tracing::warn!(target: "sandbox", "TLS failure: {tls}");
        return match tls {
            rustls::Error::InvalidCertificate(_) => Error::TlsCertificateError,
            _ => Error::TlsProtocolError,
        };
    }
    if e.is_connect() {
        Error::Connect(std::io::Error::other(format!("{e:#}")))
    } else {
        tracing::debug!(target: "sandbox", "request failed: {e:#}");
        Error::ConnectionTerminated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A TLS server on loopback with a self-signed certificate, which no public root trusts.
    async fn untrusted_tls_server() -> String {
        let (_, config) = crate::test_support::self_signed_server(&["127.0.0.1", "localhost"]);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://localhost:{}/",
            listener.local_addr().unwrap().port()
        );
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = acceptor.accept(socket).await;
                });
            }
        });
        url
    }

    /// A TLS server on loopback offering `alpn`, answering `/` at once and holding answers to
    /// `/together` until `together` of them are at the server at once; counts the connections
    /// it accepts.
    async fn tls_server(
        alpn: &[&[u8]],
        together: usize,
    ) -> (String, rustls::ClientConfig, Arc<AtomicUsize>) {
        let (cert, mut config) = crate::test_support::self_signed_server(&["localhost"]);
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://localhost:{}/",
            listener.local_addr().unwrap().port()
        );
        let accepted = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(tokio::sync::Barrier::new(together));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let (acceptor, barrier) = (acceptor.clone(), barrier.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: http::Request<_>| {
                        let barrier = barrier.clone();
                        async move {
                            if req.uri().path() == "/together" {
                                barrier.wait().await;
                            }
                            let mut answer =
                                http::Response::new(Full::new(Bytes::from_static(b"ok")));
                            // `/head/N`: a response head of N headers of 1 KiB.
                            let n = req.uri().path().strip_prefix("/head/");
                            let value = http::HeaderValue::from_bytes(&[b'v'; 1024]).unwrap();
                            for i in 0..n.and_then(|n| n.parse().ok()).unwrap_or(0) {
                                let name = format!("x-filler-{i}");
                                let name = http::HeaderName::try_from(name).unwrap();
                                answer.headers_mut().insert(name, value.clone());
                            }
                            Ok::<_, std::convert::Infallible>(answer)
                        }
                    });
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    let io = hyper_util::rt::TokioIo::new(tls);
                    let _ = if h2 {
                        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await
                    } else {
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await
                    };
                });
            }
        });
        (url, client, accepted)
    }

    /// A GET of `url` with no body.
    fn get(url: &str) -> http::Request<Full<Bytes>> {
        http::Request::get(url)
            .body(Full::new(Bytes::new()))
            .unwrap()
    }

    /// Sends `n` GETs to `/together` at once; the versions they were answered with.
    async fn at_once(client: &PooledClient, url: &str, n: usize) -> Vec<http::Version> {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (client, url) = (client.clone(), format!("{url}together"));
            set.spawn(async move { client.request(get(&url)).await.unwrap().version() });
        }
        let all = tokio::time::timeout(Duration::from_secs(20), set.join_all());
        all.await.expect("the requests were at the server together")
    }

    /// A client trusting what `tls` trusts, keeping up to `idle` connections.
    fn trusting(tls: rustls::ClientConfig, idle: usize) -> PooledClient {
        let connector = super::super::connect::connector_with(
            tls,
            Duration::from_secs(5),
            AddressPolicy::any(),
        );
        pooled_with(connector, idle)
    }

    /// The version `url` answers a first GET with (which opens the connection).
    async fn first_version(client: &PooledClient, url: &str) -> http::Version {
        client.request(get(url)).await.unwrap().version()
    }

    #[tokio::test]
    async fn requests_share_one_http2_connection_where_the_server_offers_it() {
        let (url, tls, accepted) = tls_server(&[b"h2", b"http/1.1"], 8).await;
        let client = trusting(tls, 8);
        // The first request opens the connection; then eight streams are on it at once (the
        // server answers none until all eight are there).
        assert_eq!(first_version(&client, &url).await, http::Version::HTTP_2);
        let versions = at_once(&client, &url, 8).await;
        assert!(
            versions.iter().all(|v| *v == http::Version::HTTP_2),
            "{versions:?}"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection");
    }

    /// The outcome of a GET of `path` (relative) on `url`, as the guest would get it.
    async fn outcome(client: &PooledClient, url: &str, path: &str) -> Result<http::Version, Error> {
        let answer = client.request(get(&format!("{url}{path}"))).await;
        answer
            .map_err(error)
            .and_then(accept_head)
            .map(|r| r.version())
    }

    /// An oversized response head is reported as such over HTTP/2 as over HTTP/1.1 (not as a
    /// dropped connection, which would be sent again); one past what HTTP/2 was told to accept
    /// is a protocol error, not sent again either.
    #[tokio::test]
    async fn an_oversized_response_head_is_refused_as_such_over_either_version() {
        let over = MAX_RESPONSE_HEAD / 1024 + 8;
        for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
            let (url, tls, _) = tls_server(&[alpn], 1).await;
            let client = trusting(tls, 1);
            let fine = outcome(&client, &url, "head/16").await;
            assert!(fine.is_ok(), "{fine:?}");
            let refused = outcome(&client, &url, &format!("head/{over}")).await;
            assert!(
                matches!(refused, Err(Error::HttpResponseHeaderSectionSize(Some(n))) if n as usize == MAX_RESPONSE_HEAD),
                "{}: {refused:?}",
                String::from_utf8_lossy(alpn)
            );
        }
        let (url, tls, _) = tls_server(&[b"h2"], 1).await;
        let client = trusting(tls, 1);
        let far_over = 2 * MAX_RESPONSE_HEAD / 1024 + 8;
        let refused = outcome(&client, &url, &format!("head/{far_over}")).await;
        assert!(
            matches!(refused, Err(Error::HttpProtocolError)),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn http1_over_tls_when_the_server_offers_only_that() {
        let (url, tls, accepted) = tls_server(&[b"http/1.1"], 4).await;
        let client = trusting(tls, 4);
        assert_eq!(first_version(&client, &url).await, http::Version::HTTP_11);
        let versions = at_once(&client, &url, 4).await;
        assert!(
            versions.iter().all(|v| *v == http::Version::HTTP_11),
            "{versions:?}"
        );
        // The first connection is used again, and one more opened for each other request.
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_certificate_no_trusted_root_signed_is_refused_as_such() {
        let url = untrusted_tls_server().await;
        let client = pooled(Duration::from_secs(5), 1, AddressPolicy::any());
        let e = client.request(get(&url)).await.unwrap_err();
        assert!(matches!(error(e), Error::TlsCertificateError));
    }
}
