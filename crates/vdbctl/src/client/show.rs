//! How the collection commands print what the server returns.

use serde_json::{Value, json};
use vdb_proto::v1 as pb;

/// A collection's settings and numbers as one JSON object.
pub fn info_json(i: &pb::CollectionInfo) -> Value {
    let c = i.config.clone().unwrap_or_default();
    let s = i.stats.clone().unwrap_or_default();
    let st = i.storage.clone().unwrap_or_default();
    let role = match pb::StorageRole::try_from(st.role) {
        Ok(pb::StorageRole::Local) => "local",
        Ok(pb::StorageRole::Writer) => "writer",
        Ok(pb::StorageRole::Replica) => "replica",
        _ => "?",
    };
    let mut v = json!({
        "name": i.name,
        "dim": c.dim,
        "metric": pb::Metric::try_from(c.metric).map(|m| m.as_str_name()).unwrap_or("?"),
        "index_type": c.index_type.as_deref().unwrap_or("ivf_flat"),
        "nlist": c.nlist,
        "nprobe": c.nprobe,
        "target_recall": c.target_recall.filter(|&t| t > 0.0),
        "tuned_recall": s.tuned_recall,
        "sync": c.sync,
        "flush_rows": c.flush_rows,
        "rows": s.rows,
        "deleted_rows": s.deleted_rows,
        "segments": s.segments,
        "memtable_rows": s.memtable_rows,
        "memtable_bytes": s.memtable_bytes,
        "segment_bytes": s.segment_bytes,
        "generation": s.generation,
        "lists": s.lists,
        "imbalance": s.imbalance,
        "trained_at": s.trained_at,
        "trained_rows": s.trained_rows,
        "compacted_at": s.compacted_at,
        "rebalances": s.rebalances,
        "rebalanced_at": s.rebalanced_at,
        "flushed_bytes": s.flushed_bytes,
        "rewritten_bytes": s.rewritten_bytes,
        "last_lsn": s.last_lsn,
        "flushed_lsn": s.flushed_lsn,
        "role": role,
    });
    if let (Value::Object(m), false) = (&mut v, c.fields.is_empty()) {
        let fields: Vec<String> = c
            .fields
            .iter()
            .map(|f| format!("{}:{}", f.name, f.r#type))
            .collect();
        m.insert("fields".into(), json!(fields.join(" ")));
    }
    if let (Value::Object(m), false) = (&mut v, s.postponed.is_empty()) {
        m.insert("postponed".into(), json!(s.postponed));
    }
    if let (Value::Object(m), false) = (&mut v, st.writer.is_empty()) {
        m.insert("writer".into(), json!(st.writer));
        m.insert("manifest_version".into(), json!(st.manifest_version));
    }
    if let (Value::Object(m), "replica") = (&mut v, role) {
        m.insert("seconds_behind".into(), json!(st.seconds_behind));
        if !st.follow_error.is_empty() {
            m.insert("follow_error".into(), json!(st.follow_error));
        }
    }
    v
}

/// Prints a collection as JSON or as a `key  value` table.
pub fn print_info(i: &pb::CollectionInfo, as_json: bool) {
    let v = info_json(i);
    if as_json {
        println!("{v}");
        return;
    }
    if let Value::Object(map) = v {
        for (k, val) in map {
            let shown = match val {
                Value::String(s) => s,
                Value::Null => "-".into(),
                other => other.to_string(),
            };
            println!("{k:>14}  {shown}");
        }
    }
}

/// A payload as one short line of text.
pub fn payload_text(p: &Option<Vec<u8>>) -> String {
    match p {
        None => String::new(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) if s.len() <= 60 => s.to_string(),
            Ok(s) => format!("{}…", s.chars().take(57).collect::<String>()),
            Err(_) => format!("<{} bytes>", b.len()),
        },
    }
}

/// Typed field values as a JSON object (name to value).
pub fn fields_json(fields: &std::collections::HashMap<String, pb::FieldValue>) -> Value {
    use pb::field_value::Kind;
    let mut names: Vec<&String> = fields.keys().collect();
    names.sort();
    let m: serde_json::Map<String, Value> = names
        .into_iter()
        .map(|n| {
            let v = match fields.get(n).and_then(|v| v.kind.as_ref()) {
                Some(Kind::Keyword(s)) => json!(s),
                Some(Kind::Int(i)) => json!(i),
                Some(Kind::Float(x)) => json!(x),
                Some(Kind::Bool(b)) => json!(b),
                Some(Kind::Keywords(k)) => json!(k.values),
                None => Value::Null,
            };
            (n.clone(), v)
        })
        .collect();
    Value::Object(m)
}

/// Typed field values as `name=value` words, for tables.
pub fn fields_text(fields: &std::collections::HashMap<String, pb::FieldValue>) -> String {
    match fields_json(fields) {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}
