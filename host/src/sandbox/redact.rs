//! Every secret the host holds (each [`Secret`](crate::sandbox::Secret) registers itself here)
//! is cut out of every string the host emits: log lines (console and JSON), the error printed
//! on exit, what service mode reports in `FinishTask`, and `/metrics`. The host never formats a
//! secret into a message on purpose; this catches one that arrives inside text from elsewhere
//! (a server that echoes requests, a component's error).

use crate::sandbox::scrub::Scrubber;
use std::borrow::Cow;
use std::io::Write;
use std::sync::{Arc, Mutex};

struct Entry {
    secret: Arc<str>,
    scrubber: Arc<Scrubber>,
}

/// Secrets remembered at most; the oldest is forgotten first. (An error text may outlive the
/// run whose token it holds, so a secret stays registered after its last use; a long-running
/// `serve` whose tenants rotate tokens would otherwise collect them without end.)
const MAX_SECRETS: usize = 10_000;

static SECRETS: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn secrets() -> std::sync::MutexGuard<'static, Vec<Entry>> {
    SECRETS.lock().unwrap_or_else(|p| p.into_inner())
}

/// From now on, `secret` is cut out of everything [`redact`] sees.
pub fn register(secret: &Arc<str>) {
    let mut all = secrets();
    if all.iter().any(|e| e.secret == *secret) {
        return;
    }
    let Some(scrubber) = Scrubber::new(secret) else {
        return;
    };
    if all.len() >= MAX_SECRETS {
        all.remove(0);
    }
    all.push(Entry {
        secret: secret.clone(),
        scrubber: Arc::new(scrubber),
    });
}

/// `text` with every registered secret masked.
pub fn redact(text: &str) -> Cow<'_, str> {
    let scrubbers: Vec<Arc<Scrubber>> = secrets().iter().map(|e| e.scrubber.clone()).collect();
    let mut bytes: Option<Vec<u8>> = None;
    for scrubber in scrubbers {
        let current = bytes.as_deref().unwrap_or(text.as_bytes());
        if let Some(masked) = scrubber.scrub(current) {
            bytes = Some(masked);
        }
    }
    match bytes {
        None => Cow::Borrowed(text),
        Some(b) => Cow::Owned(String::from_utf8_lossy(&b).into_owned()),
    }
}

/// Owned version of [`redact`].
pub fn redacted(text: impl AsRef<str>) -> String {
    redact(text.as_ref()).into_owned()
}

/// stderr for the log: each write (one formatted event) is redacted first.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingStderr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_cut_out() {
        let secret: Arc<str> = Arc::from("redact-test-secret-0123456789");
        let text = format!("connector said: token {secret} refused");
        assert_eq!(redact(&text), text, "not registered yet");
        register(&secret);
        let out = redact(&text);
        assert!(!out.contains("redact-test-secret"), "{out}");
        assert!(out.contains("[REDACTED]"), "{out}");
        let json = serde_json::to_string(&text).unwrap();
        assert!(!redact(&json).contains("redact-test-secret"));
        drop(secret);
        assert!(
            !redact(&text).contains("redact-test-secret"),
            "an error text may outlive the secret"
        );
    }
}
