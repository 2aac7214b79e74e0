//! API keys: who may call what. With no key configured every request is
//! allowed; otherwise a request carries `authorization: Bearer <key>`.

use tonic::{Request, Status};

/// API keys. With none configured, every request is allowed. Otherwise a
/// request must carry `authorization: Bearer <key>`: a key from `full`
/// may do everything, one from `read_only` may read (list, describe, get,
/// search, explain) but not write or administer.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiKeys {
    /// Keys allowed everything.
    pub full: Vec<String>,
    /// Keys allowed reads only.
    pub read_only: Vec<String>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the keys themselves.
        f.debug_struct("ApiKeys")
            .field("full", &self.full.len())
            .field("read_only", &self.read_only.len())
            .finish()
    }
}

/// What a request needs to be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

impl ApiKeys {
    /// Whether any key is configured (auth on).
    pub fn enabled(&self) -> bool {
        !self.full.is_empty() || !self.read_only.is_empty()
    }

    pub(crate) fn check<T>(&self, req: &Request<T>, need: Access) -> Result<(), Status> {
        if !self.enabled() {
            return Ok(());
        }
        let key = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("missing API key: send `authorization: Bearer <key>`")
            })?;
        let matches = |keys: &[String]| {
            keys.iter()
                .any(|k| constant_time_eq(k.as_bytes(), key.as_bytes()))
        };
        if matches(&self.full) {
            return Ok(());
        }
        if matches(&self.read_only) {
            return match need {
                Access::Read => Ok(()),
                Access::Write => Err(Status::permission_denied(
                    "this API key is read-only; writes and administration need a full key",
                )),
            };
        }
        Err(Status::unauthenticated("invalid API key"))
    }
}

/// Compares without returning early on the first differing byte, so the
/// time taken does not reveal how much of a guessed key was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}
