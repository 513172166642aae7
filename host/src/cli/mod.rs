//! The command line, with the flags and `BATON_*` variables of Baton connectors.

pub mod standard_flags;

use crate::logging::{LogFormat, LogLevel};
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use standard_flags::StandardArgs;
use std::path::PathBuf;

pub const DEFAULT_BASE_URL: &str = "https://api.segmentapis.com";
/// Requests in flight at once when neither `--concurrency` nor `--workers` says.
pub const DEFAULT_CONCURRENCY: u16 = 4;

/// On/off flags and variables read as Go's pflag and `strconv.ParseBool` read them — `--x`,
/// `--x=true`, `--x=false`; `1`, `t`, `TRUE`, `True`, `0`, `f`, `FALSE`… — and `yes`/`no`,
/// `on`/`off`, so that a command line or manifest written for the Go connector works
/// unchanged. (Each switch is declared with `action = Set, num_args = 0..=1,
/// require_equals, default_missing_value = "true"`.)
fn boolish() -> clap::builder::BoolishValueParser {
    clap::builder::BoolishValueParser::new()
}

#[derive(Debug, Parser)]
#[command(
    name = "baton-segment",
    // `-v` / `--version` print "baton-segment version X", as a Baton connector does.
    version = concat!("version ", env!("CARGO_PKG_VERSION")),
    disable_version_flag = true,
    about = "Sync a Twilio Segment workspace into a Baton .c1z file, through a sandboxed WebAssembly connector",
    long_about = "Sync a Twilio Segment workspace (users, user groups, roles, invitations, sources, warehouses, \
                  functions, spaces, and who holds what) into a Baton .c1z file.\n\n\
                  The Segment logic runs as a WebAssembly component in a wasmtime sandbox: it can reach only \
                  the Segment API origin, and the token is added to its requests by the host, so the component \
                  never sees it.\n\n\
                  Without a subcommand, baton-segment syncs into --file. The subcommands read a .c1z file.",
    after_help = "Every flag can also be set with the environment variable shown ([env: ...]). \
                  Try `baton-segment --demo` for a sync of a built-in demo workspace."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Print the version
    #[arg(short = 'v', long = "version", action = ArgAction::Version)]
    pub version: Option<bool>,

    #[command(flatten)]
    pub sync: SyncArgs,

    #[command(flatten)]
    pub provision: ProvisionArgs,

    #[command(flatten)]
    pub service: ServiceArgs,

    /// The .c1z file to sync into or read from
    #[arg(
        short = 'f',
        long,
        env = "BATON_FILE",
        default_value = "sync.c1z",
        global = true
    )]
    pub file: PathBuf,

    /// Log level: debug, info, warn or error (any case)
    #[arg(long, env = "BATON_LOG_LEVEL", default_value = "info", value_parser = LogLevel::parse, global = true)]
    pub log_level: LogLevel,

    /// Log format: json or console (any case; anything else is json) [default: console when stdout is a terminal, otherwise json]
    #[arg(long, env = "BATON_LOG_FORMAT", value_parser = LogFormat::parse, global = true)]
    pub log_format: Option<LogFormat>,

    #[command(flatten)]
    pub standard: StandardArgs,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Segment Public API token (created by a Workspace Owner in Settings → Access Management → Tokens)
    #[arg(long, env = "BATON_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Segment API base URL; https://eu1.api.segmentapis.com for EU workspaces
    #[arg(long, env = "BATON_BASE_URL", default_value = DEFAULT_BASE_URL)]
    pub base_url: String,

    /// Sync the built-in demo workspace (served by an in-process fake Segment API) instead of a real one
    #[arg(long, env = "BATON_DEMO", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = boolish())]
    pub demo: bool,

    /// Segment requests in flight at once (and connector instances working at once) [default: 4, or Baton's --workers when above 0]
    #[arg(long, env = "BATON_CONCURRENCY", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: Option<u16>,

    /// HTTP timeout in seconds: the longest wait for Segment's answer to one request
    #[arg(long, env = "BATON_HTTP_TIMEOUT_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=1800))]
    pub http_timeout_seconds: u64,

    /// The longest a sync may run (e.g. 90m, 24h); an interrupted sync resumes where it stopped
    #[arg(long, env = "BATON_SYNC_DEADLINE", default_value = "24h", value_parser = humantime::parse_duration)]
    pub sync_deadline: std::time::Duration,

    /// Segment requests one sync or task may make in all (0: no limit); stops a server that
    /// never ends a listing
    #[arg(long, env = "BATON_REQUEST_BUDGET", default_value_t = 1_000_000)]
    pub request_budget: u64,

    /// Finished syncs kept in the .c1z, the new one included (as Baton's cleanup keeps them)
    #[arg(long, env = "BATON_KEEP_SYNC_COUNT", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pub keep_sync_count: u16,

    /// Start over instead of resuming an interrupted sync of the same file
    #[arg(long, env = "BATON_NO_RESUME", value_parser = boolish())]
    pub no_resume: bool,
}

/// The operations a create-account flag cannot be combined with.
const OTHER_THAN_CREATE_ACCOUNT: [&str; 3] =
    ["grant_entitlement", "revoke_grant", "delete_resource"];

/// One-shot provisioning, as Baton connectors do it: ids are looked up in the `.c1z` given by
/// `--file` (sync first).
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("operation").multiple(false).args([
    "grant_entitlement", "revoke_grant", "create_account_email", "delete_resource",
]))]
pub struct ProvisionArgs {
    /// Grant this entitlement (e.g. group:grpEng:member) to --grant-principal
    #[arg(long, env = "BATON_GRANT_ENTITLEMENT", requires_all = ["grant_principal", "grant_principal_type"])]
    pub grant_entitlement: Option<String>,

    /// The id of the resource that receives the grant
    #[arg(long, env = "BATON_GRANT_PRINCIPAL", requires = "grant_entitlement")]
    pub grant_principal: Option<String>,

    /// The resource type of --grant-principal (user, group or invite)
    #[arg(
        long,
        env = "BATON_GRANT_PRINCIPAL_TYPE",
        requires = "grant_entitlement"
    )]
    pub grant_principal_type: Option<String>,

    /// Revoke the grant with this id (e.g. group:grpEng:member:user:usrBob)
    #[arg(long, env = "BATON_REVOKE_GRANT")]
    pub revoke_grant: Option<String>,

    /// Create an account: invite this e-mail address to the workspace
    #[arg(long, env = "BATON_CREATE_ACCOUNT_EMAIL")]
    pub create_account_email: Option<String>,

    /// Create an account with this login (an e-mail address, for Segment); may go with
    /// --create-account-email and --create-account-profile
    #[arg(long, env = "BATON_CREATE_ACCOUNT_LOGIN", conflicts_with_all = OTHER_THAN_CREATE_ACCOUNT)]
    pub create_account_login: Option<String>,

    /// Profile of the account to create, as a JSON object (e.g. {"email": "ana@example.com"})
    #[arg(long, env = "BATON_CREATE_ACCOUNT_PROFILE", conflicts_with_all = OTHER_THAN_CREATE_ACCOUNT)]
    pub create_account_profile: Option<String>,

    /// Delete the resource with this id (a user: remove them from the workspace; an invite: withdraw it)
    #[arg(long, env = "BATON_DELETE_RESOURCE", requires = "delete_resource_type")]
    pub delete_resource: Option<String>,

    /// The resource type of --delete-resource (user or invite)
    #[arg(long, env = "BATON_DELETE_RESOURCE_TYPE", requires = "delete_resource")]
    pub delete_resource_type: Option<String>,

    /// Print the Segment requests the operation would make (method, path, body) and make none of them
    #[arg(long, env = "BATON_DRY_RUN", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = boolish())]
    pub dry_run: bool,
}

impl ProvisionArgs {
    pub fn requested(&self) -> bool {
        self.grant_entitlement.is_some()
            || self.revoke_grant.is_some()
            || self.create_account_email.is_some()
            || self.create_account_login.is_some()
            || self.create_account_profile.is_some()
            || self.delete_resource.is_some()
    }
}

/// Service mode: with a ConductorOne client id and secret, baton-segment runs as a daemon that
/// takes sync and provisioning tasks from ConductorOne (see docs/service-mode.md).
/// `BATON_C1_API_HOST` and `BATON_C1_CA_CERT` are read from the environment.
#[derive(Debug, Args)]
#[command(next_help_heading = "Service mode (ConductorOne)")]
pub struct ServiceArgs {
    /// ConductorOne client id; with --client-secret, runs as a service taking tasks from ConductorOne
    /// (BATON_C1_API_HOST overrides its host, BATON_C1_CA_CERT adds a CA to trust)
    #[arg(long, env = "BATON_CLIENT_ID", requires = "client_secret", conflicts_with_all = [
        "grant_entitlement", "revoke_grant", "create_account_email", "create_account_login",
        "create_account_profile", "delete_resource", "dry_run",
    ])]
    pub client_id: Option<String>,

    /// ConductorOne client secret (secret-token:conductorone.com:v1:…)
    #[arg(
        long,
        env = "BATON_CLIENT_SECRET",
        hide_env_values = true,
        requires = "client_id"
    )]
    pub client_secret: Option<String>,

    /// Carry out grant, revoke, create-account and delete-resource tasks from ConductorOne
    #[arg(short = 'p', long, env = "BATON_PROVISIONING", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = boolish())]
    pub provisioning: bool,

    /// The host id reported to ConductorOne [default: the host name]
    #[arg(long, env = "BATON_HOST_ID")]
    pub host_id: Option<String>,

    /// Tasks worked on at once in service mode
    #[arg(long, env = "BATON_TASK_CONCURRENCY", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub task_concurrency: u16,

    #[command(flatten)]
    pub health: HealthArgs,
}

impl ServiceArgs {
    /// A client id (and so, by the flag rules, a secret) was given.
    pub fn requested(&self) -> bool {
        self.client_id.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Console,
    Json,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Console)]
    pub output_format: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the resource types in a .c1z
    ResourceTypes(#[command(flatten)] InspectArgs),
    /// List the resources in a .c1z
    Resources {
        #[command(flatten)]
        inspect: InspectArgs,
        /// Only resources of this type
        #[arg(short = 't', long)]
        resource_type: Option<String>,
    },
    /// List the entitlements in a .c1z
    Entitlements {
        #[command(flatten)]
        inspect: InspectArgs,
        /// Only entitlements on resources of this type
        #[arg(short = 't', long)]
        resource_type: Option<String>,
    },
    /// List the grants in a .c1z
    Grants {
        #[command(flatten)]
        inspect: InspectArgs,
        /// Only grants on resources of this type
        #[arg(short = 't', long)]
        resource_type: Option<String>,
        /// Only grants on this resource id
        #[arg(short = 'r', long)]
        resource: Option<String>,
        /// Only grants of this entitlement id
        #[arg(short = 'e', long)]
        entitlement: Option<String>,
    },
    /// Counts per resource type, entitlements and grants in a .c1z
    Stats(#[command(flatten)] InspectArgs),
    /// Sync many tenants' workspaces in one process, each in its own sandbox with its own limits
    Serve(ServeArgs),
    /// Ask a running host's health-check port (exit 0 when it answers 200): an exec probe for
    /// images without a shell
    HealthCheck(HealthCheckArgs),
    /// Print the connector's capabilities as JSON (Baton's ConnectorCapabilities, as protojson)
    Capabilities,
    /// Print the configuration schema as JSON (what ConductorOne builds its setup form from)
    Config,
}

/// The health-check port (Baton's flags): `/health`, `/ready`, `/live`, and in multi-tenant
/// mode `/metrics`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Serve /health, /ready and /live (and /metrics in `serve`) over HTTP
    #[arg(long, env = "BATON_HEALTH_CHECK", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = boolish())]
    pub health_check: bool,

    #[command(flatten)]
    pub at: HealthAddress,
}

/// Where the health checks listen (and where `health-check` asks).
#[derive(Debug, Args)]
pub struct HealthAddress {
    /// Port of the health checks
    #[arg(long, env = "BATON_HEALTH_CHECK_PORT", default_value_t = 8081)]
    pub health_check_port: u16,

    /// Address the health checks listen on (0.0.0.0 for a Kubernetes probe)
    #[arg(
        long,
        env = "BATON_HEALTH_CHECK_BIND_ADDRESS",
        default_value = "127.0.0.1"
    )]
    pub health_check_bind_address: std::net::IpAddr,
}

impl HealthAddress {
    pub fn socket(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.health_check_bind_address, self.health_check_port)
    }
}

impl HealthArgs {
    /// Where to serve the health checks, if they are on.
    pub fn address(&self) -> Option<std::net::SocketAddr> {
        self.health_check.then(|| self.at.socket())
    }
}

/// `health-check`: asks a running host on this machine (or pod) how it is.
#[derive(Debug, Args)]
pub struct HealthCheckArgs {
    #[command(flatten)]
    pub at: HealthAddress,

    /// The endpoint to ask: health, ready or live (Baton's flag) [default: health]
    #[arg(long, value_parser = ["health", "ready", "live"], conflicts_with = "path")]
    pub endpoint: Option<String>,

    /// The endpoint as a path: /health, /ready or /live
    #[arg(long, value_parser = ["/ready", "/health", "/live"])]
    pub path: Option<String>,

    /// Seconds to wait for the answer (Baton's flag)
    #[arg(long, conflicts_with = "timeout_seconds")]
    pub timeout: Option<u64>,

    /// Seconds to wait for the answer
    #[arg(long)]
    pub timeout_seconds: Option<u64>,
}

impl HealthCheckArgs {
    /// The path asked: `--endpoint`, else `--path`, else Baton's default, `/health`.
    pub fn path(&self) -> String {
        match (&self.endpoint, &self.path) {
            (Some(e), _) => format!("/{e}"),
            (None, Some(p)) => p.clone(),
            (None, None) => "/health".into(),
        }
    }

    /// `--timeout` or `--timeout-seconds`, 5 s by default (at least 1 s).
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout.or(self.timeout_seconds).unwrap_or(5).max(1))
    }
}

/// Multi-tenant mode (see the README's "Many workspaces in one process").
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The tenants file (TOML, one [[tenant]] per workspace)
    #[arg(long, env = "BATON_TENANTS")]
    pub tenants: PathBuf,

    /// Sync every tenant once, then exit (non-zero if any tenant failed)
    #[arg(long)]
    pub once: bool,

    /// A component to run instead of the bundled Segment connector (any baton:connector component)
    #[arg(long, env = "BATON_CONNECTOR")]
    pub connector: Option<PathBuf>,

    /// Where compiled components are cached [default: $XDG_CACHE_HOME/baton-segment or ~/.cache/baton-segment]
    #[arg(long, env = "BATON_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Compile components at every start instead of caching them
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,

    /// The directory tenants' token_file entries must lie in (after following links); without
    /// it, token_file is refused
    #[arg(long, env = "BATON_TENANT_SECRETS_DIR")]
    pub tenant_secrets_dir: Option<PathBuf>,

    /// The prefix of the environment variables tenants' token_env entries may name (e.g.
    /// TENANT_TOKEN_); without it, token_env is refused
    #[arg(long, env = "BATON_TENANT_ENV_PREFIX")]
    pub tenant_env_prefix: Option<String>,

    /// The directory tenants' outputs must resolve into (relative outputs are relative to it)
    #[arg(long, env = "BATON_OUTPUT_ROOT")]
    pub output_root: Option<PathBuf>,

    /// Address classes besides public ones that tenants' origins may resolve to: loopback,
    /// private, link-local (comma-separated; cloud metadata addresses are never allowed)
    #[arg(long, env = "BATON_TENANT_ALLOW_ADDRESSES", value_delimiter = ',')]
    pub tenant_allow_addresses: Vec<crate::sandbox::AddressClass>,

    #[command(flatten)]
    pub health: HealthArgs,
}

/// Warnings for secrets given as flags: they show in the process list (`ps`, /proc) to every
/// user of the machine, where the variable does not.
pub fn secret_flag_warnings(matches: &clap::ArgMatches) -> Vec<String> {
    [
        ("token", "--token", "BATON_TOKEN"),
        ("client_secret", "--client-secret", "BATON_CLIENT_SECRET"),
    ]
    .into_iter()
    .filter(|(id, _, _)| {
        matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
    })
    .map(|(_, flag, var)| {
        format!(
            "{flag} was given on the command line, where other users of this machine can read it in the \
             process list; set {var} in the environment instead"
        )
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("baton-segment").chain(args.iter().copied()))
    }

    #[test]
    fn secrets_given_as_flags_are_warned_about_and_variables_are_not() {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command()
            .try_get_matches_from(["baton-segment", "--token", "t0k3n"])
            .unwrap();
        let warnings = secret_flag_warnings(&matches);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("--token") && warnings[0].contains("BATON_TOKEN"));
        assert!(!warnings[0].contains("t0k3n"));
        assert!(Cli::from_arg_matches(&matches).is_ok());
        let none = Cli::command()
            .try_get_matches_from(["baton-segment", "--demo"])
            .unwrap();
        assert!(secret_flag_warnings(&none).is_empty());
        let serve = parse(&[
            "serve",
            "--tenants",
            "t.toml",
            "--tenant-allow-addresses",
            "loopback,private",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = serve.command else {
            panic!("serve");
        };
        assert_eq!(args.tenant_allow_addresses.len(), 2);
        assert!(
            parse(&[
                "serve",
                "--tenants",
                "t",
                "--tenant-allow-addresses",
                "metadata"
            ])
            .is_err()
        );
    }

    #[test]
    fn create_account_flags_go_together_but_not_with_other_operations() {
        let cli = parse(&[
            "--create-account-email",
            "ana@example.com",
            "--create-account-login",
            "ana@example.com",
            "--create-account-profile",
            r#"{"name":"Ana"}"#,
        ])
        .expect("the create-account flags combine");
        assert_eq!(
            cli.provision.create_account_login.as_deref(),
            Some("ana@example.com")
        );
        assert!(cli.provision.requested());

        for other in [
            ["--revoke-grant", "group:g:member:user:u"],
            ["--delete-resource", "u"],
        ] {
            for flag in [
                "--create-account-email",
                "--create-account-login",
                "--create-account-profile",
            ] {
                let mut args = vec![flag, "{}"];
                args.extend(other);
                if other[0] == "--delete-resource" {
                    args.extend(["--delete-resource-type", "user"]);
                }
                let err = parse(&args).expect_err("two operations at once");
                assert_eq!(
                    err.kind(),
                    clap::error::ErrorKind::ArgumentConflict,
                    "{args:?}"
                );
            }
        }
    }
}
