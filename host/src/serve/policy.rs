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
//!   (loopback, private, link-local); checked at connect time as well (`net::resolve`);
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
                bail!(
                    "--tenant-env-prefix must not be empty: it is what keeps tenants away from the host's own variables"
                )
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
            bail!(
                "token_env = {var:?}: tenants may read only variables whose names start with {prefix:?}"
            );
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
            Some(name)
                if !matches!(
                    Path::new(name).components().next(),
                    Some(Component::ParentDir)
                ) =>
            {
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
        // Named, not resolved: refused here for a clear error at start (the resolver would
        // refuse it at every connection anyway).
        if (bare == "localhost" || bare.ends_with(".localhost"))
            && let Err(class) = self.addresses().check(std::net::Ipv4Addr::LOCALHOST.into())
        {
            bail!(
                "{origin} is this machine, a {class} address, which tenants may not reach unless the operator \
                 allows it (--tenant-allow-addresses loopback)"
            );
        }
        self.addresses()
            .check_literal(&origin.host)
            .map_err(|(ip, class)| {
                anyhow!(
                    "{origin}: {ip} is a {class} address, which tenants may not reach{}",
                    allow_hint(class)
                )
            })
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
    let cannot =
        |e: std::io::Error| anyhow!("cannot read the {what} {}: {}", path.display(), e.kind());
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    // Opening a FIFO would wait for a writer (forever): open without waiting, then refuse
    // anything that is not a regular file. Never through a link swapped in since the check.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        libc::O_NONBLOCK | libc::O_NOFOLLOW,
    );
    let real = path.canonicalize().map_err(cannot)?;
    let file = options.open(&real).map_err(cannot)?;
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
        bail!(
            "the {what} {} is larger than the {max} bytes allowed",
            path.display()
        );
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::config::parse;

    /// A secrets directory with `acme` in it, an output root, and a policy over both.
    struct Setup {
        dir: tempfile::TempDir,
        policy: TenantPolicy,
    }

    fn setup(allow: &[AddressClass]) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets");
        let outputs = dir.path().join("out");
        std::fs::create_dir_all(&secrets).unwrap();
        std::fs::create_dir_all(outputs.join("sub")).unwrap();
        std::fs::write(secrets.join("acme"), "acme-token\n").unwrap();
        let policy =
            TenantPolicy::new(Some(&secrets), Some("TENANT_"), Some(&outputs), allow).unwrap();
        Setup { dir, policy }
    }

    fn tenant(extra: &str) -> String {
        format!("[[tenant]]\nid = \"t\"\noutput = \"t.c1z\"\n{extra}\n")
    }

    impl Setup {
        fn parse(&self, text: &str) -> anyhow::Result<Vec<crate::serve::config::Tenant>> {
            parse(text, self.dir.path(), &self.policy)
        }

        fn refused(&self, text: &str) -> String {
            format!("{:#}", self.parse(text).expect_err("refused"))
        }
    }

    #[test]
    fn without_a_policy_tenants_read_no_secret_at_all() {
        let none = TenantPolicy::default();
        let dir = tempfile::tempdir().unwrap();
        let err = |text: &str| format!("{:#}", parse(text, dir.path(), &none).unwrap_err());
        assert!(err(&tenant("token_env = \"ACME\"")).contains("--tenant-env-prefix"));
        // The attack: a host file sent as a bearer token.
        assert!(err(&tenant("token_file = \"/etc/hostname\"")).contains("--tenant-secrets-dir"));
        assert!(
            TenantPolicy::new(None, Some(" "), None, &[]).is_err(),
            "an empty prefix"
        );
    }

    #[test]
    fn token_variables_need_the_prefix() {
        let s = setup(&[]);
        assert!(s.parse(&tenant("token_env = \"TENANT_ACME\"")).is_ok());
        for var in [
            "BATON_CLIENT_SECRET",
            "AWS_SECRET_ACCESS_KEY",
            "TENANT_",
            "tenant_acme",
        ] {
            let err = s.refused(&tenant(&format!("token_env = \"{var}\"")));
            assert!(err.contains("TENANT_"), "{var}: {err}");
        }
    }

    #[test]
    fn token_files_stay_in_the_secrets_directory() {
        let s = setup(&[]);
        let secrets = s.dir.path().join("secrets");
        let t = s.parse(&tenant("token_file = \"acme\"")).unwrap();
        assert_eq!(t[0].token.read().unwrap().expose(), "acme-token");
        let absolute = format!("token_file = \"{}\"", secrets.join("acme").display());
        assert!(s.parse(&tenant(&absolute)).is_ok());
        // Kubernetes mounts secrets as links inside the directory: followed.
        std::fs::create_dir(secrets.join("..data")).unwrap();
        std::fs::write(secrets.join("..data/globex"), "globex-token").unwrap();
        std::os::unix::fs::symlink("..data/globex", secrets.join("globex")).unwrap();
        let t = s.parse(&tenant("token_file = \"globex\"")).unwrap();
        assert_eq!(t[0].token.read().unwrap().expose(), "globex-token");

        for escape in ["/etc/hostname", "../secrets-elsewhere", "sub/../../x"] {
            let err = s.refused(&tenant(&format!("token_file = \"{escape}\"")));
            assert!(
                err.contains("outside the secrets directory"),
                "{escape}: {err}"
            );
        }
        // A link out of the directory: refused when the file is read in.
        std::os::unix::fs::symlink("/etc/hostname", secrets.join("host")).unwrap();
        let err = s.refused(&tenant("token_file = \"host\""));
        assert!(err.contains("outside the secrets directory"), "{err}");
        // ... and when it becomes one after the file was read in.
        let t = s.parse(&tenant("token_file = \"later\"")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", secrets.join("later")).unwrap();
        let err = format!("{:#}", t[0].token.read().unwrap_err());
        assert!(err.contains("outside the secrets directory"), "{err}");
    }

    #[test]
    fn token_files_are_small_regular_files() {
        let s = setup(&[]);
        let secrets = s.dir.path().join("secrets");
        std::fs::write(secrets.join("big"), vec![b'x'; MAX_TOKEN_FILE as usize + 1]).unwrap();
        let t = s.parse(&tenant("token_file = \"big\"")).unwrap();
        assert!(format!("{:#}", t[0].token.read().unwrap_err()).contains("more than"));
        std::fs::create_dir(secrets.join("dir")).unwrap();
        let t = s.parse(&tenant("token_file = \"dir\"")).unwrap();
        assert!(format!("{:#}", t[0].token.read().unwrap_err()).contains("not a regular file"));
        // A FIFO would block the read forever.
        let fifo = secrets.join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let t = s.parse(&tenant("token_file = \"fifo\"")).unwrap();
        assert!(format!("{:#}", t[0].token.read().unwrap_err()).contains("not a regular file"));
    }

    #[test]
    fn outputs_resolve_under_the_root_and_are_distinct_after_resolution() {
        let s = setup(&[]);
        let root = s.dir.path().join("out").canonicalize().unwrap();
        let t = s.parse(&tenant("token_env = \"TENANT_A\"")).unwrap();
        assert_eq!(t[0].output, root.join("t.c1z"));
        for escape in ["../escape.c1z", "/tmp/escape.c1z", "sub/../../escape.c1z"] {
            let text = format!(
                "[[tenant]]\nid = \"t\"\ntoken_env = \"TENANT_A\"\noutput = \"{escape}\"\n"
            );
            let err = s.refused(&text);
            assert!(err.contains("outside the output root"), "{escape}: {err}");
        }
        // A directory link out of the root.
        std::os::unix::fs::symlink("/tmp", root.join("out-link")).unwrap();
        let text =
            "[[tenant]]\nid = \"t\"\ntoken_env = \"TENANT_A\"\noutput = \"out-link/x.c1z\"\n";
        assert!(s.refused(text).contains("outside the output root"));
        // Two spellings of one file.
        let two = "[[tenant]]\nid = \"a\"\ntoken_env = \"TENANT_A\"\noutput = \"same.c1z\"\n\
                   [[tenant]]\nid = \"b\"\ntoken_env = \"TENANT_B\"\noutput = \"sub/../same.c1z\"\n";
        assert!(s.refused(two).contains("another tenant's too"));
    }

    #[test]
    fn outputs_are_compared_after_resolution_without_a_root_too() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let policy = TenantPolicy {
            env_prefix: Some("T_".into()),
            ..TenantPolicy::default()
        };
        let two = "[[tenant]]\nid = \"a\"\ntoken_env = \"T_A\"\noutput = \"same.c1z\"\n\
                   [[tenant]]\nid = \"b\"\ntoken_env = \"T_B\"\noutput = \"./sub/../same.c1z\"\n";
        let err = format!("{:#}", parse(two, dir.path(), &policy).unwrap_err());
        assert!(err.contains("another tenant's too"), "{err}");
    }

    #[test]
    fn private_and_metadata_origins_are_refused_unless_allowed() {
        let strict = setup(&[]);
        let origin = |url: &str, extra: &str| {
            tenant(&format!(
                "token_env = \"TENANT_A\"\nbase_url = \"{url}\"\n{extra}"
            ))
        };
        for url in [
            "http://127.0.0.1:9000",
            "http://localhost:9000",
            "http://[::1]:9000",
            "https://10.0.0.5",
            "https://169.254.10.10",
            "https://169.254.169.254",
            "https://[fd00:ec2::254]",
        ] {
            let err = strict.refused(&origin(url, ""));
            assert!(err.contains("may not reach"), "{url}: {err}");
        }
        assert!(
            strict
                .parse(&origin("https://api.segmentapis.com", ""))
                .is_ok()
        );
        let extra = "[tenant.limits]\nallowed_origins = [\"https://169.254.169.254\"]";
        assert!(
            strict
                .refused(&origin("https://api.segmentapis.com", extra))
                .contains("allowed_origins")
        );

        let allowing = setup(&[
            AddressClass::Loopback,
            AddressClass::Private,
            AddressClass::LinkLocal,
        ]);
        for url in [
            "http://127.0.0.1:9000",
            "http://localhost:9000",
            "https://10.0.0.5",
            "https://169.254.10.10",
        ] {
            assert!(allowing.parse(&origin(url, "")).is_ok(), "{url}");
        }
        let err = allowing.refused(&origin("https://169.254.169.254", ""));
        assert!(err.contains("cloud metadata"), "never allowed: {err}");
        let t = allowing
            .parse(&origin("http://127.0.0.1:9000", ""))
            .unwrap();
        assert_eq!(t[0].limits.addresses, allowing.policy.addresses());
    }
}
