//! Every user and every group of the workspace, with their permissions, read from the host's
//! session store where it still holds them and fetched again where it does not.
//!
//! The session store is a cache: the contract lets a host evict what it accepted. So listing
//! records each page it read (its ids and the next cursor) and each principal's permissions,
//! and a later call walks the pages from the first one, taking each page and each principal's
//! permissions from the store, or from the API when the store no longer has them. Nothing is
//! skipped because the store forgot it.

use crate::bindings::ConnectorError;
use crate::catalog::HeldRoles;
use crate::connector::{Connector, keys};
use crate::env::Env;
use crate::errors::to_connector_error;
use crate::grants::PrincipalData;
use crate::resources::{GroupsError, path_segment};
use crate::segment::api::Cursors;
use crate::segment::model::{GroupData, Permission, UserData};
use serde::{Deserialize, Serialize};
use std::ops::ControlFlow;

/// Principals whose permissions are held in memory at once while walking them all.
const CHUNK: usize = 256;

/// One page of a listing as recorded in the session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct PageRecord {
    pub ids: Vec<String>,
    pub next: Option<String>,
    /// The workspace lacks the feature (groups on a lower plan): the warning said so.
    #[serde(default)]
    pub missing: Option<String>,
    /// The roles the page's principals hold, so that what the whole workspace holds is
    /// read from a record per page, not one per principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<HeldRoles>,
}

/// The session key of the page of `listing` at `cursor` (`None`: the first page).
pub(crate) fn page_key(listing: &str, cursor: Option<&str>) -> String {
    format!("{}{listing}:{}", keys::PAGE, cursor.unwrap_or(""))
}

impl<E: Env> Connector<'_, E> {
    /// The ids of a listing, page by page from the first, each page from the session or (when
    /// the store does not have it) from `load`, which fetches and records it.
    fn walk_ids(
        &self,
        listing: &str,
        path: &str,
        load: impl Fn(Option<&str>) -> Result<PageRecord, ConnectorError>,
    ) -> Result<PageRecord, ConnectorError> {
        let mut all = PageRecord {
            held: Some(HeldRoles::default()),
            ..PageRecord::default()
        };
        let mut cursor: Option<String> = None;
        let mut walk = Cursors::default();
        loop {
            let page = match self.cache_get::<PageRecord>(&page_key(listing, cursor.as_deref())) {
                Some(page) => page,
                None => load(cursor.as_deref())?,
            };
            all.ids.extend(page.ids);
            // Known for the whole listing only when every page's record has it.
            match (all.held.as_mut(), page.held) {
                (Some(all), Some(held)) => all.merge(held),
                _ => all.held = None,
            }
            if page.missing.is_some() {
                all.missing = page.missing;
            }
            match page.next {
                Some(next) => {
                    cursor = Some(
                        walk.follow(path, next)
                            .map_err(|e| to_connector_error(&e))?,
                    )
                }
                None => return Ok(all),
            }
        }
    }

    /// Every user id.
    pub(crate) fn all_user_ids(&self) -> Result<Vec<String>, ConnectorError> {
        Ok(self.user_pages()?.ids)
    }

    /// Every page of users, as one record.
    pub(crate) fn user_pages(&self) -> Result<PageRecord, ConnectorError> {
        self.walk_ids("users", "/users", |cursor| {
            let load = self.load_users_page(cursor)?;
            Ok(PageRecord {
                held: Some(HeldRoles::of(
                    load.users.iter().filter_map(|u| u.permissions.as_deref()),
                )),
                ids: load.users.into_iter().map(|u| u.id).collect(),
                next: load.next,
                missing: None,
            })
        })
    }

    /// (user id, permissions) for every user in the workspace.
    #[cfg(test)]
    pub(crate) fn all_user_permissions(
        &self,
    ) -> Result<Vec<(String, Vec<Permission>)>, ConnectorError> {
        let mut all = vec![];
        self.each_user_permissions(|id, p| all.push((id.to_string(), p.to_vec())))?;
        Ok(all)
    }

    /// Hands every user's permissions to `each`, a chunk of users at a time: memory holds one
    /// chunk's, whatever the workspace's size (a wasm instance's memory never shrinks, and
    /// several instances may walk at once).
    pub(crate) fn each_user_permissions(
        &self,
        mut each: impl FnMut(&str, &[Permission]),
    ) -> Result<(), ConnectorError> {
        for chunk in self.all_user_ids()?.chunks(CHUNK) {
            let found = self.permissions_of::<UserData>(chunk)?;
            for (id, permissions) in &found {
                each(id, permissions);
            }
        }
        Ok(())
    }

    /// Hands every user group's permissions to `each`, a chunk at a time (none when the
    /// workspace has no groups).
    pub(crate) fn each_group_permissions(
        &self,
        mut each: impl FnMut(&str, &[Permission]),
    ) -> Result<(), ConnectorError> {
        for chunk in self.group_pages()?.ids.chunks(CHUNK) {
            let found = self.permissions_of::<GroupData>(chunk)?;
            for (id, permissions) in &found {
                each(id, permissions);
            }
        }
        Ok(())
    }

    /// Every page of groups, as one record (none, with the warning, on a plan without them).
    pub(crate) fn group_pages(&self) -> Result<PageRecord, ConnectorError> {
        self.walk_ids("groups", "/groups", |cursor| {
            match self.load_groups_page(cursor) {
                Ok(p) => Ok(PageRecord {
                    held: Some(HeldRoles::of(
                        p.items.iter().filter_map(|g| g.permissions.as_deref()),
                    )),
                    ids: p.items.into_iter().map(|g| g.id).collect(),
                    next: p.next,
                    missing: None,
                }),
                Err(GroupsError::Missing(warning)) => {
                    self.warn(&warning);
                    Ok(PageRecord {
                        missing: Some(warning),
                        held: Some(HeldRoles::default()),
                        ..PageRecord::default()
                    })
                }
                Err(GroupsError::Failed(e)) => Err(e),
            }
        })
    }

    /// The permissions of each of `ids`, from the session, or fetched (several in flight) for
    /// those it no longer holds. A principal that is gone by now (404) is left out, with a
    /// warning, as listing does.
    fn permissions_of<D: PrincipalData>(
        &self,
        ids: &[String],
    ) -> Result<Vec<(String, Vec<Permission>)>, ConnectorError> {
        let (prefix, collection) = (D::SESSION_KEY, D::COLLECTION);
        let mut found: Vec<Option<Vec<Permission>>> = ids
            .iter()
            .map(|id| self.cache_get(&format!("{prefix}{id}")))
            .collect();
        let missing: Vec<usize> = (0..ids.len()).filter(|&i| found[i].is_none()).collect();
        let paths: Vec<String> = missing
            .iter()
            .map(|&i| format!("/{collection}/{}", path_segment(&ids[i])))
            .collect();
        let mut gone: Vec<Option<String>> = vec![None; ids.len()];
        let mut failed = None;
        self.api.get_each::<D>(&paths, &mut |k, result| {
            let i = missing[k];
            match result {
                Ok(data) => found[i] = Some(data.permissions().unwrap_or_default()),
                Err(e) if e.is_not_found() => gone[i] = Some(e.to_string()),
                Err(e) => {
                    failed = Some(to_connector_error(&e));
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        if let Some(e) = failed {
            return Err(e);
        }
        // Answers come in any order; warnings go in the order of `ids`.
        let what = collection.trim_end_matches('s');
        for (id, e) in ids.iter().zip(&gone) {
            if let Some(e) = e {
                self.warn(&format!(
                    "{what} {id} left the workspace during the sync ({e}); skipped"
                ));
            }
        }
        Ok(ids
            .iter()
            .zip(found)
            .zip(gone)
            .filter(|(_, gone)| gone.is_none())
            .map(|((id, p), _)| (id.clone(), p.unwrap_or_default()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::connector::Connector;
    use crate::ids::*;
    use crate::resources::rid;
    use crate::testing::FakeEnv;

    const USERS: &str = r#"{"data":{"users":[
        {"id":"u1","name":"A","email":"a@x.io","permissions":[{"roleId":"r1","roleName":"Workspace Owner","resources":[{"id":"w","type":"WORKSPACE"}]}]},
        {"id":"u2","name":"B","email":"b@x.io","permissions":[]},
        {"id":"u3","name":"C","email":"c@x.io","permissions":[]}],
        "pagination":{"current":"MA=="}}}"#;

    fn env() -> FakeEnv {
        let env = FakeEnv::new();
        env.route("GET /users?pagination%5Bcount%5D=200", 200, USERS);
        env.route(
            "GET /users/u1",
            200,
            r#"{"data":{"user":{"id":"u1","name":"A","email":"a@x.io","permissions":[{"roleId":"r1","roleName":"Workspace Owner","resources":[{"id":"w","type":"WORKSPACE"}]}]}}}"#,
        );
        for u in ["u2", "u3"] {
            env.route(
                &format!("GET /users/{u}"),
                200,
                &format!(r#"{{"data":{{"user":{{"id":"{u}","name":"B","email":"b@x.io","permissions":[]}}}}}}"#),
            );
        }
        env
    }

    #[test]
    fn a_store_that_forgets_costs_requests_never_grants() {
        let ws = rid(WORKSPACE, "w");
        // What a store that keeps everything gives.
        let full = env();
        let c = Connector::new(&full, &Default::default());
        c.list_resources(USER, Some(&ws), "").unwrap();
        let before = full.requests().len();
        let ids = c.all_user_ids().unwrap();
        let owners = c.all_user_permissions().unwrap();
        assert_eq!(ids, ["u1", "u2", "u3"]);
        assert_eq!(full.requests().len(), before, "all from the session");

        // Stores that keep nothing, one entry, two: the listing's records are (partly) gone.
        for keep in [0, 1, 2] {
            let forgetful = env();
            forgetful.session_keep.set(Some(keep));
            let c = Connector::new(&forgetful, &Default::default());
            c.list_resources(USER, Some(&ws), "").unwrap();
            let before = forgetful.requests().len();
            assert_eq!(
                c.all_user_ids().unwrap(),
                ids,
                "every user (keeping {keep})"
            );
            assert_eq!(c.all_user_permissions().unwrap(), owners, "keeping {keep}");
            assert!(
                forgetful.requests().len() > before,
                "what was forgotten was fetched again (keeping {keep})"
            );
        }
    }
}
