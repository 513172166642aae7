//! The HTTP sandbox: the only network a component has.
//!
//! * Deny by default: a request goes out only if its origin (scheme, host, port) is on the
//!   run's allowlist; anything else gets `HttpRequestDenied` and nothing leaves the host.
//! * Credentials stay on the host: `Authorization` is a forbidden header for the guest, and the
//!   host adds the token to requests bound for the credential's origin, after the guest's
//!   request was built. A server that echoes requests does not hand it back: the token is
//!   masked in every response header and body before the guest sees them ([`scrub`]), and in
//!   every string the host emits ([`redact`]).
//! * Only the methods a REST API needs ([`methods`]); runs with a restricted address policy
//!   connect to public addresses only ([`crate::net::addresses`], checked again at connect
//!   time).
//! * Limits: clamped timeouts, a response size cap, requests in flight per run, an optional
//!   request budget per run.
//! * Rate limits are honoured here ([`pacing`]): requests are paced under the rate the server
//!   allows, a 429 is answered by waiting and sending again; reads that fail with a 5xx or a
//!   lost connection are retried with backoff.
//!
//! [`hooks`] admits a guest's request, [`send`] carries it out (slot → prepare → exchange →
//! deliver), [`network`] is what a run's instances share, [`policy`] what the run may do.

mod body;
mod client;
mod connect;
mod headers;
pub mod hooks;
pub mod methods;
pub mod network;
pub mod origin;
pub mod pacing;
pub mod policy;
pub mod redact;
pub mod scrub;
mod send;
pub mod stats;
mod tcp;

pub use crate::net::addresses::{AddressClass, AddressPolicy};
pub use hooks::SandboxHooks;
pub use network::RunNetwork;
pub use origin::Origin;
pub use pacing::{Pacer, RetryPolicy};
pub use policy::{Credential, HttpPolicy, Secret};
pub use stats::{NetSnapshot, NetStats};
