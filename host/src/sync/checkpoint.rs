//! Where a sync stands, as it records it with every page it stores (Baton's
//! `v1_sync_runs.sync_token`): the phase, how far the phase has walked the stored resources
//! (in row order, or each resource type on its own), and the listings it has started and not
//! finished, each with the page token it continues from. A sync that resumes from a
//! checkpoint requests no page it had already stored.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// This format's version (written in every checkpoint; others are not resumed).
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Listing resources: every type's top-level listing, then the child types of each
    /// resource.
    Resources,
    Entitlements,
    Grants,
    /// Expanding grants over what is stored (nothing left to request).
    Expand,
}

impl Phase {
    pub fn next(self) -> Phase {
        match self {
            Phase::Resources => Phase::Entitlements,
            Phase::Entitlements => Phase::Grants,
            Phase::Grants | Phase::Expand => Phase::Expand,
        }
    }
}

/// A listing started and not finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenListing {
    /// The stored resource it lists under or for (its row), or 0 for a type's top-level
    /// listing.
    pub row: i64,
    /// The resource type listed (resources phase), else empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// For a top-level listing under a parent a targeted sync names: that parent's type and id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub under: Option<(String, String)>,
    /// The page to ask for next ("" for the first).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
}

impl OpenListing {
    pub fn same(&self, row: i64, kind: &str) -> bool {
        self.row == row && self.kind == kind
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    /// Names what made it, so another host's token is never mistaken for ours.
    pub by: String,
    pub phase: Phase,
    /// The last stored resource row whose listings this phase has started (the resources
    /// phase, which walks the rows in order).
    pub cursor: i64,
    /// The entitlements and grants phases walk each resource type on its own: per type, the
    /// last row of that type whose listing has started. (A checkpoint without them, from
    /// before, walked every type up to `cursor`.)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cursors: BTreeMap<String, i64>,
    pub open: Vec<OpenListing>,
    /// Warnings so far (the first few; `warning_count` counts them all).
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub warning_count: u64,
    /// Calls retried so far.
    #[serde(default)]
    pub retried_calls: u64,
}

/// Warnings kept in a checkpoint (and a summary); the rest are counted.
pub const KEPT_WARNINGS: usize = 50;

pub const BY: &str = "baton-segment";

impl Checkpoint {
    /// The start of `phase`, with `open` listings already started.
    pub fn at(phase: Phase, open: Vec<OpenListing>) -> Checkpoint {
        Checkpoint {
            version: VERSION,
            by: BY.into(),
            phase,
            cursor: 0,
            cursors: BTreeMap::new(),
            open,
            warnings: vec![],
            warning_count: 0,
            retried_calls: 0,
        }
    }

    /// Moves to the start of the next phase, keeping the run's counts.
    pub fn advance(&mut self, open: Vec<OpenListing>) {
        self.phase = self.phase.next();
        self.cursor = 0;
        self.cursors.clear();
        self.open = open;
    }

    /// The last row of `kind` whose listing this phase has started.
    pub fn cursor_of(&self, kind: &str) -> i64 {
        self.cursors
            .get(kind)
            .copied()
            .unwrap_or(0)
            .max(self.cursor)
    }

    pub fn warn(&mut self, warning: String) {
        self.warning_count += 1;
        if self.warnings.len() < KEPT_WARNINGS {
            self.warnings.push(warning);
        }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a checkpoint is plain data")
    }

    /// A checkpoint this version wrote, or `None` (anything else is not resumed).
    pub fn decode(text: &str) -> Option<Checkpoint> {
        serde_json::from_str::<Checkpoint>(text)
            .ok()
            .filter(|c| c.version == VERSION && c.by == BY)
    }

    /// The open listing at (`row`, `kind`).
    pub fn listing(&mut self, row: i64, kind: &str) -> Option<&mut OpenListing> {
        self.open.iter_mut().find(|l| l.same(row, kind))
    }

    pub fn close(&mut self, row: i64, kind: &str) {
        self.open.retain(|l| !l.same(row, kind));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_and_foreign_tokens_are_refused() {
        let mut c = Checkpoint::at(
            Phase::Resources,
            vec![OpenListing {
                row: 0,
                kind: "user".into(),
                under: Some(("workspace".into(), "w1".into())),
                token: String::new(),
            }],
        );
        c.cursor = 42;
        c.open.push(OpenListing {
            row: 7,
            kind: "source".into(),
            under: None,
            token: "abc|1".into(),
        });
        c.warn("w".into());
        assert_eq!(Checkpoint::decode(&c.encode()), Some(c.clone()));
        c.advance(vec![]);
        assert_eq!(c.phase, Phase::Entitlements);
        assert_eq!((c.cursor, c.open.len(), c.warning_count), (0, 0, 1));
        c.cursors.insert("user".into(), 9);
        assert_eq!(Checkpoint::decode(&c.encode()), Some(c.clone()));
        assert_eq!((c.cursor_of("user"), c.cursor_of("group")), (9, 0));
        c.advance(vec![]);
        assert!(c.cursors.is_empty());
        assert_eq!(Checkpoint::decode(""), None);
        assert_eq!(
            Checkpoint::decode(r#"{"actions_map":{}}"#),
            None,
            "Baton's own"
        );
        let other = c.encode().replace("\"version\":1", "\"version\":9");
        assert_eq!(Checkpoint::decode(&other), None);
    }

    #[test]
    fn a_checkpoint_from_before_per_type_walks_resumes_every_type_from_its_cursor() {
        let before = r#"{"version":1,"by":"baton-segment","phase":"grants","cursor":120,"open":[{"row":118}]}"#;
        let c = Checkpoint::decode(before).expect("still resumed");
        assert_eq!((c.cursor_of("user"), c.cursor_of("group")), (120, 120));
        assert_eq!(c.open[0].row, 118);
    }
}
