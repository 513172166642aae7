//! The Segment Public API: its JSON shapes and a client for it.

pub mod api;
pub mod model;
