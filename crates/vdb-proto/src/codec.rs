//! The server's codec: prost's, except that a request whose bytes do not
//! decode (a bad varint, a message cut short, a string field that is not
//! UTF-8) is the client's fault and is answered `INVALID_ARGUMENT` naming
//! the message, not `INTERNAL` (tonic's default, which gRPC's status table
//! reserves for failures underneath). Responses the client decodes keep
//! prost's codec.

use std::marker::PhantomData;

use prost::{Message, Name};
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

/// Encodes responses `T` like prost's codec; decodes requests `U`, mapping
/// undecodable bytes to `INVALID_ARGUMENT`.
#[derive(Debug)]
pub struct RequestCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for RequestCodec<T, U> {
    fn default() -> Self {
        RequestCodec(PhantomData)
    }
}

impl<T, U> Codec for RequestCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Name + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(PhantomData)
    }
}

/// Decodes a request message of type `U`.
#[derive(Debug)]
pub struct RequestDecoder<U>(PhantomData<U>);

impl<U: Message + Default + Name> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| {
            Status::invalid_argument(format!(
                "invalid request: the bytes are not a valid {} message: {e}",
                U::full_name()
            ))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

    use super::*;
    use crate::v1 as pb;

    #[test]
    fn names_the_message_type() {
        assert_eq!(pb::SearchRequest::full_name(), "vdb.v1.SearchRequest");
        assert_eq!(pb::ImportRequest::full_name(), "vdb.v1.ImportRequest");
    }
}
