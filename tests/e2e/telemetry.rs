//! `--otel-*` through the real binary: traces (one span per sync phase, one per Segment
//! request, the requests inside their phase) and logs reach a local OTLP/gRPC receiver;
//! `--otel-logging-disabled` and `--otel-tracing-disabled` leave either out.
//! (Declared in host/Cargo.toml so that cargo hands it the binary's path.)

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

/// What the receiver got: spans with their resources' service names, and log records.
#[derive(Default)]
struct Received {
    spans: Vec<(String, Span)>,
    logs: Vec<LogRecord>,
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Received>>);

fn service_name(attrs: &[KeyValue]) -> String {
    attrs
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .map(text_of)
        .unwrap_or_default()
}

fn text_of(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        other => format!("{other:?}"),
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(text_of)
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let name = rs
                .resource
                .as_ref()
                .map(|r| service_name(&r.attributes))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    got.spans.push((name.clone(), span));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let mut got = self.0.lock().unwrap();
        for rl in request.into_inner().resource_logs {
            for sl in rl.scope_logs {
                got.logs.extend(sl.log_records);
            }
        }
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// A plaintext OTLP/gRPC receiver on loopback; its address.
async fn start_receiver(receiver: Receiver) -> std::net::SocketAddr {
    let router = tonic::service::Routes::new(TraceServiceServer::new(receiver.clone()))
        .add_service(LogsServiceServer::new(receiver))
        .into_axum_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

async fn demo_sync(dir: &Path, otel_args: Vec<String>) -> Output {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton-segment"));
        for (k, _) in std::env::vars() {
            if k.starts_with("BATON_") {
                cmd.env_remove(k);
            }
        }
        cmd.current_dir(&dir)
            .env("BATON_LOG_FORMAT", "json")
            .arg("--demo")
            .args(otel_args)
            .output()
            .expect("the binary runs")
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_and_logs_reach_the_collector() {
    let receiver = Receiver::default();
    let addr = start_receiver(receiver.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = demo_sync(
        dir.path(),
        vec![
            format!("--otel-collector-endpoint={addr}"),
            "--otel-collector-endpoint-tls-insecure".into(),
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let got = receiver.0.lock().unwrap();
    assert!(!got.spans.is_empty(), "spans were exported");
    for (service, _) in &got.spans {
        assert_eq!(service, "baton-segment-server");
    }
    let by_name = |name: &str| -> Vec<&Span> {
        got.spans
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.name == name)
            .collect()
    };
    // One span per phase of the sync.
    for phase in [
        "validate",
        "resource-types",
        "resources",
        "entitlements",
        "grants",
        "expand-grants",
    ] {
        let spans = by_name(&format!("sync {phase}"));
        assert_eq!(spans.len(), 1, "sync {phase}");
        assert_eq!(attr(spans[0], "sync.phase").as_deref(), Some(phase));
    }
    // One span per Segment request, each inside the phase that made it.
    let requests = by_name("Segment GET");
    assert!(requests.len() > 5, "{} request spans", requests.len());
    let resources_phase = by_name("sync resources")[0];
    assert!(
        requests
            .iter()
            .any(|r| r.parent_span_id == resources_phase.span_id
                && r.trace_id == resources_phase.trace_id),
        "requests belong to their phase"
    );
    for r in &requests {
        let path = attr(r, "url.path").expect("url.path");
        assert!(path.starts_with('/'), "{path}");
        assert!(attr(r, "http.response.status_code").is_some(), "{path}");
        assert_eq!(attr(r, "http.request.method").as_deref(), Some("GET"));
    }
    // The logs too.
    assert!(!got.logs.is_empty(), "logs were exported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn either_signal_can_be_left_out() {
    let receiver = Receiver::default();
    let addr = start_receiver(receiver.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = demo_sync(
        dir.path(),
        vec![
            format!("--otel-collector-endpoint={addr}"),
            "--otel-collector-endpoint-tls-insecure=true".into(),
            "--otel-logging-disabled".into(),
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    {
        let got = receiver.0.lock().unwrap();
        assert!(!got.spans.is_empty());
        assert!(got.logs.is_empty(), "--otel-logging-disabled");
    }

    let receiver = Receiver::default();
    let addr = start_receiver(receiver.clone()).await;
    let out = demo_sync(
        dir.path(),
        vec![
            format!("--otel-collector-endpoint={addr}"),
            "--otel-collector-endpoint-tls-insecure".into(),
            "--otel-tracing-disabled".into(),
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = receiver.0.lock().unwrap();
    assert!(got.spans.is_empty(), "--otel-tracing-disabled");
    assert!(!got.logs.is_empty());
}
