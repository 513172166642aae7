//! Traces: one span per sync phase and one per Segment request, exported over OTLP when
//! `--otel-collector-endpoint` is set (see [`otlp`]). Without a collector the spans cost a
//! filter check and nothing else.

pub mod otlp;

/// A phase of a sync (`validate`, `resource-types`, `resources`, `entitlements`, `grants`,
/// `expand-grants`).
pub fn phase_span(phase: &'static str) -> tracing::Span {
    tracing::info_span!(
        target: "baton_segment::sync",
        "sync.phase",
        otel.name = format!("sync {phase}"),
        sync.phase = phase,
    )
}

/// One request of the component to Segment, as the sandbox sends it (retries included).
/// The path only: queries can carry e-mail addresses.
pub fn request_span(method: &str, path: &str) -> tracing::Span {
    tracing::info_span!(
        target: "sandbox",
        "segment.request",
        otel.name = format!("Segment {method}"),
        otel.kind = "client",
        http.request.method = method,
        url.path = path,
        http.response.status_code = tracing::field::Empty,
    )
}

/// Records the HTTP status on the current request span.
pub fn record_status(status: u16) {
    tracing::Span::current().record("http.response.status_code", status);
}
