//! Workspaces to serve: the fixed demo workspace (docs/demo-workspace.md, exactly) and a
//! seeded generator of large, realistic workspaces.

use super::ids;
use super::model::{
    CatalogMetadata, Function, GenSpec, Group, Invite, Label, Permission, PermissionResource, Role,
    Source, Space, User, Warehouse, Workspace,
};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use std::collections::HashSet;

/// The 13 roles of the demo workspace (id, name, description), in `GET /roles` order.
/// The generator uses the same roles.
pub const STANDARD_ROLES: [(&str, &str, &str); 13] = [
    (
        "roleWsOwner",
        "Workspace Owner",
        "Full access to the workspace, its resources and its access settings.",
    ),
    (
        "roleWsMember",
        "Minimal Workspace Access",
        "Access to view the workspace. Cannot view any sub resources or make changes to the workspace.",
    ),
    (
        "roleSrcAdmin",
        "Source Admin",
        "Create, edit and delete sources and their settings.",
    ),
    (
        "roleSrcRead",
        "Source Read-only",
        "View sources and their settings.",
    ),
    (
        "roleFnAdmin",
        "Function Admin",
        "Create, edit and deploy functions.",
    ),
    ("roleFnRead", "Function Read-only", "View functions."),
    (
        "roleWhAdmin",
        "Warehouse Destination Admin",
        "Manage warehouse destinations.",
    ),
    (
        "roleWhRead",
        "Warehouse Destination Read-only",
        "View warehouse destinations.",
    ),
    (
        "roleEngAdmin",
        "Unify and Engage Admin",
        "Manage Unify spaces and Engage audiences and journeys.",
    ),
    (
        "roleEngRead",
        "Unify and Engage Read-only",
        "View Unify spaces and Engage data.",
    ),
    (
        "roleTpAdmin",
        "Tracking Plan Admin",
        "Manage tracking plans.",
    ),
    (
        "rolePrivacy",
        "End User Privacy Admin",
        "Manage end-user privacy settings.",
    ),
    (
        "roleSteward",
        "Data Steward",
        "A role whose name names no resource type (exercises scoped entitlements for any role name).",
    ),
];

/// The standard roles as model values.
pub fn standard_roles() -> Vec<Role> {
    STANDARD_ROLES
        .iter()
        .map(|(id, name, description)| Role {
            id: id.to_string(),
            name: name.to_string(),
            description: description.to_string(),
        })
        .collect()
}

fn role_name(id: &str) -> String {
    STANDARD_ROLES
        .iter()
        .find(|r| r.0 == id)
        .map(|r| r.1.to_string())
        .unwrap_or_default()
}

fn res(kind: &str, id: &str) -> PermissionResource {
    PermissionResource {
        id: id.to_string(),
        kind: kind.to_string(),
        labels: vec![],
    }
}

fn perm(role_id: &str, resources: Vec<PermissionResource>) -> Permission {
    Permission {
        role_id: role_id.to_string(),
        role_name: role_name(role_id),
        resources,
        labels: vec![],
    }
}

fn user(id: &str, name: &str, email: &str, permissions: Vec<Permission>) -> User {
    User {
        id: id.into(),
        name: name.into(),
        email: email.into(),
        permissions,
    }
}

fn catalog(id: &str, slug: &str, name: &str, description: &str) -> CatalogMetadata {
    CatalogMetadata {
        id: id.into(),
        slug: slug.into(),
        name: name.into(),
        description: description.into(),
    }
}

fn source(id: &str, slug: &str, name: &str, enabled: bool, meta: CatalogMetadata) -> Source {
    Source {
        id: id.into(),
        slug: slug.into(),
        name: name.into(),
        enabled,
        write_keys: vec![],
        labels: vec![],
        metadata: meta,
    }
}

fn function(
    id: &str,
    display_name: &str,
    description: &str,
    resource_type: &str,
    created_by: &str,
) -> Function {
    Function {
        id: id.into(),
        display_name: display_name.into(),
        description: description.into(),
        resource_type: resource_type.into(),
        logo_url: String::new(),
        catalog_id: format!("ffnc_{}", id.trim_start_matches("sfnc_")),
        created_at: "2024-03-14T09:26:53.000Z".into(),
        created_by: created_by.into(),
    }
}

impl Workspace {
    /// The demo workspace of docs/demo-workspace.md (ids, names, emails, permissions,
    /// members, order exactly as listed there).
    pub fn demo() -> Self {
        const WS: &str = "wkspAcme01";
        let ws = || res("WORKSPACE", WS);
        let users = vec![
            user(
                "usrAlice",
                "Alice Nguyen",
                "alice@acme.test",
                vec![perm("roleWsOwner", vec![ws()])],
            ),
            user(
                "usrBob",
                "Bob Martins",
                "bob@acme.test",
                vec![
                    perm(
                        "roleSrcAdmin",
                        vec![res("SOURCE", "srcWeb"), res("SOURCE", "srcIos")],
                    ),
                    perm("roleFnRead", vec![res("FUNCTION", "sfnc_enrich")]),
                ],
            ),
            user(
                "usrCarol",
                "Carol Diaz",
                "carol@acme.test",
                vec![
                    perm("roleWhAdmin", vec![res("WAREHOUSE", "whSnowflake")]),
                    perm("roleSrcRead", vec![ws()]),
                ],
            ),
            user(
                "usrDan",
                "",
                "dan@acme.test",
                vec![
                    perm("roleWsMember", vec![ws()]),
                    perm("roleEngRead", vec![res("SPACE", "spcProd")]),
                ],
            ),
            user(
                "usrErin",
                "Erin Okafor",
                "erin@acme.test",
                vec![
                    perm(
                        "roleSrcAdmin",
                        vec![PermissionResource {
                            id: WS.into(),
                            kind: "WORKSPACE".into(),
                            labels: vec![Label {
                                key: "environment".into(),
                                value: "prod".into(),
                                description: Some("Production sources".into()),
                            }],
                        }],
                    ),
                    perm("roleSteward", vec![res("SOURCE", "srcServer")]),
                ],
            ),
            user(
                "usrFrank",
                "Frank Li",
                "frank@acme.test",
                vec![perm("roleWsMember", vec![ws()])],
            ),
            user(
                "usrGrace",
                "Grace Hopper",
                "grace@acme.test",
                vec![
                    perm(
                        "roleFnAdmin",
                        vec![
                            res("FUNCTION", "sfnc_enrich"),
                            res("FUNCTION", "sfnc_slack"),
                        ],
                    ),
                    perm("roleEngAdmin", vec![res("SPACE", "spcProd")]),
                ],
            ),
            user("usrHeidi", "Heidi Schmidt", "heidi@acme.test", vec![]),
        ];
        let groups = vec![
            Group {
                id: "grpEng".into(),
                name: "Engineering".into(),
                member_emails: vec![
                    "bob@acme.test".into(),
                    "frank@acme.test".into(),
                    "heidi@acme.test".into(),
                ],
                invite_emails: vec![],
                permissions: vec![
                    perm("roleSrcAdmin", vec![res("SOURCE", "srcServer")]),
                    perm("roleFnAdmin", vec![res("FUNCTION", "sfnc_enrich")]),
                ],
            },
            Group {
                id: "grpData".into(),
                name: "Data Platform".into(),
                member_emails: vec!["carol@acme.test".into(), "erin@acme.test".into()],
                invite_emails: vec!["pat@acme.test".into()],
                permissions: vec![
                    perm("roleWhRead", vec![ws()]),
                    perm("roleEngRead", vec![res("SPACE", "spcStaging")]),
                ],
            },
            Group {
                id: "grpAdmins".into(),
                name: "Workspace Admins".into(),
                member_emails: vec!["alice@acme.test".into()],
                invite_emails: vec![],
                permissions: vec![perm("roleWsOwner", vec![ws()])],
            },
            Group {
                id: "grpContractors".into(),
                name: "Contractors".into(),
                member_emails: vec![],
                invite_emails: vec![],
                permissions: vec![],
            },
        ];
        let invites = vec![
            Invite {
                email: "pat@acme.test".into(),
                permissions: vec![],
            },
            Invite {
                email: "quinn@partner.test".into(),
                permissions: vec![],
            },
        ];
        let sources = vec![
            source(
                "srcWeb",
                "acme-web",
                "Acme Website",
                true,
                catalog(
                    "catJavascript",
                    "javascript",
                    "Javascript",
                    "Track website visitors with analytics.js.",
                ),
            ),
            source(
                "srcIos",
                "acme-ios",
                "Acme iOS",
                true,
                catalog(
                    "catIos",
                    "ios",
                    "iOS",
                    "Track iOS app users with analytics-ios.",
                ),
            ),
            source(
                "srcServer",
                "acme-server",
                "",
                true,
                catalog(
                    "catNodejs",
                    "nodejs",
                    "Node.js",
                    "Send server-side events from Node.js.",
                ),
            ),
            source(
                "srcLegacy",
                "legacy-crm",
                "Legacy CRM",
                false,
                catalog(
                    "catHttpApi",
                    "http-api",
                    "HTTP API",
                    "Send events over HTTP.",
                ),
            ),
        ];
        let warehouses = vec![
            Warehouse {
                id: "whSnowflake".into(),
                enabled: true,
                settings: serde_json::json!({}),
                metadata: catalog(
                    "wmSnowflake",
                    "snowflake",
                    "Snowflake",
                    "Data warehouse built for the cloud",
                ),
            },
            Warehouse {
                id: "whBigQuery".into(),
                enabled: false,
                settings: serde_json::json!({}),
                metadata: catalog(
                    "wmBigQuery",
                    "bigquery",
                    "BigQuery",
                    "Google's serverless data warehouse",
                ),
            },
        ];
        let functions = vec![
            function(
                "sfnc_enrich",
                "Enrich Profile",
                "Adds CRM fields to identify calls",
                "SOURCE",
                "usrGrace",
            ),
            function(
                "sfnc_slack",
                "Slack Alerts",
                "Posts signups to Slack",
                "DESTINATION",
                "usrGrace",
            ),
            function(
                "sfnc_mask",
                "Mask PII",
                "Removes e-mail addresses before delivery",
                "INSERT_DESTINATION",
                "usrBob",
            ),
            function(
                "sfnc_geo",
                "Geo Lookup",
                "Adds country from IP",
                "INSERT_SOURCE",
                "usrBob",
            ),
        ];
        let spaces = vec![
            Space {
                id: "spcProd".into(),
                slug: "production".into(),
                name: "Production".into(),
            },
            Space {
                id: "spcStaging".into(),
                slug: "staging".into(),
                name: "Staging".into(),
            },
        ];
        Workspace {
            id: WS.into(),
            name: "Acme Analytics".into(),
            slug: "acme-analytics".into(),
            users,
            invites,
            groups,
            roles: standard_roles(),
            sources,
            warehouses,
            functions,
            spaces,
        }
    }

    /// A large, realistic workspace, identical for identical `(seed, spec)`.
    ///
    /// Users get 1–3 permissions with distinct roles from the 13 standard roles, each on the
    /// workspace or on 1–3 resources of the type the role is about (Source roles → SOURCE,
    /// Function roles → FUNCTION, Warehouse roles → WAREHOUSE, Unify/Engage roles → SPACE,
    /// Data Steward → SOURCE); some workspace-level Source/Engage grants carry labels.
    /// Groups have 0–50 user members (plus occasionally pending invites) and 0–2 permissions.
    pub fn generate(seed: u64, spec: GenSpec) -> Self {
        let mut g = Generator {
            rng: StdRng::seed_from_u64(seed),
            used_ids: HashSet::new(),
        };
        g.workspace(spec)
    }
}

const FIRST: [&str; 48] = [
    "Ada", "Alan", "Amara", "Ana", "Ben", "Bianca", "Chen", "Chloe", "Daniel", "Diego", "Elena",
    "Emeka", "Fatima", "Felix", "Gabriel", "Hana", "Hiro", "Ines", "Ivan", "Jada", "James", "Kai",
    "Kenji", "Lara", "Leo", "Lucia", "Maya", "Mateo", "Nadia", "Noah", "Olga", "Omar", "Priya",
    "Paul", "Quentin", "Rosa", "Ravi", "Sara", "Sven", "Tariq", "Tess", "Uma", "Victor", "Wen",
    "Xavier", "Yara", "Yusuf", "Zoe",
];
const LAST: [&str; 40] = [
    "Abara", "Becker", "Castillo", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ivanova",
    "Jensen", "Kowalski", "Larsen", "Moreau", "Nakamura", "Okafor", "Petrov", "Quispe", "Rossi",
    "Silva", "Tanaka", "Ueda", "Varga", "Wagner", "Xu", "Yilmaz", "Zhang", "Novak", "Costa",
    "Singh", "Kim", "Murphy", "Bauer", "Lopez", "Sato", "Khan", "Nguyen", "Walsh", "Hughes",
    "Mendes", "Park",
];
const DOMAINS: [&str; 4] = [
    "example.com",
    "corp.example",
    "analytics.example",
    "contractor.example",
];
const TEAMS: [&str; 24] = [
    "Engineering",
    "Data Platform",
    "Growth",
    "Marketing",
    "Analytics",
    "Security",
    "Mobile",
    "Web",
    "Finance",
    "Support",
    "Sales Ops",
    "Product",
    "Design",
    "Infrastructure",
    "Privacy",
    "Lifecycle",
    "Experimentation",
    "Partnerships",
    "Legal",
    "Platform",
    "ML",
    "Contractors",
    "Agency",
    "Executives",
];
const REGIONS: [&str; 8] = [
    "EMEA", "NA", "APAC", "LATAM", "Berlin", "London", "Tokyo", "Austin",
];
const SOURCE_KINDS: [(&str, &str, &str); 8] = [
    (
        "javascript",
        "Javascript",
        "Track website visitors with analytics.js.",
    ),
    ("ios", "iOS", "Track iOS app users."),
    ("android", "Android", "Track Android app users."),
    ("nodejs", "Node.js", "Send server-side events from Node.js."),
    ("python", "Python", "Send server-side events from Python."),
    ("http-api", "HTTP API", "Send events over HTTP."),
    (
        "salesforce",
        "Salesforce",
        "Sync CRM objects from Salesforce.",
    ),
    ("stripe", "Stripe", "Sync payments data from Stripe."),
];
const WAREHOUSE_KINDS: [(&str, &str, &str); 5] = [
    (
        "snowflake",
        "Snowflake",
        "Data warehouse built for the cloud",
    ),
    ("bigquery", "BigQuery", "Google's serverless data warehouse"),
    ("redshift", "Redshift", "Amazon's columnar data warehouse"),
    ("postgres", "Postgres", "Open source relational database"),
    ("databricks", "Databricks", "Lakehouse platform"),
];
const FUNCTION_WORDS: [&str; 12] = [
    "Enrich",
    "Mask",
    "Route",
    "Geo",
    "Dedupe",
    "Score",
    "Alert",
    "Sync",
    "Filter",
    "Normalize",
    "Hash",
    "Tag",
];
const ENVIRONMENTS: [(&str, &str); 3] = [
    ("prod", "Production"),
    ("staging", "Staging"),
    ("dev", "Development"),
];

struct Generator {
    rng: StdRng,
    used_ids: HashSet<String>,
}

impl Generator {
    fn id(&mut self, prefix: &str) -> String {
        loop {
            let id = format!("{prefix}{}", ids::segment_id(&mut self.rng));
            if self.used_ids.insert(id.clone()) {
                return id;
            }
        }
    }

    fn env_label(&mut self) -> Label {
        let (value, desc) = ENVIRONMENTS[self.rng.random_range(0..ENVIRONMENTS.len())];
        Label {
            key: "environment".into(),
            value: value.into(),
            description: Some(format!("{desc} sources")),
        }
    }

    fn workspace(&mut self, spec: GenSpec) -> Workspace {
        let ws_id = self.id("");
        let sources: Vec<Source> = (0..spec.sources)
            .map(|i| {
                let (slug, name, desc) = SOURCE_KINDS[self.rng.random_range(0..SOURCE_KINDS.len())];
                let region = REGIONS[self.rng.random_range(0..REGIONS.len())];
                let labels = if self.rng.random_bool(0.6) {
                    vec![self.env_label()]
                } else {
                    vec![]
                };
                let display = if self.rng.random_bool(0.05) {
                    String::new()
                } else {
                    format!("{name} {region} {}", i + 1)
                };
                Source {
                    id: self.id(""),
                    slug: format!("{slug}-{}-{}", region.to_ascii_lowercase(), i + 1),
                    name: display,
                    enabled: self.rng.random_bool(0.85),
                    write_keys: vec![],
                    labels,
                    metadata: CatalogMetadata {
                        id: format!("cat{}", name.replace(['.', ' '], "")),
                        slug: slug.into(),
                        name: name.into(),
                        description: desc.into(),
                    },
                }
            })
            .collect();
        let warehouses: Vec<Warehouse> = (0..spec.warehouses)
            .map(|_| {
                let (slug, name, desc) =
                    WAREHOUSE_KINDS[self.rng.random_range(0..WAREHOUSE_KINDS.len())];
                Warehouse {
                    id: self.id(""),
                    enabled: self.rng.random_bool(0.8),
                    settings: serde_json::json!({}),
                    metadata: CatalogMetadata {
                        id: format!("wm{name}"),
                        slug: slug.into(),
                        name: name.into(),
                        description: desc.into(),
                    },
                }
            })
            .collect();
        let spaces: Vec<Space> = (0..spec.spaces)
            .map(|i| {
                let (slug, name) = ENVIRONMENTS[i % ENVIRONMENTS.len()];
                let round = i / ENVIRONMENTS.len();
                let (slug, name) = if round == 0 {
                    (slug.to_string(), name.to_string())
                } else {
                    (format!("{slug}-{round}"), format!("{name} {round}"))
                };
                Space {
                    id: self.id("spa_"),
                    slug,
                    name,
                }
            })
            .collect();

        // People: unique emails across users and invites.
        let mut emails = HashSet::new();
        let mut person = |rng: &mut StdRng| loop {
            let first = FIRST[rng.random_range(0..FIRST.len())];
            let last = LAST[rng.random_range(0..LAST.len())];
            let domain = DOMAINS[rng.random_range(0..DOMAINS.len())];
            let n: u32 = rng.random_range(1..10_000);
            let email = format!(
                "{}.{}{n}@{domain}",
                first.to_ascii_lowercase(),
                last.to_ascii_lowercase()
            );
            if emails.insert(email.clone()) {
                return (format!("{first} {last}"), email);
            }
        };
        let mut people = Vec::with_capacity(spec.users);
        for _ in 0..spec.users {
            let (name, email) = person(&mut self.rng);
            people.push((name, email));
        }
        let mut invite_emails = Vec::with_capacity(spec.invites);
        for _ in 0..spec.invites {
            invite_emails.push(person(&mut self.rng).1);
        }

        let functions: Vec<Function> = (0..spec.functions)
            .map(|i| {
                let word = FUNCTION_WORDS[self.rng.random_range(0..FUNCTION_WORDS.len())];
                let kind = [
                    "SOURCE",
                    "DESTINATION",
                    "INSERT_DESTINATION",
                    "INSERT_SOURCE",
                    "INSERT_TRANSFORMATION",
                ][self.rng.random_range(0..5)];
                let id = self.id("sfnc_");
                let day = self.rng.random_range(1..=28);
                let month = self.rng.random_range(1..=12);
                Function {
                    catalog_id: format!("ffnc_{}", &id[5..]),
                    id,
                    display_name: format!("{word} {}", i + 1),
                    description: format!(
                        "{word}s events ({})",
                        kind.to_ascii_lowercase().replace('_', " ")
                    ),
                    resource_type: kind.into(),
                    logo_url: String::new(),
                    created_at: format!("2024-{month:02}-{day:02}T12:00:00.000Z"),
                    created_by: String::new(),
                }
            })
            .collect();

        let mut ws = Workspace {
            name: "Generated Workspace".into(),
            slug: format!("generated-{}", ws_id[..6].to_ascii_lowercase()),
            id: ws_id,
            users: vec![],
            invites: invite_emails
                .into_iter()
                .map(|email| Invite {
                    email,
                    permissions: vec![],
                })
                .collect(),
            groups: vec![],
            roles: standard_roles(),
            sources,
            warehouses,
            functions,
            spaces,
        };

        let users: Vec<User> = people
            .into_iter()
            .map(|(name, email)| {
                let name = if self.rng.random_bool(0.03) {
                    String::new()
                } else {
                    name
                };
                let n = self.rng.random_range(1..=3);
                let permissions = self.permissions(&ws, n);
                User {
                    id: self.id(""),
                    name,
                    email,
                    permissions,
                }
            })
            .collect();
        ws.users = users;
        for f in 0..ws.functions.len() {
            if let Some(u) = ws.users.choose(&mut self.rng) {
                ws.functions[f].created_by = u.id.clone();
            }
        }

        let mut team_names = HashSet::new();
        let groups: Vec<Group> = (0..spec.groups)
            .map(|i| {
                let name = loop {
                    let team = TEAMS[self.rng.random_range(0..TEAMS.len())];
                    let region = REGIONS[self.rng.random_range(0..REGIONS.len())];
                    let candidate = if i < TEAMS.len() && self.rng.random_bool(0.5) {
                        team.to_string()
                    } else {
                        format!("{team} {region}")
                    };
                    let candidate = if team_names.contains(&candidate) {
                        format!("{candidate} {}", i + 1)
                    } else {
                        candidate
                    };
                    if team_names.insert(candidate.clone()) {
                        break candidate;
                    }
                };
                let size = self.rng.random_range(0..=50usize).min(ws.users.len());
                let mut members: Vec<String> = ws
                    .users
                    .choose_multiple(&mut self.rng, size)
                    .map(|u| u.email.clone())
                    .collect();
                members.shuffle(&mut self.rng);
                let invite_members: Vec<String> = if self.rng.random_bool(0.2) {
                    let k = self.rng.random_range(1..=2usize).min(ws.invites.len());
                    ws.invites
                        .choose_multiple(&mut self.rng, k)
                        .map(|i| i.email.clone())
                        .collect()
                } else {
                    vec![]
                };
                let n = self.rng.random_range(0..=2);
                let permissions = self.permissions(&ws, n);
                Group {
                    id: self.id(""),
                    name,
                    member_emails: members,
                    invite_emails: invite_members,
                    permissions,
                }
            })
            .collect();
        ws.groups = groups;
        ws
    }

    /// `n` permissions with distinct roles.
    fn permissions(&mut self, ws: &Workspace, n: usize) -> Vec<Permission> {
        let mut roles: Vec<&(&str, &str, &str)> =
            STANDARD_ROLES.choose_multiple(&mut self.rng, n).collect();
        roles.sort_by_key(|r| STANDARD_ROLES.iter().position(|s| s.0 == r.0));
        roles
            .into_iter()
            .map(|(id, name, _)| self.permission(ws, id, name))
            .collect()
    }

    fn permission(&mut self, ws: &Workspace, role_id: &str, role_name: &str) -> Permission {
        let scoped: Vec<String> = match role_id {
            "roleSrcAdmin" | "roleSrcRead" | "roleSteward" => {
                ws.sources.iter().map(|s| s.id.clone()).collect()
            }
            "roleFnAdmin" | "roleFnRead" => ws.functions.iter().map(|f| f.id.clone()).collect(),
            "roleWhAdmin" | "roleWhRead" => ws.warehouses.iter().map(|w| w.id.clone()).collect(),
            "roleEngAdmin" | "roleEngRead" => ws.spaces.iter().map(|s| s.id.clone()).collect(),
            _ => vec![],
        };
        let kind = match role_id {
            "roleSrcAdmin" | "roleSrcRead" | "roleSteward" => "SOURCE",
            "roleFnAdmin" | "roleFnRead" => "FUNCTION",
            "roleWhAdmin" | "roleWhRead" => "WAREHOUSE",
            "roleEngAdmin" | "roleEngRead" => "SPACE",
            _ => "WORKSPACE",
        };
        let labelable = matches!(
            role_id,
            "roleSrcAdmin" | "roleSrcRead" | "roleEngAdmin" | "roleEngRead"
        );
        let resources = if scoped.is_empty() || self.rng.random_bool(0.35) {
            let labels = if labelable && self.rng.random_bool(0.4) {
                vec![self.env_label()]
            } else {
                vec![]
            };
            vec![PermissionResource {
                id: ws.id.clone(),
                kind: "WORKSPACE".into(),
                labels,
            }]
        } else {
            let k = self.rng.random_range(1..=3usize).min(scoped.len());
            scoped
                .choose_multiple(&mut self.rng, k)
                .map(|id| PermissionResource {
                    id: id.clone(),
                    kind: kind.into(),
                    labels: vec![],
                })
                .collect()
        };
        Permission {
            role_id: role_id.into(),
            role_name: role_name.into(),
            resources,
            labels: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::model::same_email;

    #[test]
    fn demo_matches_the_document() {
        let w = Workspace::demo();
        assert_eq!(
            (w.id.as_str(), w.name.as_str(), w.slug.as_str()),
            ("wkspAcme01", "Acme Analytics", "acme-analytics")
        );
        assert_eq!(w.roles.len(), 13);
        assert_eq!(w.roles[12].name, "Data Steward");
        let ids: Vec<_> = w.users.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "usrAlice", "usrBob", "usrCarol", "usrDan", "usrErin", "usrFrank", "usrGrace",
                "usrHeidi"
            ]
        );
        assert_eq!(w.user("usrDan").unwrap().name, "");
        assert!(w.user("usrHeidi").unwrap().permissions.is_empty());
        let erin = w.user("usrErin").unwrap();
        assert_eq!(erin.permissions[0].role_name, "Source Admin");
        assert_eq!(
            erin.permissions[0].resources[0].labels[0]
                .description
                .as_deref(),
            Some("Production sources")
        );
        let counts: Vec<_> = w.groups.iter().map(|g| g.member_count()).collect();
        assert_eq!(counts, [3, 3, 1, 0]);
        assert_eq!(
            w.invites
                .iter()
                .map(|i| i.email.as_str())
                .collect::<Vec<_>>(),
            ["pat@acme.test", "quinn@partner.test"]
        );
        assert_eq!(w.sources.len(), 4);
        assert_eq!(w.sources[2].name, "");
        assert!(!w.sources[3].enabled);
        assert_eq!(
            w.warehouses[1].metadata.description,
            "Google's serverless data warehouse"
        );
        assert_eq!(w.functions.len(), 4);
        assert!(
            !w.functions
                .iter()
                .any(|f| f.resource_type == "INSERT_TRANSFORMATION")
        );
        assert_eq!(w.spaces[1].slug, "staging");
        // Every permission names a known role with the right name and an existing resource.
        for p in w
            .users
            .iter()
            .flat_map(|u| &u.permissions)
            .chain(w.groups.iter().flat_map(|g| &g.permissions))
        {
            assert_eq!(w.role(&p.role_id).unwrap().name, p.role_name);
            for r in &p.resources {
                assert!(w.resource_exists(&r.kind, &r.id), "{r:?}");
            }
        }
    }

    #[test]
    fn generator_is_deterministic() {
        let spec = GenSpec {
            users: 300,
            groups: 30,
            invites: 20,
            sources: 15,
            warehouses: 3,
            functions: 8,
            spaces: 2,
        };
        let a = Workspace::generate(42, spec);
        let b = Workspace::generate(42, spec);
        assert_eq!(a, b);
        let c = Workspace::generate(43, spec);
        assert_ne!(a.users[0].email, c.users[0].email);
    }

    #[test]
    fn generator_is_realistic_and_consistent() {
        let spec = GenSpec {
            users: 5000,
            groups: 300,
            invites: 50,
            sources: 40,
            warehouses: 4,
            functions: 25,
            spaces: 3,
        };
        let w = Workspace::generate(7, spec);
        assert_eq!(w.users.len(), 5000);
        assert_eq!(w.groups.len(), 300);
        assert_eq!(w.invites.len(), 50);
        assert_eq!(
            (
                w.sources.len(),
                w.warehouses.len(),
                w.functions.len(),
                w.spaces.len()
            ),
            (40, 4, 25, 3)
        );
        assert_eq!(w.id.len(), 22);
        let mut emails = HashSet::new();
        for u in &w.users {
            assert_eq!(u.id.len(), 22);
            assert!(u.id.bytes().all(|c| c.is_ascii_alphanumeric()));
            assert!(
                emails.insert(u.email.to_ascii_lowercase()),
                "duplicate {}",
                u.email
            );
            assert!((1..=3).contains(&u.permissions.len()));
        }
        for i in &w.invites {
            assert!(emails.insert(i.email.to_ascii_lowercase()));
        }
        let mut ids = HashSet::new();
        assert!(
            w.users
                .iter()
                .map(|u| &u.id)
                .chain(w.groups.iter().map(|g| &g.id))
                .all(|id| ids.insert(id.clone()))
        );
        let mut labelled = 0;
        for p in w
            .users
            .iter()
            .flat_map(|u| &u.permissions)
            .chain(w.groups.iter().flat_map(|g| &g.permissions))
        {
            assert_eq!(w.role(&p.role_id).unwrap().name, p.role_name);
            for r in &p.resources {
                assert!(w.resource_exists(&r.kind, &r.id), "{r:?}");
                let expected = match p.role_id.as_str() {
                    "roleSrcAdmin" | "roleSrcRead" | "roleSteward" => "SOURCE",
                    "roleFnAdmin" | "roleFnRead" => "FUNCTION",
                    "roleWhAdmin" | "roleWhRead" => "WAREHOUSE",
                    "roleEngAdmin" | "roleEngRead" => "SPACE",
                    _ => "WORKSPACE",
                };
                assert!(
                    r.kind == "WORKSPACE" || r.kind == expected,
                    "{} on {}",
                    p.role_id,
                    r.kind
                );
                if !r.labels.is_empty() {
                    assert_eq!(r.kind, "WORKSPACE");
                    labelled += 1;
                }
            }
        }
        assert!(labelled > 0);
        for g in &w.groups {
            assert!(g.member_emails.len() <= 50);
            assert!(g.permissions.len() <= 2);
            for e in &g.member_emails {
                assert!(w.users.iter().any(|u| same_email(&u.email, e)));
            }
            for e in &g.invite_emails {
                assert!(w.invite(e).is_some());
            }
        }
        let names: HashSet<_> = w.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names.len(), w.groups.len());
        assert!(
            w.functions
                .iter()
                .all(|f| f.id.starts_with("sfnc_") && w.user(&f.created_by).is_some())
        );
    }

    #[test]
    fn generator_handles_empty_specs() {
        let w = Workspace::generate(
            1,
            GenSpec {
                users: 3,
                groups: 2,
                invites: 0,
                sources: 0,
                warehouses: 0,
                functions: 0,
                spaces: 0,
            },
        );
        for p in w.users.iter().flat_map(|u| &u.permissions) {
            assert!(p.resources.iter().all(|r| r.kind == "WORKSPACE"));
        }
        let w = Workspace::generate(
            1,
            GenSpec {
                users: 0,
                groups: 3,
                invites: 0,
                sources: 0,
                warehouses: 0,
                functions: 2,
                spaces: 0,
            },
        );
        assert!(w.groups.iter().all(|g| g.member_emails.is_empty()));
    }
}
