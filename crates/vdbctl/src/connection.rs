//! Talking to vdbd: the connection (address forms, TLS, the API key on
//! every request) and server errors with the exit codes they map to.

use std::time::Duration;

use anyhow::{Context, Result};
use tonic::transport::Channel;
use vdb_proto::v1::vdb_client::VdbClient;

/// Adds `authorization: Bearer <key>` to every request.
#[derive(Clone)]
pub(crate) struct Auth(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

pub(crate) type Client = VdbClient<tonic::service::interceptor::InterceptedService<Channel, Auth>>;

/// An error from the server, with the exit code it maps to.
#[derive(Debug)]
pub struct ServerError {
    /// The status.
    pub status: tonic::Status,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.status.code(), self.status.message())
    }
}

impl std::error::Error for ServerError {}

impl ServerError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        use tonic::Code;
        match self.status.code() {
            Code::InvalidArgument | Code::OutOfRange => 2,
            Code::Unauthenticated | Code::PermissionDenied => 7,
            Code::NotFound => 3,
            Code::AlreadyExists => 4,
            Code::Unavailable | Code::ResourceExhausted | Code::DeadlineExceeded => 5,
            _ => 6,
        }
    }
}

pub(crate) fn server_err(status: tonic::Status) -> anyhow::Error {
    ServerError { status }.into()
}

/// Connects to `server` (`http://`, `https://` with `tls_ca`, or
/// `HOST:PORT`), sending `api_key` with every request.
pub(crate) async fn connect(
    server: &str,
    api_key: Option<&str>,
    tls_ca: Option<&std::path::Path>,
) -> Result<Client> {
    let auth = match api_key {
        Some(k) => Some(
            format!("Bearer {k}")
                .parse()
                .context("the API key has characters a header cannot carry")?,
        ),
        None => None,
    };
    // "host:port", as vdbd prints it, means plain HTTP/2.
    let server = if server.contains("://") {
        server.to_string()
    } else {
        format!("http://{server}")
    };
    let server = server.as_str();
    let endpoint = Channel::from_shared(server.to_string())
        .with_context(|| {
            format!("bad server address {server:?} (expected e.g. http://127.0.0.1:50051)")
        })?
        .connect_timeout(Duration::from_secs(5));
    let endpoint = if server.starts_with("https://") {
        let ca = tls_ca.context(
            "an https:// server needs --tls-ca (or VDB_TLS_CA) naming the CA certificate to trust",
        )?;
        let pem = std::fs::read(ca).with_context(|| format!("read --tls-ca {}", ca.display()))?;
        endpoint
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            )
            .context("TLS configuration")?
    } else {
        endpoint
    };
    let channel = endpoint.connect().await.map_err(|e| {
        server_err(tonic::Status::unavailable(format!(
            "cannot reach vdbd at {server}: {e} (is it running? set --server or VDB_SERVER)"
        )))
    })?;
    Ok(VdbClient::with_interceptor(channel, Auth(auth))
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20))
}
