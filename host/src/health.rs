//! The health-check port (Baton's `--health-check`): `/health`, `/ready`, `/live`, and in
//! multi-tenant mode `/metrics` in Prometheus text format.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;

/// What `/metrics` shows; `None` answers 404.
pub type MetricsSource = Option<Arc<dyn Fn() -> String + Send + Sync>>;

/// Serves until the returned task is aborted. Fails at once if the address is taken.
pub async fn serve(
    addr: SocketAddr,
    metrics: MetricsSource,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let ok = || async { (StatusCode::OK, "ok\n") };
    let router = Router::new()
        .route("/health", get(ok))
        .route("/ready", get(ok))
        .route("/live", get(ok))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    match metrics {
                        Some(render) => (
                            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                            render(),
                        )
                            .into_response(),
                        None => {
                            (StatusCode::NOT_FOUND, "no metrics in this mode\n").into_response()
                        }
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for health checks on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!("the health-check server stopped: {e}");
        }
    });
    Ok((bound, task))
}
