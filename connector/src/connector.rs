//! The connector: one value per call, holding the environment and the API client. The list and
//! provisioning calls live in their own modules as `impl` blocks on [`Connector`].

use crate::bindings::{
    AccountField, Capability, ConnectorError, ConnectorMetadata, ResourceTypeCapabilities,
};
use crate::env::{Env, LogLevel};
use crate::errors::to_connector_error;
use crate::ids;
use crate::segment::api::{Api, DEFAULT_PAGE_SIZE};
use crate::segment::model::{Workspace, WorkspaceData};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Settings the host may give (`config` keys in parentheses).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Items per API page (`page-size`, default 200, at most 1000).
    pub page_size: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

pub struct Connector<'e, E: Env> {
    pub(crate) env: &'e E,
    pub(crate) api: Api<'e, E>,
}

/// Session keys: what one sync shares between its instances.
pub(crate) mod keys {
    pub const WORKSPACE: &str = "workspace";
    pub const ROLES: &str = "roles";
    pub const USER_PERMISSIONS: &str = "permissions:user:";
    pub const GROUP_PERMISSIONS: &str = "permissions:group:";
    /// `page:<listing>:<cursor>`: a page of the user or group listing (see `walk`).
    pub const PAGE: &str = "page:";
    pub const HELD_ROLES: &str = "index:held-roles";
    /// A page of `GET /users` fetched ahead, by the cursor that reads it.
    pub const PREFETCHED_USERS: &str = "prefetch:users:";
}

impl<'e, E: Env> Connector<'e, E> {
    pub fn new(env: &'e E, settings: &Settings) -> Self {
        Connector {
            env,
            api: Api::new(env, settings.page_size),
        }
    }

    pub fn metadata() -> ConnectorMetadata {
        let caps = |rt: &str, c: &[Capability]| ResourceTypeCapabilities {
            resource_type: rt.into(),
            capabilities: c.to_vec(),
        };
        ConnectorMetadata {
            display_name: "Twilio Segment".into(),
            description: "Syncs a Segment workspace's users, user groups, roles, pending invitations, sources, \
                          warehouses, functions and spaces, and provisions group membership, role assignments \
                          and invitations."
                .into(),
            help_url: "https://segment.com/docs/segment-app/iam/".into(),
            capabilities: vec![Capability::Sync, Capability::Provision, Capability::AccountProvisioning, Capability::ResourceDelete],
            resource_type_capabilities: vec![
                caps(ids::WORKSPACE, &[Capability::Sync, Capability::Provision]),
                caps(ids::USER, &[Capability::Sync, Capability::ResourceDelete]),
                caps(ids::GROUP, &[Capability::Sync, Capability::Provision]),
                caps(ids::ROLE, &[Capability::Sync, Capability::Provision]),
                caps(ids::INVITE, &[Capability::Sync, Capability::AccountProvisioning, Capability::ResourceDelete]),
                caps(ids::SOURCE, &[Capability::Sync, Capability::Provision]),
                caps(ids::WAREHOUSE, &[Capability::Sync, Capability::Provision]),
                caps(ids::FUNCTION, &[Capability::Sync, Capability::Provision]),
                caps(ids::SPACE, &[Capability::Sync, Capability::Provision]),
            ],
            account_creation_schema: vec![AccountField {
                name: "email".into(),
                display_name: "Email Address".into(),
                description: "The address Segment sends the workspace invitation to.".into(),
                placeholder: "user@example.com".into(),
                required: true,
            }],
        }
    }

    /// One cheap call that proves the token works: `GET /` (the workspace).
    pub fn validate(&self) -> Result<(), ConnectorError> {
        self.workspace().map(|_| ())
    }

    /// The workspace, fetched once per session.
    pub(crate) fn workspace(&self) -> Result<Workspace, ConnectorError> {
        if let Some(ws) = self.cache_get::<Workspace>(keys::WORKSPACE) {
            return Ok(ws);
        }
        let data: WorkspaceData = self.api.get("/").map_err(|e| to_connector_error(&e))?;
        self.cache_put(keys::WORKSPACE, &data.workspace);
        Ok(data.workspace)
    }

    pub(crate) fn cache_get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let bytes = self.env.session_get(key)?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Records what later calls of the sync read instead of the API (user and group
    /// permissions, the marks that a listing is complete). They trust it to be whole, so a
    /// store that refuses an entry fails the call, rather than let grants go missing.
    pub(crate) fn record<T: Serialize>(&self, key: &str, value: &T) -> Result<(), ConnectorError> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| ConnectorError::Internal(format!("encoding {key:?}: {e}")))?;
        self.env.session_set(key, &bytes).map_err(|e| {
            ConnectorError::FailedPrecondition(format!(
                "the host's session store refused {key:?} ({e}); the sync needs it to hold every \
                 user's and group's permissions: raise the host's session store limit"
            ))
        })
    }

    /// Best effort, for what can be fetched again (the workspace, the roles, derived
    /// indexes): a full session store only costs requests later, never correctness.
    pub(crate) fn cache_put<T: Serialize>(&self, key: &str, value: &T) {
        let bytes = match serde_json::to_vec(value) {
            Ok(b) => b,
            Err(_) => return,
        };
        if let Err(e) = self.env.session_set(key, &bytes) {
            self.log(
                LogLevel::Warn,
                &format!(
                    "session store refused {key:?} ({e}); data will be fetched again when needed"
                ),
            );
        }
    }

    pub(crate) fn log(&self, level: LogLevel, message: &str) {
        self.env.log(level, message);
    }
}
