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
//! Modules: [`model`] (data types), [`fixture`] (demo workspace + seeded generator),
//! [`query`] (query-string parsing, pagination), [`permissions`] (permission writes),
//! [`faults`] (fault queue, rate limiter), [`response`] (envelopes), [`render`] (JSON
//! shapes), `pipeline` (per-request middleware), `handlers` (routes), [`server`] (lifecycle
//! and control API).

pub mod faults;
pub mod fixture;
mod handlers;
pub mod ids;
pub mod model;
pub mod permissions;
mod pipeline;
pub mod query;
pub mod render;
pub mod response;
pub mod server;

pub use fixture::{STANDARD_ROLES, standard_roles};
pub use model::{
    CatalogMetadata, EmailOwner, FUNCTION_TYPES, Fault, FaultKind, Function, GenSpec, Group,
    Invite, Label, LoggedRequest, PathMatch, Permission, PermissionResource, Plan, RESOURCE_TYPES,
    Role, Source, Space, User, Warehouse, Workspace,
};
pub use pipeline::MALFORMED_BODY;
pub use server::{FakeConfig, FakeSegment};
