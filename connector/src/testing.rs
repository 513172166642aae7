//! An in-memory [`Env`] for unit tests: canned responses by "METHOD path?query", a request log
//! and a session map.

use crate::env::{Env, HttpRequest, HttpResponse, LogLevel, Method, TransportError};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

type Handler = Box<dyn Fn(&HttpRequest) -> (u16, String)>;

#[derive(Default)]
pub struct FakeEnv {
    routes: RefCell<HashMap<String, Handler>>,
    requests: RefCell<Vec<HttpRequest>>,
    session: RefCell<BTreeMap<String, Vec<u8>>>,
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

    fn session_get(&self, key: &str) -> Option<Vec<u8>> {
        self.session.borrow().get(key).cloned()
    }

    fn session_set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.session
            .borrow_mut()
            .insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn session_get_prefix(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        self.session
            .borrow()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn log(&self, _level: LogLevel, _message: &str) {}
}
