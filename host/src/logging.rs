//! Logs go to stderr, as console text or JSON lines with zap's keys (`level` in lower case,
//! `ts` in epoch seconds, `caller`, `msg`, then the fields), so log pipelines built for Baton
//! connectors parse ours; with `--otel-collector-endpoint` they go to the collector too, with
//! the traces (see [`crate::telemetry`]). Nothing secret is ever logged: the token lives in a
//! `Secret` whose `Debug` is redacted, and is never formatted into a message; and every line
//! passes through [`crate::sandbox::redact`] on its way to stderr, in case a secret arrived
//! inside text from elsewhere.

use crate::telemetry::otlp::Otel;
use std::io::IsTerminal;
use std::sync::Arc;
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{FilterExt as _, filter_fn};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, reload};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Console,
}

impl LogFormat {
    /// As Baton reads `--log-format`: `console` in any case is console, anything else JSON.
    pub fn parse(s: &str) -> Result<LogFormat, String> {
        Ok(if s.trim().eq_ignore_ascii_case("console") {
            LogFormat::Console
        } else {
            LogFormat::Json
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// zap's level names in any case (`dpanic`, `panic` and `fatal` log errors only).
    pub fn parse(s: &str) -> Result<LogLevel, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "debug" => Ok(LogLevel::Debug),
            "info" | "" => Ok(LogLevel::Info),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "error" | "dpanic" | "panic" | "fatal" => Ok(LogLevel::Error),
            other => Err(format!(
                "unrecognized level {other:?} (expected debug, info, warn or error)"
            )),
        }
    }

    fn directive(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// Console when stdout is a terminal, JSON otherwise, as Baton connectors choose (logs still
/// go to stderr).
pub fn default_format() -> LogFormat {
    if std::io::stdout().is_terminal() {
        LogFormat::Console
    } else {
        LogFormat::Json
    }
}

/// Our own crates at `level`; dependencies only from `warn` unless debugging.
fn filter(level: LogLevel) -> EnvFilter {
    let deps = if level == LogLevel::Debug {
        "info"
    } else {
        "warn"
    };
    EnvFilter::new(format!(
        "{deps},baton_segment={l},connector={l},sandbox={l},fakes=warn",
        l = level.directive()
    ))
}

/// Our own crates only (what goes to the collector: never the exporter's own logs).
fn own_filter(level: LogLevel) -> EnvFilter {
    EnvFilter::new(format!(
        "off,baton_segment={l},connector={l},sandbox={l}",
        l = level.directive()
    ))
}

/// What the logs are set up with.
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub level: LogLevel,
    pub format: LogFormat,
    /// `--log-level-debug-expires-at`: debug logging turns to info at this time.
    pub debug_expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The logging set up by [`init`]: keep it until the end, then [`Logging::shutdown`] sends
/// what the collector has not had yet.
pub struct Logging {
    otel: Option<Otel>,
}

impl Logging {
    pub fn shutdown(self) {
        if let Some(otel) = self.otel {
            otel.shutdown();
        }
    }
}

/// The level to start with: debug turns to info once its expiry has passed.
pub fn effective_level(
    level: LogLevel,
    expires: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> LogLevel {
    match expires {
        Some(at) if level == LogLevel::Debug && at <= now => LogLevel::Info,
        _ => level,
    }
}

/// Sets up logging (once per process; later calls change nothing). With `otel`, traces and
/// logs also go to the collector.
pub fn init(opts: &LogOptions, otel: Option<Otel>) -> Logging {
    let now = chrono::Utc::now();
    let level = effective_level(opts.level, opts.debug_expires_at, now);
    let (console_filter, console_handle) = reload::Layer::new(filter(level));
    let fmt_layer = match opts.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(crate::sandbox::redact::RedactingStderr)
            .event_format(ZapJson)
            .boxed(),
        LogFormat::Console => tracing_subscriber::fmt::layer()
            .with_writer(crate::sandbox::redact::RedactingStderr)
            .compact()
            .without_time()
            .boxed(),
    }
    // Lines as before: the spans (for the collector) are not printed around them.
    .with_filter(console_filter.and(filter_fn(|meta| meta.is_event())));

    let (otel_filter, otel_handle) = reload::Layer::new(own_filter(level));
    let trace_layer = otel.as_ref().and_then(|o| o.trace_layer()).map(|l| {
        l.with_filter(EnvFilter::new(
            "off,baton_segment=info,sandbox=info,connector=info",
        ))
    });
    let log_layer = otel
        .as_ref()
        .and_then(|o| o.log_layer())
        .map(|l| l.with_filter(otel_filter));

    let installed = tracing_subscriber::registry()
        .with(fmt_layer)
        .with(trace_layer)
        .with(log_layer)
        .try_init()
        .is_ok();

    if installed && level != opts.level {
        tracing::info!(
            "debug logging expired at {}; logging at info",
            opts.debug_expires_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_default()
        );
    }
    if installed
        && level == LogLevel::Debug
        && let Some(at) = opts.debug_expires_at
    {
        // Turn debug off when it expires, for the console and the collector alike.
        let wait = (at - now).to_std().unwrap_or_default();
        let console = Arc::new(console_handle);
        let collector = Arc::new(otel_handle);
        let spawned = std::thread::Builder::new()
            .name("debug-expiry".into())
            .spawn(move || {
                std::thread::sleep(wait);
                let _ = console.reload(filter(LogLevel::Info));
                let _ = collector.reload(own_filter(LogLevel::Info));
                tracing::info!(
                    "debug logging expired at {}; logging at info",
                    at.to_rfc3339()
                );
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot schedule the end of debug logging: {e}");
        }
    }
    Logging { otel }
}

/// JSON lines as zap's production encoder writes them: `level`, `ts`, `caller`, `msg`, then
/// the event's fields.
struct ZapJson;

impl<S, N> FormatEvent<S, N> for ZapJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut fields = FieldMap::default();
        event.record(&mut fields);
        let mut line = serde_json::Map::new();
        line.insert(
            "level".into(),
            meta.level().as_str().to_ascii_lowercase().into(),
        );
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        line.insert("ts".into(), ts.into());
        let caller = match (meta.file(), meta.line()) {
            (Some(file), Some(n)) => format!("{}:{n}", short_file(file)),
            _ => meta.target().to_string(),
        };
        line.insert("caller".into(), caller.into());
        line.insert(
            "msg".into(),
            fields.message.take().unwrap_or_default().into(),
        );
        for (k, v) in fields.fields {
            line.entry(k).or_insert(v);
        }
        let text = serde_json::to_string(&line).map_err(|_| std::fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// `dir/file.rs` of a source path, as zap's short caller encoder does for Go files.
fn short_file(path: &str) -> &str {
    let mut cut = path.len();
    for _ in 0..2 {
        match path[..cut].rfind(['/', '\\']) {
            Some(i) => cut = i,
            None => return path,
        }
    }
    &path[cut + 1..]
}

#[derive(Default)]
struct FieldMap {
    message: Option<String>,
    fields: Vec<(String, serde_json::Value)>,
}

impl tracing::field::Visit for FieldMap {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.fields.push((field.name().to_string(), text.into()));
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_string());
        } else {
            self.fields.push((field.name().to_string(), value.into()));
        }
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.fields.push((field.name().to_string(), value.into()));
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.fields.push((field.name().to_string(), value.into()));
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.fields.push((field.name().to_string(), value.into()));
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.fields.push((field.name().to_string(), value.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_formats_in_any_case() {
        assert_eq!(LogLevel::parse("DEBUG"), Ok(LogLevel::Debug));
        assert_eq!(LogLevel::parse("Warn"), Ok(LogLevel::Warn));
        assert_eq!(LogLevel::parse("warning"), Ok(LogLevel::Warn));
        assert!(LogLevel::parse("loud").is_err());
        assert_eq!(LogFormat::parse("JSON"), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse("Console"), Ok(LogFormat::Console));
        // Baton falls back to JSON.
        assert_eq!(LogFormat::parse("logfmt"), Ok(LogFormat::Json));
    }

    #[test]
    fn debug_expires() {
        let now = chrono::Utc::now();
        let past = now - chrono::Duration::minutes(1);
        let future = now + chrono::Duration::minutes(1);
        assert_eq!(
            effective_level(LogLevel::Debug, Some(past), now),
            LogLevel::Info
        );
        assert_eq!(
            effective_level(LogLevel::Debug, Some(future), now),
            LogLevel::Debug
        );
        assert_eq!(
            effective_level(LogLevel::Warn, Some(past), now),
            LogLevel::Warn
        );
        assert_eq!(effective_level(LogLevel::Debug, None, now), LogLevel::Debug);
    }

    #[test]
    fn callers_are_short() {
        assert_eq!(short_file("host/src/service/mod.rs"), "service/mod.rs");
        assert_eq!(short_file("mod.rs"), "mod.rs");
    }
}
