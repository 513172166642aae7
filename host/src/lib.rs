//! `baton-segment`: a sandboxed wasmtime host for Baton connector components, bundled with the
//! Twilio Segment connector.
//!
//! The layers, each importing only from those below it:
//!
//! | layer | modules | job |
//! | --- | --- | --- |
//! | command line | `main.rs`, [`cli`], [`logging`], [`telemetry`] | flags and `BATON_*` variables (every standard Baton one), logs, OTLP traces, exit codes |
//! | modes | [`commands`], [`service`], [`serve`], [`health`] | one-shot sync, provisioning, inspection, capabilities and config; ConductorOne service mode; many tenants in one process; health endpoints |
//! | sync engine | [`sync`] | Baton's phases over the contract's calls, pages, concurrency, grant expansion |
//! | engine | [`engine`] | wasmtime: compiled components, instances and their calls, limits, host imports, conversions to and from Baton's records |
//! | sandbox | [`sandbox`], [`net`] | the component's only network: allowlist, credentials, caps, pacing and retries; TLS trust and proxies (shared with service mode) |
//! | formats | the `baton` crate | the `.c1z` file and ConductorOne's protocol |
//!
//! [`demo`] serves the built-in demo workspace for `--demo`.

pub mod cli;
pub mod commands;
pub mod demo;
pub mod engine;
pub mod health;
pub mod logging;
pub mod net;
pub mod sandbox;
pub mod serve;
pub mod service;
pub mod sync;
pub mod telemetry;
#[cfg(test)]
mod test_support;
