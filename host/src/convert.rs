//! The contract's records as Baton protobuf messages (for the `.c1z` file): traits, child
//! types and sync hints become annotations, profiles become `Struct`s.

use crate::component::{
    AccountType, Entitlement, GrantExpandable, ProfileField, ProfileValue, Purpose, Resource,
    ResourceId, ResourceStatus, ResourceTrait, ResourceType, SyncHints, TraitKind,
};
use crate::sync::data::{StoredGrant, SyncData};
use baton::annotations::pack;
use baton::pb;
use prost_types::{Any, Struct, Value, value::Kind};
use std::collections::{BTreeMap, HashMap};

fn resource_id(id: &ResourceId) -> pb::ResourceId {
    pb::ResourceId {
        resource_type: id.resource_type.clone(),
        resource: id.resource.clone(),
        baton_resource: false,
    }
}

fn profile(fields: &[ProfileField]) -> Option<Struct> {
    if fields.is_empty() {
        return None;
    }
    let fields = fields
        .iter()
        .map(|f| {
            let kind = match &f.value {
                ProfileValue::Empty => Kind::NullValue(0),
                ProfileValue::Boolean(b) => Kind::BoolValue(*b),
                ProfileValue::Number(n) => Kind::NumberValue(*n),
                ProfileValue::Text(s) => Kind::StringValue(s.clone()),
            };
            (f.key.clone(), Value { kind: Some(kind) })
        })
        .collect::<BTreeMap<_, _>>();
    Some(Struct { fields })
}

fn hint_annotations(hints: SyncHints) -> Vec<Any> {
    let entitlements = hints.contains(SyncHints::SKIP_ENTITLEMENTS);
    let grants = hints.contains(SyncHints::SKIP_GRANTS);
    match (entitlements, grants) {
        (true, true) => vec![pack(&pb::SkipEntitlementsAndGrants {})],
        (true, false) => vec![pack(&pb::SkipEntitlements {})],
        (false, true) => vec![pack(&pb::SkipGrants {})],
        (false, false) => vec![],
    }
}

pub fn resource_type(t: &ResourceType) -> pb::ResourceType {
    use pb::resource_type::Trait;
    pb::ResourceType {
        id: t.id.clone(),
        display_name: t.display_name.clone(),
        traits: t
            .traits
            .iter()
            .map(|k| match k {
                TraitKind::User => Trait::User,
                TraitKind::Group => Trait::Group,
                TraitKind::Role => Trait::Role,
                TraitKind::App => Trait::App,
            } as i32)
            .collect(),
        annotations: hint_annotations(t.hints),
        description: t.description.clone(),
        sourced_externally: false,
    }
}

fn status(s: ResourceStatus) -> i32 {
    use pb::status::Status;
    (match s {
        ResourceStatus::Unspecified => Status::ResourceStatusUnspecified,
        ResourceStatus::Enabled => Status::ResourceStatusEnabled,
        ResourceStatus::Disabled => Status::ResourceStatusDisabled,
        ResourceStatus::Deleted => Status::ResourceStatusDeleted,
    }) as i32
}

fn trait_annotation(t: &ResourceTrait) -> Any {
    match t {
        ResourceTrait::User(u) => {
            use pb::user_trait::{self, AccountType as A};
            let user_status = match u.status {
                ResourceStatus::Unspecified => user_trait::status::Status::Unspecified,
                ResourceStatus::Enabled => user_trait::status::Status::Enabled,
                ResourceStatus::Disabled => user_trait::status::Status::Disabled,
                ResourceStatus::Deleted => user_trait::status::Status::Deleted,
            };
            pack(&pb::UserTrait {
                emails: u
                    .emails
                    .iter()
                    .map(|e| user_trait::Email {
                        address: e.address.clone(),
                        is_primary: e.is_primary,
                    })
                    .collect(),
                status: Some(user_trait::Status {
                    status: user_status as i32,
                    details: String::new(),
                }),
                profile: profile(&u.profile),
                account_type: match u.account_type {
                    AccountType::Unspecified => A::Unspecified,
                    AccountType::Human => A::Human,
                    AccountType::Service => A::Service,
                    AccountType::System => A::System,
                } as i32,
                login: u.login.clone(),
                login_aliases: u.login_aliases.clone(),
                ..Default::default()
            })
        }
        ResourceTrait::Group(g) => pack(&pb::GroupTrait {
            profile: profile(&g.profile),
            ..Default::default()
        }),
        ResourceTrait::Role(r) => pack(&pb::RoleTrait {
            profile: profile(&r.profile),
            ..Default::default()
        }),
        ResourceTrait::App(a) => pack(&pb::AppTrait {
            help_url: a.help_url.clone(),
            profile: profile(&a.profile),
            ..Default::default()
        }),
    }
}

pub fn resource(r: &Resource) -> pb::Resource {
    let mut annotations: Vec<Any> = r.traits.iter().map(trait_annotation).collect();
    annotations.extend(r.child_resource_types.iter().map(|c| {
        pack(&pb::ChildResourceType {
            resource_type_id: c.clone(),
        })
    }));
    annotations.extend(hint_annotations(r.hints));
    pb::Resource {
        id: Some(resource_id(&r.id)),
        parent_resource_id: r.parent.as_ref().map(resource_id),
        display_name: r.display_name.clone(),
        annotations,
        description: r.description.clone(),
        profile: profile(&r.profile),
        status: Some(pb::Status {
            status: status(r.status),
            details: String::new(),
        }),
        ..Default::default()
    }
}

fn purpose(p: Purpose) -> i32 {
    use pb::entitlement::PurposeValue;
    (match p {
        Purpose::Unspecified => PurposeValue::Unspecified,
        Purpose::Assignment => PurposeValue::Assignment,
        Purpose::Permission => PurposeValue::Permission,
        Purpose::Ownership => PurposeValue::Ownership,
    }) as i32
}

fn expandable(e: &GrantExpandable) -> pb::GrantExpandable {
    pb::GrantExpandable {
        entitlement_ids: e.entitlement_ids.clone(),
        shallow: e.shallow,
        resource_type_ids: e.resource_type_ids.clone(),
    }
}

/// Everything a sync collected, as Baton messages: resources and entitlements embedded where
/// Baton embeds them (an entitlement carries its resource, a grant its entitlement and
/// principal).
pub struct Converted {
    pub resource_types: Vec<pb::ResourceType>,
    pub resources: Vec<pb::Resource>,
    pub entitlements: Vec<pb::Entitlement>,
    pub grants: Vec<pb::Grant>,
}

pub fn sync_data(data: &SyncData) -> Converted {
    let resource_types: Vec<pb::ResourceType> =
        data.resource_types.iter().map(resource_type).collect();
    let types_by_id: HashMap<&str, &pb::ResourceType> =
        resource_types.iter().map(|t| (t.id.as_str(), t)).collect();
    let resources: Vec<pb::Resource> = data.resources().iter().map(resource).collect();
    let by_key: HashMap<(&str, &str), &pb::Resource> = resources
        .iter()
        .filter_map(|r| {
            r.id.as_ref()
                .map(|id| ((id.resource_type.as_str(), id.resource.as_str()), r))
        })
        .collect();
    let lookup = |id: &ResourceId| {
        by_key
            .get(&(id.resource_type.as_str(), id.resource.as_str()))
            .map(|r| (*r).clone())
            .unwrap_or_else(|| pb::Resource {
                id: Some(resource_id(id)),
                ..Default::default()
            })
    };
    let entitlement = |e: &Entitlement| pb::Entitlement {
        resource: Some(lookup(&e.resource)),
        id: e.id.clone(),
        display_name: e.display_name.clone(),
        description: e.description.clone(),
        grantable_to: e
            .grantable_to
            .iter()
            .filter_map(|t| types_by_id.get(t.as_str()).map(|t| (*t).clone()))
            .collect(),
        annotations: vec![],
        purpose: purpose(e.purpose),
        slug: e.slug.clone(),
    };
    let entitlements: Vec<pb::Entitlement> = data.entitlements().iter().map(entitlement).collect();
    let by_entitlement: HashMap<&str, &pb::Entitlement> =
        entitlements.iter().map(|e| (e.id.as_str(), e)).collect();
    let grant = |g: &StoredGrant| {
        let mut annotations = vec![];
        if let Some(e) = &g.grant.expandable {
            annotations.push(pack(&expandable(e)));
        }
        if g.derived {
            annotations.push(pack(&pb::GrantImmutable::default()));
        }
        pb::Grant {
            entitlement: by_entitlement
                .get(g.grant.entitlement_id.as_str())
                .map(|e| (*e).clone()),
            principal: Some(lookup(&g.grant.principal)),
            id: g.grant.id.clone(),
            annotations,
            sources: (!g.sources.is_empty()).then(|| pb::GrantSources {
                sources: g
                    .sources
                    .iter()
                    .map(|(k, direct)| {
                        (
                            k.clone(),
                            pb::grant_sources::GrantSource { is_direct: *direct },
                        )
                    })
                    .collect(),
            }),
        }
    };
    let grants = data.grants().iter().map(grant).collect();
    Converted {
        resource_types,
        resources,
        entitlements,
        grants,
    }
}

// ---- From a .c1z back to the contract's records (for provisioning from a synced file) ----

fn resource_id_back(id: &pb::ResourceId) -> ResourceId {
    ResourceId {
        resource_type: id.resource_type.clone(),
        resource: id.resource.clone(),
    }
}

pub fn profile_back(s: Option<&Struct>) -> Vec<ProfileField> {
    s.map(|s| {
        s.fields
            .iter()
            .map(|(k, v)| {
                let value = match &v.kind {
                    Some(Kind::StringValue(t)) => ProfileValue::Text(t.clone()),
                    Some(Kind::NumberValue(n)) => ProfileValue::Number(*n),
                    Some(Kind::BoolValue(b)) => ProfileValue::Boolean(*b),
                    Some(Kind::NullValue(_)) | None => ProfileValue::Empty,
                    // Nested values are not part of the contract's profiles: keep them as text.
                    Some(other) => ProfileValue::Text(format!("{other:?}")),
                };
                ProfileField {
                    key: k.clone(),
                    value,
                }
            })
            .collect()
    })
    .unwrap_or_default()
}

fn status_back(status: i32) -> ResourceStatus {
    match pb::status::Status::try_from(status) {
        Ok(pb::status::Status::ResourceStatusEnabled) => ResourceStatus::Enabled,
        Ok(pb::status::Status::ResourceStatusDisabled) => ResourceStatus::Disabled,
        Ok(pb::status::Status::ResourceStatusDeleted) => ResourceStatus::Deleted,
        _ => ResourceStatus::Unspecified,
    }
}

/// A resource as stored in a `.c1z`, as the contract's record (traits, child types and sync
/// hints come back from the annotations).
pub fn resource_back(r: &pb::Resource) -> Resource {
    use baton::annotations::{contains, unpack};
    let status = r
        .status
        .as_ref()
        .map_or(ResourceStatus::Unspecified, |s| status_back(s.status));
    let mut traits = vec![];
    if let Some(u) = unpack::<pb::UserTrait>(&r.annotations) {
        use crate::component::{Email, UserTrait};
        traits.push(ResourceTrait::User(UserTrait {
            emails: u
                .emails
                .iter()
                .map(|e| Email {
                    address: e.address.clone(),
                    is_primary: e.is_primary,
                })
                .collect(),
            login: u.login.clone(),
            login_aliases: u.login_aliases.clone(),
            account_type: match pb::user_trait::AccountType::try_from(u.account_type) {
                Ok(pb::user_trait::AccountType::Human) => AccountType::Human,
                Ok(pb::user_trait::AccountType::Service) => AccountType::Service,
                Ok(pb::user_trait::AccountType::System) => AccountType::System,
                _ => AccountType::Unspecified,
            },
            status,
            profile: profile_back(u.profile.as_ref()),
        }));
    }
    if let Some(g) = unpack::<pb::GroupTrait>(&r.annotations) {
        traits.push(ResourceTrait::Group(crate::component::GroupTrait {
            profile: profile_back(g.profile.as_ref()),
        }));
    }
    if let Some(t) = unpack::<pb::RoleTrait>(&r.annotations) {
        traits.push(ResourceTrait::Role(crate::component::RoleTrait {
            profile: profile_back(t.profile.as_ref()),
        }));
    }
    if let Some(a) = unpack::<pb::AppTrait>(&r.annotations) {
        traits.push(ResourceTrait::App(crate::component::AppTrait {
            help_url: a.help_url.clone(),
            profile: profile_back(a.profile.as_ref()),
        }));
    }
    let mut hints = SyncHints::empty();
    if contains::<pb::SkipEntitlementsAndGrants>(&r.annotations) {
        hints |= SyncHints::SKIP_ENTITLEMENTS | SyncHints::SKIP_GRANTS;
    }
    if contains::<pb::SkipEntitlements>(&r.annotations) {
        hints |= SyncHints::SKIP_ENTITLEMENTS;
    }
    if contains::<pb::SkipGrants>(&r.annotations) {
        hints |= SyncHints::SKIP_GRANTS;
    }
    let child_resource_types = r
        .annotations
        .iter()
        .filter(|a| baton::annotations::is::<pb::ChildResourceType>(a))
        .filter_map(|a| <pb::ChildResourceType as prost::Message>::decode(a.value.as_slice()).ok())
        .map(|c| c.resource_type_id)
        .collect();
    Resource {
        id: r.id.as_ref().map(resource_id_back).unwrap_or(ResourceId {
            resource_type: String::new(),
            resource: String::new(),
        }),
        parent: r.parent_resource_id.as_ref().map(resource_id_back),
        display_name: r.display_name.clone(),
        description: r.description.clone(),
        traits,
        profile: profile_back(r.profile.as_ref()),
        status,
        child_resource_types,
        hints,
    }
}

pub fn entitlement_back(e: &pb::Entitlement) -> Entitlement {
    let purpose = match pb::entitlement::PurposeValue::try_from(e.purpose) {
        Ok(pb::entitlement::PurposeValue::Assignment) => Purpose::Assignment,
        Ok(pb::entitlement::PurposeValue::Permission) => Purpose::Permission,
        Ok(pb::entitlement::PurposeValue::Ownership) => Purpose::Ownership,
        _ => Purpose::Unspecified,
    };
    Entitlement {
        id: e.id.clone(),
        resource: e
            .resource
            .as_ref()
            .and_then(|r| r.id.as_ref())
            .map(resource_id_back)
            .unwrap_or(ResourceId {
                resource_type: String::new(),
                resource: String::new(),
            }),
        display_name: e.display_name.clone(),
        description: e.description.clone(),
        slug: e.slug.clone(),
        purpose,
        grantable_to: e.grantable_to.iter().map(|t| t.id.clone()).collect(),
    }
}

pub fn grant_back(g: &pb::Grant) -> crate::component::GrantRecord {
    let entitlement = g.entitlement.as_ref().map(entitlement_back);
    crate::component::GrantRecord {
        id: g.id.clone(),
        entitlement_id: entitlement
            .as_ref()
            .map(|e| e.id.clone())
            .unwrap_or_default(),
        entitlement_resource: entitlement.map(|e| e.resource).unwrap_or(ResourceId {
            resource_type: String::new(),
            resource: String::new(),
        }),
        principal: g
            .principal
            .as_ref()
            .and_then(|p| p.id.as_ref())
            .map(resource_id_back)
            .unwrap_or(ResourceId {
                resource_type: String::new(),
                resource: String::new(),
            }),
        expandable: None,
    }
}

/// Who an account-creation request is for, as the contract's record.
pub fn account_info_back(
    info: &pb::AccountInfo,
    resource_type: &str,
) -> crate::component::AccountInfo {
    crate::component::AccountInfo {
        emails: info
            .emails
            .iter()
            .map(|e| crate::component::Email {
                address: e.address.clone(),
                is_primary: e.is_primary,
            })
            .collect(),
        login: info.login.clone(),
        profile: profile_back(info.profile.as_ref()),
        resource_type: resource_type.to_string(),
    }
}
