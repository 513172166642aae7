//! The contract: bindings generated from `wit/connector.wit` (its types, the exported
//! `connector` interface, the `host` imports) and the bundled Segment component.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "baton-connector",
    exports: { default: async },
    additional_derives: [PartialEq],
});

pub use self::baton::connector::types::*;
pub use exports::baton::connector::connector::GrantRecord;

/// The component built from `connector/` by this crate's build script.
pub const SEGMENT_CONNECTOR_WASM: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/segment_connector.wasm"));
