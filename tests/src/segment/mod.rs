//! A faithful fake of the Twilio Segment Public API (the IAM/catalog subset an
//! identity-governance connector uses), served over real HTTP/1.1 on loopback.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use fakes::segment::{FakeConfig, FakeSegment, Fault, FaultKind};
//! let fake = FakeSegment::start(FakeConfig::demo()).await?;
//! let base = fake.base_url(); // http://127.0.0.1:PORT, token "demo-token"
//! fake.inject(Fault::on(Some("GET"), "/users", FaultKind::MalformedJson, 1));
//! // … run the client against `base` …
//! assert!(fake.requests().iter().all(|r| r.authorization.as_deref() == Some("Bearer demo-token")));
//! fake.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Behaviour where the published API is silent (choices of this fake):
//! * `POST /groups/{id}/users`, `PUT`/`DELETE /group/{id}/users`: an email that is neither
//!   a user nor a pending invite of the workspace → 404 `not-found`, nothing changes;
//!   removing a known email that is not a member is a no-op success.
//! * `DELETE /users` / `DELETE /invites`: all-or-nothing; one unknown id/email → 404.
//! * Permission writes: labels on a non-WORKSPACE resource → 422 (labels are "exclusive to
//!   Workspace-level permissions"); a permission with no resources → 422; `PUT` with
//!   `[]` clears. Identical resource = same type, id and label set. `POST` to a user
//!   answers with the permissions of the roles in the request, every other write with
//!   the whole set.
//! * `TruncatedJson`: the request is handled (writes take effect); the response declares
//!   the full `Content-Length`, sends the first half, then the connection is closed.
//! * `Hang`: no answer; logged with `status: 0`; released when the server shuts down.
//! * Plan gating also covers `GET /users/{id}/groups` (400 like `/groups`).
//! * Order per request: log → latency → fault → bearer (401) → rate limit (429) → plan gate
//!   → handler. Reads without a configured limit are counted but never refused (reported
//!   against a nominal budget of 1,000,000 per 60 s).
//! * A method a path does not have (e.g. `DELETE /groups/{id}/users`) → 404 `not-found`.
//! * `update_workspace` runs its closure under the state lock: do not call the fake from it.
//!
//! Modules: [`model`] (data types), [`fixture`] (demo workspace + seeded generator),
//! [`query`] (query-string parsing, pagination), [`permissions`] (permission writes),
//! [`faults`] (fault queue, rate limiter), [`response`] (envelopes), [`render`] (JSON
//! shapes), `pipeline` (per-request middleware), `handlers` (routes), [`server`] (lifecycle
//! and control API), [`bucket`] (token-bucket read limit), [`wire`] (how answers are
//! written when the fake plays a plain server: Nagle on, head and body in separate writes).

pub mod bucket;
mod delay;
pub mod faults;
pub mod fixture;
mod handlers;
pub mod ids;
mod index;
pub mod model;
pub mod permissions;
mod pipeline;
pub mod query;
pub mod render;
pub mod response;
pub mod server;
pub mod wire;

pub use bucket::ReadRate;
pub use fixture::{STANDARD_ROLES, standard_roles};
pub use model::{
    CatalogMetadata, EmailOwner, FUNCTION_TYPES, Fault, FaultKind, Function, GenSpec, Group,
    Invite, Label, LoggedRequest, PathMatch, Permission, PermissionResource, Plan, RESOURCE_TYPES,
    Role, Source, Space, User, Warehouse, Workspace,
};
pub use pipeline::MALFORMED_BODY;
pub use server::{FakeConfig, FakeSegment};
