//! The tenants file of `baton-segment serve`: one entry per Segment workspace, with where its
//! token comes from (never the token itself), where its `.c1z` goes, how often it syncs, and
//! the limits its connector runs under.
//!
//! ```toml
//! [[tenant]]
//! id = "acme"
//! base_url = "https://api.segmentapis.com"
//! token_env = "ACME_SEGMENT_TOKEN"     # or token_file = "/run/secrets/acme"
//! output = "/data/acme.c1z"
//! interval = "1h"
//! [tenant.limits]
//! memory_mib = 64
//! ```
//!
//! The file is not trusted with the host: what it may name is the operator's
//! [`TenantPolicy`].

use super::policy::{ConfinedFile, TenantPolicy, read_token_file};
use crate::sandbox::{AddressPolicy, Origin, Secret};
use anyhow::{Context, anyhow, bail};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tenant: Vec<TenantEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantEntry {
    id: String,
    #[serde(default = "default_base_url")]
    base_url: String,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    output: PathBuf,
    #[serde(default)]
    interval: Option<String>,
    /// A component of its own instead of the bundled Segment connector.
    #[serde(default)]
    connector: Option<PathBuf>,
    /// Settings its component reads (`config` in the contract), e.g. `page-size`.
    #[serde(default)]
    settings: BTreeMap<String, String>,
    #[serde(default)]
    limits: LimitsEntry,
}

fn default_base_url() -> String {
    crate::cli::DEFAULT_BASE_URL.into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsEntry {
    memory_mib: Option<u64>,
    cpu_per_call: Option<String>,
    wall_per_call: Option<String>,
    wall_per_sync: Option<String>,
    concurrent_requests: Option<usize>,
    request_budget: Option<u64>,
    response_max_mib: Option<u64>,
    session_mib: Option<u64>,
    allowed_origins: Option<Vec<String>>,
}

/// Where a tenant's token is read from, each run (so a rotated secret is picked up).
#[derive(Debug, Clone, PartialEq)]
pub enum TokenSource {
    Env(String),
    /// A file (a regular one, of at most `policy::MAX_TOKEN_FILE` bytes).
    File(PathBuf),
    /// A file that must stay in the operator's secrets directory (checked at every read).
    Confined(ConfinedFile),
}

impl TokenSource {
    /// The token, or an error that names the source (never the value).
    pub fn read(&self) -> anyhow::Result<Secret> {
        match self {
            TokenSource::Env(var) => {
                let value = std::env::var(var)
                    .map_err(|_| anyhow!("the environment variable {var} is not set"))?;
                let value = value.trim();
                if value.is_empty() {
                    bail!("the token from {} is empty", self.describe());
                }
                Ok(Secret::new(value))
            }
            TokenSource::File(path) => read_token_file(path),
            TokenSource::Confined(file) => file.read(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            TokenSource::Env(var) => format!("${var}"),
            TokenSource::File(path) => path.display().to_string(),
            TokenSource::Confined(file) => file.path.display().to_string(),
        }
    }
}

/// The limits one tenant's connector runs under.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantLimits {
    /// Linear memory of each of its component instances (all memories together).
    pub memory_bytes: usize,
    /// Guest execution time per call.
    pub cpu_per_call: Duration,
    /// Time per call, including waiting for HTTP.
    pub wall_per_call: Duration,
    /// Time for a whole sync.
    pub wall_per_sync: Duration,
    /// Segment requests in flight at once (and instances working at once).
    pub concurrent_requests: usize,
    /// Requests one sync may make; `None` for no limit.
    pub request_budget: Option<u64>,
    pub response_max_bytes: u64,
    /// Host memory its session store may hold (what its instances share during a run).
    pub session_bytes: usize,
    /// Origins its component may reach; the token goes only to the base URL's.
    pub allowed_origins: Vec<Origin>,
    /// Which addresses those origins may resolve to (checked at every connection).
    pub addresses: AddressPolicy,
}

pub const DEFAULT_MEMORY_MIB: u64 = 128;
/// How often a tenant syncs when its entry does not say.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub id: String,
    /// The Segment API's origin (`base_url`, checked once here).
    pub origin: Origin,
    pub token: TokenSource,
    pub output: PathBuf,
    /// Time between the start of one sync and the next (ignored with `--once`).
    pub interval: Duration,
    /// The tenant's own component; `None` for the host's.
    pub connector: Option<PathBuf>,
    /// Settings its component reads; never secrets.
    pub settings: BTreeMap<String, String>,
    pub limits: TenantLimits,
}

fn duration(
    field: &str,
    tenant: &str,
    value: Option<&String>,
    default: Duration,
) -> anyhow::Result<Duration> {
    match value {
        None => Ok(default),
        Some(v) => humantime::parse_duration(v)
            .map_err(|e| anyhow!("tenant {tenant:?}: {field} = {v:?} is not a duration like \"30s\", \"10m\" or \"1h\" ({e})")),
    }
}

/// Reads and checks a tenants file under the operator's `policy`. Relative outputs are
/// relative to the output root (else to the file), relative token files to the secrets
/// directory, relative connectors to the file.
pub fn load(path: &Path, policy: &TenantPolicy) -> anyhow::Result<Vec<Tenant>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the tenants file {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base, policy).with_context(|| format!("in the tenants file {}", path.display()))
}

pub fn parse(text: &str, base: &Path, policy: &TenantPolicy) -> anyhow::Result<Vec<Tenant>> {
    let file: File = toml::from_str(text).map_err(|e| anyhow!("{e}"))?;
    if file.tenant.is_empty() {
        bail!("no [[tenant]] entries");
    }
    let mut ids = HashSet::new();
    let mut outputs = HashSet::new();
    let mut tenants = vec![];
    for t in file.tenant {
        let id = t.id.trim().to_string();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            bail!(
                "tenant id {:?} must be letters, digits, '-', '_' or '.'",
                t.id
            );
        }
        if !ids.insert(id.clone()) {
            bail!("tenant id {id:?} appears twice");
        }
        let token = match (t.token_env, t.token_file) {
            (Some(var), None) => TokenSource::Env(
                policy
                    .token_env(&var)
                    .map_err(|e| anyhow!("tenant {id:?}: {e}"))?,
            ),
            (None, Some(file)) => TokenSource::Confined(
                policy
                    .token_file(&file)
                    .map_err(|e| anyhow!("tenant {id:?}: {e}"))?,
            ),
            _ => bail!("tenant {id:?}: set exactly one of token_env and token_file"),
        };
        let origin =
            Origin::for_token(&t.base_url).map_err(|e| anyhow!("tenant {id:?}: base_url: {e}"))?;
        policy
            .origin(&origin)
            .map_err(|e| anyhow!("tenant {id:?}: base_url: {e}"))?;
        // Two spellings of one file are one file: compared after resolution.
        let output = policy
            .output(base, &t.output)
            .map_err(|e| anyhow!("tenant {id:?}: {e}"))?;
        if !outputs.insert(output.clone()) {
            bail!(
                "tenant {id:?}: output {} is another tenant's too",
                output.display()
            );
        }
        let l = t.limits;
        let allowed_origins = match l.allowed_origins {
            None => vec![origin.clone()],
            Some(list) => {
                let mut origins = vec![origin.clone()];
                for o in list {
                    let o = Origin::parse(&o)
                        .map_err(|e| anyhow!("tenant {id:?}: allowed_origins: {e}"))?;
                    policy
                        .origin(&o)
                        .map_err(|e| anyhow!("tenant {id:?}: allowed_origins: {e}"))?;
                    if !origins.contains(&o) {
                        origins.push(o);
                    }
                }
                origins
            }
        };
        let limit = |name, value, default_secs| {
            duration(name, &id, value, Duration::from_secs(default_secs))
        };
        let limits = TenantLimits {
            memory_bytes: (l.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB).clamp(1, 4096) << 20)
                as usize,
            cpu_per_call: limit("cpu_per_call", l.cpu_per_call.as_ref(), 10)?,
            wall_per_call: limit("wall_per_call", l.wall_per_call.as_ref(), 600)?,
            wall_per_sync: limit("wall_per_sync", l.wall_per_sync.as_ref(), 3600)?,
            concurrent_requests: l.concurrent_requests.unwrap_or(4).clamp(1, 64),
            request_budget: l.request_budget,
            response_max_bytes: l.response_max_mib.unwrap_or(32).clamp(1, 1024) << 20,
            session_bytes: (l.session_mib.unwrap_or(64).clamp(1, 1024) << 20) as usize,
            allowed_origins,
            addresses: policy.addresses(),
        };
        let interval = duration("interval", &id, t.interval.as_ref(), DEFAULT_INTERVAL)?;
        if interval < Duration::from_secs(1) {
            bail!("tenant {id:?}: interval must be at least 1s");
        }
        let connector = t.connector.map(|c| base.join(c));
        // Settings reach the component; credentials must not.
        for key in t.settings.keys() {
            let k = key.to_ascii_lowercase();
            if ["token", "secret", "password", "authorization"]
                .iter()
                .any(|w| k.contains(w))
            {
                bail!(
                    "tenant {id:?}: settings.{key}: credentials go in token_env or token_file, never to the component"
                );
            }
            if k == "base-url" {
                bail!("tenant {id:?}: settings.{key}: set base_url instead");
            }
        }
        let settings = t.settings;
        tenants.push(Tenant {
            id,
            origin: origin.clone(),
            token,
            output,
            interval,
            connector,
            settings,
            limits,
        });
    }
    Ok(tenants)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::AddressClass;

    const EXAMPLE: &str = r#"
[[tenant]]
id = "acme"
base_url = "https://api.segmentapis.com"
token_env = "ACME_SEGMENT_TOKEN"     # or token_file = "/run/secrets/acme"
output = "/data/acme.c1z"
interval = "1h"
[tenant.limits]
memory_mib = 64

[[tenant]]
id = "globex"
base_url = "https://eu1.api.segmentapis.com"
token_file = "globex"
output = "globex.c1z"
[tenant.limits]
cpu_per_call = "500ms"
wall_per_sync = "10m"
concurrent_requests = 2
request_budget = 5000
response_max_mib = 8
allowed_origins = ["http://127.0.0.1:9000"]
"#;

    /// A policy that lets tenants read `ACME_*` variables and files in `secrets`.
    fn policy(secrets: &Path) -> TenantPolicy {
        TenantPolicy::new(
            Some(secrets),
            Some("ACME_"),
            None,
            &[AddressClass::Loopback],
        )
        .unwrap()
    }

    #[test]
    fn the_documented_shape_works_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets");
        std::fs::create_dir(&secrets).unwrap();
        let policy = policy(&secrets);
        let t = parse(EXAMPLE, dir.path(), &policy).unwrap();
        assert_eq!(t[0].id, "acme");
        assert_eq!(t[0].token, TokenSource::Env("ACME_SEGMENT_TOKEN".into()));
        assert_eq!(t[0].interval, Duration::from_secs(3600));
        assert_eq!(t[0].limits.memory_bytes, 64 << 20);
        assert_eq!(t[0].limits.concurrent_requests, 4);
        assert_eq!(
            t[0].limits.allowed_origins,
            vec![Origin::parse("https://api.segmentapis.com").unwrap()]
        );
        assert_eq!(t[0].output, PathBuf::from("/data/acme.c1z"));
        let real = secrets.canonicalize().unwrap();
        assert_eq!(
            t[1].token,
            TokenSource::Confined(ConfinedFile {
                path: real.join("globex"),
                dir: real,
            })
        );
        assert_eq!(
            t[1].output,
            dir.path().canonicalize().unwrap().join("globex.c1z")
        );
        assert_eq!(t[1].interval, DEFAULT_INTERVAL);
        assert_eq!(t[1].limits.cpu_per_call, Duration::from_millis(500));
        assert_eq!(t[1].limits.request_budget, Some(5000));
        assert_eq!(t[1].limits.response_max_bytes, 8 << 20);
        assert_eq!(t[0].limits.session_bytes, 64 << 20);
        assert_eq!(t[1].limits.allowed_origins.len(), 2);
        assert_eq!(t[1].limits.addresses, policy.addresses());
    }

    #[test]
    fn mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let policy = policy(dir.path());
        let err = |text: &str| format!("{:#}", parse(text, dir.path(), &policy).unwrap_err());
        assert!(err("").contains("no [[tenant]]"));
        let one = |extra: &str| format!("[[tenant]]\nid = \"a\"\noutput = \"a.c1z\"\n{extra}");
        assert!(err(&one("")).contains("exactly one of token_env and token_file"));
        assert!(err(&one("token_env = \"ACME_X\"\ntoken_file = \"f\"")).contains("exactly one"));
        assert!(
            err(&one("token_env = \"ACME_X\"\ninterval = \"soon\""))
                .contains("interval = \"soon\"")
        );
        assert!(err(&one("token_env = \"ACME_X\"\ninterval = \"0s\"")).contains("at least 1s"));
        assert!(
            err(&one("token_env = \"ACME_X\"\ntokn = 1")).contains("tokn"),
            "unknown keys are refused"
        );
        assert!(err(&one("token_env = \"ACME_X\"\nbase_url = \"ftp://x\"")).contains("base_url"));
        assert!(
            err(&one(
                "token_env = \"ACME_X\"\nbase_url = \"http://api.segmentapis.com\""
            ))
            .contains("unencrypted")
        );
        let twice = format!(
            "{}\n{}",
            one("token_env = \"ACME_X\""),
            one("token_env = \"ACME_Y\"")
        );
        assert!(err(&twice).contains("appears twice"));
        let secret = one("token_env = \"ACME_X\"\n[tenant.settings]\napi-token = \"x\"");
        assert!(err(&secret).contains("credentials go in token_env or token_file"));
    }

    #[test]
    fn tokens_are_read_from_their_source_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t");
        std::fs::write(&file, "s3cr3t-token\n").unwrap();
        assert_eq!(
            TokenSource::File(file.clone()).read().unwrap().expose(),
            "s3cr3t-token"
        );
        let missing = TokenSource::File(dir.path().join("missing"))
            .read()
            .unwrap_err()
            .to_string();
        assert!(missing.contains("cannot read the token file"));
        let unset = TokenSource::Env("BATON_TEST_SURELY_UNSET_VARIABLE".into())
            .read()
            .unwrap_err()
            .to_string();
        assert!(unset.contains("BATON_TEST_SURELY_UNSET_VARIABLE is not set"));
        std::fs::write(&file, "  \n").unwrap();
        assert!(
            TokenSource::File(file)
                .read()
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
    }
}
