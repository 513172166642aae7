//! The Twilio Segment connector for Baton, as a WebAssembly component.
//!
//! The logic is plain Rust behind the [`env::Env`] seam and is tested natively. Built for
//! `wasm32-wasip2`, `component` exports it as `wit/connector.wit`'s interface and binds the seam
//! to the host imports, with `wasi_transport` carrying its requests over `wasi:http`.

pub mod bindings;
pub mod catalog;
pub mod connector;
pub mod entitlements;
pub mod env;
pub mod errors;
pub mod grants;
pub mod ids;
mod page_token;
pub mod provision;
pub mod resources;
pub mod segment;
mod walk;

#[cfg(target_arch = "wasm32")]
mod component;
#[cfg(target_arch = "wasm32")]
mod wasi_transport;

#[cfg(feature = "native")]
pub mod native;

#[cfg(test)]
mod testing;

pub use connector::{Connector, Settings};
