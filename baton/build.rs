//! Compiles our own `c1.connector.v2` .proto files with protox (pure Rust, no protoc) and
//! generates prost code for them.

use std::path::{Path, PathBuf};

fn main() {
    let proto_root = Path::new("proto");
    let dir = proto_root.join("c1/connector/v2");
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }

    // The set includes the imported google.protobuf files (protox ships them); prost-build
    // needs their descriptors, but maps the types to prost-types (the default extern path
    // while `compile_well_known_types` is off). Only `c1.connector.v2.rs` is included.
    let fds = match protox::compile(&files, [proto_root]) {
        Ok(fds) => fds,
        Err(e) => panic!("compiling .proto files: {e:?}"),
    };

    prost_build::Config::new()
        // Every map field is a BTreeMap so encoding is deterministic.
        .btree_map(["."])
        // `impl prost::Name` with type URLs `type.googleapis.com/c1.connector.v2.<Name>`.
        .enable_type_names()
        .type_name_domain(["."], "type.googleapis.com")
        .compile_fds(fds)
        .expect("generating Rust code for c1.connector.v2");
}
