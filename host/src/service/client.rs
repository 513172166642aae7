//! The connection to ConductorOne: whom to trust (the OS certificate store plus
//! `BATON_C1_CA_CERT`, see [`crate::net::trust`]), the proxy to go through (see [`crate::net::proxy`]),
//! and the `BatonService` client that puts `authorization: <token_type> <access_token>` on
//! every call.

use super::auth::{TokenError, TokenSource, error_chain};
use crate::net::proxy::{Proxies, ProxyConnector};
use anyhow::anyhow;
use baton::c1::service::baton_service_client::BatonServiceClient;
use baton::c1::service::{
    BatonServiceFinishTaskRequest, BatonServiceFinishTaskResponse, BatonServiceGetTaskRequest,
    BatonServiceGetTaskResponse, BatonServiceHeartbeatRequest, BatonServiceHeartbeatResponse,
    BatonServiceHelloRequest, BatonServiceHelloResponse, BatonServiceUploadAssetRequest,
    BatonServiceUploadAssetResponse,
};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tonic::codegen::tokio_stream::Stream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};

pub use crate::net::trust::{CA_CERT_ENV, Trust};

/// How long connecting to ConductorOne (or its proxy) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call failed: no token, or the RPC's status.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("{}", status_text(.0))]
    Rpc(Status),
}

impl CallError {
    /// ConductorOne refused the client credentials: nothing will work until they change.
    pub fn is_refusal(&self) -> bool {
        matches!(self, CallError::Token(t) if t.is_refusal())
    }

    /// The gRPC code (token errors: `Unauthenticated` when refused, else `Unavailable`).
    pub fn code(&self) -> Code {
        match self {
            CallError::Token(t) if t.is_refusal() => Code::Unauthenticated,
            CallError::Token(_) => Code::Unavailable,
            CallError::Rpc(s) => s.code(),
        }
    }
}

/// `Unavailable: <message>: <sources>`, for logs and errors.
pub fn status_text(s: &Status) -> String {
    let message = error_chain(s);
    if message.is_empty() {
        format!("gRPC {:?}", s.code())
    } else {
        format!("gRPC {:?}: {message}", s.code())
    }
}

/// The `BatonService` client. Cheap to clone; calls may run concurrently.
#[derive(Clone)]
pub struct C1Client {
    grpc: BatonServiceClient<Channel>,
    tokens: Arc<TokenSource>,
    rpc_timeout: Duration,
}

impl std::fmt::Debug for C1Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("C1Client").finish_non_exhaustive()
    }
}

impl C1Client {
    /// A client for `tokens`' host (connecting lazily, on the first call).
    pub fn new(
        tokens: Arc<TokenSource>,
        trust: &Trust,
        user_agent: &str,
        rpc_timeout: Duration,
    ) -> anyhow::Result<C1Client> {
        let url = tokens.credentials().grpc_url();
        let endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| anyhow!("{url} is not a valid ConductorOne endpoint: {e}"))?
            .tls_config(trust.tonic())
            .map_err(|e| anyhow!("cannot set up TLS for {url}: {}", error_chain(&e)))?
            .user_agent(user_agent.to_string())
            .map_err(|e| anyhow!("invalid user agent: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20));
        // Straight there, or through the environment's proxy (TLS runs inside the tunnel).
        let connector = ProxyConnector::new(Proxies::global(), CONNECT_TIMEOUT);
        Ok(C1Client {
            grpc: BatonServiceClient::new(endpoint.connect_with_connector_lazy(connector)),
            tokens,
            rpc_timeout,
        })
    }

    pub fn tokens(&self) -> &TokenSource {
        &self.tokens
    }

    /// `msg` with the `authorization` metadata and a deadline.
    async fn request<T>(&self, msg: T, timeout: Option<Duration>) -> Result<Request<T>, CallError> {
        let authorization = self.tokens.authorization().await?;
        let mut req = Request::new(msg);
        let value = authorization
            .parse()
            .map_err(|_| CallError::Rpc(Status::internal("the access token is not ASCII")))?;
        req.metadata_mut().insert("authorization", value);
        if let Some(t) = timeout {
            req.set_timeout(t);
        }
        Ok(req)
    }

    /// One unary call; after `Unauthenticated` the token is dropped and the call made once more
    /// with a fresh one.
    async fn unary<T, R, F, Fut>(&self, msg: T, timeout: Duration, call: F) -> Result<R, CallError>
    where
        T: Clone,
        F: Fn(BatonServiceClient<Channel>, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let mut retried = false;
        loop {
            let req = self.request(msg.clone(), Some(timeout)).await?;
            match call(self.grpc.clone(), req).await {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(s) if s.code() == Code::Unauthenticated && !retried => {
                    tracing::debug!(
                        "ConductorOne did not accept the access token ({}); getting a new one",
                        s.message()
                    );
                    self.tokens.invalidate().await;
                    retried = true;
                }
                Err(s) => return Err(CallError::Rpc(s)),
            }
        }
    }

    pub async fn hello(
        &self,
        msg: BatonServiceHelloRequest,
    ) -> Result<BatonServiceHelloResponse, CallError> {
        self.unary(
            msg,
            self.rpc_timeout,
            |mut c, r| async move { c.hello(r).await },
        )
        .await
    }

    pub async fn get_task(
        &self,
        msg: BatonServiceGetTaskRequest,
    ) -> Result<BatonServiceGetTaskResponse, CallError> {
        self.unary(msg, self.rpc_timeout, |mut c, r| async move {
            c.get_task(r).await
        })
        .await
    }

    pub async fn heartbeat(
        &self,
        msg: BatonServiceHeartbeatRequest,
    ) -> Result<BatonServiceHeartbeatResponse, CallError> {
        self.unary(msg, self.rpc_timeout, |mut c, r| async move {
            c.heartbeat(r).await
        })
        .await
    }

    pub async fn finish_task(
        &self,
        msg: BatonServiceFinishTaskRequest,
        timeout: Duration,
    ) -> Result<BatonServiceFinishTaskResponse, CallError> {
        self.unary(
            msg,
            timeout,
            |mut c, r| async move { c.finish_task(r).await },
        )
        .await
    }

    /// One `UploadAsset` stream (no retry here: see `upload`). An `Unauthenticated` answer
    /// drops the cached token, so a retry uses a fresh one.
    pub async fn upload_asset<S>(
        &self,
        messages: S,
    ) -> Result<BatonServiceUploadAssetResponse, CallError>
    where
        S: Stream<Item = BatonServiceUploadAssetRequest> + Send + 'static,
    {
        let req = self.request(messages, None).await?;
        match self.grpc.clone().upload_asset(req).await {
            Ok(resp) => Ok(resp.into_inner()),
            Err(s) => {
                if s.code() == Code::Unauthenticated {
                    self.tokens.invalidate().await;
                }
                Err(CallError::Rpc(s))
            }
        }
    }
}
