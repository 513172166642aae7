//! Turning Segment API failures into the contract's errors, with messages that say what
//! failed, where, and what to do.

use crate::bindings::{ConnectorError, RateLimitedInfo};
use crate::env::TransportError;
use crate::segment::api::{ApiError, ApiErrorKind};

pub fn to_connector_error(e: &ApiError) -> ConnectorError {
    let text = e.to_string();
    match &e.kind {
        ApiErrorKind::Transport(TransportError::Denied(_)) => {
            ConnectorError::PermissionDenied(text)
        }
        ApiErrorKind::Transport(TransportError::Unavailable(_)) => {
            ConnectorError::Unavailable(text)
        }
        ApiErrorKind::Transport(TransportError::Failed(_)) => ConnectorError::Internal(text),
        ApiErrorKind::Malformed(_) => ConnectorError::Internal(text),
        ApiErrorKind::Status {
            status,
            retry_after_ms,
            message,
            ..
        } => match status {
            401 => ConnectorError::Unauthenticated(format!(
                "{}: Segment rejected the token (HTTP 401{}). Check that it is a valid Public API token \
                 for this workspace, and that the base URL is the workspace's region.",
                e.op,
                suffix(message)
            )),
            403 => ConnectorError::PermissionDenied(format!(
                "{}: Segment rejected the token (HTTP 403{}). The token lacks the access this needs; \
                 use a token with Workspace Owner access.",
                e.op,
                suffix(message)
            )),
            404 => ConnectorError::NotFound(text),
            409 => ConnectorError::AlreadyExists(text),
            429 => ConnectorError::RateLimited(RateLimitedInfo {
                message: text,
                retry_after_ms: retry_after_ms.unwrap_or(1_000),
            }),
            408 | 500..=599 => ConnectorError::Unavailable(text),
            _ => ConnectorError::InvalidArgument(text),
        },
    }
}

fn suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// Whether the answer to an optional collection (groups, warehouses, functions, spaces) means
/// that the workspace's plan, or the token, does not include the feature. Segment does not
/// document one status for this: lower plans have been seen answering 400 with a message about
/// the plan, and 401/403/404 are the other plausible answers.
pub fn is_missing_feature(e: &ApiError) -> bool {
    match e.status() {
        Some(401 | 403 | 404) => true,
        Some(400) => {
            let m = e.message().to_ascii_lowercase();
            [
                "plan",
                "feature",
                "not enabled",
                "not include",
                "upgrade",
                "not available",
            ]
            .iter()
            .any(|w| m.contains(w))
        }
        _ => false,
    }
}

/// The warning for a feature skipped because the workspace lacks it.
pub fn missing_feature_warning(feature: &str, missing: &str, e: &ApiError) -> String {
    format!(
        "{feature} are not available to this workspace or token ({e}); skipped, so {missing} are not in this \
         sync. If the workspace's plan includes {feature_lc}, check the token's access.",
        feature_lc = feature.to_ascii_lowercase()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, message: &str) -> ApiError {
        ApiError {
            op: "GET /groups".into(),
            kind: ApiErrorKind::Status {
                status,
                error_type: "bad-request".into(),
                message: message.into(),
                retry_after_ms: None,
            },
        }
    }

    #[test]
    fn wrong_token_says_so_with_the_status() {
        match to_connector_error(&status(401, "Unauthorized")) {
            ConnectorError::Unauthenticated(m) => {
                assert!(
                    m.contains("Segment rejected the token (HTTP 401: Unauthorized)"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(to_connector_error(&status(403, "")), ConnectorError::PermissionDenied(m) if m.contains("HTTP 403"))
        );
    }

    #[test]
    fn plan_answers_are_told_apart_from_bad_requests() {
        assert!(is_missing_feature(&status(
            400,
            "Your plan does not include User Groups."
        )));
        assert!(is_missing_feature(&status(403, "")));
        assert!(is_missing_feature(&status(404, "")));
        assert!(!is_missing_feature(&status(
            400,
            "pagination.count must be at most 1000"
        )));
        assert!(!is_missing_feature(&status(500, "plan")));
    }
}
