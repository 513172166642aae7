//! Builds the Segment connector component (`connector/`, for `wasm32-wasip2`) and hands its
//! path to the host, which embeds it. Set `BATON_SEGMENT_COMPONENT=/path/to.wasm` to embed a
//! prebuilt component instead (e.g. in a container build that builds it in its own stage).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=BATON_SEGMENT_COMPONENT");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dest = out.join("segment_connector.wasm");

    if let Some(prebuilt) = env::var_os("BATON_SEGMENT_COMPONENT") {
        let prebuilt = PathBuf::from(prebuilt);
        println!("cargo:rerun-if-changed={}", prebuilt.display());
        copy(&prebuilt, &dest);
        return;
    }

    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .expect("host/ sits in the workspace")
        .to_path_buf();
    for watched in [
        "connector/src",
        "connector/Cargo.toml",
        "wit",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    ensure_wasm_target();

    // A target directory of its own: the outer cargo holds the lock on the main one.

    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("component");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "--package",
            "segment-connector",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "component",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        // Flags meant for the host build (coverage, sanitizers, ...) do not apply to wasm.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .expect("could not run cargo to build the connector component");
    if !status.success() {
        panic!(
            "building the connector component failed (is the wasm32-wasip2 target installed? \
             `rustup toolchain install` in the workspace installs it from rust-toolchain.toml)"
        );
    }
    copy(
        &target_dir.join("wasm32-wasip2/component/segment_connector.wasm"),
        &dest,
    );
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), to.display()));
}

/// Adds the wasm32-wasip2 target through rustup when the toolchain lacks it (rustup installs a
/// missing toolchain from rust-toolchain.toml with its targets, but not a missing target of a
/// toolchain that is already there).
fn ensure_wasm_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", "wasm32-wasip2"])
        .output();
    let installed = libdir
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).exists())
        .unwrap_or(false);
    if installed {
        return;
    }
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", "wasm32-wasip2"]);
    if let Some(toolchain) = env::var_os("RUSTUP_TOOLCHAIN") {
        rustup.arg("--toolchain").arg(toolchain);
    }
    println!("cargo:warning=installing the wasm32-wasip2 target with rustup");
    match rustup.status() {
        Ok(s) if s.success() => {}
        _ => println!(
            "cargo:warning=could not add the wasm32-wasip2 target; run `rustup target add wasm32-wasip2`"
        ),
    }
}
