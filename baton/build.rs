//! Compiles our own .proto files with protox (pure Rust, no protoc) into one
//! FileDescriptorSet and generates code from it:
//!
//! * prost messages for `c1.connector.v2` (`crate::pb`) and `google.rpc` (`crate::c1::rpc`);
//! * prost messages plus tonic client and server for `c1.connectorapi.baton.v1`
//!   (`crate::c1::service`), whose references to the two packages above are mapped onto the
//!   existing modules with `extern_path`, so e.g. a task's entitlement is a `pb::Entitlement`.

use std::path::{Path, PathBuf};

const SERVICE_PACKAGE: &str = "c1.connectorapi.baton.v1";

fn proto_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();
    files
}

/// Settings shared by both generation runs.
fn prost_config() -> prost_build::Config {
    let mut config = prost_build::Config::new();
    // Every map field is a BTreeMap so encoding is deterministic.
    config.btree_map(["."]);
    // `impl prost::Name` with type URLs `type.googleapis.com/<package>.<Name>`.
    config.enable_type_names();
    config.type_name_domain(["."], "type.googleapis.com");
    config
}

fn main() {
    let proto_root = Path::new("proto");
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let mut files = Vec::new();
    for dir in ["c1/connector/v2", "google/rpc", "c1/connectorapi/baton/v1"] {
        let dir = proto_root.join(dir);
        println!("cargo:rerun-if-changed={}", dir.display());
        files.extend(proto_files(&dir));
    }
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }

    // The set includes the imported google.protobuf files (protox ships them); prost-build
    // needs their descriptors, but maps the types to prost-types (the default extern path
    // while `compile_well_known_types` is off).
    let fds = match protox::compile(&files, [proto_root]) {
        Ok(fds) => fds,
        Err(e) => panic!("compiling .proto files: {e:?}"),
    };

    // Run 1: the data model and google.rpc into OUT_DIR (`c1.connector.v2.rs`,
    // `google.rpc.rs`). The service package is left out of this run.
    let mut model = fds.clone();
    model
        .file
        .retain(|f| f.package.as_deref() != Some(SERVICE_PACKAGE));
    prost_config()
        .compile_fds(model)
        .expect("generating Rust code for c1.connector.v2 and google.rpc");

    // Run 2: the service package with tonic client and server, into its own directory (the
    // run also emits files for the imported packages; only the service file is included).
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let service_dir = out_dir.join("service");
    std::fs::create_dir_all(&service_dir)
        .unwrap_or_else(|e| panic!("creating {}: {e}", service_dir.display()));
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .out_dir(&service_dir)
        .extern_path(".c1.connector.v2", "crate::pb")
        .extern_path(".google.rpc", "crate::c1::rpc")
        .compile_fds_with_config(fds, prost_config())
        .expect("generating Rust code for c1.connectorapi.baton.v1");
}
