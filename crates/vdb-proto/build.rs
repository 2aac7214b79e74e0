//! Generates the API code from `proto/vdb/v1/vdb.proto` with a vendored
//! `protoc`, so a fresh clone builds with cargo alone: the messages and the
//! client with prost's codec, then the server over those messages with
//! [`RequestCodec`](src/codec.rs), which answers undecodable requests with
//! `INVALID_ARGUMENT`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let proto = proto_root.join("vdb/v1/vdb.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let protoc = protoc_bin_vendored::protoc_bin_path()?;

    let mut config = prost_build::Config::new();
    config.protoc_executable(&protoc);
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_server(false)
        .file_descriptor_set_path(out.join("vdb_v1_descriptor.bin"))
        .compile_with_config(config, &[&proto], &[&proto_root])?;

    let server_out = out.join("server");
    std::fs::create_dir_all(&server_out)?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(&protoc);
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .extern_path(".vdb.v1", "crate::v1")
        .codec_path("crate::codec::RequestCodec")
        .out_dir(&server_out)
        .compile_with_config(config, &[&proto], &[&proto_root])?;
    Ok(())
}
