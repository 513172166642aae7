//! The real host runs the real component against the fake's demo workspace; the `.c1z` it
//! writes holds exactly what the fixture (docs/demo-workspace.md) implies.

mod common;

use baton::annotations::{contains, unpack};
use baton::pb;
use common::*;
use fakes::segment::FakeConfig;

const RESOURCES: &[&str] = &[
    "workspace:wkspAcme01",
    "user:usrAlice",
    "user:usrBob",
    "user:usrCarol",
    "user:usrDan",
    "user:usrErin",
    "user:usrFrank",
    "user:usrGrace",
    "user:usrHeidi",
    "group:grpEng",
    "group:grpData",
    "group:grpAdmins",
    "group:grpContractors",
    "role:roleWsOwner",
    "role:roleWsMember",
    "role:roleSrcAdmin",
    "role:roleSrcRead",
    "role:roleFnAdmin",
    "role:roleFnRead",
    "role:roleWhAdmin",
    "role:roleWhRead",
    "role:roleEngAdmin",
    "role:roleEngRead",
    "role:roleTpAdmin",
    "role:rolePrivacy",
    "role:roleSteward",
    "invite:pat@acme.test",
    "invite:quinn@partner.test",
    "source:srcWeb",
    "source:srcIos",
    "source:srcServer",
    "source:srcLegacy",
    "warehouse:whSnowflake",
    "warehouse:whBigQuery",
    "function:sfnc_enrich",
    "function:sfnc_slack",
    "function:sfnc_mask",
    "function:sfnc_geo",
    "space:spcProd",
    "space:spcStaging",
];

fn expected_entitlements() -> Vec<String> {
    let mut e: Vec<String> = vec!["workspace:wkspAcme01:member".into()];
    for g in ["grpEng", "grpData", "grpAdmins", "grpContractors"] {
        e.push(format!("group:{g}:member"));
    }
    for r in RESOURCES.iter().filter_map(|r| r.strip_prefix("role:")) {
        e.push(format!("role:{r}:member"));
    }
    // Roles named after the scope, plus "Data Steward", which is held on a source although its
    // name says nothing about sources.
    for s in ["srcWeb", "srcIos", "srcServer", "srcLegacy"] {
        for slug in ["source_admin", "source_read_only", "data_steward"] {
            e.push(format!("source:{s}:{slug}"));
        }
    }
    for w in ["whSnowflake", "whBigQuery"] {
        for slug in [
            "warehouse_destination_admin",
            "warehouse_destination_read_only",
        ] {
            e.push(format!("warehouse:{w}:{slug}"));
        }
    }
    for f in ["sfnc_enrich", "sfnc_slack", "sfnc_mask", "sfnc_geo"] {
        for slug in ["function_admin", "function_read_only"] {
            e.push(format!("function:{f}:{slug}"));
        }
    }
    for s in ["spcProd", "spcStaging"] {
        for slug in ["unify_and_engage_admin", "unify_and_engage_read_only"] {
            e.push(format!("space:{s}:{slug}"));
        }
    }
    sorted(e)
}

/// Grants the connector lists (34).
const DIRECT_GRANTS: &[&str] = &[
    // Workspace membership: every user.
    "workspace:wkspAcme01:member:user:usrAlice",
    "workspace:wkspAcme01:member:user:usrBob",
    "workspace:wkspAcme01:member:user:usrCarol",
    "workspace:wkspAcme01:member:user:usrDan",
    "workspace:wkspAcme01:member:user:usrErin",
    "workspace:wkspAcme01:member:user:usrFrank",
    "workspace:wkspAcme01:member:user:usrGrace",
    "workspace:wkspAcme01:member:user:usrHeidi",
    // Users' own permissions.
    "role:roleWsOwner:member:user:usrAlice",
    "source:srcWeb:source_admin:user:usrBob",
    "source:srcIos:source_admin:user:usrBob",
    "function:sfnc_enrich:function_read_only:user:usrBob",
    "warehouse:whSnowflake:warehouse_destination_admin:user:usrCarol",
    "role:roleSrcRead:member:user:usrCarol",
    "role:roleWsMember:member:user:usrDan",
    "space:spcProd:unify_and_engage_read_only:user:usrDan",
    "role:roleSrcAdmin:member:user:usrErin",
    "source:srcServer:data_steward:user:usrErin",
    "role:roleWsMember:member:user:usrFrank",
    "function:sfnc_enrich:function_admin:user:usrGrace",
    "function:sfnc_slack:function_admin:user:usrGrace",
    "space:spcProd:unify_and_engage_admin:user:usrGrace",
    // Group membership, including a pending invitation.
    "group:grpEng:member:user:usrBob",
    "group:grpEng:member:user:usrFrank",
    "group:grpEng:member:user:usrHeidi",
    "group:grpData:member:user:usrCarol",
    "group:grpData:member:user:usrErin",
    "group:grpData:member:invite:pat@acme.test",
    "group:grpAdmins:member:user:usrAlice",
    // Groups' permissions, granted to the group.
    "source:srcServer:source_admin:group:grpEng",
    "function:sfnc_enrich:function_admin:group:grpEng",
    "role:roleWhRead:member:group:grpData",
    "space:spcStaging:unify_and_engage_read_only:group:grpData",
    "role:roleWsOwner:member:group:grpAdmins",
];

/// Grants created by expanding group permissions to the groups' user members (10).
const EXPANDED_GRANTS: &[&str] = &[
    "source:srcServer:source_admin:user:usrBob",
    "source:srcServer:source_admin:user:usrFrank",
    "source:srcServer:source_admin:user:usrHeidi",
    "function:sfnc_enrich:function_admin:user:usrBob",
    "function:sfnc_enrich:function_admin:user:usrFrank",
    "function:sfnc_enrich:function_admin:user:usrHeidi",
    "role:roleWhRead:member:user:usrCarol",
    "role:roleWhRead:member:user:usrErin",
    "space:spcStaging:unify_and_engage_read_only:user:usrCarol",
    "space:spcStaging:unify_and_engage_read_only:user:usrErin",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_workspace_syncs_to_exactly_the_expected_c1z() {
    let fake = fake(FakeConfig::demo()).await;
    let dir = temp_dir();
    let summary = sync(&fake, &out(&dir))
        .await
        .expect("the demo sync succeeds");
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    assert_eq!(summary.resources(), RESOURCES.len());
    assert_eq!(summary.grants, DIRECT_GRANTS.len() + EXPANDED_GRANTS.len());
    assert_eq!(summary.expanded_grants, EXPANDED_GRANTS.len());

    let c1z = Synced::open(&out(&dir));
    assert_eq!(sorted(c1z.resource_keys()), strings(RESOURCES));
    assert_eq!(sorted(c1z.entitlement_ids()), expected_entitlements());
    let all: Vec<&str> = DIRECT_GRANTS
        .iter()
        .chain(EXPANDED_GRANTS)
        .copied()
        .collect();
    assert_eq!(sorted(c1z.grant_ids()), strings(&all));

    // Parents: the workspace is the only root.
    for r in c1z.resources() {
        let k = key(r.id.as_ref());
        let parent = key(r.parent_resource_id.as_ref());
        if k == "workspace:wkspAcme01" {
            assert_eq!(parent, "", "the workspace has no parent");
        } else {
            assert_eq!(parent, "workspace:wkspAcme01", "{k}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_carry_their_traits_profiles_and_statuses() {
    let fake = fake(FakeConfig::demo()).await;
    let dir = temp_dir();
    sync(&fake, &out(&dir)).await.unwrap();
    let c1z = Synced::open(&out(&dir));
    let resources = c1z.resources();
    let get = |k: &str| {
        resources
            .iter()
            .find(|r| key(r.id.as_ref()) == k)
            .unwrap_or_else(|| panic!("{k}"))
            .clone()
    };

    let ws = get("workspace:wkspAcme01");
    assert_eq!(ws.display_name, "Acme Analytics");
    let children: Vec<String> = ws
        .annotations
        .iter()
        .filter(|a| a.type_url.ends_with(".ChildResourceType"))
        .map(|a| {
            <pb::ChildResourceType as prost::Message>::decode(a.value.as_slice())
                .unwrap()
                .resource_type_id
        })
        .collect();
    assert_eq!(
        children,
        [
            "user",
            "group",
            "role",
            "invite",
            "source",
            "warehouse",
            "function",
            "space"
        ]
    );

    let alice = get("user:usrAlice");
    let t: pb::UserTrait = unpack(&alice.annotations).expect("users have the user trait");
    assert_eq!(t.emails.len(), 1);
    assert_eq!(
        (t.emails[0].address.as_str(), t.emails[0].is_primary),
        ("alice@acme.test", true)
    );
    assert_eq!(t.login, "alice@acme.test");
    assert_eq!(alice.display_name, "Alice Nguyen");
    // A user without a name is shown by e-mail.
    assert_eq!(get("user:usrDan").display_name, "dan@acme.test");

    let invite = get("invite:pat@acme.test");
    assert_eq!(invite.display_name, "(Invitation) pat@acme.test");
    assert!(unpack::<pb::UserTrait>(&invite.annotations).is_some());
    assert_eq!(
        invite.status.unwrap().status,
        pb::status::Status::ResourceStatusDisabled as i32
    );

    assert!(unpack::<pb::GroupTrait>(&get("group:grpEng").annotations).is_some());
    let role = get("role:roleSrcAdmin");
    assert!(unpack::<pb::RoleTrait>(&role.annotations).is_some());
    assert_eq!(
        role.description,
        "Create, edit and delete sources and their settings."
    );
    for app in [
        "source:srcWeb",
        "warehouse:whSnowflake",
        "function:sfnc_enrich",
        "space:spcProd",
    ] {
        assert!(
            unpack::<pb::AppTrait>(&get(app).annotations).is_some(),
            "{app} has the app trait"
        );
    }
    // An unnamed source is shown by slug; a disabled one is disabled.
    assert_eq!(get("source:srcServer").display_name, "acme-server");
    assert_eq!(
        get("source:srcLegacy").status.unwrap().status,
        pb::status::Status::ResourceStatusDisabled as i32
    );
    assert_eq!(get("warehouse:whSnowflake").display_name, "Snowflake");
    let profile = get("function:sfnc_mask").profile.unwrap();
    assert_eq!(
        profile.fields["resource_type"].kind,
        Some(prost_types::value::Kind::StringValue(
            "INSERT_DESTINATION".into()
        ))
    );

    // Resource types carry traits and the sync hints as Baton annotations.
    let types = c1z.reader.resource_types(&c1z.sync_id).unwrap();
    let ty = |id: &str| types.iter().find(|t| t.id == id).unwrap().clone();
    assert_eq!(ty("user").traits, [pb::resource_type::Trait::User as i32]);
    assert!(contains::<pb::SkipEntitlements>(&ty("user").annotations));
    assert!(contains::<pb::SkipEntitlementsAndGrants>(
        &ty("invite").annotations
    ));
    assert!(contains::<pb::SkipGrants>(&ty("source").annotations));
    assert!(contains::<pb::SkipGrants>(&ty("role").annotations));
    assert_eq!(ty("group").traits, [pb::resource_type::Trait::Group as i32]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_permissions_are_expandable_and_expanded_grants_say_where_they_come_from() {
    let fake = fake(FakeConfig::demo()).await;
    let dir = temp_dir();
    sync(&fake, &out(&dir)).await.unwrap();
    let c1z = Synced::open(&out(&dir));
    let grants = c1z.grants();
    let get = |id: &str| {
        grants
            .iter()
            .find(|g| g.grant.id == id)
            .unwrap_or_else(|| panic!("{id}"))
            .clone()
    };

    for (id, group) in [
        ("source:srcServer:source_admin:group:grpEng", "grpEng"),
        ("function:sfnc_enrich:function_admin:group:grpEng", "grpEng"),
        ("role:roleWhRead:member:group:grpData", "grpData"),
        (
            "space:spcStaging:unify_and_engage_read_only:group:grpData",
            "grpData",
        ),
        ("role:roleWsOwner:member:group:grpAdmins", "grpAdmins"),
    ] {
        let g = get(id);
        let x = g.expansion.clone().expect("stored in the expansion column");
        assert_eq!(x.entitlement_ids, [format!("group:{group}:member")]);
        assert!(x.shallow);
        assert_eq!(x.resource_type_ids, ["user"]);
        assert!(g.needs_expansion);
        // Moved out of the blob, as Baton's writer does.
        assert!(
            !contains::<pb::GrantExpandable>(&g.grant.annotations),
            "{id}"
        );
    }
    let plain = get("group:grpEng:member:user:usrBob");
    assert!(plain.expansion.is_none() && !plain.needs_expansion);

    let derived = get("source:srcServer:source_admin:user:usrHeidi");
    assert!(contains::<pb::GrantImmutable>(&derived.grant.annotations));
    let sources = derived.grant.sources.unwrap().sources;
    assert_eq!(sources.keys().collect::<Vec<_>>(), ["group:grpEng:member"]);

    // Alice holds Workspace Owner herself and through Workspace Admins: one grant, both sources.
    let alice = get("role:roleWsOwner:member:user:usrAlice");
    assert!(!contains::<pb::GrantImmutable>(&alice.grant.annotations));
    let sources = alice.grant.sources.unwrap().sources;
    assert_eq!(
        sources.keys().collect::<Vec<_>>(),
        ["group:grpAdmins:member", "role:roleWsOwner:member"]
    );
    assert!(sources.values().all(|s| s.is_direct));

    // Every grant embeds an entitlement that exists in the file.
    let ids = c1z.entitlement_ids();
    for g in &grants {
        let e = g
            .grant
            .entitlement
            .as_ref()
            .expect("grants embed their entitlement");
        assert!(ids.contains(&e.id), "{} points at {}", g.grant.id, e.id);
        assert!(e.resource.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_makes_only_the_requests_it_needs() {
    let fake = fake(FakeConfig::demo()).await;
    let dir = temp_dir();
    let summary = sync(&fake, &out(&dir)).await.unwrap();
    let requests = fake.requests();
    let count = |path: &str| requests.iter().filter(|r| r.path == path).count();
    assert_eq!(count("/"), 1, "the workspace is fetched once");
    assert_eq!(count("/roles"), 1, "roles are fetched once per sync");
    assert_eq!(count("/users"), 1, "users are listed once (one page)");
    assert_eq!(count("/groups"), 1);
    assert_eq!(count("/invites"), 1);
    // One detail call per user (the list carries no permissions), none per group (it does).
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.path.starts_with("/users/"))
            .count(),
        8
    );
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.path.starts_with("/groups/")
                && !r.path.contains("/users")
                && !r.path.contains("/invites"))
            .count(),
        0
    );
    // One listing per function resourceType.
    assert_eq!(count("/functions"), 5);
    for r in &requests {
        assert_eq!(
            r.method, "GET",
            "a sync never writes: {} {}",
            r.method, r.path
        );
        let query = r.query.clone().unwrap_or_default();
        if query.contains("pagination") {
            assert!(
                query.contains("pagination%5Bcount%5D=200"),
                "page size 200: {query}"
            );
        }
    }
    assert_eq!(summary.net.requests as usize, requests.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_from_the_user_list_save_the_detail_calls() {
    let mut cfg = FakeConfig::demo();
    cfg.list_users_includes_permissions = true;
    let fake = fake(cfg).await;
    let dir = temp_dir();
    sync(&fake, &out(&dir)).await.unwrap();
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.path.starts_with("/users/"))
            .count(),
        0
    );
    let c1z = Synced::open(&out(&dir));
    let all: Vec<&str> = DIRECT_GRANTS
        .iter()
        .chain(EXPANDED_GRANTS)
        .copied()
        .collect();
    assert_eq!(sorted(c1z.grant_ids()), strings(&all));
}
