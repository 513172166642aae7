//! What a sync collects, in discovery order, with the checks that keep it consistent: no
//! duplicate ids, every entitlement on a listed resource, every grant on an emitted
//! entitlement.

use crate::component::{
    Entitlement, GrantRecord, Resource, ResourceId, ResourceType, SyncHints, TraitKind,
};
use std::collections::{BTreeMap, HashMap};

/// A grant as stored: the connector's grant plus what grant expansion adds.
#[derive(Debug, Clone)]
pub struct StoredGrant {
    pub grant: GrantRecord,
    /// Entitlement id → whether the principal holds it directly (Baton's `GrantSources`);
    /// empty for a grant expansion did not touch.
    pub sources: BTreeMap<String, bool>,
    /// Created by grant expansion: it cannot be revoked on its own.
    pub derived: bool,
    /// Position of the resource whose listing produced it (for a stable output order).
    pub origin: usize,
}

#[derive(Debug, Default)]
pub struct SyncData {
    pub resource_types: Vec<ResourceType>,
    resources: Vec<Resource>,
    resource_index: HashMap<(String, String), usize>,
    entitlements: Vec<Entitlement>,
    entitlement_index: HashMap<String, usize>,
    pub(crate) grants: Vec<StoredGrant>,
    pub(crate) grant_index: HashMap<String, usize>,
    pub warnings: Vec<String>,
}

fn key(id: &ResourceId) -> (String, String) {
    (id.resource_type.clone(), id.resource.clone())
}

impl SyncData {
    pub fn resource_type(&self, id: &str) -> Option<&ResourceType> {
        self.resource_types.iter().find(|t| t.id == id)
    }

    pub fn resources(&self) -> &[Resource] {
        &self.resources
    }

    pub fn resource(&self, id: &ResourceId) -> Option<&Resource> {
        self.resource_index
            .get(&key(id))
            .map(|&i| &self.resources[i])
    }

    pub fn entitlements(&self) -> &[Entitlement] {
        &self.entitlements
    }

    pub fn entitlement(&self, id: &str) -> Option<&Entitlement> {
        self.entitlement_index
            .get(id)
            .map(|&i| &self.entitlements[i])
    }

    pub fn grants(&self) -> &[StoredGrant] {
        &self.grants
    }

    /// Adds a resource; a second listing of the same id replaces the first (as Baton's store
    /// does). Returns whether it was new.
    pub fn put_resource(&mut self, resource: Resource) -> Result<bool, String> {
        let Some(rtype) = self.resource_type(&resource.id.resource_type) else {
            return Err(format!(
                "resource {} has undeclared type {:?}",
                show(&resource.id),
                resource.id.resource_type
            ));
        };
        // The Baton syncer refuses a resource that lacks the trait its type declares.
        for t in &rtype.traits {
            let has = resource.traits.iter().any(|rt| trait_kind(rt) == *t);
            if !has {
                return Err(format!(
                    "resource {} lacks the {t:?} trait its type declares",
                    show(&resource.id)
                ));
            }
        }
        let k = key(&resource.id);
        match self.resource_index.get(&k) {
            Some(&i) => {
                self.resources[i] = resource;
                Ok(false)
            }
            None => {
                self.resource_index.insert(k, self.resources.len());
                self.resources.push(resource);
                Ok(true)
            }
        }
    }

    /// Adds an entitlement of a listed resource.
    pub fn put_entitlement(&mut self, entitlement: Entitlement) -> Result<(), String> {
        if self.resource(&entitlement.resource).is_none() {
            return Err(format!(
                "entitlement {} is on resource {}, which was not listed",
                entitlement.id,
                show(&entitlement.resource)
            ));
        }
        match self.entitlement_index.get(&entitlement.id) {
            Some(&i) => self.entitlements[i] = entitlement,
            None => {
                self.entitlement_index
                    .insert(entitlement.id.clone(), self.entitlements.len());
                self.entitlements.push(entitlement);
            }
        }
        Ok(())
    }

    /// Adds a grant found by listing the grants of `origin`.
    pub fn put_grant(&mut self, grant: GrantRecord, origin: &ResourceId) {
        let origin = self
            .resource_index
            .get(&key(origin))
            .copied()
            .unwrap_or(usize::MAX);
        let stored = StoredGrant {
            grant,
            sources: BTreeMap::new(),
            derived: false,
            origin,
        };
        match self.grant_index.get(&stored.grant.id) {
            Some(&i) => self.grants[i] = stored,
            None => {
                self.grant_index
                    .insert(stored.grant.id.clone(), self.grants.len());
                self.grants.push(stored);
            }
        }
    }

    /// Removes grants whose entitlement was never emitted, and says so: a grant must always
    /// point at an entitlement a reader can find.
    pub fn drop_dangling_grants(&mut self) {
        let (kept, dropped): (Vec<StoredGrant>, Vec<StoredGrant>) =
            std::mem::take(&mut self.grants)
                .into_iter()
                .partition(|g| self.entitlement_index.contains_key(&g.grant.entitlement_id));
        if !dropped.is_empty() {
            let examples: Vec<&str> = dropped
                .iter()
                .take(5)
                .map(|g| g.grant.id.as_str())
                .collect();
            self.warnings.push(format!(
                "{} grant(s) named an entitlement the connector never listed and were left out (e.g. {})",
                dropped.len(),
                examples.join(", ")
            ));
        }
        self.grants = kept;
        self.grant_index = self
            .grants
            .iter()
            .enumerate()
            .map(|(i, g)| (g.grant.id.clone(), i))
            .collect();
    }

    /// Puts resources in resource type order (keeping the listing order within a type), so the
    /// output does not depend on which call finished first.
    pub fn order_resources(&mut self) {
        let rank: HashMap<&str, usize> = self
            .resource_types
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.as_str(), i))
            .collect();
        self.resources.sort_by_key(|r| {
            rank.get(r.id.resource_type.as_str())
                .copied()
                .unwrap_or(usize::MAX)
        });
        self.resource_index = self
            .resources
            .iter()
            .enumerate()
            .map(|(i, r)| (key(&r.id), i))
            .collect();
    }

    /// Entitlements in the order of their resources (listing order within one resource).
    pub fn order_entitlements(&mut self) {
        let index = &self.resource_index;
        self.entitlements
            .sort_by_key(|e| index.get(&key(&e.resource)).copied().unwrap_or(usize::MAX));
        self.entitlement_index = self
            .entitlements
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id.clone(), i))
            .collect();
    }

    /// Grants in the order of the resources whose listing produced them.
    pub fn order_grants(&mut self) {
        self.grants.sort_by_key(|g| g.origin);
        self.grant_index = self
            .grants
            .iter()
            .enumerate()
            .map(|(i, g)| (g.grant.id.clone(), i))
            .collect();
    }

    /// Resource counts per type, in resource type order.
    pub fn resource_counts(&self) -> Vec<(String, usize)> {
        self.resource_types
            .iter()
            .map(|t| {
                (
                    t.id.clone(),
                    self.resources
                        .iter()
                        .filter(|r| r.id.resource_type == t.id)
                        .count(),
                )
            })
            .collect()
    }

    pub fn skips(&self, resource: &Resource, hint: SyncHints) -> bool {
        resource.hints.contains(hint)
            || self
                .resource_type(&resource.id.resource_type)
                .is_some_and(|t| t.hints.contains(hint))
    }
}

pub fn show(id: &ResourceId) -> String {
    format!("{}:{}", id.resource_type, id.resource)
}

fn trait_kind(t: &crate::component::ResourceTrait) -> TraitKind {
    use crate::component::ResourceTrait as R;
    match t {
        R::User(_) => TraitKind::User,
        R::Group(_) => TraitKind::Group,
        R::Role(_) => TraitKind::Role,
        R::App(_) => TraitKind::App,
    }
}
