//! Baton's messages, as read from a `.c1z`, back to the contract's records (for provisioning
//! from a synced file, and for service mode's tasks). Traits, child types and sync hints come
//! back from the annotations; a message without the id a record needs is refused.

use super::contract::{
    AccountInfo, AccountType, AppTrait, Email, Entitlement, GrantRecord, GroupTrait, ProfileField,
    ProfileValue, Purpose, Resource, ResourceId, ResourceStatus, ResourceTrait, RoleTrait,
    SyncHints, UserTrait,
};
use baton::annotations::{contains, unpack};
use baton::pb;
use prost_types::{Struct, value::Kind};

/// A message that lacks what the contract's record needs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Incomplete(String);

impl TryFrom<&pb::ResourceId> for ResourceId {
    type Error = Incomplete;

    fn try_from(id: &pb::ResourceId) -> Result<ResourceId, Incomplete> {
        if id.resource_type.is_empty() || id.resource.is_empty() {
            return Err(Incomplete(format!(
                "resource id with an empty part ({:?}:{:?})",
                id.resource_type, id.resource
            )));
        }
        Ok(ResourceId {
            resource_type: id.resource_type.clone(),
            resource: id.resource.clone(),
        })
    }
}

fn required_id(id: Option<&pb::ResourceId>, what: &str) -> Result<ResourceId, Incomplete> {
    id.ok_or_else(|| Incomplete(format!("{what} has no resource id")))?
        .try_into()
}

pub fn profile(s: Option<&Struct>) -> Vec<ProfileField> {
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

fn status(status: i32) -> ResourceStatus {
    match pb::status::Status::try_from(status) {
        Ok(pb::status::Status::ResourceStatusEnabled) => ResourceStatus::Enabled,
        Ok(pb::status::Status::ResourceStatusDisabled) => ResourceStatus::Disabled,
        Ok(pb::status::Status::ResourceStatusDeleted) => ResourceStatus::Deleted,
        _ => ResourceStatus::Unspecified,
    }
}

fn emails(list: &[pb::user_trait::Email]) -> Vec<Email> {
    list.iter()
        .map(|e| Email {
            address: e.address.clone(),
            is_primary: e.is_primary,
        })
        .collect()
}

fn traits(r: &pb::Resource, status: ResourceStatus) -> Vec<ResourceTrait> {
    let mut traits = vec![];
    if let Some(u) = unpack::<pb::UserTrait>(&r.annotations) {
        use pb::user_trait::AccountType as A;
        traits.push(ResourceTrait::User(UserTrait {
            emails: emails(&u.emails),
            login: u.login.clone(),
            login_aliases: u.login_aliases.clone(),
            account_type: match A::try_from(u.account_type) {
                Ok(A::Human) => AccountType::Human,
                Ok(A::Service) => AccountType::Service,
                Ok(A::System) => AccountType::System,
                _ => AccountType::Unspecified,
            },
            status,
            profile: profile(u.profile.as_ref()),
        }));
    }
    if let Some(g) = unpack::<pb::GroupTrait>(&r.annotations) {
        traits.push(ResourceTrait::Group(GroupTrait {
            profile: profile(g.profile.as_ref()),
        }));
    }
    if let Some(t) = unpack::<pb::RoleTrait>(&r.annotations) {
        traits.push(ResourceTrait::Role(RoleTrait {
            profile: profile(t.profile.as_ref()),
        }));
    }
    if let Some(a) = unpack::<pb::AppTrait>(&r.annotations) {
        traits.push(ResourceTrait::App(AppTrait {
            help_url: a.help_url.clone(),
            profile: profile(a.profile.as_ref()),
        }));
    }
    traits
}

fn hints(annotations: &[prost_types::Any]) -> SyncHints {
    let mut hints = SyncHints::empty();
    if contains::<pb::SkipEntitlementsAndGrants>(annotations) {
        hints |= SyncHints::SKIP_ENTITLEMENTS | SyncHints::SKIP_GRANTS;
    }
    if contains::<pb::SkipEntitlements>(annotations) {
        hints |= SyncHints::SKIP_ENTITLEMENTS;
    }
    if contains::<pb::SkipGrants>(annotations) {
        hints |= SyncHints::SKIP_GRANTS;
    }
    hints
}

/// A resource as stored in a `.c1z`, as the contract's record.
impl TryFrom<&pb::Resource> for Resource {
    type Error = Incomplete;

    fn try_from(r: &pb::Resource) -> Result<Resource, Incomplete> {
        let status = r
            .status
            .as_ref()
            .map_or(ResourceStatus::Unspecified, |s| status(s.status));
        let child_resource_types = r
            .annotations
            .iter()
            .filter(|a| baton::annotations::is::<pb::ChildResourceType>(a))
            .filter_map(|a| {
                <pb::ChildResourceType as prost::Message>::decode(a.value.as_slice()).ok()
            })
            .map(|c| c.resource_type_id)
            .collect();
        Ok(Resource {
            id: required_id(r.id.as_ref(), "a resource")?,
            parent: r
                .parent_resource_id
                .as_ref()
                .map(ResourceId::try_from)
                .transpose()?,
            display_name: r.display_name.clone(),
            description: r.description.clone(),
            traits: traits(r, status),
            profile: profile(r.profile.as_ref()),
            status,
            child_resource_types,
            hints: hints(&r.annotations),
        })
    }
}

impl TryFrom<&pb::Entitlement> for Entitlement {
    type Error = Incomplete;

    fn try_from(e: &pb::Entitlement) -> Result<Entitlement, Incomplete> {
        use pb::entitlement::PurposeValue as P;
        if e.id.is_empty() {
            return Err(Incomplete("an entitlement has an empty id".into()));
        }
        let resource = e.resource.as_ref().and_then(|r| r.id.as_ref());
        Ok(Entitlement {
            id: e.id.clone(),
            resource: required_id(resource, &format!("entitlement {}", e.id))?,
            display_name: e.display_name.clone(),
            description: e.description.clone(),
            slug: e.slug.clone(),
            purpose: match P::try_from(e.purpose) {
                Ok(P::Assignment) => Purpose::Assignment,
                Ok(P::Permission) => Purpose::Permission,
                Ok(P::Ownership) => Purpose::Ownership,
                _ => Purpose::Unspecified,
            },
            grantable_to: e.grantable_to.iter().map(|t| t.id.clone()).collect(),
        })
    }
}

/// A grant as stored (its expandable annotation lives in the row, not the blob: `None`).
impl TryFrom<&pb::Grant> for GrantRecord {
    type Error = Incomplete;

    fn try_from(g: &pb::Grant) -> Result<GrantRecord, Incomplete> {
        if g.id.is_empty() {
            return Err(Incomplete("a grant has an empty id".into()));
        }
        let entitlement = g
            .entitlement
            .as_ref()
            .ok_or_else(|| Incomplete(format!("grant {} has no entitlement", g.id)))
            .and_then(Entitlement::try_from)?;
        let principal = g.principal.as_ref().and_then(|p| p.id.as_ref());
        Ok(GrantRecord {
            id: g.id.clone(),
            entitlement_id: entitlement.id,
            entitlement_resource: entitlement.resource,
            principal: required_id(principal, &format!("grant {}'s principal", g.id))?,
            expandable: unpack::<pb::GrantExpandable>(&g.annotations).map(|e| {
                super::contract::GrantExpandable {
                    entitlement_ids: e.entitlement_ids,
                    shallow: e.shallow,
                    resource_type_ids: e.resource_type_ids,
                }
            }),
        })
    }
}

/// Who an account-creation request is for, as the contract's record.
pub fn account_info(info: &pb::AccountInfo, resource_type: &str) -> AccountInfo {
    AccountInfo {
        emails: info
            .emails
            .iter()
            .map(|e| Email {
                address: e.address.clone(),
                is_primary: e.is_primary,
            })
            .collect(),
        login: info.login.clone(),
        profile: profile(info.profile.as_ref()),
        resource_type: resource_type.to_string(),
    }
}

impl TryFrom<&pb::ResourceType> for super::contract::ResourceType {
    type Error = Incomplete;

    fn try_from(t: &pb::ResourceType) -> Result<Self, Incomplete> {
        use super::contract::TraitKind;
        use pb::resource_type::Trait;
        if t.id.is_empty() {
            return Err(Incomplete("a resource type has an empty id".into()));
        }
        Ok(super::contract::ResourceType {
            id: t.id.clone(),
            display_name: t.display_name.clone(),
            description: t.description.clone(),
            traits: t
                .traits
                .iter()
                .filter_map(|k| match Trait::try_from(*k) {
                    Ok(Trait::User) => Some(TraitKind::User),
                    Ok(Trait::Group) => Some(TraitKind::Group),
                    Ok(Trait::Role) => Some(TraitKind::Role),
                    Ok(Trait::App) => Some(TraitKind::App),
                    _ => None,
                })
                .collect(),
            hints: hints(&t.annotations),
        })
    }
}
