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

/// What fills an OS field nothing could be learned about. baton-sdk fills every empty field
/// because ConductorOne refuses to register a connector whose Hello has one.
pub const UNKNOWN: &str = "unknown";
/// `virtualization_system` when the host runs on no detected hypervisor or container
/// (gopsutil's word for it, which baton-sdk sends).
pub const NO_VIRTUALIZATION: &str = "none";

/// The container or hypervisor this process runs in, if any can be told from the files the
/// OS exposes (container markers, then the DMI vendor); `None` on bare metal or when unknown.
fn virtualization_system() -> Option<String> {
    let exists = |p: &str| std::path::Path::new(p).exists();
    if exists("/.dockerenv") {
        return Some("docker".into());
    }
    if exists("/run/.containerenv") {
        return Some("podman".into());
    }
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return Some("kubepods".into());
    }
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .to_lowercase()
    };
    let cgroup = read("/proc/1/cgroup");
    for (needle, name) in [
        ("kubepods", "kubepods"),
        ("docker", "docker"),
        ("lxc", "lxc"),
    ] {
        if cgroup.contains(needle) {
            return Some(name.into());
        }
    }
    let vendor = read("/sys/class/dmi/id/sys_vendor") + &read("/sys/class/dmi/id/product_name");
    for (needle, name) in [
        ("kvm", "kvm"),
        ("qemu", "kvm"),
        ("vmware", "vmware"),
        ("virtualbox", "vbox"),
        ("xen", "xen"),
        ("microsoft", "hyperv"),
        ("amazon ec2", "kvm"),
        ("google", "kvm"),
    ] {
        if vendor.contains(needle) {
            return Some(name.into());
        }
    }
    None
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
    with_defaults(OsInfo {
        hostname: hostname().unwrap_or_default(),
        os: std::env::consts::OS.into(),
        platform,
        platform_version: get("VERSION_ID"),
        platform_family: family,
        kernel_version: kernel,
        kernel_arch: std::env::consts::ARCH.into(),
        virtualization_system: virtualization_system().unwrap_or_default(),
    })
}

/// Every empty field filled: `virtualization_system` with "none", the others with "unknown".
pub fn with_defaults(mut info: OsInfo) -> OsInfo {
    for field in [
        &mut info.hostname,
        &mut info.os,
        &mut info.platform,
        &mut info.platform_version,
        &mut info.platform_family,
        &mut info.kernel_version,
        &mut info.kernel_arch,
    ] {
        if field.trim().is_empty() {
            *field = UNKNOWN.into();
        }
    }
    if info.virtualization_system.trim().is_empty() {
        info.virtualization_system = NO_VIRTUALIZATION.into();
    }
    info
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
            credential_details: credential_details(m),
        }),
        account_creation_schema: account_creation_schema(m),
        ..Default::default()
    }
}

/// How accounts are created, for connectors that create them: the contract's create-account
/// takes no credential options, so accounts are made without a password (the invitation
/// e-mail is how Segment's users set theirs), as the Go connector declares.
fn credential_details(m: &ConnectorMetadata) -> Option<pb::CredentialDetails> {
    use pb::CapabilityDetailCredentialOption as Option_;
    m.capabilities
        .contains(&Capability::AccountProvisioning)
        .then(|| pb::CredentialDetails {
            capability_account_provisioning: Some(pb::CredentialDetailsAccountProvisioning {
                supported_credential_options: vec![Option_::NoPassword as i32],
                preferred_credential_option: Option_::NoPassword as i32,
            }),
            capability_credential_rotation: None,
        })
}

/// The contract's account form as Baton's schema: one text field per entry, in order.
fn account_creation_schema(m: &ConnectorMetadata) -> Option<pb::ConnectorAccountCreationSchema> {
    use pb::connector_account_creation_schema::{Field, StringField, field};
    if m.account_creation_schema.is_empty() {
        return None;
    }
    let field_map = m
        .account_creation_schema
        .iter()
        .enumerate()
        .map(|(order, f)| {
            let field = Field {
                display_name: f.display_name.clone(),
                required: f.required,
                description: f.description.clone(),
                placeholder: f.placeholder.clone(),
                order: i32::try_from(order).unwrap_or(i32::MAX),
                deprecated: false,
                field: Some(field::Field::StringField(StringField {
                    default_value: None,
                })),
            };
            (f.name.clone(), field)
        })
        .collect();
    Some(pb::ConnectorAccountCreationSchema { field_map })
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
                e.message()
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
    fn no_os_field_is_ever_empty() {
        let filled = with_defaults(OsInfo::default());
        assert_eq!(filled.virtualization_system, NO_VIRTUALIZATION);
        for f in [
            &filled.hostname,
            &filled.os,
            &filled.platform,
            &filled.platform_version,
            &filled.platform_family,
            &filled.kernel_version,
            &filled.kernel_arch,
        ] {
            assert_eq!(f, UNKNOWN);
        }
        // What is known is kept.
        let kept = with_defaults(OsInfo {
            kernel_arch: "x86_64".into(),
            virtualization_system: "docker".into(),
            ..OsInfo::default()
        });
        assert_eq!(kept.kernel_arch, "x86_64");
        assert_eq!(kept.virtualization_system, "docker");
        let here = os_info();
        assert!(!here.virtualization_system.is_empty() && !here.hostname.is_empty());
    }

    #[test]
    fn account_creation_is_declared_as_the_go_connector_does() {
        use crate::engine::contract::{AccountField, ResourceTypeCapabilities};
        let m = ConnectorMetadata {
            display_name: "Twilio Segment".into(),
            description: String::new(),
            help_url: String::new(),
            capabilities: vec![Capability::Sync, Capability::AccountProvisioning],
            resource_type_capabilities: vec![ResourceTypeCapabilities {
                resource_type: "invite".into(),
                capabilities: vec![Capability::AccountProvisioning],
            }],
            account_creation_schema: vec![AccountField {
                name: "email".into(),
                display_name: "Email Address".into(),
                description: String::new(),
                placeholder: "user@example.com".into(),
                required: true,
            }],
        };
        let pb = connector_metadata(&m, &[]);
        let schema = pb.account_creation_schema.expect("sent");
        let email = &schema.field_map["email"];
        assert_eq!(
            (email.display_name.as_str(), email.required, email.order),
            ("Email Address", true, 0)
        );
        assert_eq!(email.placeholder, "user@example.com");
        let details = pb.capabilities.unwrap().credential_details.expect("sent");
        let ap = details.capability_account_provisioning.unwrap();
        assert_eq!(ap.supported_credential_options, vec![1]);
        assert_eq!(ap.preferred_credential_option, 1, "NO_PASSWORD");
    }

    #[test]
    fn capabilities_map_onto_baton_numbers() {
        assert_eq!(capability(Capability::Provision) as i32, 1);
        assert_eq!(capability(Capability::Sync) as i32, 2);
        assert_eq!(capability(Capability::AccountProvisioning) as i32, 5);
        assert_eq!(capability(Capability::ResourceDelete) as i32, 8);
    }
}
