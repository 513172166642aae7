//! The workspace's roles and who holds them where: what scoped entitlements exist, and the slug
//! of each role.
//!
//! Scoped entitlements (e.g. `source:<id>:source_admin`) exist on every resource of a scope for
//! each role that either names the scope ("Source Admin") or is actually held on some resource
//! of that scope. The second half is what guarantees that every grant the connector emits points
//! at an entitlement it also emitted, whatever the roles are called.

use crate::ids::{Scope, slugify};
use crate::segment::model::{Permission, Role};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Roles with a unique slug each.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RoleCatalog {
    roles: Vec<Role>,
    slugs: HashMap<String, String>,
}

impl RoleCatalog {
    /// Slugs follow the role name; a role whose slug another role already took (in API order)
    /// gets its id appended, so two roles never share an entitlement.
    pub fn new(roles: Vec<Role>) -> Self {
        let mut taken = HashSet::new();
        let mut slugs = HashMap::new();
        for role in &roles {
            let base = slugify(&role.name).unwrap_or_else(|| fallback_slug(&role.id));
            let slug = if taken.contains(&base) {
                format!("{base}_{}", fallback_slug(&role.id))
            } else {
                base
            };
            taken.insert(slug.clone());
            slugs.insert(role.id.clone(), slug);
        }
        RoleCatalog { roles, slugs }
    }

    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    pub fn get(&self, role_id: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.id == role_id)
    }

    /// The slug of a role; for a role missing from `GET /roles`, derived from the name a
    /// permission gave it, with its id appended if a listed role has that slug already.
    pub fn slug(&self, role_id: &str, role_name: &str) -> String {
        if let Some(slug) = self.slugs.get(role_id) {
            return slug.clone();
        }
        let base = slugify(role_name).unwrap_or_else(|| fallback_slug(role_id));
        if self.slugs.values().any(|taken| *taken == base) {
            format!("{base}_{}", fallback_slug(role_id))
        } else {
            base
        }
    }

    /// The role whose entitlement slug this is.
    pub fn by_slug(&self, slug: &str) -> Option<&Role> {
        self.roles
            .iter()
            .find(|r| self.slugs.get(&r.id).map(String::as_str) == Some(slug))
    }
}

fn fallback_slug(role_id: &str) -> String {
    slugify(role_id).unwrap_or_else(|| "role".into())
}

/// Roles held on some resource of each scope, from every user's and group's permissions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeldRoles {
    /// scope → role id → role name (as the permission names it)
    by_scope: BTreeMap<Scope, BTreeMap<String, String>>,
}

impl HeldRoles {
    pub fn add(&mut self, permissions: &[Permission]) {
        for permission in permissions {
            for resource in &permission.resources {
                if let Some(scope) = Scope::from_api_type(&resource.kind) {
                    self.by_scope
                        .entry(scope)
                        .or_default()
                        .entry(permission.role_id.clone())
                        .or_insert_with(|| permission.role_name.clone());
                }
            }
        }
    }

    /// Adds what `other` holds.
    pub fn merge(&mut self, other: HeldRoles) {
        for (scope, roles) in other.by_scope {
            let mine = self.by_scope.entry(scope).or_default();
            for (id, name) in roles {
                mine.entry(id).or_insert(name);
            }
        }
    }

    /// The roles `permissions` hold.
    pub fn of<'p>(permissions: impl IntoIterator<Item = &'p [Permission]>) -> HeldRoles {
        let mut held = HeldRoles::default();
        for p in permissions {
            held.add(p);
        }
        held
    }

    fn held(&self, scope: Scope) -> impl Iterator<Item = (&String, &String)> {
        self.by_scope.get(&scope).into_iter().flatten()
    }
}

/// A role that has an entitlement on every resource of a scope.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopedRole {
    pub role_id: String,
    pub name: String,
    pub description: String,
    pub slug: String,
}

/// The roles with entitlements on resources of `scope`: those named after it, in API order,
/// then those only known to be held there, by id.
pub fn scoped_roles(catalog: &RoleCatalog, held: &HeldRoles, scope: Scope) -> Vec<ScopedRole> {
    let held_here: BTreeMap<&String, &String> = held.held(scope).collect();
    let mut out: Vec<ScopedRole> = catalog
        .roles()
        .iter()
        .filter(|r| scope.named_by(&r.name) || held_here.contains_key(&r.id))
        .map(|r| ScopedRole {
            role_id: r.id.clone(),
            name: r.name.clone(),
            description: r.description.clone(),
            slug: catalog.slug(&r.id, &r.name),
        })
        .collect();
    for (role_id, name) in held_here {
        if catalog.get(role_id).is_none() {
            out.push(ScopedRole {
                role_id: role_id.clone(),
                name: name.clone(),
                description: String::new(),
                slug: catalog.slug(role_id, name),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::model::PermissionResource;

    fn role(id: &str, name: &str) -> Role {
        Role {
            id: id.into(),
            name: name.into(),
            description: format!("{name} role"),
        }
    }

    fn perm(role_id: &str, role_name: &str, kind: &str, id: &str) -> Permission {
        Permission {
            role_id: role_id.into(),
            role_name: role_name.into(),
            resources: vec![PermissionResource {
                id: id.into(),
                kind: kind.into(),
                labels: None,
            }],
            labels: None,
        }
    }

    #[test]
    fn colliding_slugs_get_the_role_id() {
        let c = RoleCatalog::new(vec![role("r1", "Source Admin"), role("R2", "Source-Admin")]);
        assert_eq!(c.slug("r1", ""), "source_admin");
        assert_eq!(c.slug("R2", ""), "source_admin_r2");
        assert_eq!(
            c.by_slug("source_admin_r2").map(|r| r.id.as_str()),
            Some("R2")
        );
        assert_eq!(c.slug("unknown", "Legacy Role"), "legacy_role");
        // A role missing from the list never takes a listed role's entitlement.
        assert_eq!(c.slug("ghost", "Source Admin"), "source_admin_ghost");
    }

    #[test]
    fn held_roles_add_entitlements_whatever_their_name() {
        let catalog = RoleCatalog::new(vec![
            role("own", "Workspace Owner"),
            role("sa", "Source Admin"),
            role("ds", "Data Steward"),
            role("ea", "Unify and Engage Admin"),
        ]);
        let mut held = HeldRoles::default();
        held.add(&[
            perm("ds", "Data Steward", "SOURCE", "s1"),
            perm("own", "Workspace Owner", "WORKSPACE", "w"),
        ]);
        held.add(&[perm("ghost", "Retired Role", "SPACE", "sp1")]);
        let slugs = |scope| {
            scoped_roles(&catalog, &held, scope)
                .into_iter()
                .map(|r| r.slug)
                .collect::<Vec<_>>()
        };
        assert_eq!(slugs(Scope::Source), ["source_admin", "data_steward"]);
        assert_eq!(
            slugs(Scope::Space),
            ["unify_and_engage_admin", "retired_role"]
        );
        assert_eq!(slugs(Scope::Warehouse), Vec::<String>::new());
    }
}
