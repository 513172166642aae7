//! Resource type ids and the id formats, kept identical to the Go connector's so that a
//! workspace moved from it keeps its history.

pub const WORKSPACE: &str = "workspace";
pub const USER: &str = "user";
pub const GROUP: &str = "group";
pub const ROLE: &str = "role";
pub const INVITE: &str = "invite";
pub const SOURCE: &str = "source";
pub const WAREHOUSE: &str = "warehouse";
pub const FUNCTION: &str = "function";
pub const SPACE: &str = "space";

/// The slug of membership-style entitlements (workspace, group, role).
pub const MEMBER: &str = "member";

/// `<resource-type>:<resource-id>:<slug>`
pub fn entitlement_id(resource_type: &str, resource_id: &str, slug: &str) -> String {
    format!("{resource_type}:{resource_id}:{slug}")
}

/// `<entitlement-id>:<principal-type>:<principal-id>`
pub fn grant_id(entitlement_id: &str, principal_type: &str, principal_id: &str) -> String {
    format!("{entitlement_id}:{principal_type}:{principal_id}")
}

/// Splits an entitlement id into (resource type, resource id, slug). The resource id may itself
/// contain `:` (it is whatever sits between the first and the last separator).
pub fn parse_entitlement_id(id: &str) -> Option<(&str, &str, &str)> {
    let (resource_type, rest) = id.split_once(':')?;
    let (resource_id, slug) = rest.rsplit_once(':')?;
    if resource_type.is_empty() || resource_id.is_empty() || slug.is_empty() {
        return None;
    }
    Some((resource_type, resource_id, slug))
}

/// A role name as an entitlement slug: lower case, spaces and hyphens become `_`, anything else
/// outside `[a-z0-9_]` is dropped ("Function Read-only" → `function_read_only`). `None` when
/// nothing is left.
pub fn slugify(name: &str) -> Option<String> {
    let slug: String = name
        .chars()
        .filter_map(|c| match c {
            ' ' | '-' => Some('_'),
            c if c.is_ascii_alphanumeric() || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    (!slug.is_empty()).then_some(slug)
}

/// The resource types a Segment role can be scoped to, besides the whole workspace.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Scope {
    Source,
    Warehouse,
    Function,
    Space,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::Source,
        Scope::Warehouse,
        Scope::Function,
        Scope::Space,
    ];

    /// The Baton resource type id.
    pub fn resource_type(self) -> &'static str {
        match self {
            Scope::Source => SOURCE,
            Scope::Warehouse => WAREHOUSE,
            Scope::Function => FUNCTION,
            Scope::Space => SPACE,
        }
    }

    /// The permission resource `type` in the Segment API.
    pub fn api_type(self) -> &'static str {
        match self {
            Scope::Source => "SOURCE",
            Scope::Warehouse => "WAREHOUSE",
            Scope::Function => "FUNCTION",
            Scope::Space => "SPACE",
        }
    }

    pub fn from_api_type(kind: &str) -> Option<Scope> {
        Scope::ALL
            .into_iter()
            .find(|s| s.api_type().eq_ignore_ascii_case(kind))
    }

    pub fn from_resource_type(id: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.resource_type() == id)
    }

    /// Words in a role's name that say it applies to this scope. Segment's space roles are
    /// named after Unify and Engage (formerly Personas), not "Space".
    fn name_words(self) -> &'static [&'static str] {
        match self {
            Scope::Source => &["source"],
            Scope::Warehouse => &["warehouse"],
            Scope::Function => &["function"],
            Scope::Space => &["engage", "unify", "space", "personas"],
        }
    }

    /// Whether a role's name says it can be scoped here ("Source Read-only" → Source).
    pub fn named_by(self, role_name: &str) -> bool {
        role_name
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| {
                self.name_words()
                    .iter()
                    .any(|w| word.eq_ignore_ascii_case(w))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_match_the_go_connector() {
        assert_eq!(slugify("Source Admin").as_deref(), Some("source_admin"));
        assert_eq!(
            slugify("Function Read-only").as_deref(),
            Some("function_read_only")
        );
        assert_eq!(
            slugify("Unify and Engage Admin").as_deref(),
            Some("unify_and_engage_admin")
        );
        assert_eq!(slugify("PII (Access)!").as_deref(), Some("pii_access"));
        assert_eq!(slugify("¡¿"), None);
    }

    #[test]
    fn entitlement_ids_round_trip() {
        let id = entitlement_id(SOURCE, "srcWeb", "source_admin");
        assert_eq!(id, "source:srcWeb:source_admin");
        assert_eq!(
            parse_entitlement_id(&id),
            Some((SOURCE, "srcWeb", "source_admin"))
        );
        assert_eq!(
            parse_entitlement_id("invite:a:b@x.test:member"),
            Some((INVITE, "a:b@x.test", "member"))
        );
        assert_eq!(parse_entitlement_id("source::x"), None);
        assert_eq!(parse_entitlement_id("nocolon"), None);
        assert_eq!(
            grant_id(&id, USER, "u1"),
            "source:srcWeb:source_admin:user:u1"
        );
    }

    #[test]
    fn role_names_name_their_scope_by_whole_word() {
        assert!(Scope::Source.named_by("Source Read-only"));
        assert!(Scope::Space.named_by("Unify and Engage Admin"));
        assert!(Scope::Space.named_by("Personas Admin"));
        assert!(Scope::Warehouse.named_by("Warehouse Destination Admin"));
        assert!(!Scope::Source.named_by("Workspace Owner"));
        assert!(!Scope::Source.named_by("Resource Steward"));
        assert!(!Scope::Function.named_by("Data Steward"));
    }
}
