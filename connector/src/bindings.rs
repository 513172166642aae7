//! Rust bindings generated from `wit/connector.wit`.
//!
//! The generated types are used by the connector logic on every target; the import functions
//! (host log, config, session) only work inside a component, so the logic reaches them through
//! the [`crate::env::Env`] seam instead of calling them directly.

wit_bindgen::generate!({
    path: "../wit",
    world: "baton-connector",
});

pub use baton::connector::types::*;
pub use exports::baton::connector::connector::Guest;
