//! Faithful fakes of the external services the connector talks to.
//!
//! * [`segment`] — the Twilio Segment Public API (IAM users, invites, groups, roles,
//!   permissions, sources, warehouses, functions, spaces), served over real HTTP/1.1 on
//!   loopback, with plan gating, rate limits, fault injection and a request log.

pub mod c1;
pub mod echo;
pub mod segment;
pub mod server;
