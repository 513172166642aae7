//! What a sync covers: everything (a full sync), or part of it as Baton's options ask —
//! `--sync-resource-types` / a task's `sync_resource_type_ids`, `--sync-resources` / a task's
//! `targeted_sync_resources`, `--skip-entitlements-and-grants`, `--skip-grants` and
//! `skip_expand_grants`.
//!
//! The engine asks the scope at each step, so a partial sync makes fewer requests, not just
//! a smaller file:
//!
//! * top-level listings: every resource type (they find the parents other types are listed
//!   under), or only the targets' own listings when every target names its parent;
//! * child listings: only of the types the scope keeps;
//! * resources: only those the scope keeps are written (the others are walked through to
//!   reach their children);
//! * entitlements and grants: only of kept resources, and not at all when skipped.

use crate::engine::contract::ResourceId;
use std::collections::BTreeSet;

/// A resource a targeted sync is about, with its parent when the id names one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub resource_type: String,
    pub resource: String,
    pub parent: Option<(String, String)>,
}

impl Target {
    /// Parses a Baton resource id (`bid:r:<type>/<id>` or
    /// `bid:r:<parent type>/<parent id>/<type>/<id>`, with `\:`, `\/` and `\\` escapes), as
    /// `--sync-resources` takes them.
    pub fn parse_bid(bid: &str) -> Result<Target, String> {
        let bad = |why: &str| {
            format!(
                "{bid:?} is not a Baton resource id (bid:r:<type>/<id> or bid:r:<parent type>/<parent id>/<type>/<id>): {why}"
            )
        };
        let rest = bid
            .strip_prefix("bid:r:")
            .ok_or_else(|| bad("it must start with bid:r:"))?;
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(e @ (':' | '/' | '\\')) => current.push(e),
                    _ => return Err(bad("invalid escape sequence")),
                },
                '/' => parts.push(std::mem::take(&mut current)),
                ':' => return Err(bad("unescaped ':'")),
                c => current.push(c),
            }
        }
        parts.push(current);
        if parts.iter().any(String::is_empty) {
            return Err(bad("an empty part"));
        }
        match parts.as_slice() {
            [t, r] => Ok(Target {
                resource_type: t.clone(),
                resource: r.clone(),
                parent: None,
            }),
            [pt, pr, t, r] => Ok(Target {
                resource_type: t.clone(),
                resource: r.clone(),
                parent: Some((pt.clone(), pr.clone())),
            }),
            _ => Err(bad("expected 2 or 4 parts separated by '/'")),
        }
    }

    fn is(&self, id: &ResourceId) -> bool {
        self.resource_type == id.resource_type && self.resource == id.resource
    }
}

/// What one sync covers. [`SyncScope::default`] is a full sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncScope {
    /// Only resources of these types (empty: every type).
    pub resource_types: BTreeSet<String>,
    /// A targeted sync: only these resources, with their entitlements and grants.
    pub targets: Vec<Target>,
    /// Resources only.
    pub skip_entitlements_and_grants: bool,
    /// Resources and entitlements, no grants.
    pub skip_grants: bool,
    /// Grants as the connector lists them, without expansion.
    pub skip_expand_grants: bool,
}

impl SyncScope {
    /// A scope from Baton's flags (`--sync-resource-types`, `--sync-resources` as resource
    /// ids, `--skip-entitlements-and-grants`, `--skip-grants`).
    pub fn from_flags(
        resource_types: &[String],
        resources: &[String],
        skip_entitlements_and_grants: bool,
        skip_grants: bool,
    ) -> Result<SyncScope, String> {
        let targets = resources
            .iter()
            .map(|r| r.trim())
            .filter(|r| !r.is_empty())
            .map(Target::parse_bid)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SyncScope {
            resource_types: clean(resource_types),
            targets,
            skip_entitlements_and_grants,
            skip_grants,
            skip_expand_grants: false,
        })
    }

    /// Everything.
    pub fn is_full(&self) -> bool {
        *self == SyncScope::default()
    }

    /// What the `.c1z` records as the sync's type: `partial` for a targeted sync,
    /// `resources_only` without entitlements and grants, else `full` (as baton-sdk's syncer
    /// names them).
    pub fn sync_type(&self) -> &'static str {
        if !self.targets.is_empty() {
            "partial"
        } else if self.skip_entitlements_and_grants {
            "resources_only"
        } else {
            "full"
        }
    }

    /// Whether resources of `resource_type` are written (and listed under their parents).
    pub fn keeps_type(&self, resource_type: &str) -> bool {
        let by_type = self.resource_types.is_empty() || self.resource_types.contains(resource_type);
        let by_target = self.targets.is_empty()
            || self
                .targets
                .iter()
                .any(|t| t.resource_type == resource_type);
        by_type && by_target
    }

    /// Whether this resource is written.
    pub fn keeps(&self, id: &ResourceId) -> bool {
        self.keeps_type(&id.resource_type)
            && (self.targets.is_empty() || self.targets.iter().any(|t| t.is(id)))
    }

    /// The listings a sync starts with, given every declared resource type: each type at
    /// the top level, or, when every target names its parent, just those listings.
    pub fn first_listings(&self, types: &[String]) -> Vec<(String, Option<ResourceId>)> {
        let parents: Option<BTreeSet<(String, String, String)>> = (!self.targets.is_empty())
            .then(|| {
                self.targets
                    .iter()
                    .map(|t| {
                        t.parent
                            .clone()
                            .map(|(pt, pr)| (t.resource_type.clone(), pt, pr))
                    })
                    .collect()
            })
            .flatten();
        match parents {
            Some(listings) => listings
                .into_iter()
                .filter(|(t, _, _)| types.contains(t) && self.keeps_type(t))
                .map(|(t, pt, pr)| {
                    (
                        t,
                        Some(ResourceId {
                            resource_type: pt,
                            resource: pr,
                        }),
                    )
                })
                .collect(),
            None => types.iter().map(|t| (t.clone(), None)).collect(),
        }
    }

    /// Whether to list children of type `child` under a listed resource.
    pub fn lists_children(&self, child: &str) -> bool {
        self.keeps_type(child)
    }

    /// Whether to list the entitlements of this resource.
    pub fn lists_entitlements(&self, id: &ResourceId) -> bool {
        !self.skip_entitlements_and_grants && self.keeps(id)
    }

    /// Whether to list the grants of this resource.
    pub fn lists_grants(&self, id: &ResourceId) -> bool {
        !self.skip_entitlements_and_grants && !self.skip_grants && self.keeps(id)
    }

    /// Whether grants are expanded at the end (nothing to expand without grants).
    pub fn expands_grants(&self) -> bool {
        !self.skip_expand_grants && !self.skip_entitlements_and_grants && !self.skip_grants
    }

    /// One line for the log: what is left out.
    pub fn describe(&self) -> String {
        if self.is_full() {
            return "everything".into();
        }
        let mut parts = vec![];
        if !self.resource_types.is_empty() {
            let types: Vec<&str> = self.resource_types.iter().map(String::as_str).collect();
            parts.push(format!("resource types {}", types.join(", ")));
        }
        if !self.targets.is_empty() {
            parts.push(format!("{} targeted resource(s)", self.targets.len()));
        }
        if self.skip_entitlements_and_grants {
            parts.push("no entitlements or grants".into());
        } else if self.skip_grants {
            parts.push("no grants".into());
        }
        if self.skip_expand_grants {
            parts.push("grants not expanded".into());
        }
        parts.join("; ")
    }
}

fn clean(items: &[String]) -> BTreeSet<String> {
    items
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(t: &str, r: &str) -> ResourceId {
        ResourceId {
            resource_type: t.into(),
            resource: r.into(),
        }
    }

    fn types() -> Vec<String> {
        ["workspace", "user", "group", "role"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn a_full_sync_lists_everything() {
        let s = SyncScope::default();
        assert!(s.is_full());
        assert_eq!(s.sync_type(), "full");
        assert_eq!(s.first_listings(&types()).len(), 4);
        assert!(s.keeps(&id("user", "u")) && s.lists_children("group"));
        assert!(s.lists_entitlements(&id("group", "g")) && s.lists_grants(&id("group", "g")));
        assert!(s.expands_grants());
    }

    #[test]
    fn resource_types_limit_children_and_what_is_written() {
        let s = SyncScope::from_flags(&["user, group".into()], &[], false, false).unwrap();
        assert_eq!(s.sync_type(), "full");
        // Top-level listings still find the parents the kept types live under…
        assert_eq!(s.first_listings(&types()).len(), 4);
        // …but only kept types are listed under them, written, and asked for grants.
        assert!(s.lists_children("user") && !s.lists_children("role"));
        assert!(!s.keeps(&id("workspace", "ws")));
        assert!(s.lists_grants(&id("group", "g")) && !s.lists_grants(&id("role", "r")));
    }

    #[test]
    fn targets_with_parents_are_listed_directly() {
        let s = SyncScope::from_flags(
            &[],
            &[
                "bid:r:workspace/ws1/group/grpEng".into(),
                "bid:r:workspace/ws1/group/grpOps".into(),
            ],
            false,
            false,
        )
        .unwrap();
        assert_eq!(s.sync_type(), "partial");
        assert_eq!(
            s.first_listings(&types()),
            vec![("group".to_string(), Some(id("workspace", "ws1")))]
        );
        assert!(s.keeps(&id("group", "grpEng")) && !s.keeps(&id("group", "grpOther")));
        assert!(!s.lists_children("user"));
        assert!(s.lists_grants(&id("group", "grpOps")) && !s.lists_grants(&id("group", "x")));
        // A target without its parent needs the top-level listings.
        let s = SyncScope::from_flags(&[], &["bid:r:group/grpEng".into()], false, false).unwrap();
        assert_eq!(s.first_listings(&types()).len(), 4);
    }

    #[test]
    fn skips() {
        let s = SyncScope::from_flags(&[], &[], true, false).unwrap();
        assert_eq!(s.sync_type(), "resources_only");
        assert!(!s.lists_entitlements(&id("group", "g")) && !s.lists_grants(&id("group", "g")));
        assert!(!s.expands_grants());
        let s = SyncScope::from_flags(&[], &[], false, true).unwrap();
        assert!(s.lists_entitlements(&id("group", "g")) && !s.lists_grants(&id("group", "g")));
        assert!(!s.expands_grants());
        let s = SyncScope {
            skip_expand_grants: true,
            ..SyncScope::default()
        };
        assert!(s.lists_grants(&id("group", "g")) && !s.expands_grants());
        assert!(s.describe().contains("not expanded"));
    }

    #[test]
    fn baton_ids_parse_with_escapes_and_refuse_the_rest() {
        let t = Target::parse_bid(r"bid:r:user/a\/b\:c\\d").unwrap();
        assert_eq!(
            (t.resource_type.as_str(), t.resource.as_str()),
            ("user", r"a/b:c\d")
        );
        assert_eq!(t.parent, None);
        for bad in [
            "user/u",
            "bid:e:group/g:member",
            "bid:r:user",
            "bid:r:a/b/c",
            "bid:r:user/",
            r"bid:r:user/x\q",
            "bid:r:user/x:y",
        ] {
            let e = Target::parse_bid(bad).unwrap_err();
            assert!(e.contains("is not a Baton resource id"), "{bad}: {e}");
        }
    }
}
