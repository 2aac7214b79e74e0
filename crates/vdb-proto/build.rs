//! Generates the API code from `proto/vdb/v1/vdb.proto` with a vendored
//! `protoc`, so a fresh clone builds with cargo alone.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let proto = proto_root.join("vdb/v1/vdb.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("vdb_v1_descriptor.bin"))
        .compile_with_config(config, &[proto], &[proto_root])?;
    Ok(())
}
