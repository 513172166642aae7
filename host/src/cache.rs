//! Compiled components cached on disk, so a host compiles a component once, not once per start.
//!
//! The key is the component's SHA-256 and the engine's compatibility hash (wasmtime version and
//! the settings that affect code), so a changed component or engine never picks up stale code.
//! Files are written to a temporary name and renamed into place, in a directory only the
//! current user can write: a cached file is native code that wasmtime loads without checking.

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
    if path.is_file() {
        // SAFETY: the file was written by `store` below from wasmtime's own output, under a
        // name that binds it to these component bytes and this engine configuration, in a
        // directory only this user can write.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok((component, true)),
            Err(e) => tracing::warn!(
                "ignoring the cached component {} ({e}); compiling again",
                path.display()
            ),
        }
    }
    let component = Component::new(engine, wasm)
        .map_err(anyhow::Error::from)
        .context("compiling the connector component")?;
    if let Err(e) = store(dir, &path, &component) {
        tracing::warn!(
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
}
