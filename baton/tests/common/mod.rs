//! Sample data shared by the integration tests.
#![allow(dead_code)]

use baton::annotations::pack;
use baton::pb;
use prost_types::{Struct, Timestamp, Value, value::Kind};
use std::collections::BTreeMap;

pub fn s(v: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(v.to_string())),
    }
}

pub fn profile(pairs: &[(&str, Value)]) -> Struct {
    Struct {
        fields: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    }
}

pub fn rid(t: &str, id: &str) -> pb::ResourceId {
    pb::ResourceId {
        resource_type: t.into(),
        resource: id.into(),
        baton_resource: false,
    }
}

pub fn resource_types() -> Vec<pb::ResourceType> {
    use pb::resource_type::Trait;
    vec![
        pb::ResourceType {
            id: "user".into(),
            display_name: "User".into(),
            traits: vec![Trait::User as i32],
            description: "Workspace users".into(),
            ..Default::default()
        },
        pb::ResourceType {
            id: "group".into(),
            display_name: "Group".into(),
            traits: vec![Trait::Group as i32],
            annotations: vec![pack(&pb::SkipSyncAnomalyDetection {})],
            ..Default::default()
        },
        pb::ResourceType {
            id: "role".into(),
            display_name: "Role".into(),
            traits: vec![Trait::Role as i32],
            ..Default::default()
        },
        pb::ResourceType {
            id: "workspace".into(),
            display_name: "Workspace".into(),
            traits: vec![Trait::App as i32],
            sourced_externally: true,
            ..Default::default()
        },
    ]
}

pub fn user(id: &str, email: &str) -> pb::Resource {
    let prof = profile(&[
        ("email", s(email)),
        ("id", s(id)),
        (
            "mfa",
            Value {
                kind: Some(Kind::BoolValue(true)),
            },
        ),
        (
            "logins",
            Value {
                kind: Some(Kind::NumberValue(42.0)),
            },
        ),
    ]);
    let trait_ = pb::UserTrait {
        emails: vec![pb::user_trait::Email {
            address: email.into(),
            is_primary: true,
        }],
        status: Some(pb::user_trait::Status {
            status: pb::user_trait::status::Status::Enabled as i32,
            details: "active".into(),
        }),
        profile: Some(prof.clone()),
        account_type: pb::user_trait::AccountType::Human as i32,
        login: email.into(),
        login_aliases: vec![format!("alias-{id}")],
        last_login: Some(Timestamp {
            seconds: 1_760_000_000,
            nanos: 5,
        }),
        mfa_status: Some(pb::user_trait::MfaStatus { mfa_enabled: true }),
        sso_status: Some(pb::user_trait::SsoStatus { sso_enabled: false }),
        structured_name: Some(pb::user_trait::StructuredName {
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            middle_names: vec!["King".into()],
            ..Default::default()
        }),
        employee_ids: vec!["E1".into()],
        ..Default::default()
    };
    pb::Resource {
        id: Some(rid("user", id)),
        parent_resource_id: Some(rid("workspace", "w1")),
        display_name: format!("User {id}"),
        annotations: vec![
            pack(&trait_),
            pack(&pb::RawId { id: id.into() }),
            pack(&pb::ExternalLink {
                url: format!("https://app.example.com/users/{id}"),
            }),
        ],
        profile: Some(prof),
        status: Some(pb::Status {
            status: pb::status::Status::ResourceStatusEnabled as i32,
            details: String::new(),
        }),
        created_at: Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
        ..Default::default()
    }
}

pub fn group(id: &str) -> pb::Resource {
    pb::Resource {
        id: Some(rid("group", id)),
        parent_resource_id: Some(rid("workspace", "w1")),
        display_name: format!("Group {id}"),
        description: "a group".into(),
        annotations: vec![pack(&pb::GroupTrait {
            profile: Some(profile(&[("name", s(id))])),
            ..Default::default()
        })],
        ..Default::default()
    }
}

pub fn role(id: &str) -> pb::Resource {
    pb::Resource {
        id: Some(rid("role", id)),
        display_name: format!("Role {id}"),
        annotations: vec![pack(&pb::RoleTrait {
            profile: None,
            role_scope_conditions: Some(pb::RoleScopeConditions {
                r#type: "cel".into(),
                conditions: vec![pb::RoleScopeCondition {
                    expression: "true".into(),
                }],
            }),
        })],
        ..Default::default()
    }
}

pub fn workspace() -> pb::Resource {
    pb::Resource {
        id: Some(rid("workspace", "w1")),
        display_name: "Workspace".into(),
        annotations: vec![
            pack(&pb::AppTrait {
                help_url: "https://help.example.com".into(),
                flags: vec![pb::app_trait::AppFlag::Saml as i32],
                ..Default::default()
            }),
            pack(&pb::ChildResourceType {
                resource_type_id: "group".into(),
            }),
            pack(&pb::ChildResourceType {
                resource_type_id: "user".into(),
            }),
        ],
        ..Default::default()
    }
}

pub fn resources() -> Vec<pb::Resource> {
    vec![
        workspace(),
        user("u1", "ada@example.com"),
        user("u2", "bob@example.com"),
        group("g1"),
        group("g2"),
        role("r1"),
    ]
}

pub fn entitlement(
    res: &pb::Resource,
    slug: &str,
    purpose: pb::entitlement::PurposeValue,
) -> pb::Entitlement {
    let id = res.id.as_ref().unwrap();
    pb::Entitlement {
        resource: Some(res.clone()),
        id: baton::ids::entitlement_id(&id.resource_type, &id.resource, slug),
        display_name: slug.into(),
        description: format!("{slug} of {}", res.display_name),
        grantable_to: vec![resource_types()[0].clone()],
        purpose: purpose as i32,
        slug: slug.into(),
        ..Default::default()
    }
}

pub fn entitlements() -> Vec<pb::Entitlement> {
    use pb::entitlement::PurposeValue;
    vec![
        entitlement(&group("g1"), "member", PurposeValue::Assignment),
        entitlement(&group("g2"), "member", PurposeValue::Assignment),
        entitlement(&role("r1"), "assigned", PurposeValue::Permission),
    ]
}

pub fn grant(ent: &pb::Entitlement, principal: &pb::Resource) -> pb::Grant {
    let p = principal.id.as_ref().unwrap();
    pb::Grant {
        entitlement: Some(ent.clone()),
        principal: Some(principal.clone()),
        id: baton::ids::grant_id(&ent.id, &p.resource_type, &p.resource),
        ..Default::default()
    }
}

/// Three grants; the last one (group g2 holds role r1) is expandable from g2's members.
pub fn grants() -> Vec<pb::Grant> {
    let ents = entitlements();
    let mut direct = grant(&ents[0], &user("u1", "ada@example.com"));
    direct.annotations.push(pack(&pb::GrantMetadata {
        metadata: Some(profile(&[("via", s("api"))])),
    }));
    let g2_member = grant(&ents[1], &user("u2", "bob@example.com"));
    let mut nested = grant(&ents[2], &group("g2"));
    nested.annotations.push(pack(&pb::GrantImmutable {
        source_id: "src".into(),
        metadata: None,
    }));
    nested.annotations.push(pack(&pb::GrantExpandable {
        entitlement_ids: vec![ents[1].id.clone()],
        shallow: false,
        resource_type_ids: vec!["user".into()],
    }));
    vec![direct, g2_member, nested]
}
