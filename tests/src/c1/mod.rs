//! A fake ConductorOne: the tenant host a connector in service mode talks to, served over
//! real TLS on loopback — the token endpoint (`POST /auth/v1/token`) and the gRPC service
//! `c1.connectorapi.baton.v1.BatonService` on one port.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use fakes::c1::{FakeC1, FakeC1Config};
//! use std::time::Duration;
//! let (cfg, client_secret) = FakeC1Config::generated("baton-segment");
//! let client_id = cfg.client_id.clone();
//! let fake = FakeC1::start(cfg).await?;
//! // BATON_CLIENT_ID=client_id BATON_CLIENT_SECRET=client_secret
//! // BATON_C1_API_HOST=fake.host(), trusting fake.ca_pem().
//! let task_id = fake.push_sync_task();
//! // … run the connector …
//! let finished = fake.wait_for_finished(1, Duration::from_secs(30)).await?;
//! assert_eq!(finished[0].task_id, task_id);
//! assert_eq!(fake.uploads()[0].sha256.len(), 32);
//! assert!(!fake.received_anywhere(&client_secret));
//! fake.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Behaviour (choices of this fake where the published protocol is silent):
//! * TLS: a throwaway CA (see [`FakeC1::ca_pem`]) signs a server certificate for
//!   `127.0.0.1`, `::1` and `localhost`. ALPN `h2` selects HTTP/2 (gRPC), anything else
//!   HTTP/1.1 (fine for the token endpoint).
//! * Token endpoint: form fields `client_id` (must be the configured id),
//!   `grant_type=client_credentials`, `client_assertion_type=…:jwt-bearer`,
//!   `client_assertion` (checked with [`baton::c1::credentials::verify_assertion`] against the
//!   configured key and id, then held to baton-sdk's form: `aud` one string, the client id's
//!   host; the JWK's `kid`; a hex nonce of 16 bytes, used once). Success: 200
//!   `{"access_token","token_type","expires_in"}` (`token_type` as configured, `Bearer` by
//!   default); any refusal: 401 `{"error","error_description"}`; scripted outages: 503.
//! * RPCs need `authorization: Bearer <token>` (exactly `Bearer`, as baton-sdk normalises
//!   it) naming an unexpired token the fake issued, else `Unauthenticated`.
//! * Hello is refused (`InvalidArgument`) with an empty `OSInfo` field, as ConductorOne fails
//!   to register such a connector. FinishTask is refused for a hello task
//!   (`FailedPrecondition`: those are answered with Hello alone) and for a success carrying a
//!   status (`InvalidArgument`). Heartbeats are recorded with their task's type. Task ids in Heartbeat, FinishTask and UploadAsset must be of
//!   tasks GetTask handed out (else `NotFound`; malformed ids `InvalidArgument`).
//! * GetTask hands out queued tasks in order; with an empty queue it answers a task with
//!   an empty id and `task_type = none`. `next_poll`/`next_heartbeat` come from the config.
//! * Heartbeat answers `cancelled = true` for tasks marked with [`FakeC1::cancel_task`]
//!   (and lists them in `cancelled_task_ids` for the batch form).
//! * UploadAsset: metadata first, then `data` chunks of 1 byte..1 MiB, then `eof` with the
//!   SHA-256 of all data, then the end of the stream. A mismatching checksum is
//!   `InvalidArgument`. Only complete, matching uploads are recorded
//!   ([`FakeC1::uploads`]); every stream is in [`FakeC1::upload_attempts`] and failures are
//!   counted ([`FakeC1::failed_uploads`]). Scripted failures answer `Unavailable` after
//!   the first data chunk.
//! * Every request (token requests included) is logged with its headers/metadata and form
//!   fields ([`FakeC1::requests`]), so a test can prove what never travelled
//!   ([`FakeC1::received_anywhere`]).

pub mod model;
mod server;
mod service;
mod tls;
mod token;

pub use model::{
    FinishOutcome, LoggedRequest, RecordedFinish, RecordedHeartbeat, RecordedUpload, UploadAttempt,
    UploadOutcome,
};
pub use server::{FakeC1, FakeC1Config, TENANT_HOST, sync_full_task};
pub use service::MAX_CHUNK;
