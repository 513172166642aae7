//! Resource types and `list-resources`: the workspace is the root; every other type is listed
//! once, as its child. Listing users and groups also records their permissions in the session,
//! so that entitlements and grants later need no further requests.

use crate::bindings::*;
use crate::catalog::HeldRoles;
use crate::connector::{Connector, keys};
use crate::env::HttpRequest;
use crate::env::{Env, LogLevel};
use crate::errors::{is_missing_feature, missing_feature_warning, to_connector_error};
use crate::ids::*;
use crate::page_token::{PageToken, Stage};
use crate::segment::api::{ApiError, Page, decode, encode, page_of};
use crate::segment::model::*;
use crate::walk::{PageRecord, page_key};
use std::collections::HashMap;
use std::ops::ControlFlow;

/// `resourceType` values of `GET /functions`, newest last; a workspace whose API version lacks
/// one answers 422 for it, and it is skipped.
pub const FUNCTION_TYPES: [&str; 5] = [
    "SOURCE",
    "DESTINATION",
    "INSERT_DESTINATION",
    "INSERT_SOURCE",
    "INSERT_TRANSFORMATION",
];

// One type a line.
#[rustfmt::skip]
pub fn resource_types() -> Vec<ResourceType> {
    let t = |id: &str, name: &str, description: &str, traits: &[TraitKind], hints: SyncHints| {
        ResourceType {
            id: id.into(),
            display_name: name.into(),
            description: description.into(),
            traits: traits.to_vec(),
            hints,
        }
    };
    let none = SyncHints::empty();
    let (no_entitlements, no_grants) = (SyncHints::SKIP_ENTITLEMENTS, SyncHints::SKIP_GRANTS);
    // The resources roles are held on: apps, whose grants are listed from users and groups.
    let app = |id, name, description| t(id, name, description, &[TraitKind::App], no_grants);
    vec![
        t(WORKSPACE, "Workspace", "A Segment workspace", &[], none),
        t(USER, "User", "A Segment workspace user", &[TraitKind::User], no_entitlements),
        t(GROUP, "Group", "A Segment user group", &[TraitKind::Group], none),
        // Role assignments are listed from users and groups, never from the role.
        t(ROLE, "Role", "A Segment IAM role", &[TraitKind::Role], no_grants),
        t(INVITE, "Invite", "A pending workspace invitation", &[TraitKind::User],
            no_entitlements | no_grants | SyncHints::SKIP_SYNC_ANOMALY_DETECTION),
        app(SOURCE, "Source", "A Segment data source"),
        app(WAREHOUSE, "Warehouse", "A Segment data warehouse"),
        app(FUNCTION, "Function", "A Segment function"),
        app(SPACE, "Space", "A Segment space (Unify and Engage)"),
    ]
}

const CHILD_TYPES: [&str; 8] = [
    USER, GROUP, ROLE, INVITE, SOURCE, WAREHOUSE, FUNCTION, SPACE,
];

pub(crate) fn text(key: &str, value: &str) -> ProfileField {
    ProfileField {
        key: key.into(),
        value: ProfileValue::Text(value.into()),
    }
}

fn boolean(key: &str, value: bool) -> ProfileField {
    ProfileField {
        key: key.into(),
        value: ProfileValue::Boolean(value),
    }
}

fn number(key: &str, value: f64) -> ProfileField {
    ProfileField {
        key: key.into(),
        value: ProfileValue::Number(value),
    }
}

pub(crate) fn rid(resource_type: &str, id: &str) -> ResourceId {
    ResourceId {
        resource_type: resource_type.into(),
        resource: id.into(),
    }
}

fn resource(id: ResourceId, parent: &ResourceId, display_name: String) -> Resource {
    Resource {
        id,
        parent: Some(parent.clone()),
        display_name,
        description: String::new(),
        traits: vec![],
        profile: vec![],
        status: ResourceStatus::Enabled,
        child_resource_types: vec![],
        hints: SyncHints::empty(),
    }
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn enabled(on: bool) -> ResourceStatus {
    if on {
        ResourceStatus::Enabled
    } else {
        ResourceStatus::Disabled
    }
}

pub fn workspace_resource(ws: &Workspace) -> Resource {
    Resource {
        id: rid(WORKSPACE, &ws.id),
        parent: None,
        display_name: non_empty(&ws.name).unwrap_or(&ws.id).into(),
        description: String::new(),
        traits: vec![],
        profile: vec![
            text("id", &ws.id),
            text("name", &ws.name),
            text("slug", &ws.slug),
        ],
        status: ResourceStatus::Enabled,
        child_resource_types: CHILD_TYPES.iter().map(|s| s.to_string()).collect(),
        hints: SyncHints::empty(),
    }
}

pub fn user_resource(u: &User, ws: &ResourceId) -> Resource {
    let profile = vec![
        text("id", &u.id),
        text("name", &u.name),
        text("email", &u.email),
    ];
    let mut r = resource(
        rid(USER, &u.id),
        ws,
        non_empty(&u.name).unwrap_or(&u.email).into(),
    );
    r.traits = vec![ResourceTrait::User(UserTrait {
        emails: non_empty(&u.email)
            .map(|e| Email {
                address: e.into(),
                is_primary: true,
            })
            .into_iter()
            .collect(),
        login: u.email.clone(),
        login_aliases: vec![],
        account_type: AccountType::Human,
        // Segment has no inactive users: removing someone deletes the user.
        status: ResourceStatus::Enabled,
        profile: profile.clone(),
    })];
    r.profile = profile;
    r
}

pub fn invite_resource(email: &str, ws: Option<&ResourceId>) -> Resource {
    let profile = vec![text("email", email)];
    Resource {
        id: rid(INVITE, email),
        parent: ws.cloned(),
        display_name: format!("(Invitation) {email}"),
        description: "Invited to the workspace; disabled until the invitation is accepted".into(),
        traits: vec![ResourceTrait::User(UserTrait {
            emails: vec![Email {
                address: email.into(),
                is_primary: true,
            }],
            login: email.into(),
            login_aliases: vec![],
            account_type: AccountType::Human,
            status: ResourceStatus::Disabled,
            profile: profile.clone(),
        })],
        profile,
        status: ResourceStatus::Disabled,
        child_resource_types: vec![],
        hints: SyncHints::empty(),
    }
}

pub(crate) fn group_resource(g: &Group, ws: &ResourceId) -> Resource {
    let members = g.member_count.unwrap_or(0.0).max(0.0);
    let profile = vec![
        text("id", &g.id),
        text("name", &g.name),
        number("member_count", members),
    ];
    let mut r = resource(
        rid(GROUP, &g.id),
        ws,
        non_empty(&g.name).unwrap_or(&g.id).into(),
    );
    r.traits = vec![ResourceTrait::Group(GroupTrait {
        profile: profile.clone(),
    })];
    r.profile = profile;
    r
}

fn role_resource(role: &Role, ws: &ResourceId) -> Resource {
    let profile = vec![text("id", &role.id), text("name", &role.name)];
    let mut r = resource(
        rid(ROLE, &role.id),
        ws,
        non_empty(&role.name).unwrap_or(&role.id).into(),
    );
    r.description = role.description.clone();
    r.traits = vec![ResourceTrait::Role(RoleTrait {
        profile: profile.clone(),
    })];
    r.profile = profile;
    r
}

fn app(
    id: ResourceId,
    ws: &ResourceId,
    display_name: &str,
    status: ResourceStatus,
    profile: Vec<ProfileField>,
) -> Resource {
    let mut r = resource(id, ws, display_name.into());
    r.status = status;
    r.traits = vec![ResourceTrait::App(AppTrait {
        help_url: String::new(),
        profile: profile.clone(),
    })];
    r.profile = profile;
    r
}

fn source_resource(s: &Source, ws: &ResourceId) -> Resource {
    let name = non_empty(&s.name).or(non_empty(&s.slug)).unwrap_or(&s.id);
    let profile = vec![
        text("id", &s.id),
        text("slug", &s.slug),
        text("name", &s.name),
        text("workspace_id", &s.workspace_id),
        boolean("enabled", s.enabled),
    ];
    app(rid(SOURCE, &s.id), ws, name, enabled(s.enabled), profile)
}

fn warehouse_resource(w: &Warehouse, ws: &ResourceId) -> Resource {
    let meta = w.metadata.clone().unwrap_or_default();
    let mut profile = vec![
        text("id", &w.id),
        text("workspace_id", &w.workspace_id),
        boolean("enabled", w.enabled),
    ];
    for (k, v) in [
        ("slug", &meta.slug),
        ("name", &meta.name),
        ("description", &meta.description),
    ] {
        if !v.is_empty() {
            profile.push(text(k, v));
        }
    }
    app(
        rid(WAREHOUSE, &w.id),
        ws,
        non_empty(&meta.name).unwrap_or(&w.id),
        enabled(w.enabled),
        profile,
    )
}

fn function_resource(f: &Function, id: &str, ws: &ResourceId) -> Resource {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let profile = vec![
        text("id", id),
        text("workspace_id", &s(&f.workspace_id)),
        text("display_name", &s(&f.display_name)),
        text("description", &s(&f.description)),
        text("resource_type", &s(&f.resource_type)),
    ];
    let name = f.display_name.as_deref().and_then(non_empty).unwrap_or(id);
    let mut r = app(
        rid(FUNCTION, id),
        ws,
        name,
        ResourceStatus::Enabled,
        profile,
    );
    r.description = s(&f.description);
    r
}

fn space_resource(s: &Space, ws: &ResourceId) -> Resource {
    let profile = vec![
        text("id", &s.id),
        text("name", &s.name),
        text("slug", &s.slug),
    ];
    let name = non_empty(&s.name).or(non_empty(&s.slug)).unwrap_or(&s.id);
    app(
        rid(SPACE, &s.id),
        ws,
        name,
        ResourceStatus::Enabled,
        profile,
    )
}

fn page(items: Vec<Resource>, next: Option<String>, warnings: Vec<String>) -> ResourcePage {
    ResourcePage {
        items,
        next_page_token: next.unwrap_or_default(),
        warnings,
    }
}

fn cursor(token: &str) -> Option<&str> {
    non_empty(token)
}

pub(crate) fn path_segment(id: &str) -> String {
    encode(id)
}

/// Users' permissions fetched ahead of their page: (user id, permissions).
type Fetched = Vec<(String, Vec<Permission>)>;

/// A page of `GET /users` fetched ahead, as the session keeps it, with the permissions
/// fetched ahead for some of its users (each also recorded under its user).
#[derive(serde::Serialize, serde::Deserialize)]
struct PrefetchedUsers {
    users: Vec<User>,
    next: Option<String>,
    #[serde(default)]
    fetched: Fetched,
}

/// A page of users with their permissions filled in.
pub(crate) struct UsersLoad {
    pub users: Vec<User>,
    pub next: Option<String>,
    pub warnings: Vec<String>,
}

impl<E: Env> Connector<'_, E> {
    pub fn list_resources(
        &self,
        resource_type: &str,
        parent: Option<&ResourceId>,
        token: &str,
    ) -> Result<ResourcePage, ConnectorError> {
        if resource_type == WORKSPACE {
            if parent.is_some() {
                return Ok(page(vec![], None, vec![]));
            }
            return Ok(page(
                vec![workspace_resource(&self.workspace()?)],
                None,
                vec![],
            ));
        }
        if !CHILD_TYPES.contains(&resource_type) {
            return Err(ConnectorError::InvalidArgument(format!(
                "unknown resource type {resource_type:?}"
            )));
        }
        // Every other type is a child of the workspace: listed once, under it, and never at
        // the top level (which would fetch everything twice).
        let Some(ws) = parent.filter(|p| p.resource_type == WORKSPACE) else {
            return Ok(page(vec![], None, vec![]));
        };
        let err = |e: ApiError| to_connector_error(&e);
        match resource_type {
            USER => {
                let load = self.load_users_page(cursor(token))?;
                let items = load.users.iter().map(|u| user_resource(u, ws)).collect();
                Ok(page(items, load.next, load.warnings))
            }
            GROUP => self.list_groups(ws, token),
            ROLE => {
                let catalog = self.role_catalog()?;
                Ok(page(
                    catalog
                        .roles()
                        .iter()
                        .map(|r| role_resource(r, ws))
                        .collect(),
                    None,
                    vec![],
                ))
            }
            INVITE => self
                .list::<InvitesPage>("/invites", token, |e| invite_resource(e, Some(ws)))
                .map_err(err),
            SOURCE => self
                .list::<SourcesPage>("/sources", token, |s| source_resource(s, ws))
                .map_err(err),
            WAREHOUSE => self.optional_list::<WarehousesPage>(
                "/warehouses",
                token,
                ("Warehouses", "warehouses and the roles scoped to them"),
                |w| warehouse_resource(w, ws),
            ),
            SPACE => self.optional_list::<SpacesPage>(
                "/spaces",
                token,
                ("Spaces", "spaces and the roles scoped to them"),
                |s| space_resource(s, ws),
            ),
            FUNCTION => self.list_functions(ws, token),
            _ => unreachable!("checked against CHILD_TYPES above"),
        }
    }

    /// One page of a collection of the workspace (`token` is Segment's cursor).
    fn list<P>(
        &self,
        path: &str,
        token: &str,
        map: impl Fn(&P::Item) -> Resource,
    ) -> Result<ResourcePage, ApiError>
    where
        P: ListPage + serde::de::DeserializeOwned,
    {
        let p = self.api.page::<P>(path, "", cursor(token))?;
        Ok(page(p.items.iter().map(map).collect(), p.next, vec![]))
    }

    /// A collection the workspace's plan may lack: on the first page, such an answer is a
    /// warning and an empty list, not a failure.
    fn optional_list<P>(
        &self,
        path: &str,
        token: &str,
        (feature, missing): (&str, &str),
        map: impl Fn(&P::Item) -> Resource,
    ) -> Result<ResourcePage, ConnectorError>
    where
        P: ListPage + serde::de::DeserializeOwned,
    {
        match self.list::<P>(path, token, map) {
            Ok(page) => Ok(page),
            Err(e) if token.is_empty() && is_missing_feature(&e) => Ok(page(
                vec![],
                None,
                vec![missing_feature_warning(feature, missing, &e)],
            )),
            Err(e) => Err(to_connector_error(&e)),
        }
    }

    /// Functions are listed per `resourceType`, one [`PageToken`] stage each.
    fn list_functions(&self, ws: &ResourceId, token: &str) -> Result<ResourcePage, ConnectorError> {
        let at = PageToken::<FunctionType>::parse(token)?;
        let FunctionType(index) = at.stage;
        let cursor = at.cursor.as_deref();
        let kind = FUNCTION_TYPES[index];
        let next_type = || {
            (index + 1 < FUNCTION_TYPES.len())
                .then(|| PageToken::start(FunctionType(index + 1)).to_string())
        };
        let query = format!("resourceType={kind}");
        match self.api.page::<FunctionsPage>("/functions", &query, cursor) {
            Ok(p) => {
                let items = p
                    .items
                    .iter()
                    .filter_map(|f| {
                        Some(function_resource(
                            f,
                            f.id.as_deref().and_then(non_empty)?,
                            ws,
                        ))
                    })
                    .collect();
                let next = p
                    .next
                    .map(|c| PageToken::at(FunctionType(index), c).to_string())
                    .or_else(next_type);
                Ok(page(items, next, vec![]))
            }
            Err(e) if index == 0 && cursor.is_none() && is_missing_feature(&e) => Ok(page(
                vec![],
                None,
                vec![missing_feature_warning(
                    "Functions",
                    "functions and the roles scoped to them",
                    &e,
                )],
            )),
            // Only the first page: a 422 later answers the cursor, not the type.
            Err(e) if cursor.is_none() && e.status() == Some(422) => {
                let warning = format!(
                    "Functions of resourceType {kind} were skipped: this workspace's API version does not \
                     accept that type ({e})"
                );
                Ok(page(vec![], next_type(), vec![warning]))
            }
            Err(e) => Err(to_connector_error(&e)),
        }
    }

    fn list_groups(&self, ws: &ResourceId, token: &str) -> Result<ResourcePage, ConnectorError> {
        match self.load_groups_page(cursor(token)) {
            Ok(p) => Ok(page(
                p.items.iter().map(|g| group_resource(g, ws)).collect(),
                p.next,
                vec![],
            )),
            Err(GroupsError::Missing(warning)) => Ok(page(vec![], None, vec![warning])),
            Err(GroupsError::Failed(e)) => Err(e),
        }
    }

    /// One page of `GET /users`, each user with permissions (from the list when it carries them,
    /// otherwise from `GET /users/{id}`, several in flight), recorded in the session.
    pub(crate) fn load_users_page(
        &self,
        cursor: Option<&str>,
    ) -> Result<UsersLoad, ConnectorError> {
        let key = |id: &str| format!("{}{id}", keys::USER_PERMISSIONS);
        let user_request = |id: &str| HttpRequest::get(format!("/users/{}", path_segment(id)));
        let (p, fetched) = match self.prefetched_users(cursor) {
            Some(ahead) => ahead,
            None => {
                let p = self
                    .api
                    .page::<UsersPage>("/users", "", cursor)
                    .map_err(|e| to_connector_error(&e))?;
                (p, None)
            }
        };
        let mut users = p.items;
        let mut warnings = vec![];
        for u in users.iter().filter(|u| u.permissions.is_some()) {
            self.record(&key(&u.id), &u.permissions)?;
        }
        match fetched {
            // Fetched (and recorded) by the call that fetched the page ahead.
            Some(fetched) => {
                let mut fetched: HashMap<String, Vec<Permission>> = fetched.into_iter().collect();
                for u in users.iter_mut().filter(|u| u.permissions.is_none()) {
                    u.permissions = fetched.remove(&u.id);
                }
            }
            // Permissions this sync already fetched (before an interruption, say) are not
            // fetched again.
            None => {
                for u in users.iter_mut().filter(|u| u.permissions.is_none()) {
                    u.permissions = self.cache_get::<Vec<Permission>>(&key(&u.id));
                }
            }
        }
        let missing: Vec<usize> = (0..users.len())
            .filter(|&i| users[i].permissions.is_none())
            .collect();
        // The next page goes out with this page's permission requests, so the next call finds
        // it here instead of waiting for it alone (one round trip per page, at any
        // concurrency); its users' permission requests are spares that fill the slots this
        // page's last round leaves free. Only when there are permissions to fetch: otherwise
        // nothing would overlap it.
        let prefetch = p.next.as_deref().filter(|_| !missing.is_empty());
        let mut requests: Vec<HttpRequest> = prefetch
            .map(|next| HttpRequest::get(self.api.page_url("/users", "", Some(next))))
            .into_iter()
            .collect();
        let first_user = requests.len();
        requests.extend(missing.iter().map(|&i| user_request(&users[i].id)));
        let first_spare = requests.len();
        // The next page, and the users of it whose permissions were asked for as spares.
        let mut ahead: Option<(Page<User>, Fetched)> = None;
        let mut spare_users: Vec<String> = vec![];
        // Each recorded as it arrives (an interrupted sync loses none of them), with the
        // window of requests in flight kept full to the end of the page.
        let mut gone = vec![];
        let mut failed = None;
        self.env
            .send_with_spares(&requests, &mut |k, response, spares| {
                if k >= first_spare {
                    // Best effort: a spare that failed is asked again with its page.
                    let id = &spare_users[k - first_spare];
                    if let (Ok(d), Some((_, fetched))) = (
                        decode::<UserData>(&user_request(id), response),
                        ahead.as_mut(),
                    ) {
                        let permissions = d.user.permissions.unwrap_or_default();
                        if self.record(&key(id), &permissions).is_ok() {
                            fetched.push((id.clone(), permissions));
                        }
                    }
                    return ControlFlow::Continue(());
                }
                let Some(k) = k.checked_sub(first_user) else {
                    if let Some(Ok(page)) = prefetch
                        .map(|next| page_of::<UsersPage>(&requests[0], response, Some(next)))
                    {
                        for u in page.items.iter().filter(|u| u.permissions.is_none()) {
                            spares.push(user_request(&u.id));
                            spare_users.push(u.id.clone());
                        }
                        ahead = Some((page, vec![]));
                    }
                    return ControlFlow::Continue(());
                };
                let i = missing[k];
                let outcome = match decode::<UserData>(&requests[first_user + k], response) {
                    Ok(d) => {
                        let permissions = d.user.permissions.unwrap_or_default();
                        let recorded = self.record(&key(&users[i].id), &permissions);
                        users[i].permissions = Some(permissions);
                        recorded
                    }
                    Err(e) if e.is_not_found() => {
                        gone.push((i, e.to_string()));
                        Ok(())
                    }
                    Err(e) => Err(to_connector_error(&e)),
                };
                match outcome {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => {
                        failed = Some(e);
                        ControlFlow::Break(())
                    }
                }
            });
        // Kept even when this page failed: its retry finds the next page here.
        if let (Some(next), Some((page, fetched))) = (prefetch, ahead) {
            self.keep_prefetched_users(next, page, fetched);
        }
        if let Some(e) = failed {
            return Err(e);
        }
        // Answers come in any order; warnings and removals go in page order.
        gone.sort();
        for (i, e) in gone.iter() {
            warnings.push(format!(
                "user {} left the workspace during the sync ({e}); skipped",
                users[*i].id
            ));
        }
        for (i, _) in gone.into_iter().rev() {
            users.remove(i);
        }
        let record = PageRecord {
            ids: users.iter().map(|u| u.id.clone()).collect(),
            next: p.next.clone(),
            missing: None,
            held: Some(HeldRoles::of(
                users.iter().filter_map(|u| u.permissions.as_deref()),
            )),
        };
        self.record(&page_key("users", cursor), &record)?;
        Ok(UsersLoad {
            users,
            next: p.next,
            warnings,
        })
    }

    /// A page of `GET /users` an earlier call fetched ahead (see `load_users_page`), with the
    /// permissions it fetched ahead, taken out of the session.
    fn prefetched_users(&self, cursor: Option<&str>) -> Option<(Page<User>, Option<Fetched>)> {
        let key = format!("{}{}", keys::PREFETCHED_USERS, cursor?);
        let page: PrefetchedUsers = self.cache_get(&key)?;
        // Best effort: an empty value is no page, and frees the space.
        let _ = self.env.session_set(&key, b"");
        Some((
            Page {
                items: page.users,
                next: page.next,
            },
            Some(page.fetched),
        ))
    }

    /// Keeps a page fetched ahead for the call that reads `cursor`, with the permissions
    /// fetched ahead for its users.
    fn keep_prefetched_users(&self, cursor: &str, page: Page<User>, fetched: Fetched) {
        let key = format!("{}{cursor}", keys::PREFETCHED_USERS);
        self.cache_put(
            &key,
            &PrefetchedUsers {
                users: page.items,
                next: page.next,
                fetched,
            },
        );
    }

    /// One page of `GET /groups` (whose items carry their permissions), recorded in the session.
    pub(crate) fn load_groups_page(
        &self,
        cursor: Option<&str>,
    ) -> Result<Page<Group>, GroupsError> {
        let mut p = match self.api.page::<GroupsPage>("/groups", "", cursor) {
            Ok(p) => p,
            Err(e) if cursor.is_none() && is_missing_feature(&e) => {
                let warning = missing_feature_warning(
                    "User groups",
                    "groups, their members and their role assignments",
                    &e,
                );
                let record = PageRecord {
                    missing: Some(warning.clone()),
                    held: Some(HeldRoles::default()),
                    ..PageRecord::default()
                };
                self.record(&page_key("groups", cursor), &record)
                    .map_err(GroupsError::Failed)?;
                return Err(GroupsError::Missing(warning));
            }
            Err(e) => return Err(GroupsError::Failed(to_connector_error(&e))),
        };
        for g in p.items.iter_mut().filter(|g| g.permissions.is_none()) {
            let path = format!("/groups/{}", path_segment(&g.id));
            match self.api.get::<GroupData>(&path) {
                Ok(d) => g.permissions = Some(d.user_group.permissions.unwrap_or_default()),
                Err(e) if e.is_not_found() => g.permissions = Some(vec![]),
                Err(e) => return Err(GroupsError::Failed(to_connector_error(&e))),
            }
        }
        for g in &p.items {
            self.record(
                &format!("{}{}", keys::GROUP_PERMISSIONS, g.id),
                &g.permissions.clone().unwrap_or_default(),
            )
            .map_err(GroupsError::Failed)?;
        }
        let record = PageRecord {
            ids: p.items.iter().map(|g| g.id.clone()).collect(),
            next: p.next.clone(),
            missing: None,
            held: Some(HeldRoles::of(
                p.items.iter().filter_map(|g| g.permissions.as_deref()),
            )),
        };
        self.record(&page_key("groups", cursor), &record)
            .map_err(GroupsError::Failed)?;
        Ok(p)
    }

    pub(crate) fn warn(&self, message: &str) {
        self.log(LogLevel::Warn, message);
    }
}

pub(crate) enum GroupsError {
    /// The workspace has no user groups (plan or token); the warning says so.
    Missing(String),
    Failed(ConnectorError),
}

/// A stage of the functions listing: an index into [`FUNCTION_TYPES`], written as the number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FunctionType(pub usize);

impl Stage for FunctionType {
    const FIRST: Self = FunctionType(0);

    fn name(&self) -> String {
        self.0.to_string()
    }

    fn from_name(name: &str) -> Option<Self> {
        let index = name.parse::<usize>().ok()?;
        (index < FUNCTION_TYPES.len()).then_some(FunctionType(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeEnv;

    #[test]
    fn child_types_are_listed_only_under_the_workspace() {
        let env = FakeEnv::new();
        let c = Connector::new(&env, &Default::default());
        for t in CHILD_TYPES {
            let page = c.list_resources(t, None, "").unwrap();
            assert!(
                page.items.is_empty() && page.next_page_token.is_empty(),
                "{t}"
            );
        }
        assert!(
            env.requests().is_empty(),
            "listing child types at the top level costs nothing"
        );
        assert!(
            c.list_resources("bogus", Some(&rid(WORKSPACE, "w")), "")
                .is_err()
        );
    }

    #[test]
    fn functions_walk_every_type_and_skip_those_the_api_rejects() {
        let env = FakeEnv::new();
        let ws = rid(WORKSPACE, "w");
        let q = |t: &str| format!("GET /functions?pagination%5Bcount%5D=200&resourceType={t}");
        env.route(&q("SOURCE"), 200, r#"{"data":{"functions":[{"id":"f1","displayName":"One"}],"pagination":{"current":"MA=="}}}"#);
        env.route(&q("DESTINATION"), 422, r#"{"errors":[{"type":"input-validation","message":"invalid resourceType","field":"resourceType"}]}"#);
        let c = Connector::new(&env, &Default::default());
        let first = c.list_resources(FUNCTION, Some(&ws), "").unwrap();
        assert_eq!(first.items.len(), 1);
        assert_eq!(first.next_page_token, "1|");
        let second = c
            .list_resources(FUNCTION, Some(&ws), &first.next_page_token)
            .unwrap();
        assert!(second.items.is_empty());
        assert!(
            second.warnings[0].contains("resourceType DESTINATION were skipped"),
            "{:?}",
            second.warnings
        );
        assert_eq!(second.next_page_token, "2|");
        assert!(
            c.list_resources(FUNCTION, Some(&ws), "9|").is_err(),
            "a token this connector never issued"
        );
    }

    #[test]
    fn the_next_users_page_is_fetched_with_the_permissions_of_this_one() {
        let env = FakeEnv::new();
        let page = "GET /users?pagination%5Bcount%5D=200";
        env.route(page, 200, r#"{"data":{"users":[{"id":"u1","name":"A","email":"a@x.io"}],"pagination":{"current":"MA==","next":"MQ=="}}}"#);
        env.route(&format!("{page}&pagination%5Bcursor%5D=MQ%3D%3D"), 200, r#"{"data":{"users":[{"id":"u2","name":"B","email":"b@x.io"}],"pagination":{"current":"MQ=="}}}"#);
        for u in ["u1", "u2"] {
            env.route(&format!("GET /users/{u}"), 200, &format!(r#"{{"data":{{"user":{{"id":"{u}","name":"N","email":"{u}@x.io","permissions":[{{"roleId":"r1","roleName":"Workspace Owner","resources":[{{"id":"w","type":"WORKSPACE","labels":[]}}]}}]}}}}}}"#));
        }
        let ws = rid(WORKSPACE, "w");
        let c = Connector::new(&env, &Default::default());
        let first = c.list_resources(USER, Some(&ws), "").unwrap();
        assert_eq!(first.items.len(), 1);
        let second = c
            .list_resources(USER, Some(&ws), &first.next_page_token)
            .unwrap();
        assert_eq!(second.items[0].id.resource, "u2");
        assert!(second.next_page_token.is_empty());
        assert_eq!(
            env.request_lines(),
            [
                page.to_string(),
                format!("{page}&pagination%5Bcursor%5D=MQ%3D%3D"),
                "GET /users/u1".to_string(),
                "GET /users/u2".to_string(),
            ],
            "each page requested once, the second with the first's permissions"
        );
        assert!(
            c.cache_get::<Vec<u8>>(&format!("{}MQ==", keys::PREFETCHED_USERS))
                .is_none(),
            "a page fetched ahead is dropped once used"
        );
    }

    #[test]
    fn permissions_fetched_as_spares_serve_the_next_page_without_asking_again() {
        let env = FakeEnv::new();
        env.sends_spares.set(true);
        let page = "GET /users?pagination%5Bcount%5D=200";
        let user = |u: &str| format!(r#"{{"id":"{u}","name":"N","email":"{u}@x.io"}}"#);
        env.route(
            page,
            200,
            &format!(
                r#"{{"data":{{"users":[{},{}],"pagination":{{"current":"MA==","next":"MQ=="}}}}}}"#,
                user("u1"),
                user("u2")
            ),
        );
        env.route(
            &format!("{page}&pagination%5Bcursor%5D=MQ%3D%3D"),
            200,
            &format!(
                r#"{{"data":{{"users":[{},{}],"pagination":{{"current":"MQ=="}}}}}}"#,
                user("u3"),
                user("u4")
            ),
        );
        for u in ["u1", "u2", "u3", "u4"] {
            env.route(&format!("GET /users/{u}"), 200, &format!(r#"{{"data":{{"user":{{"id":"{u}","name":"N","email":"{u}@x.io","permissions":[{{"roleId":"r-{u}","roleName":"Source Admin","resources":[{{"id":"s1","type":"SOURCE","labels":[]}}]}}]}}}}}}"#));
        }
        let ws = rid(WORKSPACE, "w");
        let c = Connector::new(&env, &Default::default());
        let first = c.list_resources(USER, Some(&ws), "").unwrap();
        let asked = env.request_lines().len();
        let second = c
            .list_resources(USER, Some(&ws), &first.next_page_token)
            .unwrap();
        let ids = |p: &ResourcePage| -> Vec<String> {
            p.items.iter().map(|r| r.id.resource.clone()).collect()
        };
        assert_eq!(
            (ids(&first), ids(&second)),
            (
                vec!["u1".into(), "u2".into()],
                vec!["u3".into(), "u4".into()]
            )
        );
        let lines = env.request_lines();
        // The first page's two users leave one slot for a spare: u3's permissions.
        assert!(lines.contains(&"GET /users/u3".to_string()), "{lines:?}");
        assert!(
            lines[..asked].contains(&"GET /users/u3".to_string()),
            "asked with page one: {lines:?}"
        );
        for u in ["u1", "u2", "u3", "u4"] {
            let n = lines
                .iter()
                .filter(|l| **l == format!("GET /users/{u}"))
                .count();
            assert_eq!(n, 1, "{u} asked once: {lines:?}");
        }
        // What a spare fetched is recorded for the grants and for the roles the workspace holds.
        assert_eq!(c.user_permissions("u3").unwrap()[0].role_id, "r-u3");
        let held = c.held_roles().unwrap();
        let after = env.request_lines();
        assert!(
            !after[lines.len()..].iter().any(|l| l.contains("/users")),
            "held roles come from the page records: {after:?}"
        );
        let all = HeldRoles::of(
            [
                c.user_permissions("u1").unwrap(),
                c.user_permissions("u2").unwrap(),
                c.user_permissions("u3").unwrap(),
                c.user_permissions("u4").unwrap(),
            ]
            .iter()
            .map(|p| p.as_slice()),
        );
        assert_eq!(held, all);
    }

    #[test]
    fn a_full_session_store_fails_the_listing_instead_of_losing_grants() {
        let env = FakeEnv::new();
        env.route(
            "GET /users?pagination%5Bcount%5D=200",
            200,
            r#"{"data":{"users":[{"id":"u1","name":"A","email":"a@x.io","permissions":[]},{"id":"u2","name":"B","email":"b@x.io","permissions":[]}],"pagination":{"current":"MA=="}}}"#,
        );
        let ws = rid(WORKSPACE, "w");
        // Room for everything: the listing records each user and that it is complete.
        let c = Connector::new(&env, &Default::default());
        assert_eq!(
            c.list_resources(USER, Some(&ws), "").unwrap().items.len(),
            2
        );

        // Room for one user only: the call fails and says what to do.
        let env = FakeEnv::new();
        env.route(
            "GET /users?pagination%5Bcount%5D=200",
            200,
            r#"{"data":{"users":[{"id":"u1","name":"A","email":"a@x.io","permissions":[]},{"id":"u2","name":"B","email":"b@x.io","permissions":[]}],"pagination":{"current":"MA=="}}}"#,
        );
        env.session_capacity.set(Some(1));
        let c = Connector::new(&env, &Default::default());
        match c.list_resources(USER, Some(&ws), "") {
            Err(ConnectorError::FailedPrecondition(m)) => {
                assert!(m.contains("session store") && m.contains("limit"), "{m}")
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}
