//! Who we are to ConductorOne: the host id, the `Hello` request (build and OS information and
//! the connector's metadata, taken from the component itself).

use crate::commands::connection::Connection;
use crate::engine::Runtime;
use crate::engine::contract::{Capability, ConnectorMetadata, ResourceType, SyncHints};
use anyhow::{Context as _, anyhow};
use baton::c1::service::BatonServiceHelloRequest;
use baton::c1::service::baton_service_hello_request::{BuildInfo, OsInfo};
use baton::pb;

/// The host id when neither `BATON_HOST_ID` nor the host name gives one (as the Go SDK does).
pub const DEFAULT_HOST_ID: &str = "baton-sdk";
/// The longest host id ConductorOne accepts.
pub const MAX_HOST_ID_CHARS: usize = 256;

/// `explicit` (`--host-id` / `BATON_HOST_ID`) when set, else the OS host name, else
/// [`DEFAULT_HOST_ID`]; cut to 256 characters.
pub fn resolve_host_id(explicit: Option<&str>) -> String {
    let explicit = explicit
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    explicit
        .or_else(hostname)
        .unwrap_or_else(|| DEFAULT_HOST_ID.to_string())
        .chars()
        .take(MAX_HOST_ID_CHARS)
        .collect()
}

fn hostname() -> Option<String> {
    let name = gethostname::gethostname()
        .to_string_lossy()
        .trim()
        .to_string();
    (!name.is_empty()).then_some(name)
}

pub fn build_info() -> BuildInfo {
    BuildInfo {
        lang_version: "rust".into(),
        package: "baton-segment".into(),
        package_version: env!("CARGO_PKG_VERSION").into(),
    }
}

/// `KEY=value` lines of `/etc/os-release` (quotes removed).
fn os_release() -> Vec<(String, String)> {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

pub fn os_info() -> OsInfo {
    let release = os_release();
    let get = |k: &str| {
        release
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let platform = get("ID");
    let family = match get("ID_LIKE") {
        like if like.is_empty() => platform.clone(),
        like => like
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    OsInfo {
        hostname: hostname().unwrap_or_default(),
        os: std::env::consts::OS.into(),
        platform,
        platform_version: get("VERSION_ID"),
        platform_family: family,
        kernel_version: kernel,
        kernel_arch: std::env::consts::ARCH.into(),
        virtualization_system: String::new(),
    }
}

/// The contract's capability as Baton's.
pub fn capability(c: Capability) -> pb::Capability {
    match c {
        Capability::Sync => pb::Capability::Sync,
        Capability::Provision => pb::Capability::Provision,
        Capability::AccountProvisioning => pb::Capability::AccountProvisioning,
        Capability::ResourceDelete => pb::Capability::ResourceDelete,
    }
}

/// The component's metadata as Baton's `ConnectorMetadata`: display name, description, help
/// URL, and the capabilities per resource type (with the resource type as the component
/// describes it in `types`) and of the connector as a whole.
pub fn connector_metadata(m: &ConnectorMetadata, types: &[ResourceType]) -> pb::ConnectorMetadata {
    let resource_type_capabilities = m
        .resource_type_capabilities
        .iter()
        .map(|rtc| {
            let described = types.iter().find(|t| t.id == rtc.resource_type);
            pb::ResourceTypeCapability {
                resource_type: Some(described.map(pb::ResourceType::from).unwrap_or_else(|| {
                    pb::ResourceType {
                        id: rtc.resource_type.clone(),
                        ..Default::default()
                    }
                })),
                capabilities: rtc
                    .capabilities
                    .iter()
                    .map(|c| capability(*c) as i32)
                    .collect(),
                skip_sync_anomaly_detection: described
                    .is_some_and(|t| t.hints.contains(SyncHints::SKIP_SYNC_ANOMALY_DETECTION)),
                ..Default::default()
            }
        })
        .collect();
    pb::ConnectorMetadata {
        display_name: m.display_name.clone(),
        help_url: m.help_url.clone(),
        description: m.description.clone(),
        capabilities: Some(pb::ConnectorCapabilities {
            resource_type_capabilities,
            connector_capabilities: m
                .capabilities
                .iter()
                .map(|c| capability(*c) as i32)
                .collect(),
        }),
        ..Default::default()
    }
}

/// Asks the component for its metadata and resource types (no network needed).
pub async fn load_metadata(
    runtime: &Runtime,
    connection: &Connection,
) -> anyhow::Result<pb::ConnectorMetadata> {
    let run = connection.run_context(connection.policy());
    let mut instance = runtime
        .instantiate(run)
        .await
        .context("starting the connector component")?;
    let metadata = instance
        .metadata()
        .await
        .map_err(|e| anyhow!("asking the connector component for its metadata: {e}"))?;
    let types = match instance.resource_types().await {
        Ok(Ok(types)) => types,
        Ok(Err(e)) => {
            tracing::warn!(
                "the connector did not describe its resource types ({}); Hello names them by id only",
                crate::sync::describe(&e)
            );
            vec![]
        }
        Err(e) => {
            return Err(anyhow!(
                "asking the connector component for its resource types: {e}"
            ));
        }
    };
    Ok(connector_metadata(&metadata, &types))
}

/// The `Hello` request; `task_id` is empty at startup and names the task for a hello task.
pub fn request(
    host_id: &str,
    task_id: &str,
    metadata: &pb::ConnectorMetadata,
) -> BatonServiceHelloRequest {
    BatonServiceHelloRequest {
        host_id: host_id.to_string(),
        task_id: task_id.to_string(),
        build_info: Some(build_info()),
        os_info: Some(os_info()),
        connector_metadata: Some(metadata.clone()),
        annotations: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_id_precedence() {
        assert_eq!(resolve_host_id(Some(" pod-7 ")), "pod-7");
        let fallback = resolve_host_id(Some("  "));
        assert!(!fallback.is_empty());
        assert_eq!(fallback, resolve_host_id(None));
        let long = "h".repeat(400);
        assert_eq!(resolve_host_id(Some(&long)).len(), MAX_HOST_ID_CHARS);
    }

    #[test]
    fn capabilities_map_onto_baton_numbers() {
        assert_eq!(capability(Capability::Provision) as i32, 1);
        assert_eq!(capability(Capability::Sync) as i32, 2);
        assert_eq!(capability(Capability::AccountProvisioning) as i32, 5);
        assert_eq!(capability(Capability::ResourceDelete) as i32, 8);
    }
}
