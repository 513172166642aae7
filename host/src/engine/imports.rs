//! What the sandbox links, and nothing more: WASI io, clocks, random and cli (stdio captured),
//! `wasi:http` through the sandbox's hooks, and the contract's host interface. A component that
//! imports anything else is refused before it runs.

use super::contract::BatonConnector;
use super::host_state::HostState;
use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, Linker};

/// Links the interfaces the sandbox grants and nothing else: WASI io, clocks, random and cli
/// (whose stdio is captured), `wasi:http` through the sandbox's hooks, and the contract's host
/// interface. No filesystem, no sockets.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    use wasmtime_wasi::cli::WasiCli;
    use wasmtime_wasi::cli::WasiCliView;
    use wasmtime_wasi::p2::bindings::{cli, random};
    use wasmtime_wasi::random::WasiRandom;

    let mut l = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_proxy_interfaces_async(&mut l)?;
    cli::exit::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    // An empty environment whose every look is counted (see `HostState`'s implementation).
    cli::environment::add_to_linker::<HostState, HasSelf<HostState>>(&mut l, |s| s)?;
    cli::terminal_input::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    cli::terminal_output::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    cli::terminal_stdin::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    cli::terminal_stdout::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    cli::terminal_stderr::add_to_linker::<HostState, WasiCli>(&mut l, HostState::cli)?;
    random::insecure::add_to_linker::<HostState, WasiRandom>(&mut l, HostState::random)?;
    random::insecure_seed::add_to_linker::<HostState, WasiRandom>(&mut l, HostState::random)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut l)?;
    BatonConnector::add_to_linker::<HostState, HasSelf<HostState>>(&mut l, |s| s)?;
    Ok(l)
}

/// Interfaces the sandbox links: WASI io, clocks, random and cli, outgoing HTTP, and the
/// contract's own interfaces. A component that imports anything else (a filesystem, sockets, …)
/// is refused before it runs.
const GRANTED_IMPORTS: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:http/types",
    "wasi:http/outgoing-handler",
    "baton:connector/types",
    "baton:connector/host",
];

/// The imports of `component` that the sandbox does not grant (versions ignored: wasmtime links
/// semver-compatible versions).
pub fn ungranted(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .filter(|name| {
            let unversioned = name.split('@').next().unwrap_or(name);
            !GRANTED_IMPORTS.contains(&unversioned)
        })
        .collect()
}
