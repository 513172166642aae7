//! The JSON shapes of model objects as the Public API returns them (field names from the
//! OpenAPI schemas: `UserV1`, `UserGroupV1`, `SourceV1`, …).

use super::model::{Function, Group, Permission, Role, Source, Space, User, Warehouse, Workspace};
use serde_json::{Value, json};

/// `WorkspaceV1`.
pub fn workspace(ws: &Workspace) -> Value {
    json!({ "id": ws.id, "name": ws.name, "slug": ws.slug })
}

/// `PermissionV1` list: `{roleId, roleName, resources[{id,type,labels}], labels}`.
pub fn permissions(perms: &[Permission]) -> Value {
    serde_json::to_value(perms).unwrap_or_else(|_| json!([]))
}

/// `MinimalUserV1` (or `UserV1` with permissions when `with_permissions`).
pub fn user(u: &User, with_permissions: bool) -> Value {
    let mut v = json!({ "id": u.id, "name": u.name, "email": u.email });
    if with_permissions {
        v["permissions"] = permissions(&u.permissions);
    }
    v
}

/// `UserGroupV1`.
pub fn group(g: &Group) -> Value {
    json!({
        "id": g.id,
        "name": g.name,
        "memberCount": g.member_count(),
        "permissions": permissions(&g.permissions),
    })
}

/// `MinimalUserGroupV1`.
pub fn group_min(g: &Group) -> Value {
    json!({ "id": g.id, "name": g.name })
}

/// `RoleV1`.
pub fn role(r: &Role) -> Value {
    json!({ "id": r.id, "name": r.name, "description": r.description })
}

/// `SourceV1`.
pub fn source(workspace_id: &str, s: &Source) -> Value {
    json!({
        "id": s.id,
        "slug": s.slug,
        "name": s.name,
        "workspaceId": workspace_id,
        "enabled": s.enabled,
        "writeKeys": s.write_keys,
        "settings": {},
        "labels": s.labels,
        "metadata": {
            "id": s.metadata.id,
            "name": s.metadata.name,
            "slug": s.metadata.slug,
            "description": s.metadata.description,
            "logos": { "default": "" },
            "options": [],
            "categories": [],
            "isCloudEventSource": false,
        },
    })
}

/// `WarehouseV1`.
pub fn warehouse(workspace_id: &str, w: &Warehouse) -> Value {
    json!({
        "id": w.id,
        "workspaceId": workspace_id,
        "enabled": w.enabled,
        "settings": w.settings,
        "metadata": {
            "id": w.metadata.id,
            "slug": w.metadata.slug,
            "name": w.metadata.name,
            "description": w.metadata.description,
            "logos": { "default": "" },
            "options": [],
        },
    })
}

/// `ListFunctionItemV1` (plus `workspaceId`, as working clients read it).
pub fn function(workspace_id: &str, f: &Function) -> Value {
    json!({
        "id": f.id,
        "workspaceId": workspace_id,
        "displayName": f.display_name,
        "description": f.description,
        "resourceType": f.resource_type,
        "logoUrl": f.logo_url,
        "catalogId": f.catalog_id,
        "createdAt": f.created_at,
        "createdBy": f.created_by,
    })
}

/// `Space`.
pub fn space(s: &Space) -> Value {
    json!({ "id": s.id, "slug": s.slug, "name": s.name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let w = Workspace::demo();
        assert_eq!(
            user(w.user("usrDan").unwrap(), false),
            json!({"id":"usrDan","name":"","email":"dan@acme.test"})
        );
        let erin = user(w.user("usrErin").unwrap(), true);
        assert_eq!(
            erin["permissions"][0],
            json!({"roleId":"roleSrcAdmin","roleName":"Source Admin","resources":[{"id":"wkspAcme01","type":"WORKSPACE","labels":[{"key":"environment","value":"prod","description":"Production sources"}]}],"labels":[]})
        );
        let g = group(w.group("grpData").unwrap());
        assert_eq!(g["memberCount"], 3);
        assert_eq!(
            g["permissions"][1]["resources"][0],
            json!({"id":"spcStaging","type":"SPACE","labels":[]})
        );
        let s = source(&w.id, &w.sources[0]);
        assert_eq!(s["metadata"]["logos"], json!({"default":""}));
        assert_eq!(s["workspaceId"], "wkspAcme01");
        assert_eq!(s["writeKeys"], json!([]));
        let wh = warehouse(&w.id, &w.warehouses[0]);
        assert_eq!(wh["metadata"]["name"], "Snowflake");
        assert_eq!(wh["settings"], json!({}));
        assert_eq!(
            function(&w.id, &w.functions[1])["resourceType"],
            "DESTINATION"
        );
    }
}
