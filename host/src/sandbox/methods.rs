//! The HTTP methods a component may use: what a REST API needs, nothing else. `TRACE` would
//! have the server echo the request (with the host's `Authorization`), `CONNECT` would open a
//! tunnel, and `OPTIONS` or made-up methods have no use against the Segment API; wasmtime-wasi-http
//! passes any of them, so the sandbox refuses them before anything is sent.

use http::Method;

pub const ALLOWED: [Method; 6] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

pub fn allowed(method: &Method) -> bool {
    ALLOWED.contains(method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_rest_methods_pass() {
        for m in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] {
            assert!(allowed(&m.parse().unwrap()), "{m}");
        }
        for m in ["TRACE", "CONNECT", "OPTIONS", "PROPFIND", "get", "TRACK"] {
            assert!(!allowed(&m.parse().unwrap()), "{m}");
        }
    }
}
