//! The routes of the Public API subset the connector uses, and their handlers.
//! Handlers never panic on bad input: every problem becomes an error envelope.

use super::model::{EmailOwner, Group, Invite, same_email};
use super::permissions::{self, InputShape};
use super::pipeline::pipeline;
use super::query::{self, Page};
use super::render;
use super::response::{ApiError, ApiResult, created, ok};
use super::server::Shared;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};
use std::sync::Arc;

type S = State<Arc<Shared>>;

/// The full router (routes + fallback), wrapped in the request pipeline. The routes sit
/// inside an outer router so the pipeline sees their final answers (including axum's 405).
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let routes = Router::new()
        .route("/", get(get_workspace))
        .route("/users", get(list_users).delete(delete_users))
        .route("/users/{id}", get(get_user))
        .route("/users/{id}/groups", get(list_user_groups_from_user))
        .route(
            "/users/{id}/permissions",
            post(add_user_permissions).put(replace_user_permissions),
        )
        .route(
            "/invites",
            get(list_invites)
                .post(create_invites)
                .delete(delete_invites),
        )
        .route("/groups", get(list_groups).post(create_group))
        .route(
            "/groups/{id}",
            get(get_group).patch(update_group).delete(delete_group),
        )
        .route(
            "/groups/{id}/users",
            get(list_group_users).post(add_users_to_group),
        )
        .route("/groups/{id}/invites", get(list_group_invites))
        .route(
            "/groups/{id}/permissions",
            post(add_group_permissions).put(replace_group_permissions),
        )
        // Singular `group` — as in every spec and SDK version.
        .route(
            "/group/{id}/users",
            delete(remove_users_from_group).put(replace_users_in_group),
        )
        .route("/roles", get(list_roles))
        .route("/sources", get(list_sources))
        .route("/warehouses", get(list_warehouses))
        .route("/functions", get(list_functions))
        .route("/spaces", get(list_spaces))
        .route("/spaces/{id}", get(get_space))
        .fallback(not_found_route)
        .with_state(shared.clone());
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn_with_state(shared, pipeline))
}

async fn not_found_route() -> ApiError {
    ApiError::not_found("The requested route does not exist.")
}

fn page_of(q: &Option<String>) -> Result<(Vec<(String, String)>, Page), ApiError> {
    let pairs = query::pairs(q.as_deref());
    let page = query::page(&pairs)?;
    Ok((pairs, page))
}

/// A paged list answer: `{"<key>": [...], "pagination": {...}}`.
fn paged<T>(key: &str, items: &[T], page: Page, render: impl Fn(&T) -> Value) -> ApiResult {
    let (slice, meta) = query::paginate(items, page);
    let list: Vec<Value> = slice.iter().map(render).collect();
    Ok(ok(json!({ key: list, "pagination": meta })))
}

/// A JSON object request body (422 when missing, malformed or not an object).
fn json_body(body: &Bytes) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::validation("Request body is required", None));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::validation(
            "Request body must be a JSON object",
            None,
        )),
        Err(e) => Err(ApiError::validation(
            format!("Request body is not valid JSON: {e}"),
            None,
        )),
    }
}

/// A `{"emails": [...]}` list of strings; `allow_empty` for replace.
fn email_list(
    body: &serde_json::Map<String, Value>,
    allow_empty: bool,
) -> Result<Vec<String>, ApiError> {
    let err = |m: &str| ApiError::validation(m, Some("emails"));
    let Some(Value::Array(list)) = body.get("emails") else {
        return Err(err("emails is required and must be an array of strings"));
    };
    let mut out = Vec::with_capacity(list.len());
    for v in list {
        match v {
            Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_string()),
            _ => return Err(err("emails must contain non-empty strings")),
        }
    }
    if out.is_empty() && !allow_empty {
        return Err(err("emails must not be empty"));
    }
    Ok(out)
}

fn user_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("User {id} was not found in this workspace."))
}

fn group_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("User group {id} was not found in this workspace."))
}

fn email_not_found(email: &str) -> ApiError {
    ApiError::not_found(format!(
        "No user or invite with email {email} exists in this workspace."
    ))
}

// ---- workspace ---------------------------------------------------------------------------

async fn get_workspace(State(s): S) -> ApiResult {
    let st = s.state();
    Ok(ok(json!({ "workspace": render::workspace(&st.ws) })))
}

// ---- users -------------------------------------------------------------------------------

async fn list_users(State(s): S, RawQuery(q): RawQuery) -> ApiResult {
    let (_, page) = page_of(&q)?;
    let st = s.state();
    let with = st.list_users_includes_permissions;
    paged("users", &st.ws.users, page, |u| render::user(u, with))
}

async fn get_user(State(s): S, Path(id): Path<String>) -> ApiResult {
    let mut guard = s.state();
    let st = &mut *guard;
    let u = st
        .index
        .user(&st.ws, &id)
        .ok_or_else(|| user_not_found(&id))?;
    Ok(ok(json!({ "user": render::user(u, true) })))
}

async fn list_user_groups_from_user(
    State(s): S,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let (_, page) = page_of(&q)?;
    let mut guard = s.state();
    let st = &mut *guard;
    let u = st
        .index
        .user(&st.ws, &id)
        .ok_or_else(|| user_not_found(&id))?;
    let groups = st.ws.groups_of_email(&u.email);
    paged("groups", &groups, page, |g| render::group_min(g))
}

async fn delete_users(State(s): S, RawQuery(q): RawQuery) -> ApiResult {
    let ids = query::array(&query::pairs(q.as_deref()), "userIds")?;
    let mut st = s.state();
    if let Some(missing) = ids.iter().find(|id| st.ws.user(id).is_none()) {
        return Err(user_not_found(missing));
    }
    for id in &ids {
        st.ws.remove_user(id);
    }
    Ok(ok(json!({ "status": "SUCCESS" })))
}

// ---- invites -----------------------------------------------------------------------------

async fn list_invites(State(s): S, RawQuery(q): RawQuery) -> ApiResult {
    let (_, page) = page_of(&q)?;
    let st = s.state();
    paged("invites", &st.ws.invites, page, |i| json!(i.email))
}

fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !e.contains(char::is_whitespace)
}

async fn create_invites(State(s): S, body: Bytes) -> ApiResult {
    let body = json_body(&body)?;
    let mut st = s.state();
    let Some(Value::Array(items)) = body.get("invites") else {
        return Err(ApiError::validation(
            "invites is required and must be an array",
            Some("invites"),
        ));
    };
    if items.is_empty() {
        return Err(ApiError::validation(
            "invites must not be empty",
            Some("invites"),
        ));
    }
    let mut new: Vec<Invite> = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(obj) = item else {
            return Err(ApiError::validation(
                "invites items must be objects",
                Some("invites"),
            ));
        };
        let email = match obj.get("email") {
            Some(Value::String(e)) if valid_email(e.trim()) => e.trim().to_string(),
            _ => {
                return Err(ApiError::validation(
                    "invites.email must be a valid email address",
                    Some("invites.email"),
                ));
            }
        };
        let perms = permissions::parse_permissions(
            &st.ws,
            obj.get("permissions"),
            "invites.permissions",
            InputShape::Invite,
        )?;
        if !new.iter().any(|i| same_email(&i.email, &email)) {
            new.push(Invite {
                email,
                permissions: perms,
            });
        }
    }
    if new.iter().any(|i| st.ws.email_owner(&i.email).is_some()) {
        return Err(ApiError::bad_request(
            "One or more email address was already invited to join workspace.",
        ));
    }
    let emails: Vec<String> = new.iter().map(|i| i.email.clone()).collect();
    st.ws.invites.extend(new);
    Ok(created(json!({ "emails": emails })))
}

async fn delete_invites(State(s): S, RawQuery(q): RawQuery) -> ApiResult {
    let emails = query::array(&query::pairs(q.as_deref()), "emails")?;
    let mut st = s.state();
    if let Some(missing) = emails.iter().find(|e| st.ws.invite(e).is_none()) {
        return Err(ApiError::not_found(format!(
            "No pending invite for {missing}."
        )));
    }
    for e in &emails {
        st.ws.remove_invite(e);
    }
    Ok(ok(json!({ "status": "SUCCESS" })))
}

// ---- groups ------------------------------------------------------------------------------

async fn list_groups(State(s): S, RawQuery(q): RawQuery) -> ApiResult {
    let (_, page) = page_of(&q)?;
    let st = s.state();
    paged("userGroups", &st.ws.groups, page, render::group)
}

async fn get_group(State(s): S, Path(id): Path<String>) -> ApiResult {
    let st = s.state();
    let g = st.ws.group(&id).ok_or_else(|| group_not_found(&id))?;
    Ok(ok(json!({ "userGroup": render::group(g) })))
}

fn group_name(body: &serde_json::Map<String, Value>) -> Result<String, ApiError> {
    match body.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => Ok(n.trim().to_string()),
        _ => Err(ApiError::validation(
            "name is required and must be a non-empty string",
            Some("name"),
        )),
    }
}

async fn create_group(State(s): S, body: Bytes) -> ApiResult {
    let body = json_body(&body)?;
    let name = group_name(&body)?;
    let mut st = s.state();
    let id = st.new_id();
    let g = Group {
        id,
        name,
        member_emails: vec![],
        invite_emails: vec![],
        permissions: vec![],
    };
    let out = render::group(&g);
    st.ws.groups.push(g);
    Ok(ok(json!({ "userGroup": out })))
}

async fn update_group(State(s): S, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let body = json_body(&body)?;
    let mut st = s.state();
    let g = st.ws.group_mut(&id).ok_or_else(|| group_not_found(&id))?;
    let name = group_name(&body)?;
    g.name = name;
    Ok(ok(json!({ "userGroup": render::group(g) })))
}

async fn delete_group(State(s): S, Path(id): Path<String>) -> ApiResult {
    let mut st = s.state();
    let pos = st
        .ws
        .groups
        .iter()
        .position(|g| g.id == id)
        .ok_or_else(|| group_not_found(&id))?;
    st.ws.groups.remove(pos);
    Ok(ok(json!({ "status": "SUCCESS" })))
}

async fn list_group_users(State(s): S, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    let (_, page) = page_of(&q)?;
    let mut guard = s.state();
    let st = &mut *guard;
    let g = st.ws.group(&id).ok_or_else(|| group_not_found(&id))?;
    let users: Vec<_> = g
        .member_emails
        .iter()
        .filter_map(|e| st.index.user_by_email(&st.ws, e))
        .collect();
    paged("users", &users, page, |u| render::user(u, false))
}

async fn list_group_invites(
    State(s): S,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let (_, page) = page_of(&q)?;
    let st = s.state();
    let g = st.ws.group(&id).ok_or_else(|| group_not_found(&id))?;
    paged("emails", &g.invite_emails, page, |e| json!(e))
}

/// Resolves emails to (canonical email, owner); any unknown email → 404 (nothing changes).
fn resolve_members(
    ws: &super::model::Workspace,
    emails: &[String],
) -> Result<Vec<(String, EmailOwner)>, ApiError> {
    emails
        .iter()
        .map(|e| match ws.email_owner(e) {
            Some(EmailOwner::User) => Ok((
                ws.user_by_email(e)
                    .map(|u| u.email.clone())
                    .unwrap_or_default(),
                EmailOwner::User,
            )),
            Some(EmailOwner::Invite) => Ok((
                ws.invite(e).map(|i| i.email.clone()).unwrap_or_default(),
                EmailOwner::Invite,
            )),
            None => Err(email_not_found(e)),
        })
        .collect()
}

fn add_member(g: &mut Group, email: String, owner: EmailOwner) {
    let list = match owner {
        EmailOwner::User => &mut g.member_emails,
        EmailOwner::Invite => &mut g.invite_emails,
    };
    if !list.iter().any(|e| same_email(e, &email)) {
        list.push(email);
    }
}

async fn add_users_to_group(State(s): S, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let body = json_body(&body)?;
    let mut st = s.state();
    st.ws.group(&id).ok_or_else(|| group_not_found(&id))?;
    let emails = email_list(&body, false)?;
    let members = resolve_members(&st.ws, &emails)?;
    let g = st.ws.group_mut(&id).ok_or_else(|| group_not_found(&id))?;
    for (email, owner) in members {
        add_member(g, email, owner);
    }
    Ok(ok(json!({ "userGroup": render::group(g) })))
}

async fn remove_users_from_group(
    State(s): S,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let mut st = s.state();
    st.ws.group(&id).ok_or_else(|| group_not_found(&id))?;
    let emails = query::array(&query::pairs(q.as_deref()), "emails")?;
    resolve_members(&st.ws, &emails)?;
    let g = st.ws.group_mut(&id).ok_or_else(|| group_not_found(&id))?;
    for e in &emails {
        g.member_emails.retain(|m| !same_email(m, e));
        g.invite_emails.retain(|m| !same_email(m, e));
    }
    Ok(ok(json!({ "status": "SUCCESS" })))
}

async fn replace_users_in_group(State(s): S, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let body = json_body(&body)?;
    let mut st = s.state();
    st.ws.group(&id).ok_or_else(|| group_not_found(&id))?;
    let emails = email_list(&body, true)?;
    let members = resolve_members(&st.ws, &emails)?;
    let g = st.ws.group_mut(&id).ok_or_else(|| group_not_found(&id))?;
    g.member_emails.clear();
    g.invite_emails.clear();
    for (email, owner) in members {
        add_member(g, email, owner);
    }
    Ok(ok(json!({ "userGroup": render::group(g) })))
}

// ---- permissions -------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Subject {
    User,
    Group,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Add,
    Replace,
}

fn write_permissions(
    s: &Shared,
    subject: Subject,
    mode: Mode,
    id: &str,
    body: &Bytes,
) -> ApiResult {
    let body = json_body(body)?;
    let mut st = s.state();
    let exists = match subject {
        Subject::User => st.ws.user(id).is_some(),
        Subject::Group => st.ws.group(id).is_some(),
    };
    if !exists {
        return Err(match subject {
            Subject::User => user_not_found(id),
            Subject::Group => group_not_found(id),
        });
    }
    let input = permissions::parse_permissions(
        &st.ws,
        body.get("permissions"),
        "permissions",
        InputShape::Subject,
    )?;
    let touched: Vec<String> = input.iter().map(|p| p.role_id.clone()).collect();
    let (set, kind) = match subject {
        Subject::User => (st.ws.user_mut(id).map(|u| &mut u.permissions), "user"),
        Subject::Group => (st.ws.group_mut(id).map(|g| &mut g.permissions), "group"),
    };
    let set = set.ok_or_else(|| ApiError::not_found(format!("{id} was not found")))?;
    match mode {
        Mode::Add => permissions::add(set, input),
        Mode::Replace => permissions::replace(set, input),
    }
    // Adding to a user answers with the new permissions; every other call with the whole set.
    let out = if mode == Mode::Add && subject == Subject::User {
        permissions::access_permissions(
            set.iter().filter(|p| touched.contains(&p.role_id)),
            id,
            kind,
        )
    } else {
        permissions::access_permissions(set.iter(), id, kind)
    };
    Ok(ok(json!({ "permissions": out })))
}

async fn add_user_permissions(State(s): S, Path(id): Path<String>, body: Bytes) -> ApiResult {
    write_permissions(&s, Subject::User, Mode::Add, &id, &body)
}

async fn replace_user_permissions(State(s): S, Path(id): Path<String>, body: Bytes) -> ApiResult {
    write_permissions(&s, Subject::User, Mode::Replace, &id, &body)
}

async fn add_group_permissions(State(s): S, Path(id): Path<String>, body: Bytes) -> ApiResult {
    write_permissions(&s, Subject::Group, Mode::Add, &id, &body)
}

async fn replace_group_permissions(State(s): S, Path(id): Path<String>, body: Bytes) -> ApiResult {
    write_permissions(&s, Subject::Group, Mode::Replace, &id, &body)
}

// ---- catalog-ish collections -------------------------------------------------------------

async fn list_roles(State(s): S, RawQuery(q): RawQuery) -> ApiResult {
    let (_, page) = page_of(&q)?;
    let st = s.state();
    paged("roles", &st.ws.roles, page, render::role)
}

async fn list_sources(State(s): S, RawQuery(q): RawQuery) -> ApiResult {
    let (_, page) = page_of(&q)?;
    let st = s.state();
    let ws_id = st.ws.id.clone();
    paged("sources", &st.ws.sources, page, |x| {
        render::source(&ws_id, x)
    })
}

async fn list_warehouses(State(s): S, RawQuery(q): RawQuery) -> ApiResult {
    let (_, page) = page_of(&q)?;
    let st = s.state();
    let ws_id = st.ws.id.clone();
    paged("warehouses", &st.ws.warehouses, page, |x| {
        render::warehouse(&ws_id, x)
    })
}

async fn list_functions(State(s): S, RawQuery(q): RawQuery) -> ApiResult {
    let (pairs, page) = page_of(&q)?;
    let st = s.state();
    let kind = match query::single(&pairs, "resourceType").map(str::trim) {
        None | Some("") => {
            return Err(ApiError::validation(
                "resourceType is required",
                Some("resourceType"),
            ));
        }
        Some(k) => k.to_string(),
    };
    if !st.accepted_function_types.contains(&kind) {
        return Err(ApiError::validation(
            format!(
                "resourceType must be one of {}, got \"{kind}\"",
                st.accepted_function_types.join(", ")
            ),
            Some("resourceType"),
        ));
    }
    let ws_id = st.ws.id.clone();
    let fns: Vec<_> = st
        .ws
        .functions
        .iter()
        .filter(|f| f.resource_type == kind)
        .collect();
    paged("functions", &fns, page, |f| render::function(&ws_id, f))
}

async fn list_spaces(State(s): S, RawQuery(q): RawQuery) -> ApiResult {
    let (_, page) = page_of(&q)?;
    let st = s.state();
    paged("spaces", &st.ws.spaces, page, render::space)
}

async fn get_space(State(s): S, Path(id): Path<String>) -> ApiResult {
    let st = s.state();
    let sp = st
        .ws
        .spaces
        .iter()
        .find(|x| x.id == id)
        .ok_or_else(|| ApiError::not_found(format!("Space {id} was not found.")))?;
    Ok(ok(json!({ "space": render::space(sp) })))
}
