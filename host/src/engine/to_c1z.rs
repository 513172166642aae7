//! The contract's records as Baton protobuf messages (for the `.c1z` file): traits, child
//! types and sync hints become annotations, profiles become `Struct`s. [`super::from_c1z`] is
//! the way back; a round trip gives the record it started from.

use super::contract::{
    AccountType, Entitlement, GrantExpandable, ProfileField, ProfileValue, Purpose, Resource,
    ResourceId, ResourceStatus, ResourceTrait, ResourceType, SyncHints, TraitKind,
};
use baton::annotations::pack;
use baton::pb;
use prost_types::{Any, Struct, Value, value::Kind};
use std::collections::BTreeMap;

impl From<&ResourceId> for pb::ResourceId {
    fn from(id: &ResourceId) -> pb::ResourceId {
        pb::ResourceId {
            resource_type: id.resource_type.clone(),
            resource: id.resource.clone(),
            baton_resource: false,
        }
    }
}

/// A resource known only by its id, as Baton writes a grant's principal it has not listed.
pub fn resource_stub(id: &ResourceId) -> pb::Resource {
    pb::Resource {
        id: Some(id.into()),
        ..Default::default()
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

impl From<&ResourceType> for pb::ResourceType {
    fn from(t: &ResourceType) -> pb::ResourceType {
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

impl From<&Resource> for pb::Resource {
    fn from(r: &Resource) -> pb::Resource {
        let mut annotations: Vec<Any> = r.traits.iter().map(trait_annotation).collect();
        annotations.extend(r.child_resource_types.iter().map(|c| {
            pack(&pb::ChildResourceType {
                resource_type_id: c.clone(),
            })
        }));
        annotations.extend(hint_annotations(r.hints));
        pb::Resource {
            id: Some((&r.id).into()),
            parent_resource_id: r.parent.as_ref().map(Into::into),
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

impl From<&GrantExpandable> for pb::GrantExpandable {
    fn from(e: &GrantExpandable) -> pb::GrantExpandable {
        pb::GrantExpandable {
            entitlement_ids: e.entitlement_ids.clone(),
            shallow: e.shallow,
            resource_type_ids: e.resource_type_ids.clone(),
        }
    }
}

/// An entitlement as Baton stores it: it embeds its resource (`resource`, as listed) and the
/// resource types it can be granted to (those of `grantable_to` the sync declared).
pub fn entitlement(
    e: &Entitlement,
    resource: pb::Resource,
    declared_type: impl Fn(&str) -> Option<pb::ResourceType>,
) -> pb::Entitlement {
    pb::Entitlement {
        resource: Some(resource),
        id: e.id.clone(),
        display_name: e.display_name.clone(),
        description: e.description.clone(),
        grantable_to: e
            .grantable_to
            .iter()
            .filter_map(|t| declared_type(t))
            .collect(),
        annotations: vec![],
        purpose: purpose(e.purpose),
        slug: e.slug.clone(),
    }
}

/// A grant's annotations as Baton stores them (the sync stores grants from their parts with
/// these; see [`grant`] for the whole message).
pub fn grant_annotations(g: &super::contract::GrantRecord) -> Vec<prost_types::Any> {
    g.expandable
        .iter()
        .map(|e| pack(&pb::GrantExpandable::from(e)))
        .collect()
}

/// A grant as Baton stores it: it embeds its entitlement and its principal (as listed, or a
/// stub with the id when the principal was not listed), and keeps its expandable annotation.
pub fn grant(
    g: &super::contract::GrantRecord,
    entitlement: pb::Entitlement,
    principal: pb::Resource,
) -> pb::Grant {
    pb::Grant {
        entitlement: Some(entitlement),
        principal: Some(principal),
        id: g.id.clone(),
        annotations: grant_annotations(g),
        sources: None,
    }
}
