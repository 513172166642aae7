//! An in-memory [`Env`] for unit tests: canned responses by "METHOD path?query", a request log
//! and a session map.

use crate::env::{
    Env, HttpRequest, HttpResponse, LogLevel, Method, SpareEach, TransportError,
    entries_with_prefix,
};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};

type Handler = Box<dyn Fn(&HttpRequest) -> (u16, String)>;

#[derive(Default)]
pub struct FakeEnv {
    routes: RefCell<HashMap<String, Handler>>,
    requests: RefCell<Vec<HttpRequest>>,
    session: RefCell<BTreeMap<String, Vec<u8>>>,
    /// Entries the session store takes before it is full.
    pub session_capacity: std::cell::Cell<Option<usize>>,
    /// Entries the session store keeps: past that it forgets the oldest, without a word (a
    /// host that treats the store as a cache, as the contract allows).
    pub session_keep: std::cell::Cell<Option<usize>>,
    inserted: RefCell<VecDeque<String>>,
    /// Sends spare requests (see [`Env::send_with_spares`]) as a window would: one in the slot
    /// each answer frees while requests of the batch are still out. Off: none is sent.
    pub sends_spares: std::cell::Cell<bool>,
}

impl FakeEnv {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers `key` ("GET /users?…") with a fixed status and body.
    pub fn route(&self, key: &str, status: u16, body: &str) {
        let body = body.to_string();
        self.routes
            .borrow_mut()
            .insert(key.to_string(), Box::new(move |_| (status, body.clone())));
    }

    /// Answers `key` with whatever `handler` says (for answers that change between calls).
    pub fn route_with(&self, key: &str, handler: impl Fn(&HttpRequest) -> (u16, String) + 'static) {
        self.routes
            .borrow_mut()
            .insert(key.to_string(), Box::new(handler));
    }

    /// "METHOD path?query" of every request, in order.
    pub fn request_lines(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method.as_str(), r.path))
            .collect()
    }

    pub fn requests(&self) -> Vec<HttpRequest> {
        self.requests.borrow().clone()
    }

    pub fn writes(&self) -> Vec<HttpRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != Method::Get)
            .collect()
    }
}

impl Env for FakeEnv {
    fn send_all(&self, requests: &[HttpRequest]) -> Vec<Result<HttpResponse, TransportError>> {
        requests
            .iter()
            .map(|r| {
                self.requests.borrow_mut().push(r.clone());
                let key = format!("{} {}", r.method.as_str(), r.path);
                match self.routes.borrow().get(&key) {
                    Some(handler) => {
                        let (status, body) = handler(r);
                        Ok(HttpResponse { status, headers: vec![], body: body.into_bytes() })
                    }
                    None => Ok(HttpResponse {
                        status: 404,
                        headers: vec![],
                        body: format!(r#"{{"errors":[{{"type":"not-found","message":"no route for {key}"}}]}}"#)
                            .into_bytes(),
                    }),
                }
            })
            .collect()
    }

    fn send_with_spares(&self, requests: &[HttpRequest], each: &mut SpareEach<'_>) {
        let mut spares: VecDeque<HttpRequest> = VecDeque::new();
        let mut spare_index = requests.len();
        for (i, request) in requests.iter().enumerate() {
            let mut named = vec![];
            let answer = self.send_all(std::slice::from_ref(request)).remove(0);
            if each(i, answer, &mut named).is_break() {
                return;
            }
            if !self.sends_spares.get() {
                continue;
            }
            spares.extend(named);
            if i + 1 < requests.len()
                && let Some(spare) = spares.pop_front()
            {
                let answer = self.send_all(std::slice::from_ref(&spare)).remove(0);
                if each(spare_index, answer, &mut vec![]).is_break() {
                    return;
                }
                spare_index += 1;
            }
        }
    }

    fn session_get(&self, key: &str) -> Option<Vec<u8>> {
        self.session.borrow().get(key).cloned()
    }

    fn session_set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        if let Some(capacity) = self.session_capacity.get()
            && self.session.borrow().len() >= capacity
        {
            return Err("the store is full".into());
        }
        self.session
            .borrow_mut()
            .insert(key.to_string(), value.to_vec());
        let mut inserted = self.inserted.borrow_mut();
        inserted.retain(|k| k != key);
        inserted.push_back(key.to_string());
        if let Some(keep) = self.session_keep.get() {
            while inserted.len() > keep {
                if let Some(old) = inserted.pop_front() {
                    self.session.borrow_mut().remove(&old);
                }
            }
        }
        Ok(())
    }

    fn session_get_prefix(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        entries_with_prefix(&self.session.borrow(), prefix)
    }

    fn log(&self, _level: LogLevel, _message: &str) {}
}

/// A request's JSON body (`null` when it has none).
pub fn body(r: &HttpRequest) -> serde_json::Value {
    serde_json::from_slice(r.body.as_deref().unwrap_or(b"null")).unwrap()
}

/// A small workspace for provisioning tests: workspace `w`, roles `r1` (Source Admin) and `r2`
/// (Workspace Owner), user `u1` <u1@x.io> holding `permissions` (JSON), group `g1`, and every
/// write answered with success.
pub mod workspace {
    use super::FakeEnv;
    use crate::bindings::{Entitlement, Grant, Purpose, Resource};
    use crate::ids::WORKSPACE;
    use crate::resources::{group_resource, invite_resource, rid, user_resource};
    use crate::segment::model::{Group, User};

    pub const ROLES: &str = "GET /roles?pagination%5Bcount%5D=200";
    pub const INVITES: &str = "GET /invites?pagination%5Bcount%5D=200";
    pub const USERS: &str = "GET /users?pagination%5Bcount%5D=200";

    pub fn env(user_permissions: &str) -> FakeEnv {
        let env = FakeEnv::new();
        env.route(
            "GET /",
            200,
            r#"{"data":{"workspace":{"id":"w","name":"W","slug":"w"}}}"#,
        );
        env.route(
            ROLES,
            200,
            r#"{"data":{"roles":[{"id":"r1","name":"Source Admin","description":""},{"id":"r2","name":"Workspace Owner","description":""}],"pagination":{"current":"MA=="}}}"#,
        );
        env.route(
            "GET /users/u1",
            200,
            &format!(r#"{{"data":{{"user":{{"id":"u1","name":"U","email":"u1@x.io","permissions":{user_permissions}}}}}}}"#),
        );
        env.route(
            "GET /groups/g1",
            200,
            r#"{"data":{"userGroup":{"id":"g1","name":"G","memberCount":0,"permissions":[]}}}"#,
        );
        env.route(
            "GET /groups/g1/users?pagination%5Bcount%5D=200",
            200,
            r#"{"data":{"users":[],"pagination":{"current":"MA=="}}}"#,
        );
        env.route(
            INVITES,
            200,
            r#"{"data":{"invites":[],"pagination":{"current":"MA=="}}}"#,
        );
        env.route(
            USERS,
            200,
            r#"{"data":{"users":[],"pagination":{"current":"MA=="}}}"#,
        );
        for write in [
            "POST /users/u1/permissions",
            "PUT /users/u1/permissions",
            "POST /groups/g1/permissions",
            "POST /groups/g1/users",
        ] {
            env.route(write, 200, r#"{"data":{"permissions":[]}}"#);
        }
        env.route("POST /invites", 201, r#"{"data":{"emails":["new@x.io"]}}"#);
        env
    }

    pub fn user() -> Resource {
        user_resource(
            &User {
                id: "u1".into(),
                name: "U".into(),
                email: "u1@x.io".into(),
                permissions: None,
            },
            &rid(WORKSPACE, "w"),
        )
    }

    pub fn group() -> Resource {
        group_resource(
            &Group {
                id: "g1".into(),
                name: "G".into(),
                member_count: None,
                permissions: None,
            },
            &rid(WORKSPACE, "w"),
        )
    }

    pub fn invite(email: &str) -> Resource {
        invite_resource(email, Some(&rid(WORKSPACE, "w")))
    }

    /// The grant of entitlement `entitlement` (on a source, or any resource) to `principal`.
    pub fn grant(entitlement: &str, principal: &Resource) -> Grant {
        let (t, r, _) = crate::ids::parse_entitlement_id(entitlement).expect("an entitlement id");
        Grant {
            id: format!(
                "{entitlement}:{}:{}",
                principal.id.resource_type, principal.id.resource
            ),
            entitlement_id: entitlement.into(),
            entitlement_resource: rid(t, r),
            principal: principal.id.clone(),
            expandable: None,
        }
    }

    pub fn entitlement(id: &str) -> Entitlement {
        let (t, r, slug) = crate::ids::parse_entitlement_id(id).expect("an entitlement id");
        Entitlement {
            id: id.into(),
            resource: rid(t, r),
            display_name: String::new(),
            description: String::new(),
            slug: slug.into(),
            purpose: Purpose::Assignment,
            grantable_to: vec![],
        }
    }
}
