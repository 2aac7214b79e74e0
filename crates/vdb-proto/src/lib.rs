//! vdb's gRPC API as Rust types: the messages, the `Vdb` client and the
//! server trait, generated at build time from `proto/vdb/v1/vdb.proto`
//! (the documented source of truth). Clients depend on this crate alone,
//! not on the server.

pub mod codec;

/// Version 1 of the API (`package vdb.v1`).
#[allow(
    missing_docs,
    missing_debug_implementations,
    unused_qualifications,
    clippy::all,
    clippy::pedantic,
    reason = "generated code"
)]
pub mod v1 {
    tonic::include_proto!("vdb.v1");

    /// The server trait and `VdbServer`, generated separately so that they
    /// decode requests with [`crate::codec::RequestCodec`].
    mod server {
        include!(concat!(env!("OUT_DIR"), "/server/vdb.v1.rs"));
    }
    pub use server::vdb_server;

    /// The encoded `FileDescriptorSet` of the API, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("vdb_v1_descriptor");
}
