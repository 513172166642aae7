//! Logs go to stderr, as console text or JSON lines. Nothing secret is ever logged: the token
//! lives in a `Secret` whose `Debug` is redacted, and is never formatted into a message; and
//! every line passes through [`crate::sandbox::redact`] on its way out, in case a secret arrived inside
//! text from elsewhere.

use clap::ValueEnum;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Console,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
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

pub fn init(level: LogLevel, format: LogFormat) {
    // Our own crates log at the chosen level; dependencies only from `warn` unless debugging.
    let deps = if level == LogLevel::Debug {
        "info"
    } else {
        "warn"
    };
    let filter = EnvFilter::new(format!(
        "{deps},baton_segment={l},connector={l},sandbox={l},fakes=warn",
        l = level.directive()
    ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::sandbox::redact::RedactingStderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Console => builder.compact().without_time().try_init(),
    };
}
