//! What the operator lets the tenants file reach. The file names secrets, paths and origins,
//! and whoever writes it (an MSP's customer, a provisioning script) is not trusted with the
//! host: without a policy a `token_env` could name the host's own credentials, a `token_file`
//! any file the host can read (sent as a bearer token to the tenant's own server), an `output`
//! any file it can write, and an origin the cloud metadata service. So:
//!
//! * secrets: `token_env` only with the prefix of `--tenant-env-prefix`, `token_file` only
//!   inside `--tenant-secrets-dir` (after following links), a regular file of at most
//!   [`MAX_TOKEN_FILE`] bytes; without the flag, that kind of source is refused;
//! * outputs: with `--output-root`, resolved to real paths under it; always distinct after
//!   resolution;
//! * origins: public addresses only, unless `--tenant-allow-addresses` names a class
//!   (loopback, private, link-local); checked at connect time as well (`sandbox::resolve`);
//! * a tenant's own component: a regular file of at most [`MAX_COMPONENT_FILE`] bytes.

use crate::sandbox::{AddressClass, AddressPolicy, Origin, Secret};
use anyhow::{Context, anyhow, bail};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// The largest token file read: a token is well under a kilobyte.
pub const MAX_TOKEN_FILE: u64 = 16 * 1024;

/// The largest component a tenant may name.
pub const MAX_COMPONENT_FILE: u64 = 64 << 20;

/// The operator's rules for the tenants file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantPolicy {
    /// Token files must resolve inside this directory (its real path).
    pub secrets_dir: Option<PathBuf>,
    /// Token variables must start with this.
    pub env_prefix: Option<String>,
    /// Outputs must resolve inside this directory (its real path).
    pub output_root: Option<PathBuf>,
    /// Address classes besides public ones that tenants may connect to.
    pub allow_addresses: Vec<AddressClass>,
}

impl TenantPolicy {
    /// Checks and resolves the operator's settings.
    pub fn new(
        secrets_dir: Option<&Path>,
        env_prefix: Option<&str>,
        output_root: Option<&Path>,
        allow_addresses: &[AddressClass],
    ) -> anyhow::Result<TenantPolicy> {
        let real_dir = |flag: &str, dir: &Path| -> anyhow::Result<PathBuf> {
            let real = dir
                .canonicalize()
                .with_context(|| format!("{flag} {}", dir.display()))?;
            if !real.is_dir() {
                bail!("{flag} {} is not a directory", dir.display());
            }
            Ok(real)
        };
        let env_prefix = match env_prefix {
            Some(p) if p.trim().is_empty() => {
                bail!("--tenant-env-prefix must not be empty: it is what keeps tenants away from the host's own variables")
            }
            Some(p) => Some(p.to_string()),
            None => None,
        };
        Ok(TenantPolicy {
            secrets_dir: secrets_dir
                .map(|d| real_dir("--tenant-secrets-dir", d))
                .transpose()?,
            env_prefix,
            output_root: output_root
                .map(|d| real_dir("--output-root", d))
                .transpose()?,
            allow_addresses: allow_addresses.to_vec(),
        })
    }

    /// Where tenants' runs may connect.
    pub fn addresses(&self) -> AddressPolicy {
        AddressPolicy::public_and(&self.allow_addresses)
    }

    /// A `token_env` entry, if the policy allows it.
    pub fn token_env(&self, var: &str) -> anyhow::Result<String> {
        let Some(prefix) = &self.env_prefix else {
            bail!(
                "token_env = {var:?}: tenants may not read environment variables unless the operator sets \
                 --tenant-env-prefix (BATON_TENANT_ENV_PREFIX)"
            );
        };
        if !var.starts_with(prefix.as_str()) || var.len() == prefix.len() {
            bail!("token_env = {var:?}: tenants may read only variables whose names start with {prefix:?}");
        }
        Ok(var.to_string())
    }

    /// A `token_file` entry (absolute, or relative to the secrets directory), if the policy
    /// allows it: its path, which must lie in the secrets directory.
    pub fn token_file(&self, file: &Path) -> anyhow::Result<ConfinedFile> {
        let Some(dir) = &self.secrets_dir else {
            bail!(
                "token_file = {}: tenants may not read files unless the operator sets --tenant-secrets-dir \
                 (BATON_TENANT_SECRETS_DIR)",
                file.display()
            );
        };
        let path = if file.is_absolute() {
            file.to_path_buf()
        } else {
            dir.join(file)
        };
        let confined = ConfinedFile {
            path,
            dir: dir.clone(),
        };
        // Checked now for a clear error at start, and again at every read (the file may change,
        // or appear later: a missing file fails the tenant's runs, not the whole host).
        if confined.path.exists() {
            confined.resolve()?;
        } else if !lexical(&confined.path).starts_with(dir) {
            bail!(
                "token_file = {}: outside the secrets directory {} (--tenant-secrets-dir)",
                file.display(),
                dir.display()
            );
        }
        Ok(confined)
    }

    /// Where a tenant's `.c1z` goes: its real path (the directory's links followed; a link at
    /// the file itself is replaced by the finished file, not followed).
    pub fn output(&self, base: &Path, output: &Path) -> anyhow::Result<PathBuf> {
        let joined = match &self.output_root {
            Some(root) if !output.is_absolute() => root.join(output),
            _ => base.join(output),
        };
        let name = match joined.file_name() {
            Some(name) if !matches!(Path::new(name).components().next(), Some(Component::ParentDir)) => {
                name.to_os_string()
            }
            _ => bail!("output = {}: not a file name", output.display()),
        };
        let parent = joined.parent().unwrap_or(Path::new("."));
        let real = match parent.canonicalize() {
            Ok(dir) => dir.join(&name),
            Err(_) if self.output_root.is_none() => lexical(&joined),
            Err(e) => bail!(
                "output = {}: its directory {} cannot be resolved ({e})",
                output.display(),
                parent.display()
            ),
        };
        if let Some(root) = &self.output_root
            && !real.starts_with(root)
        {
            bail!(
                "output = {}: resolves to {}, outside the output root {} (--output-root)",
                output.display(),
                real.display(),
                root.display()
            );
        }
        Ok(real)
    }

    /// Refuses an origin whose host is an IP literal of a class the policy does not allow (a
    /// name is checked when it is resolved, at every connection).
    pub fn origin(&self, origin: &Origin) -> anyhow::Result<()> {
        let bare = origin.host.trim_start_matches('[').trim_end_matches(']');
        if bare == "localhost" || bare.ends_with(".localhost") {
            if let Err(class) = self.addresses().check(std::net::Ipv4Addr::LOCALHOST.into()) {
                bail!("{origin} is this machine ({class}); tenants may not reach it unless the operator allows loopback (--tenant-allow-addresses loopback)");
            }
        }
        self.addresses()
            .check_literal(&origin.host)
            .map_err(|(ip, class)| anyhow!("{origin}: {ip} is a {class} address, which tenants may not reach{}", allow_hint(class)))
    }
}

fn allow_hint(class: AddressClass) -> String {
    match class {
        AddressClass::Loopback | AddressClass::Private | AddressClass::LinkLocal => {
            format!(" unless the operator allows it (--tenant-allow-addresses {class})")
        }
        _ => String::new(),
    }
}

/// `path` with `.` and `..` folded without touching the filesystem (for outputs whose directory
/// does not exist yet, when no output root confines them).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A token file that must stay inside a directory.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfinedFile {
    pub path: PathBuf,
    /// The real path of the secrets directory.
    pub dir: PathBuf,
}

impl ConfinedFile {
    /// Its real path, if it is inside the directory.
    fn resolve(&self) -> anyhow::Result<PathBuf> {
        let real = self.path.canonicalize().map_err(|e| {
            anyhow!(
                "cannot read the token file {}: {}",
                self.path.display(),
                e.kind()
            )
        })?;
        if !real.starts_with(&self.dir) {
            bail!(
                "the token file {} resolves to {}, outside the secrets directory {} (--tenant-secrets-dir)",
                self.path.display(),
                real.display(),
                self.dir.display()
            );
        }
        Ok(real)
    }

    pub fn read(&self) -> anyhow::Result<Secret> {
        read_token_file(&self.resolve()?)
    }
}

/// Reads a token file: a regular file of at most [`MAX_TOKEN_FILE`] bytes (not a device, a
/// FIFO or a directory, which could hang or exhaust the host).
pub fn read_token_file(path: &Path) -> anyhow::Result<Secret> {
    let text = read_regular(path, MAX_TOKEN_FILE, "token file")?;
    let text = String::from_utf8(text)
        .map_err(|_| anyhow!("the token file {} is not text", path.display()))?;
    let value = text.trim();
    if value.is_empty() {
        bail!("the token from {} is empty", path.display());
    }
    Ok(Secret::new(value))
}

/// The contents of `path` if it is a regular file of at most `max` bytes.
pub fn read_regular(path: &Path, max: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    let cannot = |e: std::io::Error| anyhow!("cannot read the {what} {}: {}", path.display(), e.kind());
    let file = std::fs::File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        bail!("the {what} {} is not a regular file", path.display());
    }
    if meta.len() > max {
        bail!(
            "the {what} {} is {} bytes, more than the {} allowed",
            path.display(),
            meta.len(),
            max
        );
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // It may grow between the check and the read: never read past the cap.
    file.take(max + 1).read_to_end(&mut bytes).map_err(cannot)?;
    if bytes.len() as u64 > max {
        bail!("the {what} {} is larger than the {max} bytes allowed", path.display());
    }
    Ok(bytes)
}
