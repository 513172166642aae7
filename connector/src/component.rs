//! The component's exports, and the [`Env`] they run on: HTTP through [`WasiTransport`], the
//! session store, logging and configuration through the host imports of `wit/connector.wit`.

use crate::bindings::baton::connector::host;
use crate::bindings::*;
use crate::connector::{Connector, Settings};
use crate::env::{Env, HttpRequest, HttpResponse, LogLevel, SpareEach, TransportError};
use crate::wasi_transport::WasiTransport;
use std::ops::ControlFlow;
use std::sync::OnceLock;

struct Component;

crate::bindings::export!(Component with_types_in crate::bindings);

/// What the component learns from the host's configuration, once per instance.
struct WasiEnv {
    http: WasiTransport,
    settings: Settings,
}

static ENV: OnceLock<Result<WasiEnv, String>> = OnceLock::new();

fn env() -> Result<&'static WasiEnv, ConnectorError> {
    ENV.get_or_init(WasiEnv::from_host_config)
        .as_ref()
        .map_err(|e| ConnectorError::InvalidArgument(e.clone()))
}

/// Panics print their message and nothing else. Rust's default hook reads `RUST_BACKTRACE`
/// from the environment, and this component reads no environment at all (hosts may pass their
/// own, secrets included).
fn quiet_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("{info}"))));
}

fn with_connector<T>(
    f: impl FnOnce(&Connector<'_, WasiEnv>) -> Result<T, ConnectorError>,
) -> Result<T, ConnectorError> {
    quiet_panics();
    let env = env()?;
    f(&Connector::new(env, &env.settings))
}

impl Guest for Component {
    fn metadata() -> ConnectorMetadata {
        Connector::<WasiEnv>::metadata()
    }

    fn validate() -> Result<(), ConnectorError> {
        with_connector(|c| c.validate())
    }

    fn resource_types() -> Result<Vec<ResourceType>, ConnectorError> {
        Ok(crate::resources::resource_types())
    }

    fn list_resources(
        resource_type: String,
        parent: Option<ResourceId>,
        page_token: String,
    ) -> Result<ResourcePage, ConnectorError> {
        with_connector(|c| c.list_resources(&resource_type, parent.as_ref(), &page_token))
    }

    fn list_entitlements(
        resource: Resource,
        page_token: String,
    ) -> Result<EntitlementPage, ConnectorError> {
        with_connector(|c| c.list_entitlements(&resource, &page_token))
    }

    fn list_grants(resource: Resource, page_token: String) -> Result<GrantPage, ConnectorError> {
        with_connector(|c| c.list_grants(&resource, &page_token))
    }

    fn grant(
        principal: Resource,
        entitlement: Entitlement,
    ) -> Result<GrantOutcome, ConnectorError> {
        with_connector(|c| c.grant(&principal, &entitlement))
    }

    fn revoke(grant: Grant, principal: Resource) -> Result<RevokeOutcome, ConnectorError> {
        with_connector(|c| c.revoke(&grant, &principal))
    }

    fn plan(operation: Operation) -> Result<Vec<PlannedRequest>, ConnectorError> {
        with_connector(|c| c.plan(&operation))
    }

    fn create_account(account: AccountInfo) -> Result<CreateAccountOutcome, ConnectorError> {
        with_connector(|c| c.create_account(&account))
    }

    fn delete_resource(
        id: ResourceId,
        parent: Option<ResourceId>,
    ) -> Result<DeleteOutcome, ConnectorError> {
        with_connector(|c| c.delete_resource(&id, parent.as_ref()))
    }
}

const DEFAULT_BASE_URL: &str = "https://api.segmentapis.com";

impl WasiEnv {
    fn from_host_config() -> Result<WasiEnv, String> {
        let base = host::config("base-url")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_BASE_URL.into());
        let number = |key: &str, default: u32| {
            host::config(key)
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(default)
        };
        Ok(WasiEnv {
            http: WasiTransport::new(
                &base,
                host::config("token").filter(|t| !t.is_empty()),
                number("max-in-flight", 8).clamp(1, 64) as usize,
            )?,
            settings: Settings {
                page_size: number("page-size", crate::segment::api::DEFAULT_PAGE_SIZE),
            },
        })
    }
}

impl Env for WasiEnv {
    fn send_all(&self, requests: &[HttpRequest]) -> Vec<Result<HttpResponse, TransportError>> {
        self.http.send_all(requests)
    }

    fn send_each(
        &self,
        requests: &[HttpRequest],
        each: &mut dyn FnMut(usize, Result<HttpResponse, TransportError>) -> ControlFlow<()>,
    ) {
        self.http
            .send_with_spares(requests, &mut |i, result, _| each(i, result))
    }

    fn send_with_spares(&self, requests: &[HttpRequest], each: &mut SpareEach<'_>) {
        self.http.send_with_spares(requests, each)
    }

    fn session_get(&self, key: &str) -> Option<Vec<u8>> {
        host::session_get(key)
    }

    fn session_set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        host::session_set(key, value)
    }

    fn session_get_prefix(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        host::session_get_prefix(prefix)
    }

    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Debug => host::LogLevel::Debug,
            LogLevel::Info => host::LogLevel::Info,
            LogLevel::Warn => host::LogLevel::Warn,
        };
        host::log(level, message);
    }
}
