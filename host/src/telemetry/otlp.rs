//! `--otel-collector-endpoint`: traces and logs to an OpenTelemetry collector over OTLP/gRPC,
//! as baton-sdk does it — service name `<connector>-server`, TLS unless
//! `--otel-collector-endpoint-tls-insecure`, trusting the OS store plus the CA of
//! `--otel-collector-endpoint-tls-cert(-path)`, and `--otel-tracing-disabled` /
//! `--otel-logging-disabled` to leave either out. The channel goes through the environment's
//! proxy like every other connection of the host.

use crate::net::proxy::{Proxies, ProxyConnector};
use crate::net::trust::Trust;
use anyhow::{Context as _, anyhow};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::path::PathBuf;
use std::time::Duration;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The `--otel-*` flags.
#[derive(Debug, Clone, Default)]
pub struct OtelSettings {
    pub endpoint: Option<String>,
    pub tls_cert_path: Option<PathBuf>,
    pub tls_cert: Option<String>,
    pub tls_insecure: bool,
    pub tracing_disabled: bool,
    pub logging_disabled: bool,
}

/// How long an export may take (and the shutdown's flush).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The exporters while they run.
pub struct Otel {
    traces: Option<SdkTracerProvider>,
    logs: Option<SdkLoggerProvider>,
}

impl std::fmt::Debug for Otel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Otel")
            .field("traces", &self.traces.is_some())
            .field("logs", &self.logs.is_some())
            .finish()
    }
}

impl Otel {
    /// Starts the exporters the settings ask for (`None` without an endpoint). Call it in a
    /// Tokio runtime: the gRPC channel lives there.
    pub fn start(settings: &OtelSettings, service_name: &str) -> anyhow::Result<Option<Otel>> {
        let Some(endpoint) = settings
            .endpoint
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        else {
            return Ok(None);
        };
        if settings.tracing_disabled && settings.logging_disabled {
            return Ok(None);
        }
        let channel = channel(endpoint, settings)?;
        let resource = Resource::builder()
            .with_service_name(service_name.to_string())
            .build();
        let traces = if settings.tracing_disabled {
            None
        } else {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_channel(channel.clone())
                .with_timeout(EXPORT_TIMEOUT)
                .build()
                .context("setting up the OTLP trace exporter")?;
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource.clone())
                    .build(),
            )
        };
        let logs = if settings.logging_disabled {
            None
        } else {
            let exporter = opentelemetry_otlp::LogExporter::builder()
                .with_tonic()
                .with_channel(channel)
                .with_timeout(EXPORT_TIMEOUT)
                .build()
                .context("setting up the OTLP log exporter")?;
            Some(
                SdkLoggerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        };
        Ok(Some(Otel { traces, logs }))
    }

    /// The layer that turns spans into OTLP traces.
    pub fn trace_layer<S>(&self) -> Option<Box<dyn Layer<S> + Send + Sync>>
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let provider = self.traces.as_ref()?;
        let tracer = provider.tracer("baton-segment");
        Some(tracing_opentelemetry::layer().with_tracer(tracer).boxed())
    }

    /// The layer that sends log events as OTLP logs.
    pub fn log_layer<S>(&self) -> Option<Box<dyn Layer<S> + Send + Sync>>
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let provider = self.logs.as_ref()?;
        Some(
            opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(provider)
                .boxed(),
        )
    }

    /// Sends what is still buffered and stops (blocks up to the export timeout each).
    pub fn shutdown(self) {
        if let Some(traces) = self.traces
            && let Err(e) = traces.shutdown()
        {
            eprintln!("warning: flushing traces to the OpenTelemetry collector: {e}");
        }
        if let Some(logs) = self.logs
            && let Err(e) = logs.shutdown()
        {
            eprintln!("warning: flushing logs to the OpenTelemetry collector: {e}");
        }
    }
}

/// The gRPC channel to the collector (connected on first use).
fn channel(endpoint: &str, settings: &OtelSettings) -> anyhow::Result<tonic::transport::Channel> {
    let url = if endpoint.contains("://") {
        endpoint.to_string()
    } else if settings.tls_insecure {
        format!("http://{endpoint}")
    } else {
        format!("https://{endpoint}")
    };
    let mut ep = tonic::transport::Endpoint::from_shared(url.clone())
        .map_err(|e| anyhow!("--otel-collector-endpoint {endpoint:?} is not usable: {e}"))?
        .connect_timeout(Duration::from_secs(10));
    if url.starts_with("https://") {
        let mut pem = Vec::new();
        if let Some(path) = &settings.tls_cert_path {
            pem.extend(std::fs::read(path).with_context(|| {
                format!(
                    "cannot read --otel-collector-endpoint-tls-cert-path {}",
                    path.display()
                )
            })?);
            pem.push(b'\n');
        }
        if let Some(cert) = settings
            .tls_cert
            .as_deref()
            .filter(|c| !c.trim().is_empty())
        {
            pem.extend(cert.as_bytes());
        }
        let trust = if pem.is_empty() {
            Trust::system()
        } else {
            Trust::with_ca_pem(&pem).context("the collector's CA certificate")?
        };
        ep = ep
            .tls_config(trust.tonic())
            .map_err(|e| anyhow!("TLS for the OpenTelemetry collector: {e}"))?;
    }
    let connector = ProxyConnector::new(Proxies::global(), Duration::from_secs(10));
    Ok(ep.connect_with_connector_lazy(connector))
}
