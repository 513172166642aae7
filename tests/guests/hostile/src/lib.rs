//! A hostile `baton:connector` component.
//!
//! Every export except `metadata` first reads `config("attack")` and performs that attack; with
//! no attack (or `none`) it is a trivial, well-behaved connector (empty pages, `Ok`). An attack
//! that survives reports what it observed through the return value: `validate` and most other
//! calls return `ConnectorError::Internal(report)`, `list-resources` returns a page whose one
//! resource carries the report as its display name (and as a warning).
//!
//! Reports are lines of `key: value` text, meant to be read by the tests in
//! `tests/e2e/hostile.rs`.
//!
//! Attacks (settings in parentheses):
//! * `spin`: an endless loop.
//! * `hang`: a GET to a server that never answers (`target`), then block on the response.
//! * `spin-after-hang`: start that GET, then spin (polling the response now and then).
//! * `memory-bomb`: allocate and touch 16 MiB chunks until something gives.
//! * `recursion`: deep recursion with a 1 KiB buffer per frame (the shadow stack in linear
//!   memory); `recursion-locals`: deep recursion whose frames live in wasm locals (the engine's
//!   own stack).
//! * `fetch`: GET `target` and report the status or the error code.
//! * `absolute-form`: requests whose authority is the allowed one (`allowed-authority`) but
//!   whose path is an absolute URL (`target`), a protocol-relative path, or whose authority
//!   smuggles the other host through user info.
//! * `set-authorization`: try to set `authorization`, `proxy-authorization` and `host` every way
//!   there is, then GET `target`.
//! * `read-token`: look everywhere a guest could find the host's token.
//! * `huge-response`: GET `target` and read the whole body.
//! * `flood`: start `count` GETs to `target` before waiting for any, then wait for them all
//!   (for whichever is ready; with `order` = `in-order` or `reverse`, for each in turn).
//! * `write-marker`: fill 8 MiB (heap), a static and a stack buffer with `marker`, leak them.
//! * `scan-memory`: scan all of linear memory, and `grow-pages` freshly grown pages, for
//!   `marker`.
//! * `marker-selftest`: `write-marker` then `scan-memory` in the same instance (the scanner's
//!   positive control).
//! * `log-flood`: `count` (100 000) log lines of `size` (100 KiB) bytes.
//! * `session-flood`: session values of doubling size until refused, then many small keys.
//! * `fields-flood`: `count` header maps of `size` bytes each, kept alive: memory the host holds
//!   for the guest outside its linear memory.
//! * `body-flood`: `count` POSTs to `target` with bodies of `size` bytes, all written before
//!   waiting for any answer, then wait for the first.
//! * `methods`: a request to `target` with each of TRACE, CONNECT, OPTIONS and a made-up
//!   method, and GET as the control; reports each outcome.
//! * `keep-headers`: GET `target` up to `count` times, keeping every response (and so its
//!   headers, held by the host) alive; reports how many it got and the first error.
//! * `read-token` reads up to `keep` (4096) bytes of the body.

#![allow(clippy::missing_safety_doc)]

wit_bindgen::generate!({
    path: "../../../wit",
    world: "baton-connector",
});

use baton::connector::host;
use baton::connector::types::*;
use core::hint::black_box;
use exports::baton::connector::connector::Guest;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, FutureIncomingResponse, IncomingResponse, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;

struct Hostile;

export!(Hostile);

/// What an attack that survived has to say.
enum Outcome {
    /// Nothing to report; behave like a well-behaved connector.
    Quiet,
    Report(String),
}

fn cfg(key: &str) -> String {
    host::config(key).unwrap_or_default()
}

fn cfg_num(key: &str, default: u64) -> u64 {
    host::config(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn attack() -> Outcome {
    let name = cfg("attack");
    match name.as_str() {
        "" | "none" => Outcome::Quiet,
        "spin" => spin(),
        "hang" => hang(),
        "spin-after-hang" => spin_after_hang(),
        "memory-bomb" => memory_bomb(),
        "recursion" => recursion(),
        "recursion-locals" => recursion_locals(),
        "fetch" => Outcome::Report(fetch(&cfg("target"))),
        "absolute-form" => absolute_form(),
        "set-authorization" => set_authorization(),
        "read-token" => read_token(),
        "huge-response" => huge_response(),
        "flood" => flood(),
        "write-marker" => {
            write_marker();
            Outcome::Quiet
        }
        "scan-memory" => scan_memory(),
        "marker-selftest" => {
            write_marker();
            scan_memory()
        }
        "log-flood" => log_flood(),
        "fields-flood" => fields_flood(),
        "body-flood" => body_flood(),
        "session-flood" => session_flood(),
        "methods" => methods(),
        "keep-headers" => keep_headers(),
        other => Outcome::Report(format!("unknown attack {other:?}")),
    }
}

/// The outcome as a `Result` for calls that return no data.
fn outcome<T>(ok: impl FnOnce() -> T) -> Result<T, ConnectorError> {
    match attack() {
        Outcome::Quiet => Ok(ok()),
        Outcome::Report(report) => Err(ConnectorError::Internal(report)),
    }
}

impl Guest for Hostile {
    fn metadata() -> ConnectorMetadata {
        ConnectorMetadata {
            display_name: "Hostile".into(),
            description: "A component that attacks its host, for tests".into(),
            help_url: String::new(),
            capabilities: vec![Capability::Sync],
            resource_type_capabilities: vec![],
            account_creation_schema: vec![],
        }
    }

    fn validate() -> Result<(), ConnectorError> {
        outcome(|| ())
    }

    fn resource_types() -> Result<Vec<ResourceType>, ConnectorError> {
        outcome(Vec::new)
    }

    fn list_resources(
        resource_type: String,
        _parent: Option<ResourceId>,
        _page_token: String,
    ) -> Result<ResourcePage, ConnectorError> {
        let items = match attack() {
            Outcome::Quiet => return Ok(page(vec![], vec![])),
            Outcome::Report(report) => vec![Resource {
                id: ResourceId {
                    resource_type,
                    resource: "report".into(),
                },
                parent: None,
                display_name: report,
                description: String::new(),
                traits: vec![],
                profile: vec![],
                status: ResourceStatus::Unspecified,
                child_resource_types: vec![],
                hints: SyncHints::empty(),
            }],
        };
        let warnings = items.iter().map(|r| r.display_name.clone()).collect();
        Ok(page(items, warnings))
    }

    fn list_entitlements(
        _resource: Resource,
        _page_token: String,
    ) -> Result<EntitlementPage, ConnectorError> {
        outcome(|| EntitlementPage {
            items: vec![],
            next_page_token: String::new(),
            warnings: vec![],
        })
    }

    fn list_grants(_resource: Resource, _page_token: String) -> Result<GrantPage, ConnectorError> {
        outcome(|| GrantPage {
            items: vec![],
            next_page_token: String::new(),
            warnings: vec![],
        })
    }

    fn grant(
        _principal: Resource,
        _entitlement: Entitlement,
    ) -> Result<GrantOutcome, ConnectorError> {
        outcome(|| GrantOutcome::AlreadyExists)
    }

    fn revoke(_grant: Grant, _principal: Resource) -> Result<RevokeOutcome, ConnectorError> {
        outcome(|| RevokeOutcome::AlreadyRevoked)
    }

    fn create_account(_account: AccountInfo) -> Result<CreateAccountOutcome, ConnectorError> {
        outcome(|| CreateAccountOutcome::AlreadyExists(None))
    }

    fn delete_resource(
        _id: ResourceId,
        _parent: Option<ResourceId>,
    ) -> Result<DeleteOutcome, ConnectorError> {
        outcome(|| DeleteOutcome::AlreadyDeleted)
    }

    fn plan(_operation: Operation) -> Result<Vec<PlannedRequest>, ConnectorError> {
        outcome(Vec::new)
    }
}

fn page(items: Vec<Resource>, warnings: Vec<String>) -> ResourcePage {
    ResourcePage {
        items,
        next_page_token: String::new(),
        warnings,
    }
}

// ---------------------------------------------------------------------------------------------
// CPU, memory, stack

fn spin() -> Outcome {
    let mut x: u64 = 0;
    loop {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

fn hang() -> Outcome {
    let future = match start_get(&cfg("target")) {
        Ok(f) => f,
        Err(e) => return Outcome::Report(format!("hang: could not start: {e}")),
    };
    // Blocks in the host until the response comes, which it never does.
    match wait(&future) {
        Ok(response) => Outcome::Report(format!("hang: got status {}", response.status())),
        Err(e) => Outcome::Report(format!("hang: error {e}")),
    }
}

fn spin_after_hang() -> Outcome {
    let future = match start_get(&cfg("target")) {
        Ok(f) => f,
        Err(e) => return Outcome::Report(format!("spin-after-hang: could not start: {e}")),
    };
    let mut x: u64 = 0;
    loop {
        x = black_box(x.wrapping_add(1));
        // Now and then look at the response (never ready), without ever blocking.
        if x.is_multiple_of(1 << 20) && future.get().is_some() {
            black_box(&future);
        }
    }
}

fn memory_bomb() -> Outcome {
    const CHUNK: usize = 16 << 20;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk: Vec<u8> = Vec::new();
        if let Err(e) = chunk.try_reserve_exact(CHUNK) {
            let total = chunks.len() * CHUNK;
            return Outcome::Report(format!(
                "memory-bomb: allocation failed after {} MiB ({e})",
                total >> 20
            ));
        }
        // Touch every page so nothing can stay lazily unmapped.
        chunk.resize(CHUNK, 0);
        for i in (0..CHUNK).step_by(4096) {
            chunk[i] = (i >> 12) as u8 | 1;
        }
        black_box(&mut chunk);
        chunks.push(chunk);
    }
}

#[inline(never)]
fn deep(depth: u64) -> u64 {
    let mut buf = [0u8; 1024];
    buf[(depth % 1024) as usize] = depth as u8;
    let buf = black_box(&mut buf);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    // An indirect call: neither inlined nor turned into a loop.
    let next: fn(u64) -> u64 = black_box(deep);
    next(depth + 1).wrapping_add(buf[(depth % 7) as usize] as u64)
}

fn recursion() -> Outcome {
    Outcome::Report(format!("recursion: returned {}", deep(0)))
}

#[inline(never)]
fn deep_locals(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return 0;
    }
    let next: fn(u64) -> u64 = black_box(deep_locals);
    next(depth + 1).wrapping_mul(3).wrapping_add(depth)
}

fn recursion_locals() -> Outcome {
    Outcome::Report(format!("recursion-locals: returned {}", deep_locals(0)))
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers

struct Target {
    scheme: Scheme,
    authority: String,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err(format!("{url:?} is not an http(s) URL"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Ok(Target {
        scheme,
        authority: authority.to_string(),
        path: path.to_string(),
    })
}

/// Builds a GET request for `url` with `headers`; errors say which step failed.
fn build_get(url: &str, headers: Fields) -> Result<OutgoingRequest, String> {
    let target = parse_url(url)?;
    let request = OutgoingRequest::new(headers);
    request
        .set_method(&Method::Get)
        .map_err(|_| "set-method refused".to_string())?;
    request
        .set_scheme(Some(&target.scheme))
        .map_err(|_| "set-scheme refused".to_string())?;
    request
        .set_authority(Some(&target.authority))
        .map_err(|_| format!("set-authority {:?} refused", target.authority))?;
    request
        .set_path_with_query(Some(&target.path))
        .map_err(|_| format!("set-path-with-query {:?} refused", target.path))?;
    Ok(request)
}

fn send(request: OutgoingRequest) -> Result<FutureIncomingResponse, String> {
    outgoing_handler::handle(request, None).map_err(|e| format!("handle: {e:?}"))
}

fn start_get(url: &str) -> Result<FutureIncomingResponse, String> {
    send(build_get(url, Fields::new())?)
}

/// Blocks until the response (or its error code) is there.
fn wait(future: &FutureIncomingResponse) -> Result<IncomingResponse, String> {
    loop {
        match future.get() {
            Some(Ok(Ok(response))) => return Ok(response),
            Some(Ok(Err(code))) => return Err(format!("{code:?}")),
            Some(Err(())) => return Err("the response was already taken".into()),
            None => future.subscribe().block(),
        }
    }
}

/// Reads the body to its end, keeping at most `keep` bytes of it.
fn read_body(response: IncomingResponse, keep: usize) -> (u64, Vec<u8>, Option<String>) {
    let body = match response.consume() {
        Ok(body) => body,
        Err(()) => return (0, vec![], Some("consume refused".into())),
    };
    let stream = match body.stream() {
        Ok(stream) => stream,
        Err(()) => return (0, vec![], Some("stream refused".into())),
    };
    let mut total = 0u64;
    let mut kept = Vec::new();
    let error = loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                total += chunk.len() as u64;
                let room = keep.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Err(StreamError::Closed) => break None,
            Err(StreamError::LastOperationFailed(e)) => {
                let code = wasip2::http::types::http_error_code(&e);
                break Some(format!(
                    "stream error: {:?} ({})",
                    code,
                    e.to_debug_string().lines().next().unwrap_or_default()
                ));
            }
        }
    };
    drop(stream);
    drop(body);
    (total, kept, error)
}

/// GET `url`: `status: 200 body-bytes: N` or `error: <code>`.
fn fetch(url: &str) -> String {
    let future = match start_get(url) {
        Ok(f) => f,
        Err(e) => return format!("fetch {url}: error: {e}"),
    };
    match wait(&future) {
        Ok(response) => {
            let status = response.status();
            let (n, _, error) = read_body(response, 0);
            format!(
                "fetch {url}: status: {status} body-bytes: {n}{}",
                error.map(|e| format!(" {e}")).unwrap_or_default()
            )
        }
        Err(code) => format!("fetch {url}: error: {code}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Network policy

fn absolute_form() -> Outcome {
    let allowed = cfg("allowed-authority");
    let target = cfg("target");
    let other = parse_url(&target).map(|t| t.authority).unwrap_or_default();
    let mut report = String::new();

    // 1. An absolute URL where the path belongs (the GHSA-5qpp request-line trick).
    let _ = writeln!(
        report,
        "absolute-path: {}",
        try_request(Scheme::Http, &allowed, &target)
    );
    // 2. A protocol-relative path: valid as a path, so it must go to the allowed origin.
    let _ = writeln!(
        report,
        "protocol-relative-path: {}",
        try_request(Scheme::Http, &allowed, &format!("//{other}/steal"))
    );
    // 3. The other host smuggled into the authority as user info (either way round).
    let _ = writeln!(
        report,
        "userinfo-authority: {}",
        try_request(Scheme::Http, &format!("{allowed}@{other}"), "/steal")
    );
    let _ = writeln!(
        report,
        "userinfo-authority-reversed: {}",
        try_request(Scheme::Http, &format!("{other}@{allowed}"), "/steal")
    );
    // 4. An asterisk-form and a bare path without a leading slash.
    let _ = writeln!(
        report,
        "asterisk-path: {}",
        try_request(Scheme::Http, &allowed, "*")
    );
    let _ = writeln!(
        report,
        "relative-path: {}",
        try_request(Scheme::Http, &allowed, "steal")
    );
    Outcome::Report(report)
}

fn try_request(scheme: Scheme, authority: &str, path: &str) -> String {
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_method(&Method::Get);
    let _ = request.set_scheme(Some(&scheme));
    if request.set_authority(Some(authority)).is_err() {
        return format!("set-authority refused ({authority})");
    }
    if request.set_path_with_query(Some(path)).is_err() {
        return format!("set-path-with-query refused ({path})");
    }
    let future = match send(request) {
        Ok(f) => f,
        Err(e) => return format!("handle refused: {e}"),
    };
    match wait(&future) {
        Ok(response) => {
            let status = response.status();
            let _ = read_body(response, 0);
            format!("sent, status {status}")
        }
        Err(code) => format!("sent, error {code}"),
    }
}

fn set_authorization() -> Outcome {
    let mut report = String::new();
    for name in [
        "authorization",
        "Authorization",
        "proxy-authorization",
        "host",
    ] {
        let value: Vec<u8> = if name.eq_ignore_ascii_case("host") {
            b"127.0.0.1:1".to_vec()
        } else {
            format!("{} stolen", bearer()).into_bytes()
        };
        let r = Fields::from_list(&[(name.to_string(), value.clone())]).map(|_| ());
        let _ = writeln!(report, "from-list {name}: {r:?}");
        let fields = Fields::new();
        let r = fields.set(name, std::slice::from_ref(&value));
        let _ = writeln!(report, "set {name}: {r:?}");
        let r = fields.append(name, &value);
        let _ = writeln!(report, "append {name}: {r:?}");
    }
    // What went out: a plain GET, whatever the attempts above left behind.
    let target = cfg("target");
    if !target.is_empty() {
        let _ = writeln!(report, "request: {}", fetch(&target));
    }
    Outcome::Report(report)
}

fn read_token() -> Outcome {
    let mut report = String::new();
    let env = wasip2::cli::environment::get_environment();
    let _ = writeln!(report, "environment ({} variables): {env:?}", env.len());
    let args = wasip2::cli::environment::get_arguments();
    let _ = writeln!(report, "arguments: {args:?}");
    let _ = writeln!(
        report,
        "initial-cwd: {:?}",
        wasip2::cli::environment::initial_cwd()
    );
    for key in [
        "token",
        "authorization",
        "Authorization",
        "BATON_TOKEN",
        "SEGMENT_TOKEN",
        "segment-token",
        "bearer-token",
        "api-token",
        "access-token",
        "secret",
        "credential",
        "base-url",
    ] {
        let _ = writeln!(report, "config {key}: {:?}", host::config(key));
    }
    for key in ["token", "authorization", "credential", "BATON_TOKEN"] {
        let _ = writeln!(report, "session {key}: {:?}", host::session_get(key));
    }
    let all: Vec<(String, String)> = host::session_get_prefix("")
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let _ = writeln!(report, "session (everything): {all:?}");

    let target = cfg("target");
    match build_get(&target, Fields::new()) {
        Ok(request) => {
            let headers = request.headers().entries();
            let _ = writeln!(report, "own request headers: {}", show_fields(&headers));
            match send(request) {
                Ok(future) => match wait(&future) {
                    Ok(response) => {
                        let headers = response.headers().entries();
                        let _ = writeln!(
                            report,
                            "response {}: headers: {}",
                            response.status(),
                            show_fields(&headers)
                        );
                        let keep = cfg_num("keep", 4096) as usize;
                        let (_, body, error) = read_body(response, keep);
                        let _ = writeln!(
                            report,
                            "response body: {:?} {error:?}",
                            String::from_utf8_lossy(&body)
                        );
                    }
                    Err(e) => {
                        let _ = writeln!(report, "response: error {e}");
                    }
                },
                Err(e) => {
                    let _ = writeln!(report, "request: {e}");
                }
            }
        }
        Err(e) => {
            let _ = writeln!(report, "request: {e}");
        }
    }
    // And the guest's whole memory: did the host leave the header anywhere in it?
    let mut needle = bearer();
    needle.push(' ');
    let needle = needle.into_bytes();
    let scan = scan(&needle, 0);
    let _ = writeln!(
        report,
        "memory scan for the bearer prefix: {} hits",
        scan.hits
    );
    for context in scan.contexts {
        let _ = writeln!(report, "  found: {context:?}");
    }
    Outcome::Report(report)
}

/// "Bearer", built at run time: the word followed by a space must not sit in this module's
/// data, or the memory scan of `read-token` would find it there.
fn bearer() -> String {
    black_box("reraeB").chars().rev().collect()
}

fn show_fields(entries: &[(String, Vec<u8>)]) -> String {
    entries
        .iter()
        .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v)))
        .collect::<Vec<_>>()
        .join("; ")
}

fn huge_response() -> Outcome {
    let target = cfg("target");
    let future = match start_get(&target) {
        Ok(f) => f,
        Err(e) => return Outcome::Report(format!("huge-response: could not start: {e}")),
    };
    let report = match wait(&future) {
        Ok(response) => {
            let status = response.status();
            let (n, _, error) = read_body(response, 0);
            format!(
                "huge-response: status: {status} body-bytes-read: {n} error: {}",
                error.unwrap_or_else(|| "none".into())
            )
        }
        Err(code) => format!("huge-response: body-bytes-read: 0 error: {code}"),
    };
    Outcome::Report(report)
}

fn flood() -> Outcome {
    let target = cfg("target");
    let count = cfg_num("count", 200);
    let mut futures = Vec::new();
    let mut start_errors: BTreeMap<String, u64> = BTreeMap::new();
    // Everything in flight before the first wait.
    for _ in 0..count {
        match start_get(&target) {
            Ok(f) => futures.push(f),
            Err(e) => *start_errors.entry(e).or_default() += 1,
        }
    }
    let started = futures.len();
    let mut ok = 0u64;
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut settle = |result: Result<IncomingResponse, String>| match result {
        Ok(response) => {
            let status = response.status();
            let (_, _, error) = read_body(response, 0);
            match error {
                None if status == 200 => ok += 1,
                None => *errors.entry(format!("status {status}")).or_default() += 1,
                Some(e) => *errors.entry(e).or_default() += 1,
            }
        }
        Err(code) => *errors.entry(code).or_default() += 1,
    };
    let order = cfg("order");
    if order == "in-order" || order == "reverse" {
        // Wait for each in turn, leaving ready responses unread meanwhile.
        let mut in_turn: Vec<&FutureIncomingResponse> = futures.iter().collect();
        if order == "reverse" {
            in_turn.reverse();
        }
        for future in in_turn {
            settle(wait(future));
        }
    } else {
        // Wait for any, read what is ready (as a real connector does).
        let mut pending = futures;
        while !pending.is_empty() {
            let ready = {
                let pollables: Vec<_> = pending.iter().map(|f| f.subscribe()).collect();
                let refs: Vec<_> = pollables.iter().collect();
                wasip2::io::poll::poll(&refs)
            };
            let mut ready: Vec<usize> = ready.into_iter().map(|i| i as usize).collect();
            ready.sort_unstable_by(|a, b| b.cmp(a));
            for i in ready {
                let future = pending.swap_remove(i);
                settle(wait(&future));
            }
        }
    }
    Outcome::Report(format!(
        "flood: started: {started} ok: {ok} errors: {errors:?} start-errors: {start_errors:?}"
    ))
}

// ---------------------------------------------------------------------------------------------
// Cross-tenant memory

/// The marker: the test's `marker` setting, or one decoded at run time, so that it is never
/// part of this module's data segment (a fresh instance would find it there).
fn marker() -> Vec<u8> {
    match host::config("marker") {
        Some(m) if !m.is_empty() => m.into_bytes(),
        _ => {
            // "TENANT-A-SECRET-MARKER-" xor 0x5a.
            const ENCODED: [u8; 23] = [
                0x0e, 0x1f, 0x14, 0x1b, 0x14, 0x0e, 0x77, 0x1b, 0x77, 0x09, 0x1f, 0x19, 0x08, 0x1f,
                0x0e, 0x77, 0x17, 0x1b, 0x08, 0x11, 0x1f, 0x08, 0x77,
            ];
            black_box(ENCODED).iter().map(|b| b ^ 0x5a).collect()
        }
    }
}

const STATIC_LEN: usize = 4096;
static mut STATIC_MARKER: [u8; STATIC_LEN] = [0; STATIC_LEN];

fn fill(dst: &mut [u8], pattern: &[u8]) {
    for (i, b) in dst.iter_mut().enumerate() {
        *b = pattern[i % pattern.len()];
    }
}

fn write_marker() {
    let marker = marker();
    // 8 MiB of heap, leaked: it stays in linear memory until the instance goes.
    let mut heap = vec![0u8; 8 << 20];
    fill(&mut heap, &marker);
    black_box(&heap);
    heap.leak();
    // A static.
    unsafe {
        let s = &mut *core::ptr::addr_of_mut!(STATIC_MARKER);
        fill(s, &marker);
        black_box(s);
    }
    // The shadow stack.
    let mut stack = [0u8; 16 * 1024];
    fill(&mut stack, &marker);
    black_box(&mut stack);
}

struct Scan {
    hits: u64,
    scanned: usize,
    contexts: Vec<String>,
}

/// Scans linear memory from address 1 to its end, after growing it by `grow_pages`, for
/// `needle`, skipping the needle itself.
fn scan(needle: &[u8], grow_pages: usize) -> Scan {
    use core::arch::wasm32::{memory_grow, memory_size};
    if grow_pages > 0 {
        memory_grow(0, grow_pages);
    }
    let own = needle.as_ptr() as usize..needle.as_ptr() as usize + needle.len();
    let end = memory_size(0) * 65536;
    let first = needle[0];
    let read = |addr: usize| unsafe { core::ptr::read_volatile(addr as *const u8) };
    let mut hits = 0u64;
    let mut found: Vec<usize> = Vec::new();
    let mut addr = 1usize;
    while addr + needle.len() <= end {
        if read(addr) == first
            && !own.contains(&addr)
            && (1..needle.len()).all(|i| read(addr + i) == needle[i])
        {
            hits += 1;
            if found.len() < 4 {
                found.push(addr);
            }
        }
        addr += 1;
    }
    let contexts = found
        .into_iter()
        .map(|at| {
            let to = (at + 64).min(end);
            let bytes: Vec<u8> = (at..to).map(read).collect();
            format!("@{at}: {}", String::from_utf8_lossy(&bytes))
        })
        .collect();
    Scan {
        hits,
        scanned: end,
        contexts,
    }
}

fn scan_memory() -> Outcome {
    let pages_before = core::arch::wasm32::memory_size(0);
    let needle = marker();
    let grow = cfg_num("grow-pages", 256) as usize;
    let s = scan(&needle, grow);
    let pages_after = core::arch::wasm32::memory_size(0);
    let mut report = format!(
        "scan-memory: hits: {} scanned-bytes: {} pages-before: {pages_before} pages-after: {pages_after}",
        s.hits, s.scanned
    );
    for c in s.contexts {
        let _ = write!(report, "\n  at {}", c.split(':').next().unwrap_or_default());
    }
    Outcome::Report(report)
}

// ---------------------------------------------------------------------------------------------
// Host imports

fn log_flood() -> Outcome {
    let count = cfg_num("count", 100_000);
    let size = cfg_num("size", 100 * 1024) as usize;
    let message = "L".repeat(size);
    for i in 0..count {
        let level = if i % 2 == 0 {
            host::LogLevel::Info
        } else {
            host::LogLevel::Error
        };
        host::log(level, &message);
    }
    Outcome::Report(format!("log-flood: logged {count} lines of {size} bytes"))
}

fn session_flood() -> Outcome {
    let mut report = String::new();
    let mut size = 1024usize;
    let mut largest_ok = 0usize;
    loop {
        match host::session_set("flood", &vec![0xAB; size]) {
            Ok(()) => largest_ok = size,
            Err(message) => {
                let _ = writeln!(
                    report,
                    "session-flood: one value: refused at {size} bytes (largest stored {largest_ok}): {message}"
                );
                break;
            }
        }
        if size >= 32 << 20 {
            let _ = writeln!(
                report,
                "session-flood: one value: never refused up to {size} bytes"
            );
            break;
        }
        size *= 2;
    }
    // Then many small keys, after giving the big value's room back.
    let _ = host::session_set("flood", &[]);
    let mut stored = 0u64;
    loop {
        match host::session_set(&format!("k{stored:08}"), &[0xCD; 1024]) {
            Ok(()) => stored += 1,
            Err(message) => {
                let _ = writeln!(
                    report,
                    "session-flood: small keys: stored: {stored} then refused: {message}"
                );
                break;
            }
        }
        if stored >= 1_000_000 {
            let _ = writeln!(report, "session-flood: small keys: never refused");
            break;
        }
    }
    Outcome::Report(report)
}

// ---------------------------------------------------------------------------------------------
// Host-side memory

fn fields_flood() -> Outcome {
    let count = cfg_num("count", 4000);
    let size = cfg_num("size", 100 * 1024) as usize;
    // One buffer in the guest; every call makes the host keep a copy of it.
    let value = vec![b'p'; size];
    let entries = [("x-pad".to_string(), value)];
    let mut created = 0u64;
    let mut error = None;
    for _ in 0..count {
        match Fields::from_list(&entries) {
            Ok(fields) => {
                // Never dropped: the host keeps it until the instance goes.
                core::mem::forget(fields);
                created += 1;
            }
            Err(e) => {
                error = Some(format!("{e:?}"));
                break;
            }
        }
    }
    Outcome::Report(format!(
        "fields-flood: created: {created} of {size} bytes each; error: {error:?}"
    ))
}

fn body_flood() -> Outcome {
    let count = cfg_num("count", 150);
    let size = cfg_num("size", 2 << 20) as usize;
    let chunk = vec![b'b'; 4096];
    let mut futures = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..count {
        let started = (|| -> Result<FutureIncomingResponse, String> {
            let request = build_get(&cfg("target"), Fields::new())?;
            request
                .set_method(&Method::Post)
                .map_err(|_| "set-method refused".to_string())?;
            let body = request.body().map_err(|_| "body refused".to_string())?;
            let future = send(request)?;
            {
                let stream = body
                    .write()
                    .map_err(|_| "body stream refused".to_string())?;
                let mut left = size;
                while left > 0 {
                    let n = left.min(chunk.len());
                    stream
                        .blocking_write_and_flush(&chunk[..n])
                        .map_err(|e| format!("write: {e:?}"))?;
                    left -= n;
                }
            }
            OutgoingBody::finish(body, None).map_err(|e| format!("finish: {e:?}"))?;
            Ok(future)
        })();
        match started {
            Ok(f) => futures.push(f),
            Err(e) => *errors.entry(e).or_default() += 1,
        }
    }
    // Now wait (for a server that never answers, this is where the wall limit comes).
    let first = futures.first().map(|f| match wait(f) {
        Ok(r) => format!("status {}", r.status()),
        Err(e) => e,
    });
    Outcome::Report(format!(
        "body-flood: started: {} errors: {errors:?} first: {first:?}",
        futures.len()
    ))
}

// ---------------------------------------------------------------------------------------------
// Methods and kept headers

fn methods() -> Outcome {
    let target = cfg("target");
    let mut report = String::new();
    for method in [
        Method::Get,
        Method::Trace,
        Method::Connect,
        Method::Options,
        Method::Other("PROPFIND".into()),
    ] {
        let name = format!("{method:?}");
        let outcome = (|| -> Result<String, String> {
            let request = build_get(&target, Fields::new())?;
            request
                .set_method(&method)
                .map_err(|_| "set-method refused".to_string())?;
            let response = wait(&send(request)?)?;
            Ok(format!("status {}", response.status()))
        })();
        let _ = writeln!(
            report,
            "method {name}: {}",
            outcome.unwrap_or_else(|e| format!("error {e}"))
        );
    }
    Outcome::Report(report)
}

fn keep_headers() -> Outcome {
    let target = cfg("target");
    let count = cfg_num("count", 10_000);
    let mut kept = Vec::new();
    let mut error = None;
    for _ in 0..count {
        match start_get(&target).and_then(|f| wait(&f)) {
            Ok(response) => {
                // The body is read and dropped; the response (with its headers) is kept.
                if let Ok(body) = response.consume() {
                    drop(body);
                }
                kept.push(response);
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let report = format!("keep-headers: kept {} responses; error: {error:?}", kept.len());
    core::mem::forget(kept);
    Outcome::Report(report)
}
