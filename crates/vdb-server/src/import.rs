//! `Import`: a client stream of row batches, committed in groups — while
//! one write runs, the messages that arrive are collected and then written
//! as one engine batch, with exactly the outcome of writing them in order.

use std::sync::Arc;

use tonic::{Request, Response, Status, Streaming};
use vdb_engine::{Engine, Lsn, Row};
use vdb_proto::v1 as pb;

use crate::auth::Rpc;
use crate::convert::rows_from_pb;
use crate::service::VdbService;
use crate::status::{invalid, status};

impl VdbService {
    /// Checks message `index` of an import stream (the collection it names,
    /// its size) and returns its rows.
    fn accept(
        &self,
        name: &mut Option<String>,
        index: u64,
        msg: pb::ImportRequest,
    ) -> Result<Vec<Row>, Status> {
        match (name.as_deref(), msg.collection.as_str()) {
            (None, "") => {
                return Err(invalid(
                    "collection",
                    "the first message of an import must name the collection",
                ));
            }
            (None, n) => *name = Some(n.to_string()),
            (Some(_), "") => {}
            (Some(first), n) if first == n => {}
            (Some(first), n) => {
                return Err(invalid(
                    "collection",
                    format!("the stream started with {first:?} and then named {n:?}"),
                ));
            }
        }
        self.check_batch(&format!("batch {index}: rows"), msg.rows.len())?;
        rows_from_pb(msg.rows, &format!("batch {index}: rows"))
    }

    pub(crate) async fn import_stream(
        &self,
        req: Request<Streaming<pb::ImportRequest>>,
    ) -> Result<Response<pb::ImportResponse>, Status> {
        let _p = self.admit(&req, Rpc::Import)?;
        let mut stream = req.into_inner();
        let mut name: Option<String> = None;
        let mut out = pb::ImportResponse::default();
        // Group commit over the stream: while one write runs, the messages
        // that arrive are decoded and collected (up to `max_batch` rows or
        // GROUP_BYTES), then written together — one log append and fsync,
        // one assignment to lists — in stream order.
        let mut pending: Vec<Vec<Row>> = Vec::new();
        let (mut pending_rows, mut pending_bytes) = (0usize, 0usize);
        let mut received = 0u64;
        let mut writing: Option<tokio::task::JoinHandle<Written>> = None;
        // No more messages are read after the end of the stream or a
        // refused message; what came before is written first.
        let mut ended = false;
        let mut refused: Option<Status> = None;
        loop {
            if writing.is_none() && !pending.is_empty() {
                let messages = std::mem::take(&mut pending);
                (pending_rows, pending_bytes) = (0, 0);
                let engine = Arc::clone(&self.engine);
                let collection = name.clone().unwrap_or_default();
                writing = Some(tokio::task::spawn_blocking(move || {
                    write_messages(&engine, &collection, messages)
                }));
            }
            if ended && writing.is_none() {
                break;
            }
            let receive =
                !ended && pending_rows < self.limits.max_batch && pending_bytes < GROUP_BYTES;
            let write_done = async {
                match writing.as_mut() {
                    Some(w) => w.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                written = write_done => {
                    writing = None;
                    let written = written
                        .map_err(|e| Status::internal(format!("import task failed: {e}")))?;
                    out.rows += written.rows;
                    out.batches += written.messages;
                    if let Some(lsn) = written.lsn {
                        out.last_lsn = lsn.0;
                    }
                    if let Some(e) = written.error {
                        let s = status(e);
                        return Err(Status::new(
                            s.code(),
                            format!(
                                "batch {} (after {} rows stored): {}",
                                out.batches,
                                out.rows,
                                s.message()
                            ),
                        ));
                    }
                }
                next = stream.message(), if receive => match next? {
                    None => ended = true,
                    Some(msg) => match self.accept(&mut name, received, msg) {
                        Ok(rows) => {
                            received += 1;
                            pending_rows += rows.len();
                            pending_bytes += rows
                                .iter()
                                .map(|r| 4 * r.vector.len() + r.payload.as_ref().map_or(0, Vec::len))
                                .sum::<usize>();
                            pending.push(rows);
                        }
                        Err(s) => {
                            refused = Some(s);
                            ended = true;
                        }
                    },
                },
            }
        }
        if let Some(s) = refused {
            return Err(s);
        }
        if name.is_none() {
            return Err(invalid("rows", "the import stream sent no batch"));
        }
        Ok(Response::new(out))
    }
}

/// Bytes of rows an import collects while a write runs before it stops
/// reading (with up to one message more): a bound on the memory a stream
/// holds (twice this while a group is written, which keeps a copy to retry
/// message by message).
const GROUP_BYTES: usize = 16 << 20;

/// What writing some messages of an import stream did.
struct Written {
    /// Messages stored, in stream order.
    messages: u64,
    /// Rows in them.
    rows: u64,
    /// The log position of the last write, if any was stored.
    lsn: Option<Lsn>,
    /// Why the next message was refused (nothing of it is stored).
    error: Option<vdb_engine::Error>,
}

/// Writes consecutive messages of an import stream: as one engine batch
/// when no id appears twice among them, otherwise (or when the batch is
/// refused) one message at a time, so the outcome is exactly that of
/// writing them in order — later rows of an id win, and a bad message
/// leaves the ones before it stored and is reported by its position.
fn write_messages(engine: &Engine, collection: &str, messages: Vec<Vec<Row>>) -> Written {
    let mut done = Written {
        messages: 0,
        rows: 0,
        lsn: None,
        error: None,
    };
    let collection = match engine.collection(collection) {
        Ok(c) => c,
        Err(e) => {
            done.error = Some(e);
            return done;
        }
    };
    let total: usize = messages.iter().map(Vec::len).sum();
    if messages.len() > 1 {
        let mut ids = std::collections::HashSet::with_capacity(total);
        let distinct = messages.iter().flatten().all(|r| ids.insert(r.id));
        if distinct {
            let count = messages.len() as u64;
            let rows: Vec<Row> = messages.iter().flatten().cloned().collect();
            if let Ok(lsn) = collection.upsert(rows) {
                done.messages = count;
                done.rows = total as u64;
                done.lsn = Some(lsn);
                return done;
            }
            // Refused: find which message by writing them one at a time
            // (a refused batch changed nothing).
        }
    }
    for rows in messages {
        let n = rows.len() as u64;
        match collection.upsert(rows) {
            Ok(lsn) => {
                done.messages += 1;
                done.rows += n;
                done.lsn = Some(lsn);
            }
            Err(e) => {
                done.error = Some(e);
                break;
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

    use super::*;

    fn rows(ids: std::ops::Range<u64>, version: f32) -> Vec<Row> {
        ids.map(|id| Row {
            id,
            vector: vec![id as f32, version],
            payload: None,
            fields: Default::default(),
        })
        .collect()
    }

    fn engine() -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        engine
            .create_collection("c", vdb_engine::CollectionConfig::new(2))
            .unwrap();
        (dir, engine)
    }

    #[test]
    fn messages_with_distinct_ids_are_one_write() {
        let (_dir, engine) = engine();
        let w = write_messages(&engine, "c", vec![rows(0..10, 1.0), rows(10..25, 1.0)]);
        assert!(w.error.is_none());
        assert_eq!((w.messages, w.rows), (2, 25));
        // One write: the first log position.
        assert_eq!(w.lsn, Some(Lsn(1)));
        assert_eq!(engine.collection("c").unwrap().stats().rows, 25);
    }

    #[test]
    fn an_id_in_two_messages_gets_the_later_row() {
        let (_dir, engine) = engine();
        let w = write_messages(&engine, "c", vec![rows(0..10, 1.0), rows(5..15, 2.0)]);
        assert!(w.error.is_none());
        assert_eq!((w.messages, w.rows), (2, 20));
        let c = engine.collection("c").unwrap();
        assert_eq!(c.stats().rows, 15);
        assert_eq!(c.get(7).unwrap().unwrap().vector, vec![7.0, 2.0]);
        assert_eq!(c.get(2).unwrap().unwrap().vector, vec![2.0, 1.0]);
    }

    #[test]
    fn a_bad_message_keeps_the_ones_before_it_and_is_named() {
        let mut bad = rows(30..32, 1.0);
        bad[1].vector = vec![1.0, 2.0, 3.0];
        let mut twice = rows(40..42, 1.0);
        twice[1].id = 40;
        for (refused, at) in [(bad, 2u64), (twice, 2)] {
            let (_dir, engine) = engine();
            let messages = vec![
                rows(0..10, 1.0),
                rows(10..20, 1.0),
                refused,
                rows(50..60, 1.0),
            ];
            let w = write_messages(&engine, "c", messages);
            assert_eq!((w.messages, w.rows), (at, 20));
            assert!(w.error.is_some());
            let c = engine.collection("c").unwrap();
            assert_eq!(c.stats().rows, 20, "only the messages before the bad one");
            assert!(c.get(50).unwrap().is_none());
        }
    }

    #[test]
    fn an_unknown_collection_stores_nothing() {
        let (_dir, engine) = engine();
        let w = write_messages(&engine, "nope", vec![rows(0..3, 1.0)]);
        assert!(matches!(w.error, Some(vdb_engine::Error::NotFound(_))));
        assert_eq!((w.messages, w.rows, w.lsn), (0, 0, None));
    }
}
