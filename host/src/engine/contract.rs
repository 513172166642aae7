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

impl ConnectorError {
    /// What the connector said, as text.
    pub fn message(&self) -> String {
        match self {
            ConnectorError::Unauthenticated(m)
            | ConnectorError::PermissionDenied(m)
            | ConnectorError::NotFound(m)
            | ConnectorError::InvalidArgument(m)
            | ConnectorError::AlreadyExists(m)
            | ConnectorError::FailedPrecondition(m)
            | ConnectorError::Unavailable(m)
            | ConnectorError::Unimplemented(m)
            | ConnectorError::Internal(m) => m.clone(),
            ConnectorError::RateLimited(info) => {
                format!("{} (retry after {} ms)", info.message, info.retry_after_ms)
            }
        }
    }

    /// Whether the retry policy may call again after this error, and as what kind of failure.
    pub fn retryable(&self) -> Option<crate::sandbox::pacing::CallFailure> {
        use crate::sandbox::pacing::CallFailure;
        match self {
            ConnectorError::RateLimited(info) => Some(CallFailure::RateLimited(
                std::time::Duration::from_millis(info.retry_after_ms),
            )),
            ConnectorError::Unavailable(_) => Some(CallFailure::Unavailable),
            _ => None,
        }
    }
}
