//! The end-of-sync report printed for people (and the progress line while it runs).

use crate::sandbox::NetSnapshot;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SyncSummary {
    /// "Acme Analytics (wkspAcme01)", when the connector listed a workspace.
    pub workspace: Option<String>,
    pub output: PathBuf,
    pub sync_id: String,
    pub resources_by_type: Vec<(String, usize)>,
    pub entitlements: usize,
    pub grants: usize,
    pub expanded_grants: usize,
    pub warnings: Vec<String>,
    pub net: NetSnapshot,
    pub retried_calls: u64,
    pub elapsed: Duration,
    /// Whether the sync went on from an interrupted one.
    pub resumed: bool,
}

impl SyncSummary {
    pub fn resources(&self) -> usize {
        self.resources_by_type.iter().map(|(_, n)| n).sum()
    }
}

impl fmt::Display for SyncSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = self
            .workspace
            .as_deref()
            .map(|w| format!("Segment workspace {w}"))
            .unwrap_or_else(|| "workspace".into());
        writeln!(
            f,
            "Synced {what} into {} in {:.2} s",
            self.output.display(),
            self.elapsed.as_secs_f64()
        )?;
        if self.resumed {
            writeln!(
                f,
                "  sync id        {} (resumed where an interrupted sync stopped)",
                self.sync_id
            )?;
        } else {
            writeln!(f, "  sync id        {}", self.sync_id)?;
        }
        writeln!(f)?;
        writeln!(f, "  {:<14} {:>8}", "resource type", "count")?;
        for (t, n) in &self.resources_by_type {
            writeln!(f, "  {t:<14} {n:>8}")?;
        }
        writeln!(f, "  {:<14} {:>8}", "(all)", self.resources())?;
        writeln!(f)?;
        writeln!(f, "  entitlements   {:>8}", self.entitlements)?;
        writeln!(
            f,
            "  grants         {:>8}  ({} through group membership)",
            self.grants, self.expanded_grants
        )?;
        let n = &self.net;
        writeln!(
            f,
            "  requests       {:>8}  ({} retried by the host, {} rate limited, {} server errors, {} denied by the sandbox)",
            n.requests, n.retries, n.rate_limited, n.server_errors, n.denied
        )?;
        if n.rate_limit_wait_ms > 0 {
            writeln!(
                f,
                "  waited         {:>7.1}s  for Segment's rate limit",
                n.rate_limit_wait_ms as f64 / 1000.0
            )?;
        }
        if self.warnings.is_empty() {
            write!(f, "  warnings       {:>8}", 0)
        } else {
            write!(f, "  warnings       {:>8}", self.warnings.len())?;
            for w in &self.warnings {
                write!(f, "\n    - {w}")?;
            }
            Ok(())
        }
    }
}
