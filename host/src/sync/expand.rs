//! Grant expansion (Baton's last sync phase): a grant marked expandable says "holders of these
//! source entitlements also hold this one". Each holder gets a derived grant, recorded with the
//! source it came from; an existing direct grant gets its sources merged instead.

use super::data::{StoredGrant, SyncData};
use crate::component::{GrantRecord, ResourceId};
use std::collections::BTreeMap;

/// Baton's default limit on chains of expandable grants.
const MAX_DEPTH: usize = 20;

#[derive(Debug, Clone)]
struct Edge {
    source: String,
    destination: String,
    destination_resource: ResourceId,
    shallow: bool,
    principal_types: Vec<String>,
}

/// Expands every expandable grant; returns how many grants it created.
pub fn expand(data: &mut SyncData) -> usize {
    let edges = edges(data);
    if edges.is_empty() {
        return 0;
    }
    let mut created = 0;
    // Repeat until nothing changes: a chain of expansions settles in at most its depth.
    for _ in 0..MAX_DEPTH {
        let mut changed = false;
        for edge in &edges {
            let holders: Vec<(ResourceId, bool)> = data
                .grants
                .iter()
                .filter(|g| g.grant.entitlement_id == edge.source)
                .filter(|g| {
                    edge.principal_types.is_empty()
                        || edge
                            .principal_types
                            .contains(&g.grant.principal.resource_type)
                })
                .map(|g| (g.grant.principal.clone(), is_direct(g, &edge.source)))
                .filter(|(_, direct)| !edge.shallow || *direct)
                .collect();
            for (principal, direct) in holders {
                let id = format!(
                    "{}:{}:{}",
                    edge.destination, principal.resource_type, principal.resource
                );
                match data.grant_index.get(&id) {
                    Some(&i) => {
                        let sources = &mut data.grants[i].sources;
                        let before = sources.clone();
                        if sources.is_empty() {
                            // Mark the existing grant as held directly as well.
                            sources.insert(edge.destination.clone(), true);
                        }
                        let entry = sources.entry(edge.source.clone()).or_insert(direct);
                        *entry |= direct;
                        changed |= *sources != before;
                    }
                    None => {
                        let grant = StoredGrant {
                            grant: GrantRecord {
                                id: id.clone(),
                                entitlement_id: edge.destination.clone(),
                                entitlement_resource: edge.destination_resource.clone(),
                                principal,
                                expandable: None,
                            },
                            sources: BTreeMap::from([(edge.source.clone(), direct)]),
                            derived: true,
                            origin: usize::MAX,
                        };
                        data.grant_index.insert(id, data.grants.len());
                        data.grants.push(grant);
                        created += 1;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    created
}

/// A grant is direct on `entitlement` when expansion never touched it or recorded it as direct.
fn is_direct(grant: &StoredGrant, entitlement: &str) -> bool {
    grant.sources.is_empty() || grant.sources.get(entitlement).copied().unwrap_or(false)
}

/// Source → destination edges. As in Baton, a source entitlement must be on the expandable
/// grant's own principal (e.g. "member of group G" for a grant to group G); others are ignored.
fn edges(data: &SyncData) -> Vec<Edge> {
    let mut out = Vec::new();
    for g in &data.grants {
        let Some(exp) = &g.grant.expandable else {
            continue;
        };
        for source in &exp.entitlement_ids {
            let on_principal = data
                .entitlement(source)
                .is_some_and(|e| e.resource == g.grant.principal);
            if !on_principal {
                continue;
            }
            out.push(Edge {
                source: source.clone(),
                destination: g.grant.entitlement_id.clone(),
                destination_resource: g.grant.entitlement_resource.clone(),
                shallow: exp.shallow,
                principal_types: exp.resource_type_ids.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::*;

    fn rid(t: &str, id: &str) -> ResourceId {
        ResourceId {
            resource_type: t.into(),
            resource: id.into(),
        }
    }

    fn resource(t: &str, id: &str, traits: Vec<ResourceTrait>) -> Resource {
        Resource {
            id: rid(t, id),
            parent: None,
            display_name: id.into(),
            description: String::new(),
            traits,
            profile: vec![],
            status: ResourceStatus::Enabled,
            child_resource_types: vec![],
            hints: SyncHints::empty(),
        }
    }

    fn entitlement(on: &ResourceId, slug: &str) -> Entitlement {
        Entitlement {
            id: format!("{}:{}:{slug}", on.resource_type, on.resource),
            resource: on.clone(),
            display_name: slug.into(),
            description: String::new(),
            slug: slug.into(),
            purpose: Purpose::Assignment,
            grantable_to: vec![],
        }
    }

    fn grant(
        ent: &Entitlement,
        principal: ResourceId,
        exp: Option<GrantExpandable>,
    ) -> GrantRecord {
        GrantRecord {
            id: format!(
                "{}:{}:{}",
                ent.id, principal.resource_type, principal.resource
            ),
            entitlement_id: ent.id.clone(),
            entitlement_resource: ent.resource.clone(),
            principal,
            expandable: exp,
        }
    }

    #[test]
    fn group_role_grants_reach_user_members_only() {
        let mut d = SyncData::default();
        let t = |id: &str| ResourceType {
            id: id.into(),
            display_name: id.into(),
            description: String::new(),
            traits: vec![],
            hints: SyncHints::empty(),
        };
        d.resource_types = vec![t("group"), t("source"), t("user"), t("invite")];
        let g = resource("group", "g", vec![]);
        let s = resource("source", "s", vec![]);
        d.put_resource(g.clone()).unwrap();
        d.put_resource(s.clone()).unwrap();
        let member = entitlement(&g.id, "member");
        let admin = entitlement(&s.id, "source_admin");
        d.put_entitlement(member.clone()).unwrap();
        d.put_entitlement(admin.clone()).unwrap();
        d.put_grant(grant(&member, rid("user", "u1"), None), &g.id);
        d.put_grant(grant(&member, rid("user", "u2"), None), &g.id);
        d.put_grant(grant(&member, rid("invite", "x@y"), None), &g.id);
        // u2 also holds the role directly.
        d.put_grant(grant(&admin, rid("user", "u2"), None), &rid("user", "u2"));
        let exp = GrantExpandable {
            entitlement_ids: vec![member.id.clone()],
            shallow: true,
            resource_type_ids: vec!["user".into()],
        };
        d.put_grant(grant(&admin, g.id.clone(), Some(exp)), &g.id);

        assert_eq!(expand(&mut d), 1);
        let by_id = |id: &str| {
            d.grants()
                .iter()
                .find(|g| g.grant.id == id)
                .unwrap()
                .clone()
        };
        let u1 = by_id("source:s:source_admin:user:u1");
        assert!(u1.derived);
        assert_eq!(
            u1.sources,
            BTreeMap::from([("group:g:member".to_string(), true)])
        );
        let u2 = by_id("source:s:source_admin:user:u2");
        assert!(!u2.derived);
        assert_eq!(
            u2.sources,
            BTreeMap::from([
                ("group:g:member".to_string(), true),
                ("source:s:source_admin".to_string(), true)
            ])
        );
        assert!(
            d.grants()
                .iter()
                .all(|g| g.grant.principal.resource_type != "invite"
                    || g.grant.entitlement_id == member.id)
        );
        // Running it again changes nothing.
        assert_eq!(expand(&mut d), 0);
    }
}
