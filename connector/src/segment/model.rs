//! The Segment Public API's JSON shapes, as far as the connector reads or writes them.
//!
//! Optional and defaulted wherever the API documents a field as optional or has been seen to
//! omit it, so that a response with fewer fields still decodes; unknown fields are ignored.

use serde::{Deserialize, Serialize};

/// `data.pagination` of every list response.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub current: Option<String>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub slug: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub key: String,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A role of the workspace (`GET /roles`), which permissions name by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// One resource a permission applies to. `type` is WORKSPACE, SOURCE, WAREHOUSE, FUNCTION or SPACE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermissionResource {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<Label>>,
}

/// A role held on one or more resources (Segment's "policy"), as read from a user or group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    pub role_id: String,
    #[serde(default)]
    pub role_name: String,
    #[serde(default)]
    pub resources: Vec<PermissionResource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<Label>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
    /// Present on `GET /users/{id}`; optional (and usually absent) on `GET /users`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<Permission>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub member_count: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<Permission>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub id: String,
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub workspace_id: String,
    #[serde(default)]
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct WarehouseMetadata {
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Warehouse {
    pub id: String,
    #[serde(default)]
    pub workspace_id: String,
    #[serde(default)]
    pub enabled: bool,
    pub metadata: Option<WarehouseMetadata>,
}

/// Every field of a function list item is optional in the API.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Function {
    pub id: Option<String>,
    pub workspace_id: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub resource_type: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Space {
    pub id: String,
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct WorkspaceData {
    pub workspace: Workspace,
}

#[derive(Debug, Deserialize)]
pub struct UserData {
    pub user: User,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupData {
    pub user_group: Group,
}

/// A list page in a form the pagination loop can use whatever the endpoint.
pub trait ListPage {
    type Item;
    fn into_parts(self) -> (Vec<Self::Item>, Option<Pagination>);
}

/// `data` of a list endpoint: the items under a key that differs per endpoint (camelCase in
/// the JSON), and `pagination`.
macro_rules! list_page {
    ($page:ident, $item:ty, $field:ident) => {
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $page {
            pub $field: Vec<$item>,
            pub pagination: Option<Pagination>,
        }

        impl ListPage for $page {
            type Item = $item;
            fn into_parts(self) -> (Vec<$item>, Option<Pagination>) {
                (self.$field, self.pagination)
            }
        }
    };
}

list_page!(UsersPage, User, users);
list_page!(GroupsPage, Group, user_groups);
list_page!(RolesPage, Role, roles);
list_page!(InvitesPage, String, invites);
list_page!(EmailsPage, String, emails);
list_page!(SourcesPage, Source, sources);
list_page!(WarehousesPage, Warehouse, warehouses);
list_page!(FunctionsPage, Function, functions);
list_page!(SpacesPage, Space, spaces);

/// `{"errors": [...]}`: Segment's error envelope.
#[derive(Debug, Deserialize)]
pub struct ErrorEnvelope {
    #[serde(default)]
    pub errors: Vec<ApiErrorItem>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiErrorItem {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    pub message: Option<String>,
    pub field: Option<String>,
    pub data: Option<serde_json::Value>,
}
