//! Heartbeats while a full sync runs: they tell ConductorOne the task is alive, and bring
//! back its cancellation. As baton-sdk sends them: a first one at once ([`first`]), before
//! the sync starts; then every `next_heartbeat` of the last answer, held between 1 s and
//! 5 min, 30 s when absent or zero ([`run`]). After [`MAX_FAILURES`] failures in a row the
//! task is given up.

use super::client::C1Client;
use baton::c1::service::BatonServiceHeartbeatRequest;
use std::time::Duration;

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
pub const MAX_INTERVAL: Duration = Duration::from_secs(300);
/// Consecutive failed heartbeats after which a task is aborted.
pub const MAX_FAILURES: u32 = 10;

/// The heartbeat interval for a `next_heartbeat` value.
pub fn interval(next_heartbeat: Option<&prost_types::Duration>) -> Duration {
    match next_heartbeat.and_then(|d| Duration::try_from(*d).ok()) {
        None => DEFAULT_INTERVAL,
        Some(d) if d.is_zero() => DEFAULT_INTERVAL,
        Some(d) => d.clamp(MIN_INTERVAL, MAX_INTERVAL),
    }
}

/// Why heartbeating stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// ConductorOne cancelled the task.
    Cancelled,
    /// `MAX_FAILURES` heartbeats in a row failed; the last error.
    Lost(String),
}

fn request(host_id: &str, task_id: &str) -> BatonServiceHeartbeatRequest {
    BatonServiceHeartbeatRequest {
        host_id: host_id.to_string(),
        task_id: task_id.to_string(),
        annotations: vec![],
        task_ids: vec![],
    }
}

/// The first heartbeat, sent before the task starts: the interval until the next one, or
/// why the task must not start (`Lost` with the error, or `Cancelled`).
pub async fn first(client: &C1Client, host_id: &str, task_id: &str) -> Result<Duration, Stop> {
    match client.heartbeat(request(host_id, task_id)).await {
        Ok(resp) if resp.cancelled || resp.cancelled_task_ids.iter().any(|id| id == task_id) => {
            Err(Stop::Cancelled)
        }
        Ok(resp) => Ok(interval(resp.next_heartbeat.as_ref())),
        Err(e) => {
            tracing::warn!(task_id, "the first heartbeat failed: {e}");
            Err(Stop::Lost(e.to_string()))
        }
    }
}

/// Sends heartbeats for `task_id` every `first` (then as told) until the task is cancelled or
/// contact is lost. Never returns otherwise: race it against the task.
pub async fn run(
    client: &C1Client,
    host_id: &str,
    task_id: &str,
    first: Duration,
    max_failures: u32,
) -> Stop {
    let mut every = first;
    let mut failures = 0u32;
    loop {
        tokio::time::sleep(every).await;
        match client.heartbeat(request(host_id, task_id)).await {
            Ok(resp) => {
                failures = 0;
                if resp.cancelled || resp.cancelled_task_ids.iter().any(|id| id == task_id) {
                    return Stop::Cancelled;
                }
                every = interval(resp.next_heartbeat.as_ref());
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(task_id, failures, "heartbeat failed: {e}");
                if failures >= max_failures.max(1) {
                    return Stop::Lost(e.to_string());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(secs: i64, nanos: i32) -> prost_types::Duration {
        prost_types::Duration {
            seconds: secs,
            nanos,
        }
    }

    #[test]
    fn intervals_are_clamped() {
        assert_eq!(interval(None), DEFAULT_INTERVAL);
        assert_eq!(interval(Some(&d(0, 0))), DEFAULT_INTERVAL);
        assert_eq!(interval(Some(&d(0, 200_000_000))), MIN_INTERVAL);
        assert_eq!(interval(Some(&d(7, 0))), Duration::from_secs(7));
        assert_eq!(interval(Some(&d(3600, 0))), MAX_INTERVAL);
        // Negative: not a duration at all.
        assert_eq!(interval(Some(&d(-5, 0))), DEFAULT_INTERVAL);
    }
}
