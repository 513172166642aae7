//! The Twilio Segment connector for Baton, as a WebAssembly component.
//!
//! The logic is plain Rust behind the [`env::Env`] seam and is tested natively; `component`
//! binds it to `wasi:http` and the host imports of `wit/connector.wit` when built for
//! `wasm32-wasip2`.

pub mod bindings;
pub mod catalog;
pub mod connector;
pub mod entitlements;
pub mod env;
pub mod errors;
pub mod grants;
pub mod ids;
pub mod plan;
pub mod provision;
pub mod resources;
pub mod segment;
mod walk;

#[cfg(target_arch = "wasm32")]
mod component;

#[cfg(feature = "native")]
pub mod native;

#[cfg(test)]
mod testing;

pub use connector::{Connector, Settings};
