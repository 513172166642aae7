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

/// Record → Baton message ([`super::to_c1z`]), as stored in a `.c1z` → record gives back the
/// record.
#[cfg(test)]
mod round_trip {
    use super::super::contract::{
        AccountType, AppTrait, Email, Entitlement, GrantExpandable, GrantRecord, GroupTrait,
        ProfileField, ProfileValue, Purpose, Resource, ResourceId, ResourceStatus, ResourceTrait,
        ResourceType, RoleTrait, SyncHints, TraitKind, UserTrait,
    };
    use super::super::to_c1z;
    use baton::pb;
    use prost::Message;

    /// The message as read back from the bytes a `.c1z` holds.
    fn stored<M: Message + Default>(message: M) -> M {
        M::decode(message.encode_to_vec().as_slice()).expect("a message decodes")
    }

    fn id(resource_type: &str, resource: &str) -> ResourceId {
        ResourceId {
            resource_type: resource_type.into(),
            resource: resource.into(),
        }
    }

    /// A profile with every kind of value. A `Struct` is a map: keys come back sorted, so they
    /// are given sorted.
    fn profile(prefix: &str) -> Vec<ProfileField> {
        let field = |key: &str, value| ProfileField {
            key: format!("{prefix}{key}"),
            value,
        };
        vec![
            field("a_text", ProfileValue::Text("Ada".into())),
            field("b_number", ProfileValue::Number(42.5)),
            field("c_boolean", ProfileValue::Boolean(true)),
            field("d_empty", ProfileValue::Empty),
        ]
    }

    fn resource(status: ResourceStatus, hints: SyncHints) -> Resource {
        Resource {
            id: id("user", "u1"),
            parent: Some(id("workspace", "w")),
            display_name: "Ada".into(),
            description: "A person".into(),
            // One trait of every kind, in the order they are read back.
            traits: vec![
                ResourceTrait::User(UserTrait {
                    emails: vec![
                        Email {
                            address: "ada@x.io".into(),
                            is_primary: true,
                        },
                        Email {
                            address: "lovelace@x.io".into(),
                            is_primary: false,
                        },
                    ],
                    login: "ada@x.io".into(),
                    login_aliases: vec!["ada".into()],
                    account_type: AccountType::Service,
                    status,
                    profile: profile("user_"),
                }),
                ResourceTrait::Group(GroupTrait {
                    profile: profile("group_"),
                }),
                ResourceTrait::Role(RoleTrait {
                    profile: profile("role_"),
                }),
                ResourceTrait::App(AppTrait {
                    help_url: "https://example.com/help".into(),
                    profile: profile("app_"),
                }),
            ],
            profile: profile(""),
            status,
            child_resource_types: vec!["group".into(), "role".into()],
            hints,
        }
    }

    #[test]
    fn resources_come_back_whole() {
        let every_hint = [
            SyncHints::empty(),
            SyncHints::SKIP_ENTITLEMENTS,
            SyncHints::SKIP_GRANTS,
            SyncHints::SKIP_ENTITLEMENTS | SyncHints::SKIP_GRANTS,
        ];
        for status in [
            ResourceStatus::Unspecified,
            ResourceStatus::Enabled,
            ResourceStatus::Disabled,
            ResourceStatus::Deleted,
        ] {
            for hints in every_hint {
                let record = resource(status, hints);
                let message = stored(pb::Resource::from(&record));
                assert_eq!(Resource::try_from(&message).unwrap(), record);
            }
        }
        // A root resource, without traits, profile or child types.
        let mut root = resource(ResourceStatus::Enabled, SyncHints::empty());
        root.parent = None;
        root.traits.clear();
        root.profile.clear();
        root.child_resource_types.clear();
        let message = stored(pb::Resource::from(&root));
        assert_eq!(Resource::try_from(&message).unwrap(), root);
    }

    #[test]
    fn resource_types_come_back_whole() {
        for (traits, hints) in [
            (vec![], SyncHints::empty()),
            (vec![TraitKind::User], SyncHints::SKIP_ENTITLEMENTS),
            (vec![TraitKind::Group], SyncHints::SKIP_GRANTS),
            (
                vec![TraitKind::Role, TraitKind::App],
                SyncHints::SKIP_ENTITLEMENTS | SyncHints::SKIP_GRANTS,
            ),
        ] {
            let record = ResourceType {
                id: "user".into(),
                display_name: "User".into(),
                description: "A person".into(),
                traits,
                hints,
            };
            let message = stored(pb::ResourceType::from(&record));
            assert_eq!(ResourceType::try_from(&message).unwrap(), record);
        }
    }

    fn declared(resource_type: &str) -> Option<pb::ResourceType> {
        Some(pb::ResourceType {
            id: resource_type.into(),
            ..Default::default()
        })
    }

    fn entitlement(purpose: Purpose) -> Entitlement {
        Entitlement {
            id: "group:g1:member".into(),
            resource: id("group", "g1"),
            display_name: "Engineering Group Member".into(),
            description: "Member of the Engineering user group".into(),
            slug: "member".into(),
            purpose,
            grantable_to: vec!["user".into(), "invite".into()],
        }
    }

    fn entitlement_message(e: &Entitlement) -> pb::Entitlement {
        let message = to_c1z::entitlement(e, to_c1z::resource_stub(&e.resource), declared);
        stored(message)
    }

    #[test]
    fn entitlements_come_back_whole() {
        for purpose in [
            Purpose::Unspecified,
            Purpose::Assignment,
            Purpose::Permission,
            Purpose::Ownership,
        ] {
            let record = entitlement(purpose);
            let message = entitlement_message(&record);
            assert_eq!(Entitlement::try_from(&message).unwrap(), record);
        }
    }

    #[test]
    fn grants_come_back_whole_with_their_expandable_annotation() {
        let e = entitlement(Purpose::Permission);
        for expandable in [
            None,
            Some(GrantExpandable {
                entitlement_ids: vec!["group:g1:member".into(), "group:g2:member".into()],
                shallow: true,
                resource_type_ids: vec!["user".into()],
            }),
        ] {
            let record = GrantRecord {
                id: "group:g1:member:user:u1".into(),
                entitlement_id: e.id.clone(),
                entitlement_resource: e.resource.clone(),
                principal: id("user", "u1"),
                expandable,
            };
            let principal = to_c1z::resource_stub(&record.principal);
            let message = stored(to_c1z::grant(&record, entitlement_message(&e), principal));
            assert_eq!(GrantRecord::try_from(&message).unwrap(), record);
        }
    }
}
