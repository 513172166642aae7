//! `baton-segment`: a sandboxed wasmtime host for Baton connector components, bundled with the
//! Twilio Segment connector.
//!
//! * [`runtime`]: the engine, the compiled component and its instances (limits, epochs).
//! * [`sandbox`]: the component's only network: allowlist, credential injection, caps, retries.
//! * [`sync`]: the generic sync engine (phases, concurrency, grant expansion).
//! * [`convert`] and the `baton` crate: the `.c1z` output.
//! * [`app`], [`cli`], [`inspect`]: the `baton-segment` command.

pub mod app;
pub mod cache;
pub mod cli;
pub mod component;
pub mod convert;
pub mod health;
pub mod inspect;
pub mod limits;
pub mod logging;
pub mod provision;
pub mod redact;
pub mod runtime;
pub mod sandbox;
pub mod serve;
pub mod service;
pub mod session;
pub mod summary;
pub mod sync;
