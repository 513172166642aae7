//! The `wasi:http` hooks of one store: where a guest's request is admitted (method, origin
//! allowlist, address policy for IP literals, request budget; decided synchronously, so a
//! denied request never reaches the network) and handed to [`super::send`].

use super::methods;
use super::network::RunNetwork;
use super::origin::Origin;
use super::send::{Sent, send};
use super::stats::NetStats;
use crate::engine::limits::MemoryAccount;
use http::{HeaderName, Request};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpHooks,
};

/// The `wasi:http` hooks of one store.
pub struct SandboxHooks {
    net: Arc<RunNetwork>,
    alive: Arc<AtomicBool>,
    /// The instance's memory, which the response headers it keeps are charged to.
    memory: Arc<MemoryAccount>,
}

impl SandboxHooks {
    pub fn new(net: Arc<RunNetwork>, memory: Arc<MemoryAccount>) -> SandboxHooks {
        SandboxHooks {
            net,
            alive: Arc::new(AtomicBool::new(true)),
            memory,
        }
    }
}

impl SandboxHooks {
    /// The instance is going away: nothing it asked for may be sent from now on, even a request
    /// still queued for an in-flight slot that the teardown is about to free. Call this before
    /// the instance's resources (which hold those slots) are dropped.
    pub fn close(&self) {
        self.alive.store(false, Ordering::SeqCst);
    }
}

impl Drop for SandboxHooks {
    fn drop(&mut self) {
        self.close();
    }
}

fn forbidden(name: &HeaderName) -> bool {
    *name == http::header::AUTHORIZATION
        || *name == http::header::PROXY_AUTHORIZATION
        || DEFAULT_FORBIDDEN_HEADERS.contains(name)
}

impl WasiHttpHooks for SandboxHooks {
    fn is_forbidden_header(&mut self, name: &HeaderName) -> bool {
        forbidden(name)
    }

    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        Arc::new(forbidden)
    }

    /// The guest must say which scheme it wants; nothing is assumed.
    fn default_scheme(&mut self) -> Option<http::uri::Scheme> {
        None
    }

    /// Each outgoing body buffers one write on the host; keeping writes small bounds what
    /// bodies of requests waiting for a slot can make the host hold.
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        64 * 1024
    }

    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        let net = self.net.clone();
        // Decided here, synchronously: a denied request never reaches the network.
        if !methods::allowed(request.method()) {
            NetStats::add(&net.stats.denied, 1);
            tracing::warn!(target: "sandbox", "denied a {} request: only {} are allowed", request.method(), methods::ALLOWED.map(|m| m.to_string()).join(", "));
            return Box::new(async { Err(Error::HttpRequestMethodInvalid) });
        }
        let origin = match Origin::of_uri(request.uri()) {
            Some(origin) if net.policy.allows(&origin) => origin,
            other => {
                NetStats::add(&net.stats.denied, 1);
                let target = other.map_or_else(
                    || "a URL without a usable origin".to_string(),
                    |o| o.to_string(),
                );
                tracing::warn!(target: "sandbox", "denied a request to {target}: not on the allowlist");
                return Box::new(async { Err(Error::HttpRequestDenied) });
            }
        };
        // Names are checked when they are resolved; an IP literal is never resolved.
        if let Err((ip, class)) = net.policy.addresses.check_literal(&origin.host) {
            NetStats::add(&net.stats.denied, 1);
            tracing::warn!(target: "sandbox", "denied a request to {origin}: {ip} is a {class} address, which this run may not reach");
            return Box::new(async { Err(Error::DestinationIpProhibited) });
        }
        let n = net.started.fetch_add(1, Ordering::Relaxed) + 1;
        if net.policy.request_budget.is_some_and(|budget| n > budget) {
            NetStats::add(&net.stats.denied, 1);
            tracing::warn!(target: "sandbox", "denied a request: the run's budget of {} requests is spent", net.policy.request_budget.unwrap_or(0));
            return Box::new(async { Err(Error::ConnectionLimitReached) });
        }
        NetStats::add(&net.stats.requests, 1);
        let options = net.policy.clamp(options);
        // telemetry: one span per Segment request
        let span = crate::telemetry::request_span(request.method().as_str(), request.uri().path());
        Box::new(tracing::Instrument::instrument(
            send(
                net,
                self.alive.clone(),
                self.memory.clone(),
                request,
                origin,
                options,
            ),
            span,
        ))
    }
}
