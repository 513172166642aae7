//! Baton's standard id formats (baton-sdk §2).

/// Sentinel used by the SDK for a grant whose id is unknown.
pub const UNKNOWN_GRANT_ID: &str = "🧸_UNKNOWN_GRANT_ID";

/// Entitlement id: `"<resource_type>:<resource_id>:<slug>"`.
pub fn entitlement_id(resource_type: &str, resource_id: &str, slug: &str) -> String {
    format!("{resource_type}:{resource_id}:{slug}")
}

/// Grant id: `"<entitlement_id>:<principal_resource_type>:<principal_resource_id>"`.
pub fn grant_id(entitlement_id: &str, principal_type: &str, principal_id: &str) -> String {
    format!("{entitlement_id}:{principal_type}:{principal_id}")
}

/// The store's key for a resource (`v1_resources.external_id`): `"<resource_type>:<resource_id>"`.
pub fn resource_key(resource_type: &str, resource_id: &str) -> String {
    format!("{resource_type}:{resource_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let e = entitlement_id("group", "g1", "member");
        assert_eq!(e, "group:g1:member");
        assert_eq!(grant_id(&e, "user", "u1"), "group:g1:member:user:u1");
        assert_eq!(resource_key("user", "u1"), "user:u1");
    }
}
