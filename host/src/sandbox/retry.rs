//! Waiting as Segment says: the wait of a 429 (`data.msBeforeNext`, else `X-RateLimit-Reset`),
//! shared by every request of the run, and backoff for transient failures.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts after a 429 (the request was not processed, so every method is retried).
    pub rate_limited_retries: u32,
    /// Attempts after a 5xx or a lost connection, for reads only.
    pub transient_retries: u32,
    /// First backoff for transient failures; doubles each attempt.
    pub backoff: Duration,
    /// The longest single wait the host accepts from a 429 before giving the error to the
    /// component instead.
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            rate_limited_retries: 8,
            transient_retries: 4,
            backoff: Duration::from_millis(500),
            max_rate_limit_wait: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    pub fn backoff(&self, attempt: u32) -> Duration {
        (self.backoff * 2u32.saturating_pow(attempt)).min(Duration::from_secs(16))
    }
}

/// A point in time before which no request of the run is sent: when one request learns that
/// Segment wants a pause, the others wait too instead of spending more of the limit.
#[derive(Debug, Default)]
pub struct RateGate {
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    not_before: Option<Instant>,
    /// Length of every hold so far, overlapping holds counted once (the part of the current
    /// hold still to come included).
    held: Duration,
}

impl RateGate {
    pub async fn wait(&self) {
        let until = self.lock().not_before;
        if let Some(until) = until {
            tokio::time::sleep_until(until.into()).await;
        }
    }

    pub async fn hold_for(&self, wait: Duration) {
        let now = Instant::now();
        let until = now + wait;
        let mut state = self.lock();
        if state.not_before.is_none_or(|t| t < until) {
            let from = state.not_before.map_or(now, |t| t.max(now));
            state.held += until - from;
            state.not_before = Some(until);
        }
    }

    /// How long the gate has been closed up to now (the pauses Segment asked for): the
    /// difference between two readings is how long it was closed in between.
    pub fn held(&self) -> Duration {
        let state = self.lock();
        let to_come = state.not_before.map_or(Duration::ZERO, |t| {
            t.saturating_duration_since(Instant::now())
        });
        state.held.saturating_sub(to_come)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // The state is two plain values: a panic elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How long a 429 asks to wait: `errors[0].data.msBeforeNext` in the body, else the
/// `X-RateLimit-Reset` date (RFC 5322), else `Retry-After` seconds.
pub fn rate_limit_wait(
    headers: &http::HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Option<Duration> {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(ms) = json
            .pointer("/errors/0/data/msBeforeNext")
            .and_then(|v| v.as_f64())
        && ms.is_finite()
    {
        return Some(Duration::from_millis(ms.max(0.0).ceil() as u64));
    }
    if let Some(reset) = headers
        .get("x-ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        && let Ok(at) = chrono::DateTime::parse_from_rfc2822(reset.trim())
    {
        let at = SystemTime::from(at);
        return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
    }
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_wait_wins_over_headers() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-ratelimit-reset",
            "Tue, 01 Jan 2030 00:00:00 GMT".parse().unwrap(),
        );
        let body = br#"{"errors":[{"type":"RequestError","message":"Too many requests","data":{"remainingPoints":0,"msBeforeNext":1500,"consumedPoints":21}}]}"#;
        assert_eq!(
            rate_limit_wait(&h, body, SystemTime::now()),
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn reset_date_is_read_as_rfc5322() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-ratelimit-reset",
            "Tue, 01 Jan 2030 00:00:05 GMT".parse().unwrap(),
        );
        let now =
            SystemTime::from(chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:02Z").unwrap());
        assert_eq!(
            rate_limit_wait(&h, b"not json", now),
            Some(Duration::from_secs(3))
        );
        let later =
            SystemTime::from(chrono::DateTime::parse_from_rfc3339("2030-01-01T00:01:00Z").unwrap());
        assert_eq!(rate_limit_wait(&h, b"", later), Some(Duration::ZERO));
    }

    #[test]
    fn nothing_usable_means_no_wait_is_known() {
        assert_eq!(
            rate_limit_wait(&http::HeaderMap::new(), b"{}", SystemTime::now()),
            None
        );
    }

    #[tokio::test]
    async fn the_time_held_counts_overlapping_holds_once_and_only_what_has_passed() {
        let gate = RateGate::default();
        gate.hold_for(Duration::from_millis(300)).await;
        gate.hold_for(Duration::from_millis(400)).await;
        gate.hold_for(Duration::from_millis(100)).await;
        assert!(
            gate.held() < Duration::from_millis(100),
            "{:?}",
            gate.held()
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        let held = gate.held();
        assert!(
            held >= Duration::from_millis(399) && held < Duration::from_millis(450),
            "{held:?}"
        );
    }

    #[tokio::test]
    async fn the_gate_holds_every_request() {
        let gate = RateGate::default();
        gate.hold_for(Duration::from_millis(120)).await;
        let start = Instant::now();
        gate.wait().await;
        assert!(start.elapsed() >= Duration::from_millis(100));
    }
}
