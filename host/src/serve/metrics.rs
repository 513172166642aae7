//! What happened to each tenant, for `/metrics` (Prometheus text format) and the logs.

use crate::sandbox::NetSnapshot;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// One run of one tenant.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub success: bool,
    /// What went wrong (never a secret).
    pub error: Option<String>,
    pub net: NetSnapshot,
    pub wall: Duration,
    /// Guest execution time, summed over the run's instances.
    pub cpu: Duration,
    pub peak_memory_bytes: usize,
    pub resources: usize,
    pub entitlements: usize,
    pub grants: usize,
    pub warnings: usize,
}

#[derive(Debug, Clone, Default)]
struct TenantTotals {
    runs_ok: u64,
    runs_failed: u64,
    requests: u64,
    retries: u64,
    rate_limited: u64,
    denied: u64,
    bytes: u64,
    last: Option<RunReport>,
    last_success: Option<SystemTime>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    tenants: Mutex<BTreeMap<String, TenantTotals>>,
}

impl Metrics {
    pub fn register(&self, tenant: &str) {
        self.lock().entry(tenant.to_string()).or_default();
    }

    pub fn record(&self, tenant: &str, report: RunReport) {
        let mut tenants = self.lock();
        let t = tenants.entry(tenant.to_string()).or_default();
        if report.success {
            t.runs_ok += 1;
            t.last_success = Some(SystemTime::now());
        } else {
            t.runs_failed += 1;
        }
        t.requests += report.net.requests;
        t.retries += report.net.retries;
        t.rate_limited += report.net.rate_limited;
        t.denied += report.net.denied;
        t.bytes += report.net.bytes_received;
        // Error texts are kept and shown later: redacted now, while every secret is known.
        let mut report = report;
        report.error = report.error.map(crate::sandbox::redact::redacted);
        t.last = Some(report);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, TenantTotals>> {
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The Prometheus text exposition of every tenant.
    pub fn render(&self) -> String {
        let tenants = self.lock();
        let mut out = String::new();
        for family in FAMILIES {
            let name = family.name;
            let _ = writeln!(out, "# HELP baton_segment_{name} {}", family.help);
            let _ = writeln!(out, "# TYPE baton_segment_{name} {}", family.kind);
            for (id, t) in tenants.iter() {
                if let Some(v) = (family.value)(t) {
                    let _ = writeln!(out, "baton_segment_{name}{{tenant=\"{}\"}} {v}", escape(id));
                }
            }
        }
        out
    }
}

/// One metric family: its name (after `baton_segment_`), type, help text, and each tenant's
/// value (none: the tenant has no sample).
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&TenantTotals) -> Option<f64>,
}

/// The families, one an entry: `counter` or `gauge`, name, help text, the tenant's value.
macro_rules! families {
    ($($kind:ident $name:literal $help:literal $value:expr;)+) => {
        &[$(Family { name: $name, kind: stringify!($kind), help: $help, value: $value }),+]
    };
}

/// The last run, whether it succeeded or not.
fn last(t: &TenantTotals) -> Option<&RunReport> {
    t.last.as_ref()
}

/// The last run, if it succeeded.
fn last_success(t: &TenantTotals) -> Option<&RunReport> {
    last(t).filter(|r| r.success)
}

/// When the last successful sync ended, in Unix time.
fn last_success_unix_seconds(t: &TenantTotals) -> Option<f64> {
    let ended = t
        .last_success?
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?;
    Some(ended.as_secs_f64())
}

const FAMILIES: &[Family] = families! {
    counter "tenant_runs_succeeded_total" "Syncs that completed." |t| Some(t.runs_ok as f64);
    counter "tenant_runs_failed_total" "Syncs that failed." |t| Some(t.runs_failed as f64);
    counter "tenant_requests_total" "Requests the tenant's connector made to Segment."
        |t| Some(t.requests as f64);
    counter "tenant_retries_total" "Requests the host sent again (429, 5xx, lost connections)."
        |t| Some(t.retries as f64);
    counter "tenant_rate_limited_total" "Answers of 429 Too Many Requests."
        |t| Some(t.rate_limited as f64);
    counter "tenant_denied_requests_total" "Requests the sandbox refused (origin, budget)."
        |t| Some(t.denied as f64);
    counter "tenant_response_bytes_total" "Response bytes received for the tenant."
        |t| Some(t.bytes as f64);
    gauge "tenant_last_run_success" "1 if the last sync completed, 0 if it failed."
        |t| last(t).map(|r| if r.success { 1.0 } else { 0.0 });
    gauge "tenant_last_run_wall_seconds" "Duration of the last sync."
        |t| last(t).map(|r| r.wall.as_secs_f64());
    gauge "tenant_last_run_cpu_seconds" "Guest CPU time of the last sync."
        |t| last(t).map(|r| r.cpu.as_secs_f64());
    gauge "tenant_last_run_peak_memory_bytes"
        "Largest linear memory of one instance in the last sync."
        |t| last(t).map(|r| r.peak_memory_bytes as f64);
    gauge "tenant_last_run_grants" "Grants written by the last sync."
        |t| last_success(t).map(|r| r.grants as f64);
    gauge "tenant_last_run_resources" "Resources written by the last sync."
        |t| last_success(t).map(|r| r.resources as f64);
    gauge "tenant_last_success_timestamp_seconds"
        "When the last successful sync ended (Unix time)."
        last_success_unix_seconds;
};

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_last_run_gauges_per_tenant() {
        let m = Metrics::default();
        m.register("idle");
        m.record(
            "acme",
            RunReport {
                success: true,
                net: NetSnapshot {
                    requests: 29,
                    ..Default::default()
                },
                grants: 44,
                ..Default::default()
            },
        );
        m.record(
            "acme",
            RunReport {
                success: false,
                error: Some("boom".into()),
                net: NetSnapshot {
                    requests: 1,
                    rate_limited: 1,
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        let text = m.render();
        assert!(
            text.contains("baton_segment_tenant_requests_total{tenant=\"acme\"} 30"),
            "{text}"
        );
        assert!(text.contains("baton_segment_tenant_runs_succeeded_total{tenant=\"acme\"} 1"));
        assert!(text.contains("baton_segment_tenant_runs_failed_total{tenant=\"acme\"} 1"));
        assert!(text.contains("baton_segment_tenant_last_run_success{tenant=\"acme\"} 0"));
        assert!(text.contains("baton_segment_tenant_runs_succeeded_total{tenant=\"idle\"} 0"));
        assert!(
            !text.contains("baton_segment_tenant_last_run_success{tenant=\"idle\"}"),
            "no run yet, no gauge"
        );
        assert!(text.contains("# TYPE baton_segment_tenant_requests_total counter"));
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
