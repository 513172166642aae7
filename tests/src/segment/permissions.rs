//! IAM permission writes: validation of `PermissionInputV1` / `InvitePermissionV1` bodies,
//! add (merge) and replace semantics, and the `AccessPermissionV1` answer shape.

use super::ids;
use super::model::{Label, Permission, PermissionResource, RESOURCE_TYPES, Workspace};
use super::response::ApiError;
use serde_json::{Map, Value, json};

/// Which write shape is being parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputShape {
    /// `PermissionInputV1`: roleId + required non-empty resources (with optional labels).
    Subject,
    /// `InvitePermissionV1`: roleId + optional resources (no labels) + optional
    /// permission-level labels.
    Invite,
}

fn field_err(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::validation(message, Some(field))
}

fn string_field<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<&'a str, ApiError> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            Err(field_err(field, format!("{field} is required")))
        }
        Some(_) => Err(field_err(field, format!("{field} must be a string"))),
    }
}

/// Parses a label list (`[{key, value, description?}]`), keeping values exactly.
pub fn parse_labels(value: Option<&Value>, field: &str) -> Result<Vec<Label>, ApiError> {
    let list = match value {
        None | Some(Value::Null) => return Ok(vec![]),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(field_err(field, format!("{field} must be an array"))),
    };
    let mut out: Vec<Label> = Vec::with_capacity(list.len());
    for item in list {
        let Value::Object(obj) = item else {
            return Err(field_err(field, format!("{field} items must be objects")));
        };
        let key = match obj.get("key") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(field_err(
                    &format!("{field}.key"),
                    format!("{field}.key is required"),
                ));
            }
        };
        let value = match obj.get("value") {
            Some(Value::String(s)) => s.clone(),
            _ => {
                return Err(field_err(
                    &format!("{field}.value"),
                    format!("{field}.value is required"),
                ));
            }
        };
        let description = match obj.get("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(field_err(
                    &format!("{field}.description"),
                    format!("{field}.description must be a string"),
                ));
            }
        };
        let label = Label {
            key,
            value,
            description,
        };
        if !out.contains(&label) {
            out.push(label);
        }
    }
    Ok(out)
}

/// Validates a list of permission inputs against the workspace (known roleId, resource
/// type in the enum, resource exists, labels only on WORKSPACE resources) and turns them
/// into model permissions (role names filled in; duplicate roles and identical resources
/// merged). `field` is the error field prefix, e.g. `permissions` or `invites.permissions`.
pub fn parse_permissions(
    ws: &Workspace,
    value: Option<&Value>,
    field: &str,
    shape: InputShape,
) -> Result<Vec<Permission>, ApiError> {
    let list = match value {
        Some(Value::Array(list)) => list,
        None | Some(Value::Null) if shape == InputShape::Invite => return Ok(vec![]),
        None | Some(Value::Null) => return Err(field_err(field, format!("{field} is required"))),
        Some(_) => return Err(field_err(field, format!("{field} must be an array"))),
    };
    let mut out: Vec<Permission> = Vec::new();
    for item in list {
        let Value::Object(obj) = item else {
            return Err(field_err(field, format!("{field} items must be objects")));
        };
        let role_field = format!("{field}.roleId");
        let role_id = string_field(obj, "roleId", &role_field)?;
        let Some(role) = ws.role(role_id) else {
            return Err(field_err(
                &role_field,
                format!("roleId is not valid: {role_id}"),
            ));
        };
        let res_field = format!("{field}.resources");
        let resources_json = match obj.get("resources") {
            Some(Value::Array(list)) => list.as_slice(),
            None | Some(Value::Null) if shape == InputShape::Invite => &[],
            None | Some(Value::Null) => {
                return Err(field_err(&res_field, format!("{res_field} is required")));
            }
            Some(_) => {
                return Err(field_err(
                    &res_field,
                    format!("{res_field} must be an array"),
                ));
            }
        };
        if shape == InputShape::Subject && resources_json.is_empty() {
            return Err(field_err(
                &res_field,
                format!("{res_field} must contain at least one resource"),
            ));
        }
        let mut resources = Vec::with_capacity(resources_json.len());
        for r in resources_json {
            resources.push(parse_resource(ws, r, &res_field, shape)?);
        }
        let labels = match shape {
            InputShape::Invite => parse_labels(obj.get("labels"), &format!("{field}.labels"))?,
            InputShape::Subject => vec![],
        };
        let p = Permission {
            role_id: role.id.clone(),
            role_name: role.name.clone(),
            resources,
            labels,
        };
        merge_one(&mut out, p);
    }
    Ok(out)
}

fn parse_resource(
    ws: &Workspace,
    r: &Value,
    field: &str,
    shape: InputShape,
) -> Result<PermissionResource, ApiError> {
    let Value::Object(obj) = r else {
        return Err(field_err(field, format!("{field} items must be objects")));
    };
    let id = string_field(obj, "id", &format!("{field}.id"))?;
    let type_field = format!("{field}.type");
    let kind = string_field(obj, "type", &type_field)?;
    if !RESOURCE_TYPES.contains(&kind) {
        return Err(field_err(
            &type_field,
            format!(
                "type must be one of {}, got \"{kind}\"",
                RESOURCE_TYPES.join(", ")
            ),
        ));
    }
    if !ws.resource_exists(kind, id) {
        return Err(field_err(
            &format!("{field}.id"),
            format!("resource {id} of type {kind} was not found in this workspace"),
        ));
    }
    let labels = match shape {
        InputShape::Invite => vec![],
        InputShape::Subject => parse_labels(obj.get("labels"), &format!("{field}.labels"))?,
    };
    if !labels.is_empty() && kind != "WORKSPACE" {
        return Err(field_err(
            &format!("{field}.labels"),
            "labels are exclusive to Workspace-level permissions",
        ));
    }
    Ok(PermissionResource {
        id: id.to_string(),
        kind: kind.to_string(),
        labels,
    })
}

/// Two resources are identical when type, id and the set of labels are equal.
fn same_resource(a: &PermissionResource, b: &PermissionResource) -> bool {
    a.kind == b.kind
        && a.id == b.id
        && a.labels.len() == b.labels.len()
        && a.labels.iter().all(|l| b.labels.contains(l))
}

fn merge_one(set: &mut Vec<Permission>, p: Permission) {
    match set.iter_mut().find(|e| e.role_id == p.role_id) {
        Some(existing) => {
            for r in p.resources {
                if !existing.resources.iter().any(|e| same_resource(e, &r)) {
                    existing.resources.push(r);
                }
            }
            for l in p.labels {
                if !existing.labels.contains(&l) {
                    existing.labels.push(l);
                }
            }
        }
        None => set.push(p),
    }
}

/// Add semantics (POST): a permission with a roleId already held merges its resources
/// into the existing one (an identical resource is not duplicated); a new roleId is
/// appended. Existing labels are kept.
pub fn add(set: &mut Vec<Permission>, input: Vec<Permission>) {
    for p in input {
        merge_one(set, p);
    }
}

/// Replace semantics (PUT): the input becomes the whole set (already merged by role).
pub fn replace(set: &mut Vec<Permission>, input: Vec<Permission>) {
    *set = input;
}

/// `AccessPermissionV1` list as real responses carry it (with the undocumented
/// `policyId`, `subjectId`, `subjectType`).
pub fn access_permissions<'a>(
    perms: impl IntoIterator<Item = &'a Permission>,
    subject_id: &str,
    subject_type: &str,
) -> Value {
    Value::Array(
        perms
            .into_iter()
            .map(|p| {
                json!({
                    "policyId": ids::policy_id(subject_id, &p.role_id),
                    "roleId": p.role_id,
                    "roleName": p.role_name,
                    "subjectId": subject_id,
                    "subjectType": subject_type,
                    "resources": p.resources,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> Workspace {
        Workspace::demo()
    }

    fn parse(v: Value) -> Result<Vec<Permission>, ApiError> {
        parse_permissions(&ws(), Some(&v), "permissions", InputShape::Subject)
    }

    #[test]
    fn valid_input_gets_role_names_and_keeps_labels() {
        let p = parse(json!([
            {"roleId":"roleSrcRead","resources":[{"id":"wkspAcme01","type":"WORKSPACE","labels":[{"key":"environment","value":"dev","description":"Dev"}]}]},
            {"roleId":"roleSrcRead","resources":[{"id":"srcWeb","type":"SOURCE"},{"id":"srcWeb","type":"SOURCE"}]}
        ]))
        .unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].role_name, "Source Read-only");
        assert_eq!(p[0].resources.len(), 2);
        assert_eq!(
            p[0].resources[0].labels[0].description.as_deref(),
            Some("Dev")
        );
    }

    #[test]
    fn validation_errors_name_the_field() {
        let cases = [
            (json!({}), "permissions"),
            (json!([{"resources":[]}]), "permissions.roleId"),
            (
                json!([{"roleId":"nope","resources":[{"id":"wkspAcme01","type":"WORKSPACE"}]}]),
                "permissions.roleId",
            ),
            (json!([{"roleId":"roleWsOwner"}]), "permissions.resources"),
            (
                json!([{"roleId":"roleWsOwner","resources":[]}]),
                "permissions.resources",
            ),
            (
                json!([{"roleId":"roleWsOwner","resources":[{"id":"x","type":"DESTINATION"}]}]),
                "permissions.resources.type",
            ),
            (
                json!([{"roleId":"roleSrcAdmin","resources":[{"id":"srcNope","type":"SOURCE"}]}]),
                "permissions.resources.id",
            ),
            (
                json!([{"roleId":"roleWsOwner","resources":[{"id":"otherWs","type":"WORKSPACE"}]}]),
                "permissions.resources.id",
            ),
            (
                json!([{"roleId":"roleFnAdmin","resources":[{"id":"sfnc_none","type":"FUNCTION"}]}]),
                "permissions.resources.id",
            ),
            (
                json!([{"roleId":"roleEngAdmin","resources":[{"id":"spcNope","type":"SPACE"}]}]),
                "permissions.resources.id",
            ),
            (
                json!([{"roleId":"roleWhAdmin","resources":[{"id":"whNope","type":"WAREHOUSE"}]}]),
                "permissions.resources.id",
            ),
            (
                json!([{"roleId":"roleSrcAdmin","resources":[{"id":"srcWeb","type":"SOURCE","labels":[{"key":"a","value":"b"}]}]}]),
                "permissions.resources.labels",
            ),
            (
                json!([{"roleId":"roleSrcAdmin","resources":[{"id":"wkspAcme01","type":"WORKSPACE","labels":[{"value":"b"}]}]}]),
                "permissions.resources.labels.key",
            ),
        ];
        for (body, field) in cases {
            let e = parse(body.clone()).unwrap_err();
            assert_eq!(e.status, 422, "{body}");
            assert_eq!(e.field.as_deref(), Some(field), "{body}");
        }
    }

    #[test]
    fn invite_shape() {
        let v = json!([{"roleId":"roleSrcAdmin","labels":[{"key":"environment","value":"prod"}]},{"roleId":"roleWsMember","resources":[{"id":"wkspAcme01","type":"WORKSPACE"}]}]);
        let p =
            parse_permissions(&ws(), Some(&v), "invites.permissions", InputShape::Invite).unwrap();
        assert!(p[0].resources.is_empty());
        assert_eq!(p[0].labels[0].key, "environment");
        assert!(
            parse_permissions(&ws(), None, "invites.permissions", InputShape::Invite)
                .unwrap()
                .is_empty()
        );
        let e = parse_permissions(
            &ws(),
            Some(&json!([{"roleId":"x"}])),
            "invites.permissions",
            InputShape::Invite,
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("invites.permissions.roleId"));
    }

    #[test]
    fn add_merges_and_replace_replaces() {
        let w = ws();
        let mut set = w.user("usrBob").unwrap().permissions.clone();
        let input = parse(json!([
            {"roleId":"roleSrcAdmin","resources":[{"id":"srcWeb","type":"SOURCE"},{"id":"srcServer","type":"SOURCE"}]},
            {"roleId":"roleWsMember","resources":[{"id":"wkspAcme01","type":"WORKSPACE"}]}
        ]))
        .unwrap();
        add(&mut set, input);
        assert_eq!(set.len(), 3);
        let ids: Vec<_> = set[0].resources.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["srcWeb", "srcIos", "srcServer"]);
        assert_eq!(set[2].role_id, "roleWsMember");

        let mut erin = w.user("usrErin").unwrap().permissions.clone();
        add(
            &mut erin,
            parse(
                json!([{"roleId":"roleFnRead","resources":[{"id":"sfnc_geo","type":"FUNCTION"}]}]),
            )
            .unwrap(),
        );
        assert_eq!(
            erin[0].resources[0].labels.len(),
            1,
            "labels of other permissions survive an add"
        );

        replace(
            &mut set,
            parse(
                json!([{"roleId":"roleFnRead","resources":[{"id":"sfnc_geo","type":"FUNCTION"}]}]),
            )
            .unwrap(),
        );
        assert_eq!(set.len(), 1);
        assert_eq!(set[0].role_name, "Function Read-only");
    }

    #[test]
    fn access_permission_shape() {
        let w = ws();
        let v = access_permissions(&w.user("usrAlice").unwrap().permissions, "usrAlice", "user");
        let p = &v[0];
        assert_eq!(p["roleId"], "roleWsOwner");
        assert_eq!(p["roleName"], "Workspace Owner");
        assert_eq!(p["subjectId"], "usrAlice");
        assert_eq!(p["subjectType"], "user");
        assert_eq!(p["policyId"].as_str().unwrap().len(), 27);
        assert_eq!(
            p["resources"],
            json!([{"id":"wkspAcme01","type":"WORKSPACE","labels":[]}])
        );
    }
}
