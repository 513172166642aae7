//! Faithful fakes of the external services the connector talks to.
//!
//! * [`segment`] — the Twilio Segment Public API (IAM users, invites, groups, roles,
//!   permissions, sources, warehouses, functions, spaces), served over real HTTP/1.1 on
//!   loopback, with plan gating, rate limits, fault injection and a request log.
//! * [`c1`] — ConductorOne: the token endpoint and `BatonService`, over TLS.
//! * [`proxy`] — an HTTP `CONNECT` proxy, as enterprise networks have; [`tls_front`] puts
//!   TLS (from a private CA) in front of a plain fake.

pub mod c1;
pub mod echo;
pub mod proxy;
pub mod segment;
pub mod server;
pub mod tls_front;
