//! What the `baton-segment` command does in one shot: sync a workspace into a `.c1z`, carry out
//! a provisioning operation (or plan it), and look inside a `.c1z`. Service mode and `serve`
//! build on the same pieces.

pub mod connection;
pub mod inspect;
pub mod provision;
pub mod summary;
pub mod sync;
