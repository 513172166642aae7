//! What the `baton-segment` command does in one shot: sync a workspace into a `.c1z`, carry out
//! a provisioning operation (or plan it), look inside a `.c1z`, and describe the connector
//! (`capabilities`, `config`). Service mode and `serve`
//! build on the same pieces.

pub mod capabilities;
pub mod connection;
pub mod inspect;
pub mod provision;
pub mod summary;
pub mod sync;
