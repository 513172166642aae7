//! Compiled components cached on disk, so a host compiles a component once, not once per start.
//!
//! The key is the component's SHA-256 and the engine's compatibility hash (wasmtime version and
//! the settings that affect code), so a changed component or engine never picks up stale code.
//! Files are written to a temporary name and renamed into place, in a directory only the
//! current user can write: a cached file is native code that wasmtime loads without checking,
//! so before loading one the host checks that the file and its directory belong to this user
//! and that nobody else can write them; otherwise it compiles instead (and caches nothing).

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The file a compiled `wasm` would be cached in.
pub fn entry(dir: &Path, engine: &Engine, wasm: &[u8]) -> PathBuf {
    let component = hex(&Sha256::digest(wasm));
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    dir.join(format!("{component}-{:016x}.cwasm", hasher.finish()))
}

/// The compiled component, from the cache when it is there, else compiled and stored (a cache
/// that cannot be written only costs the next start a compile).
pub fn load_or_compile(
    dir: &Path,
    engine: &Engine,
    wasm: &[u8],
) -> anyhow::Result<(Component, bool)> {
    let path = entry(dir, engine, wasm);
    let dir_trusted = match private(dir) {
        Ok(()) => true,
        // Not there yet: `store` creates it, private.
        Err(_) if !dir.exists() => true,
        Err(why) => {
            tracing::warn!(
                "not using the component cache {}: {why}; compiling instead",
                dir.display()
            );
            false
        }
    };
    if dir_trusted && path.exists() {
        match private(&path) {
            // SAFETY: the file was written by `store` below from wasmtime's own output, under
            // a name that binds it to these component bytes and this engine configuration, and
            // it and its directory are this user's and writable by no one else.
            Ok(()) => match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, true)),
                Err(e) => tracing::warn!(
                    "ignoring the cached component {} ({e}); compiling again",
                    path.display()
                ),
            },
            Err(why) => tracing::warn!(
                "not loading the cached component {}: {why}; compiling instead",
                path.display()
            ),
        }
    }
    let component = Component::new(engine, wasm)
        .map_err(anyhow::Error::from)
        .context("compiling the connector component")?;
    if !dir_trusted {
        return Ok((component, false));
    }
    if let Err(e) = store(dir, &path, &component) {
        // Common and harmless in a read-only container: not worth a warning at every start.
        tracing::info!(
            "could not cache the compiled component in {}: {e:#}",
            dir.display()
        );
    }
    Ok((component, false))
}

fn store(dir: &Path, path: &Path, component: &Component) -> anyhow::Result<()> {
    create_private_dir(dir)?;
    let bytes = component.serialize().map_err(anyhow::Error::from)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, &bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// `Ok` when `path` (not followed if a symbolic link) belongs to this user and neither its
/// group nor others may write it; else why not.
#[cfg(unix)]
fn private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if meta.file_type().is_symlink() {
        return Err("it is a symbolic link".into());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!(
            "it belongs to uid {}, not to this user (uid {me})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "others may write it (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Without Unix ownership and modes to check, the cache is trusted as the directory is.
#[cfg(not(unix))]
fn private(path: &Path) -> Result<(), String> {
    std::fs::symlink_metadata(path)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `$XDG_CACHE_HOME/baton-segment`, else `~/.cache/baton-segment`.
pub fn default_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("baton-segment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_follows_the_component_and_the_engine() {
        let engine = Engine::default();
        let dir = Path::new("/cache");
        assert_eq!(entry(dir, &engine, b"a"), entry(dir, &engine, b"a"));
        assert_ne!(entry(dir, &engine, b"a"), entry(dir, &engine, b"b"));
        let mut other = wasmtime::Config::new();
        other.epoch_interruption(true);
        let other = Engine::new(&other).unwrap();
        assert_ne!(entry(dir, &engine, b"a"), entry(dir, &other, b"a"));
    }

    #[cfg(unix)]
    #[test]
    fn only_files_nobody_else_can_write_are_trusted() {
        use std::os::unix::fs::PermissionsExt;
        let set = |p: &Path, mode: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        create_private_dir(&cache).unwrap();
        assert_eq!(private(&cache), Ok(()));
        let file = cache.join("x.cwasm");
        std::fs::write(&file, b"code").unwrap();
        set(&file, 0o644);
        assert_eq!(private(&file), Ok(()));

        set(&file, 0o666);
        assert_eq!(
            private(&file),
            Err("others may write it (mode 666)".to_string())
        );
        set(&file, 0o600);
        set(&cache, 0o777);
        assert!(private(&cache).unwrap_err().contains("mode 777"));
        set(&cache, 0o700);

        let link = cache.join("link.cwasm");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(private(&link), Err("it is a symbolic link".to_string()));
    }

    /// A cache directory others may write is neither read nor written: the component is
    /// compiled, and what was planted there is never loaded.
    #[cfg(unix)]
    #[test]
    fn a_cache_others_can_write_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let engine = Engine::default();
        let wasm = crate::engine::contract::SEGMENT_CONNECTOR_WASM;
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        // Honest use: compiled once, then loaded.
        assert!(!load_or_compile(&cache, &engine, wasm).unwrap().1);
        assert!(load_or_compile(&cache, &engine, wasm).unwrap().1);
        // Someone opens the directory up, and plants a file where the entry was.
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
        let entry = entry(&cache, &engine, wasm);
        std::fs::write(&entry, b"not wasmtime's code").unwrap();
        let (_, cached) = load_or_compile(&cache, &engine, wasm).unwrap();
        assert!(!cached, "compiled, not loaded");
        assert_eq!(
            std::fs::read(&entry).unwrap(),
            b"not wasmtime's code",
            "left alone"
        );
    }
}
