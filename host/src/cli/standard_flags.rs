//! The standard flags of every Baton connector (baton-sdk's `pkg/field/defaults.go`, plus the
//! runner flags of `pkg/config`), so that a command line or manifest written for the Go
//! connector works unchanged. Each is accepted with its `BATON_*` variable; what it means
//! here is in [`FIELDS`] (and the README's configuration table):
//!
//! * supported: does what it does in Baton;
//! * partial: does part of it (the README says which part);
//! * not supported: answered with one line, "not supported by the Segment connector". An
//!   operation (`--create-ticket`, `--rotate-credentials`…) is an error (exit 1); a setting
//!   (`--ticketing`, `--external-resource-c1z`…) is ignored after that line.

use clap::{ArgAction, Args};
use std::path::PathBuf;

/// How a standard flag is handled here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Supported,
    Partial,
    NotSupported,
}

impl Support {
    /// The README's words.
    pub fn label(self) -> &'static str {
        match self {
            Support::Supported => "supported",
            Support::Partial => "partial",
            Support::NotSupported => "not supported by Segment",
        }
    }
}

/// A flag of Baton's standard list.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The flag without dashes (`skip-full-sync`).
    pub name: &'static str,
    pub support: Support,
    /// Asks for an operation the connector cannot do (an error), rather than a setting.
    pub operation: bool,
    /// The value a test gives it (`None`: a switch, given bare).
    pub example: Option<&'static str>,
}

impl Field {
    /// `BATON_` and the name in capitals, dashes as underscores.
    pub fn env(&self) -> String {
        format!("BATON_{}", self.name.replace('-', "_").to_ascii_uppercase())
    }
}

const fn field(
    name: &'static str,
    support: Support,
    operation: bool,
    example: Option<&'static str>,
) -> Field {
    Field {
        name,
        support,
        operation,
        example,
    }
}

use Support::{NotSupported as No, Partial, Supported as Yes};

/// Every field of baton-sdk's `DefaultFields` (`pkg/field/defaults.go`), in its order, then
/// the runner's own flags (`pkg/config`, `pkg/cli`) and this connector's two.
pub const FIELDS: &[Field] = &[
    // defaults.go
    field("create-ticket", No, true, None),
    field("bulk-create-ticket", No, true, None),
    field("bulk-ticket-template-path", No, false, Some("tickets.json")),
    field("get-ticket", No, true, None),
    field("list-ticket-schemas", No, true, None),
    field("provisioning", Yes, false, None),
    field("ticketing", No, false, None),
    field("c1z-temp-dir", Partial, false, Some("/tmp")),
    field(
        "client-id",
        Yes,
        false,
        Some("name@tenant.conductor.one/pcc"),
    ),
    field(
        "client-secret",
        Yes,
        false,
        Some("secret-token:conductorone.com:v1:x"),
    ),
    field("create-account-email", Yes, false, Some("ana@example.com")),
    field("create-account-login", Yes, false, Some("ana@example.com")),
    field(
        "create-account-profile",
        Yes,
        false,
        Some("{\"email\":\"ana@example.com\"}"),
    ),
    field("create-account-resource-type", Yes, false, Some("invite")),
    field("delete-resource", Yes, false, Some("usrAna")),
    field("delete-resource-type", Yes, false, Some("user")),
    field("event-feed", No, true, Some("default")),
    field("event-feed-id", No, false, Some("default")),
    field(
        "event-feed-start-at",
        No,
        false,
        Some("2026-01-01T00:00:00Z"),
    ),
    field("event-feed-cursor", No, false, Some("c1")),
    field("file", Yes, false, Some("sync.c1z")),
    field("grant-entitlement", Yes, false, Some("group:grpEng:member")),
    field("grant-principal", Yes, false, Some("usrAna")),
    field("grant-principal-type", Yes, false, Some("user")),
    field("log-format", Yes, false, Some("json")),
    field(
        "revoke-grant",
        Yes,
        false,
        Some("group:grpEng:member:user:usrAna"),
    ),
    field("rotate-credentials", No, true, Some("usrAna")),
    field("rotate-credentials-type", No, false, Some("user")),
    field("ticket-id", No, false, Some("T-1")),
    field("ticket-template-path", No, false, Some("ticket.json")),
    field("log-level", Yes, false, Some("info")),
    field(
        "log-level-debug-expires-at",
        Yes,
        false,
        Some("2030-01-01T00:00:00Z"),
    ),
    field("skip-full-sync", Yes, false, None),
    field(
        "sync-resources",
        Partial,
        false,
        Some("bid:r:workspace/ws1/group/grpEng"),
    ),
    field("sync-resource-types", Yes, false, Some("user,group")),
    field("skip-entitlements-and-grants", Yes, false, None),
    field("skip-grants", Yes, false, None),
    field("external-resource-c1z", No, false, Some("other.c1z")),
    field(
        "external-resource-entitlement-id-filter",
        No,
        false,
        Some("group:g:member"),
    ),
    field("diff-syncs", No, true, None),
    field("base-sync-id", No, false, Some("2abc")),
    field("applied-sync-id", No, false, Some("2def")),
    field("compact-sync-ids", No, false, Some("2abc,2def")),
    field("compact-file-paths", No, false, Some("a.c1z,b.c1z")),
    field("compact-output-path", No, false, Some("out")),
    field("compact-syncs", No, true, None),
    field("invoke-action", No, true, Some("reset")),
    field("invoke-action-args", No, false, Some("{\"force\":true}")),
    field("invoke-action-resource-type", No, false, Some("user")),
    field("list-action-schemas", No, true, None),
    field("list-action-schemas-resource-type", No, false, Some("user")),
    field("list-resource-actions", No, true, Some("user")),
    field("invoke-resource-action", No, true, Some("reset")),
    field(
        "invoke-resource-action-resource-type",
        No,
        false,
        Some("user"),
    ),
    field(
        "invoke-resource-action-args",
        No,
        false,
        Some("{\"force\":true}"),
    ),
    field("session-store-maximum-size", Yes, false, Some("15728640")),
    field(
        "otel-collector-endpoint",
        Yes,
        false,
        Some("127.0.0.1:4317"),
    ),
    field(
        "otel-collector-endpoint-tls-cert-path",
        Yes,
        false,
        Some("ca.pem"),
    ),
    field(
        "otel-collector-endpoint-tls-cert",
        Yes,
        false,
        Some("-----BEGIN CERTIFICATE-----"),
    ),
    field("otel-collector-endpoint-tls-insecure", Yes, false, None),
    field("otel-tracing-disabled", Yes, false, None),
    field("otel-logging-disabled", Yes, false, None),
    field("auth-method", No, false, Some("token")),
    // The runner's flags (pkg/config, pkg/cli).
    field("health-check", Yes, false, None),
    field("health-check-port", Yes, false, Some("8081")),
    field("health-check-bind-address", Yes, false, Some("127.0.0.1")),
    field("http-timeout-seconds", Yes, false, Some("300")),
    field("task-concurrency", Yes, false, Some("3")),
    field("workers", Partial, false, Some("4")),
    field("parallel-sync", Partial, false, None),
    field("storage-engine", Partial, false, Some("sqlite")),
    field("keep-previous-sync-c1z", No, false, None),
    field("external-resource-traits", No, false, Some("TRAIT_USER")),
    field("log-path", No, false, Some("baton.log")),
    field("log-event-log", No, false, None),
    // The Segment connector's own (pkg/config of baton-segment).
    field("token", Yes, false, Some("segment-token")),
    field("base-url", Yes, false, Some("https://api.segmentapis.com")),
];

/// A switch as Baton's (pflag) take them: `--x`, `--x=true`, `--x=false`, and for the
/// variable Go's `strconv.ParseBool` forms.
fn boolish() -> clap::builder::BoolishValueParser {
    clap::builder::BoolishValueParser::new()
}

/// The standard flags the rest of the command line does not declare.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Baton standard flags")]
pub struct StandardArgs {
    // ---- Supported or partial ----
    /// Turn debug logging back to info at this time (RFC 3339, e.g. 2026-01-31T18:00:00Z)
    #[arg(long, env = "BATON_LOG_LEVEL_DEBUG_EXPIRES_AT", global = true)]
    pub log_level_debug_expires_at: Option<String>,

    /// Directory for temporary sync files in service mode (must exist) [default: the OS temp directory]
    #[arg(long, env = "BATON_C1Z_TEMP_DIR", global = true)]
    pub c1z_temp_dir: Option<PathBuf>,

    /// Service mode: take provisioning tasks only; full-sync tasks get an empty sync
    #[arg(long, env = "BATON_SKIP_FULL_SYNC", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = boolish(), global = true)]
    pub skip_full_sync: bool,

    /// Sync only these resources (Baton ids: bid:r:<type>/<id> or bid:r:<parent type>/<parent id>/<type>/<id>), with their entitlements and grants
    #[arg(
        long,
        env = "BATON_SYNC_RESOURCES",
        value_delimiter = ',',
        global = true
    )]
    pub sync_resources: Vec<String>,

    /// Sync only resources of these types (e.g. user,group)
    #[arg(
        long,
        env = "BATON_SYNC_RESOURCE_TYPES",
        value_delimiter = ',',
        global = true
    )]
    pub sync_resource_types: Vec<String>,

    /// Sync resources only, without entitlements and grants
    #[arg(long, env = "BATON_SKIP_ENTITLEMENTS_AND_GRANTS", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = boolish(), global = true)]
    pub skip_entitlements_and_grants: bool,

    /// Sync resources and entitlements, without grants
    #[arg(long, env = "BATON_SKIP_GRANTS", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = boolish(), global = true)]
    pub skip_grants: bool,

    /// The largest session store of a run (host memory the connector fills during a sync), in bytes [default: 268435456]
    #[arg(long, env = "BATON_SESSION_STORE_MAXIMUM_SIZE", value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub session_store_maximum_size: Option<u64>,

    /// The resource type of the account to create (invite, for Segment)
    #[arg(long, env = "BATON_CREATE_ACCOUNT_RESOURCE_TYPE", global = true)]
    pub create_account_resource_type: Option<String>,

    /// An OpenTelemetry collector (host:port, OTLP/gRPC) to send traces and logs to
    #[arg(long, env = "BATON_OTEL_COLLECTOR_ENDPOINT", global = true)]
    pub otel_collector_endpoint: Option<String>,

    /// A PEM file of a CA to trust for the collector
    #[arg(
        long,
        env = "BATON_OTEL_COLLECTOR_ENDPOINT_TLS_CERT_PATH",
        global = true
    )]
    pub otel_collector_endpoint_tls_cert_path: Option<PathBuf>,

    /// A PEM CA certificate to trust for the collector
    #[arg(
        long,
        env = "BATON_OTEL_COLLECTOR_ENDPOINT_TLS_CERT",
        hide_env_values = true,
        global = true
    )]
    pub otel_collector_endpoint_tls_cert: Option<String>,

    /// Talk to the collector without TLS
    #[arg(long, env = "BATON_OTEL_COLLECTOR_ENDPOINT_TLS_INSECURE", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = boolish(), global = true)]
    pub otel_collector_endpoint_tls_insecure: bool,

    /// Send no traces to the collector
    #[arg(long, env = "BATON_OTEL_TRACING_DISABLED", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = boolish(), global = true)]
    pub otel_tracing_disabled: bool,

    /// Send no logs to the collector
    #[arg(long, env = "BATON_OTEL_LOGGING_DISABLED", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = boolish(), global = true)]
    pub otel_logging_disabled: bool,

    /// Baton's worker count: N > 0 sets --concurrency (0 and -1 keep it)
    #[arg(
        long,
        env = "BATON_WORKERS",
        allow_negative_numbers = true,
        global = true
    )]
    pub workers: Option<i64>,

    /// Deprecated in Baton (workers -1); accepted
    #[arg(long, env = "BATON_PARALLEL_SYNC", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = boolish(), hide = true, global = true)]
    pub parallel_sync: bool,

    /// The .c1z storage engine: sqlite (what is written); pebble is answered with a note
    #[arg(long, env = "BATON_STORAGE_ENGINE", global = true)]
    pub storage_engine: Option<String>,

    // ---- Not supported by the Segment connector: accepted, answered with one line ----
    #[arg(long, env = "BATON_TICKETING", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = boolish(), hide = true, global = true)]
    pub ticketing: bool,
    #[arg(long, env = "BATON_CREATE_TICKET", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = boolish(), hide = true, global = true)]
    pub create_ticket: bool,
    #[arg(long, env = "BATON_BULK_CREATE_TICKET", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = boolish(), hide = true, global = true)]
    pub bulk_create_ticket: bool,
    #[arg(
        long,
        env = "BATON_BULK_TICKET_TEMPLATE_PATH",
        hide = true,
        global = true
    )]
    pub bulk_ticket_template_path: Option<String>,
    #[arg(long, env = "BATON_GET_TICKET", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = boolish(), hide = true, global = true)]
    pub get_ticket: bool,
    #[arg(long, env = "BATON_LIST_TICKET_SCHEMAS", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = boolish(), hide = true, global = true)]
    pub list_ticket_schemas: bool,
    #[arg(long, env = "BATON_TICKET_ID", hide = true, global = true)]
    pub ticket_id: Option<String>,
    #[arg(long, env = "BATON_TICKET_TEMPLATE_PATH", hide = true, global = true)]
    pub ticket_template_path: Option<String>,
    #[arg(long, env = "BATON_EVENT_FEED", num_args = 0..=1, require_equals = true, default_missing_value = "true", hide = true, global = true)]
    pub event_feed: Option<String>,
    #[arg(long, env = "BATON_EVENT_FEED_ID", hide = true, global = true)]
    pub event_feed_id: Option<String>,
    #[arg(long, env = "BATON_EVENT_FEED_START_AT", hide = true, global = true)]
    pub event_feed_start_at: Option<String>,
    #[arg(long, env = "BATON_EVENT_FEED_CURSOR", hide = true, global = true)]
    pub event_feed_cursor: Option<String>,
    #[arg(long, env = "BATON_ROTATE_CREDENTIALS", hide = true, global = true)]
    pub rotate_credentials: Option<String>,
    #[arg(
        long,
        env = "BATON_ROTATE_CREDENTIALS_TYPE",
        hide = true,
        global = true
    )]
    pub rotate_credentials_type: Option<String>,
    #[arg(long, env = "BATON_EXTERNAL_RESOURCE_C1Z", hide = true, global = true)]
    pub external_resource_c1z: Option<String>,
    #[arg(
        long,
        env = "BATON_EXTERNAL_RESOURCE_ENTITLEMENT_ID_FILTER",
        hide = true,
        global = true
    )]
    pub external_resource_entitlement_id_filter: Option<String>,
    #[arg(
        long,
        env = "BATON_EXTERNAL_RESOURCE_TRAITS",
        value_delimiter = ',',
        hide = true,
        global = true
    )]
    pub external_resource_traits: Vec<String>,
    #[arg(long, env = "BATON_DIFF_SYNCS", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = boolish(), hide = true, global = true)]
    pub diff_syncs: bool,
    #[arg(long, env = "BATON_BASE_SYNC_ID", hide = true, global = true)]
    pub base_sync_id: Option<String>,
    #[arg(long, env = "BATON_APPLIED_SYNC_ID", hide = true, global = true)]
    pub applied_sync_id: Option<String>,
    #[arg(long, env = "BATON_COMPACT_SYNCS", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = boolish(), hide = true, global = true)]
    pub compact_syncs: bool,
    #[arg(long, env = "BATON_COMPACT_OUTPUT_PATH", hide = true, global = true)]
    pub compact_output_path: Option<String>,
    #[arg(
        long,
        env = "BATON_COMPACT_FILE_PATHS",
        value_delimiter = ',',
        hide = true,
        global = true
    )]
    pub compact_file_paths: Vec<String>,
    #[arg(
        long,
        env = "BATON_COMPACT_SYNC_IDS",
        value_delimiter = ',',
        hide = true,
        global = true
    )]
    pub compact_sync_ids: Vec<String>,
    #[arg(long, env = "BATON_INVOKE_ACTION", hide = true, global = true)]
    pub invoke_action: Option<String>,
    #[arg(long, env = "BATON_INVOKE_ACTION_ARGS", hide = true, global = true)]
    pub invoke_action_args: Option<String>,
    #[arg(
        long,
        env = "BATON_INVOKE_ACTION_RESOURCE_TYPE",
        hide = true,
        global = true
    )]
    pub invoke_action_resource_type: Option<String>,
    #[arg(long, env = "BATON_LIST_ACTION_SCHEMAS", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = boolish(), hide = true, global = true)]
    pub list_action_schemas: bool,
    #[arg(
        long,
        env = "BATON_LIST_ACTION_SCHEMAS_RESOURCE_TYPE",
        hide = true,
        global = true
    )]
    pub list_action_schemas_resource_type: Option<String>,
    #[arg(long, env = "BATON_LIST_RESOURCE_ACTIONS", hide = true, global = true)]
    pub list_resource_actions: Option<String>,
    #[arg(long, env = "BATON_INVOKE_RESOURCE_ACTION", hide = true, global = true)]
    pub invoke_resource_action: Option<String>,
    #[arg(
        long,
        env = "BATON_INVOKE_RESOURCE_ACTION_RESOURCE_TYPE",
        hide = true,
        global = true
    )]
    pub invoke_resource_action_resource_type: Option<String>,
    #[arg(
        long,
        env = "BATON_INVOKE_RESOURCE_ACTION_ARGS",
        hide = true,
        global = true
    )]
    pub invoke_resource_action_args: Option<String>,
    #[arg(long, env = "BATON_AUTH_METHOD", hide = true, global = true)]
    pub auth_method: Option<String>,
    #[arg(long, env = "BATON_KEEP_PREVIOUS_SYNC_C1Z", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = boolish(), hide = true, global = true)]
    pub keep_previous_sync_c1z: bool,
    #[arg(
        long,
        env = "BATON_LOG_PATH",
        value_delimiter = ',',
        hide = true,
        global = true
    )]
    pub log_path: Vec<String>,
    #[arg(long, env = "BATON_LOG_EVENT_LOG", num_args = 0..=1, require_equals = true, default_missing_value = "true", hide = true, global = true)]
    pub log_event_log: Option<String>,
}

/// The answer to a flag that is not supported.
pub const NOT_SUPPORTED: &str = "not supported by the Segment connector";

/// What to say about the not-supported flags that were given.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Notices {
    /// Operations asked for: each is an error.
    pub refused: Vec<String>,
    /// Settings given: each gets one line, then is ignored.
    pub ignored: Vec<String>,
}

impl StandardArgs {
    /// The not-supported flags that were set (a switch set to false, an empty value and a
    /// value that changes nothing do not count).
    pub fn notices(&self) -> Notices {
        let set = |o: &Option<String>| o.as_deref().is_some_and(|v| !v.trim().is_empty());
        let on = |o: &Option<String>| {
            o.as_deref().is_some_and(|v| {
                !matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "" | "false" | "0" | "f"
                )
            })
        };
        let mut n = Notices::default();
        let mut operation = |flag: &str, given: bool| {
            if given {
                n.refused.push(format!("--{flag}: {NOT_SUPPORTED}"));
            }
        };
        operation("create-ticket", self.create_ticket);
        operation("bulk-create-ticket", self.bulk_create_ticket);
        operation("get-ticket", self.get_ticket);
        operation("list-ticket-schemas", self.list_ticket_schemas);
        operation("event-feed", on(&self.event_feed));
        operation("rotate-credentials", set(&self.rotate_credentials));
        operation("diff-syncs", self.diff_syncs);
        operation("compact-syncs", self.compact_syncs);
        operation("invoke-action", set(&self.invoke_action));
        operation("list-action-schemas", self.list_action_schemas);
        operation("list-resource-actions", set(&self.list_resource_actions));
        operation("invoke-resource-action", set(&self.invoke_resource_action));
        let mut setting = |flag: &str, given: bool| {
            if given {
                n.ignored
                    .push(format!("--{flag}: {NOT_SUPPORTED}; ignored"));
            }
        };
        setting("ticketing", self.ticketing);
        setting(
            "bulk-ticket-template-path",
            set(&self.bulk_ticket_template_path),
        );
        setting("ticket-id", set(&self.ticket_id));
        setting("ticket-template-path", set(&self.ticket_template_path));
        setting("event-feed-id", set(&self.event_feed_id));
        setting("event-feed-start-at", set(&self.event_feed_start_at));
        setting("event-feed-cursor", set(&self.event_feed_cursor));
        setting(
            "rotate-credentials-type",
            set(&self.rotate_credentials_type),
        );
        setting("external-resource-c1z", set(&self.external_resource_c1z));
        setting(
            "external-resource-entitlement-id-filter",
            set(&self.external_resource_entitlement_id_filter),
        );
        setting(
            "external-resource-traits",
            !self.external_resource_traits.is_empty(),
        );
        setting("base-sync-id", set(&self.base_sync_id));
        setting("applied-sync-id", set(&self.applied_sync_id));
        setting("compact-output-path", set(&self.compact_output_path));
        setting("compact-file-paths", !self.compact_file_paths.is_empty());
        setting("compact-sync-ids", !self.compact_sync_ids.is_empty());
        setting(
            "invoke-action-args",
            self.invoke_action_args
                .as_deref()
                .is_some_and(|a| !matches!(a.trim(), "" | "{}")),
        );
        setting(
            "invoke-action-resource-type",
            set(&self.invoke_action_resource_type),
        );
        setting(
            "list-action-schemas-resource-type",
            set(&self.list_action_schemas_resource_type),
        );
        setting(
            "invoke-resource-action-resource-type",
            set(&self.invoke_resource_action_resource_type),
        );
        setting(
            "invoke-resource-action-args",
            self.invoke_resource_action_args
                .as_deref()
                .is_some_and(|a| !matches!(a.trim(), "" | "{}")),
        );
        setting("auth-method", set(&self.auth_method));
        setting("keep-previous-sync-c1z", self.keep_previous_sync_c1z);
        setting("log-path", !self.log_path.is_empty());
        setting("log-event-log", on(&self.log_event_log));
        if self
            .storage_engine
            .as_deref()
            .is_some_and(|e| !e.trim().is_empty() && !e.trim().eq_ignore_ascii_case("sqlite"))
        {
            n.ignored.push(format!(
                "--storage-engine={}: {NOT_SUPPORTED}; writing sqlite (the v1 .c1z)",
                self.storage_engine.as_deref().unwrap_or_default().trim()
            ));
        }
        n
    }

    /// `--log-level-debug-expires-at` as a time.
    pub fn debug_expires_at(&self) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
        match self.log_level_debug_expires_at.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| Some(t.with_timezone(&chrono::Utc)))
                .map_err(|e| {
                    anyhow::anyhow!(
                        "--log-level-debug-expires-at {s:?} is not an RFC 3339 time (e.g. 2026-01-31T18:00:00Z): {e}"
                    )
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_listed_once() {
        let mut names: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a field is listed twice");
        assert_eq!(
            FIELDS
                .iter()
                .find(|f| f.name == "skip-full-sync")
                .unwrap()
                .env(),
            "BATON_SKIP_FULL_SYNC"
        );
    }
}
