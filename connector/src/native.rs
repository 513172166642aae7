//! The connector logic run natively, outside any sandbox (feature `native`): an [`Env`] over
//! blocking HTTP (plain `http://` only: it is meant for the loopback fake) with an in-memory
//! session, and a sequential walk in Baton's phase order. Differential tests compare it with the
//! component run by the host; benchmarks use it to measure what the sandbox costs on the same
//! work.

use crate::bindings::{ConnectorError, Resource, ResourceId, SyncHints};
use crate::connector::{Connector, Settings};
use crate::env::{Env, HttpRequest, HttpResponse, LogLevel, TransportError, entries_with_prefix};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Read;

pub struct NativeEnv {
    agent: ureq::Agent,
    base: String,
    token: String,
    session: RefCell<BTreeMap<String, Vec<u8>>>,
}

impl NativeEnv {
    pub fn new(base_url: &str, token: &str) -> NativeEnv {
        NativeEnv {
            agent: ureq::AgentBuilder::new().build(),
            base: base_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            session: RefCell::default(),
        }
    }

    fn send_one(&self, r: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let request = self
            .agent
            .request(r.method.as_str(), &format!("{}{}", self.base, r.path))
            .set("accept", "application/json")
            .set("authorization", &format!("Bearer {}", self.token));
        let result = match &r.body {
            Some(body) => request
                .set("content-type", "application/json")
                .send_bytes(body),
            None => request.call(),
        };
        let response = match result {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(e) => return Err(TransportError::Unavailable(e.to_string())),
        };
        let status = response.status();
        let headers = response
            .headers_names()
            .into_iter()
            .filter_map(|name| {
                response
                    .header(&name)
                    .map(|v| (name.clone(), v.to_string()))
            })
            .collect();
        let mut body = vec![];
        response
            .into_reader()
            .read_to_end(&mut body)
            .map_err(|e| TransportError::Unavailable(format!("reading the body: {e}")))?;
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

impl Env for NativeEnv {
    fn send_all(&self, requests: &[HttpRequest]) -> Vec<Result<HttpResponse, TransportError>> {
        requests.iter().map(|r| self.send_one(r)).collect()
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
        entries_with_prefix(&self.session.borrow(), prefix)
    }

    fn log(&self, _level: LogLevel, _message: &str) {}
}

/// What a walk found: resource keys (`type:id`), entitlement ids and grant ids, in listing order.
#[derive(Debug, Default, PartialEq)]
pub struct Walk {
    pub resources: Vec<String>,
    pub entitlements: Vec<String>,
    pub grants: Vec<String>,
    pub warnings: Vec<String>,
}

fn key(id: &ResourceId) -> String {
    format!("{}:{}", id.resource_type, id.resource)
}

/// Every page of one listing: `list` gets each page token in turn and answers with the page's
/// items and the next token (empty after the last page).
fn every_page<T>(
    mut list: impl FnMut(&str) -> Result<(Vec<T>, String), ConnectorError>,
) -> Result<Vec<T>, ConnectorError> {
    let mut items = vec![];
    let mut token = String::new();
    loop {
        let (page, next) = list(&token)?;
        items.extend(page);
        if next.is_empty() {
            return Ok(items);
        }
        token = next;
    }
}

/// Validate, then resources (every type without a parent, then under each resource that names
/// it), entitlements and grants of every resource not skipped: Baton's phase order, one call at a
/// time. No grant expansion.
pub fn walk(env: &NativeEnv) -> Result<Walk, ConnectorError> {
    let c = Connector::new(env, &Settings::default());
    c.validate()?;
    let types = crate::resources::resource_types();
    let mut out = Walk::default();
    let mut resources: Vec<Resource> = vec![];
    let mut queue: Vec<(String, Option<ResourceId>)> =
        types.iter().map(|t| (t.id.clone(), None)).collect();
    while let Some((resource_type, parent)) = (!queue.is_empty()).then(|| queue.remove(0)) {
        let listed = every_page(|token| {
            let page = c.list_resources(&resource_type, parent.as_ref(), token)?;
            out.warnings.extend(page.warnings);
            Ok((page.items, page.next_page_token))
        })?;
        for r in listed {
            queue.extend(
                r.child_resource_types
                    .iter()
                    .map(|child| (child.clone(), Some(r.id.clone()))),
            );
            out.resources.push(key(&r.id));
            resources.push(r);
        }
    }
    let skips = |r: &Resource, hint: SyncHints| {
        r.hints.contains(hint)
            || types
                .iter()
                .any(|t| t.id == r.id.resource_type && t.hints.contains(hint))
    };
    // Every id `list` pages through under each resource that `hint` does not skip (`list`
    // answers with a page's ids and the next token).
    type IdPage = Result<(Vec<String>, String), ConnectorError>;
    let under_each = |hint: SyncHints, list: &dyn Fn(&Resource, &str) -> IdPage| {
        let mut ids = vec![];
        for r in resources.iter().filter(|r| !skips(r, hint)) {
            ids.extend(every_page(|token| list(r, token))?);
        }
        Ok::<_, ConnectorError>(ids)
    };
    out.entitlements = under_each(SyncHints::SKIP_ENTITLEMENTS, &|r, token| {
        let page = c.list_entitlements(r, token)?;
        let ids = page.items.into_iter().map(|e| e.id).collect();
        Ok((ids, page.next_page_token))
    })?;
    out.grants = under_each(SyncHints::SKIP_GRANTS, &|r, token| {
        let page = c.list_grants(r, token)?;
        let ids = page.items.into_iter().map(|g| g.id).collect();
        Ok((ids, page.next_page_token))
    })?;
    Ok(out)
}
