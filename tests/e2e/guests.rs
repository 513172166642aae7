//! Test guest components, built from `tests/guests/*` for `wasm32-wasip2` on first use.
//!
//! Each guest is a cargo project of its own (its own workspace and `Cargo.lock`), built in
//! release into `<workspace>/target/guests` (a target directory of its own: the cargo running
//! the tests holds the lock on the main one).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (`tests/..`).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// Builds the guest at `tests/guests/<name>` (a cdylib crate whose library is `<lib>`) and
/// returns the component's bytes. Panics with cargo's exit status when the build fails (its
/// output goes to the test's stderr).
pub fn build_guest(name: &str, lib: &str) -> Vec<u8> {
    let root = workspace();
    let manifest = root.join("tests/guests").join(name).join("Cargo.toml");
    let target_dir = root.join("target/guests");
    let status = Command::new(env!("CARGO"))
        .arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--target", "wasm32-wasip2", "--release", "--locked"])
        .arg("--target-dir")
        .arg(&target_dir)
        // Flags meant for the host build (coverage, sanitizers, ...) do not apply to wasm.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .unwrap_or_else(|e| panic!("could not run cargo to build the {name} guest: {e}"));
    assert!(
        status.success(),
        "building the {name} guest ({}) failed: {status}",
        manifest.display()
    );
    let wasm = target_dir.join(format!("wasm32-wasip2/release/{lib}.wasm"));
    std::fs::read(&wasm).unwrap_or_else(|e| panic!("reading {}: {e}", wasm.display()))
}

/// The hostile guest (`tests/guests/hostile`): every export performs the attack named by its
/// `attack` setting.
pub fn hostile_wasm() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| build_guest("hostile", "hostile_guest"))
}

/// A guest that reads a file (`tests/guests/filesystem`): it imports `wasi:filesystem`.
pub fn filesystem_wasm() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| build_guest("filesystem", "filesystem_guest"))
}
