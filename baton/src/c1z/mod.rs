//! The v1 `.c1z` file: `C1ZF\0` + one zstd stream of a SQLite database whose schema is
//! [`schema`]'s. [`writer::C1zWriter`] builds one (in a [`workdir::WorkDir`], resumably),
//! [`expand`] expands its grants, [`reader::C1zReader`] reads one; [`ksuid`] makes sync ids and
//! [`timefmt`] writes the database's times as Baton does.

pub mod expand;
pub mod ksuid;
pub mod reader;
pub mod schema;
pub mod timefmt;
pub mod workdir;
pub mod writer;

pub use reader::{C1zReader, Schema, Stats, StoredGrant, SyncRun};
pub use writer::{
    Batch, C1zWriter, Counts, EncodedEntitlement, EncodedGrant, MEMORY_FOR, MEMORY_LIMIT,
    RESUME_WITHIN, Start, WriterOptions,
};

/// The 5 magic bytes that start a v1 `.c1z` file.
pub const C1Z_V1_MAGIC: &[u8; 5] = b"C1ZF\0";
/// The 5 magic bytes that start a v3 (Pebble) `.c1z` file, which this crate does not read.
pub const C1Z_V3_MAGIC: &[u8; 5] = b"C1Z3\0";
