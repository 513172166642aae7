//! The health-check port (Baton's `--health-check`): `/live`, `/ready`, `/health`, and in
//! multi-tenant mode `/metrics` in Prometheus text format; and the `health-check` probe that
//! asks a running host (the image has no shell or curl to do it).
//!
//! * `/live`: 200 while the process answers at all (a liveness probe restarts a hung pod).
//! * `/ready`: 200 only once the host does its work — in service mode, after ConductorOne
//!   accepted `Hello` and while polling for tasks works; 503 with the reason otherwise.
//! * `/health`: 200 while starting or ready, 503 once something is wrong or the host is
//!   stopping; the body says which.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What `/metrics` shows; `None` answers 404.
pub type MetricsSource = Option<Arc<dyn Fn() -> String + Send + Sync>>;

/// Where the host is, as the health endpoints report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not working yet: what it is doing.
    Starting(String),
    Ready,
    /// Running, but cannot do its work: why.
    Degraded(String),
    Stopping,
}

/// The host's health, shared between the work it describes and the health server.
#[derive(Debug, Clone)]
pub struct Health(Arc<Mutex<State>>);

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

impl Health {
    pub fn new() -> Health {
        Health(Arc::new(Mutex::new(State::Starting("starting".into()))))
    }

    pub fn set(&self, state: State) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    pub fn starting(&self, doing: impl Into<String>) {
        self.set(State::Starting(doing.into()));
    }

    pub fn state(&self) -> State {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The `/ready` answer.
    fn ready(&self) -> (StatusCode, String) {
        match self.state() {
            State::Ready => (StatusCode::OK, "ready\n".into()),
            other => (StatusCode::SERVICE_UNAVAILABLE, describe(&other)),
        }
    }

    /// The `/health` answer.
    fn health(&self) -> (StatusCode, String) {
        let state = self.state();
        let code = match state {
            State::Starting(_) | State::Ready => StatusCode::OK,
            State::Degraded(_) | State::Stopping => StatusCode::SERVICE_UNAVAILABLE,
        };
        (code, describe(&state))
    }
}

fn describe(state: &State) -> String {
    match state {
        State::Starting(doing) => format!("starting: {doing}\n"),
        State::Ready => "ready\n".into(),
        State::Degraded(why) => format!("not ready: {why}\n"),
        State::Stopping => "stopping\n".into(),
    }
}

/// Serves until the returned task is aborted. Fails at once if the address is taken.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    metrics: MetricsSource,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let (ready, healthy) = (health.clone(), health);
    let router = Router::new()
        .route("/live", get(|| async { (StatusCode::OK, "live\n") }))
        .route("/ready", get(move || async move { ready.ready() }))
        .route("/health", get(move || async move { healthy.health() }))
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

/// `baton-segment health-check`: asks the host listening at `addr` for `path`; `Ok` with its
/// answer when that is 200, else an error saying what came back (or that nothing did).
pub async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<String> {
    // A host listening on every address is reached on loopback.
    let target = if addr.ip().is_unspecified() {
        let loopback: std::net::IpAddr = if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        SocketAddr::new(loopback, addr.port())
    } else {
        addr
    };
    let url = format!("http://{target}{path}");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(target).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        // Health answers are a few bytes; more is not a health server.
        (&mut stream)
            .take(64 * 1024)
            .read_to_end(&mut answer)
            .await?;
        std::io::Result::Ok(answer)
    };
    let answer = match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => anyhow::bail!(
            "no health server at {url}: {e} (is the host running with --health-check / BATON_HEALTH_CHECK=true on that port?)"
        ),
        Err(_) => anyhow::bail!("{url} did not answer within {} s", timeout.as_secs_f64()),
    };
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok());
    match status {
        Some(200) => Ok(format!("{url}: {}", body.trim())),
        Some(code) => anyhow::bail!("{url} answered {code}: {}", body.trim()),
        None => anyhow::bail!("{url} did not answer HTTP"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readiness_follows_the_state_and_the_probe_reports_it() {
        let health = Health::new();
        let (addr, task) = serve("127.0.0.1:0".parse().unwrap(), health.clone(), None)
            .await
            .unwrap();
        let wait = Duration::from_secs(5);
        let probe_text = |path: &'static str| async move {
            match probe(addr, path, wait).await {
                Ok(t) => t,
                Err(e) => format!("error: {e}"),
            }
        };

        health.starting("saying Hello");
        assert!(probe_text("/live").await.ends_with("live"));
        let ready = probe_text("/ready").await;
        assert!(
            ready.contains("answered 503: starting: saying Hello"),
            "{ready}"
        );
        assert!(
            probe_text("/health")
                .await
                .ends_with("starting: saying Hello")
        );

        health.set(State::Ready);
        assert!(probe_text("/ready").await.ends_with(": ready"));

        health.set(State::Degraded("polling ConductorOne failed".into()));
        let ready = probe_text("/ready").await;
        assert!(
            ready.contains("503: not ready: polling ConductorOne failed"),
            "{ready}"
        );
        assert!(probe_text("/health").await.contains("503"));
        assert!(probe_text("/live").await.ends_with("live"));

        health.set(State::Stopping);
        assert!(probe_text("/health").await.contains("503: stopping"));
        assert!(probe_text("/metrics").await.contains("404"));
        task.abort();
    }

    #[tokio::test]
    async fn probing_nothing_says_so() {
        // A port nothing listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("0.0.0.0:{port}").parse().unwrap();
        let err = probe(addr, "/ready", Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!(
                "no health server at http://127.0.0.1:{port}/ready"
            )),
            "{err}"
        );
    }
}
