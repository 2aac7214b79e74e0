//! Guards filtered search against a plain in-memory model: through random
//! upserts, deletes, flushes, compactions, retrains and reopens, a search
//! with a random filter at nprobe = nlist returns exactly the model's
//! nearest matching rows, at nprobe 1 it returns k rows whenever k rows
//! match, field values read back as written, and bad filters and values
//! are refused with errors that name the problem.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use std::collections::BTreeMap;

use proptest::prelude::*;
use vdb_engine::filter::{CmpOp, matches_values};
use vdb_engine::{
    CollectionConfig, Engine, Error, FieldDef, FieldType, FieldValues, Filter, Metric, Row,
    SearchOptions, Value,
};

fn fields() -> Vec<FieldDef> {
    vec![
        FieldDef::new("album", FieldType::Keyword),
        FieldDef::new("year", FieldType::Int),
        FieldDef::new("score", FieldType::Float),
        FieldDef::new("ok", FieldType::Bool),
        FieldDef::new("tags", FieldType::Keywords),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(Vec<(u64, [i8; 4], u8)>),
    Delete(Vec<u64>),
    Flush,
    Compact,
    Retrain(usize),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0u64..60;
    prop_oneof![
        8 => prop::collection::vec((id.clone(), any::<[i8; 4]>(), any::<u8>()), 1..10).prop_map(|mut rows| {
            rows.sort_by_key(|r| r.0);
            rows.dedup_by_key(|r| r.0);
            Op::Upsert(rows)
        }),
        2 => prop::collection::vec(id, 1..5).prop_map(Op::Delete),
        1 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => (1usize..5).prop_map(Op::Retrain),
        1 => Just(Op::Reopen),
    ]
}

fn vector(v: [i8; 4]) -> Vec<f32> {
    v.iter().map(|&x| x as f32 / 8.0).collect()
}

/// Values chosen by the bits of `seed`; some rows lack some fields.
fn values(seed: u8) -> FieldValues {
    let mut v = FieldValues::new();
    if seed & 1 != 0 {
        v.push((
            "album".into(),
            Value::Keyword(["a", "b", "c"][(seed as usize / 2) % 3].into()),
        ));
    }
    if seed & 2 != 0 {
        v.push(("ok".into(), Value::Bool(seed & 4 != 0)));
    }
    if seed & 8 != 0 {
        v.push(("score".into(), Value::Float((seed % 7) as f64 / 2.0)));
    }
    if seed & 16 != 0 {
        let mut tags = vec!["x".to_string()];
        if seed & 32 != 0 {
            tags.push("y".into());
        }
        v.push(("tags".into(), Value::Keywords(tags)));
    }
    if !seed.is_multiple_of(5) {
        v.push(("year".into(), Value::Int((seed % 4) as i64 + 2020)));
    }
    v
}

fn filters() -> Vec<Filter> {
    let text = [
        "album = 'a'",
        "album != 'a' and year >= 2022",
        "not album = 'a'",
        "tags contains 'y' or ok = true",
        "score < 1.5 and not (year in [2020, 2021])",
        "album in ['b', 'c'] and tags in ['x']",
        "id in [1, 2, 3, 5, 8, 13, 21, 34, 55]",
        "year = 2023 and album = 'c' and ok = false",
        "album = 'nowhere'",
    ];
    text.iter().map(|t| Filter::parse(t).unwrap()).collect()
}

type Model = BTreeMap<u64, (Vec<f32>, FieldValues)>;

fn check(engine: &Engine, model: &Model) -> Result<(), TestCaseError> {
    let c = engine.collection("f").unwrap();
    for (id, (_, fields)) in model {
        prop_assert_eq!(&c.get(*id).unwrap().unwrap().fields, fields);
    }
    let q = vector([3, -2, 1, 0]);
    for f in filters() {
        let matching: Vec<(f32, u64)> = {
            let mut m: Vec<(f32, u64)> = model
                .iter()
                .filter(|(id, (_, v))| matches_values(&f, **id, v))
                .map(|(&id, (v, _))| (Metric::L2.distance(&q, v), id))
                .collect();
            m.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            m
        };
        let opts = |nprobe| SearchOptions {
            k: 6,
            nprobe: Some(nprobe),
            filter: Some(f.clone()),
            with_fields: true,
            ..Default::default()
        };
        let exact = c
            .search(std::slice::from_ref(&q), opts(usize::MAX))
            .unwrap()
            .remove(0);
        let got: Vec<(f32, u64)> = exact.iter().map(|h| (h.distance, h.id)).collect();
        let want: Vec<(f32, u64)> = matching.iter().take(6).copied().collect();
        prop_assert_eq!(&got, &want, "filter {}", f);
        for h in &exact {
            prop_assert_eq!(&h.fields, &model[&h.id].1);
        }
        let one = c
            .search(std::slice::from_ref(&q), opts(1))
            .unwrap()
            .remove(0);
        prop_assert_eq!(one.len(), matching.len().min(6), "filter {} at nprobe 1", f);
        for h in &one {
            prop_assert!(matches_values(&f, h.id, &model[&h.id].1));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn filtered_search_matches_the_model(ops in prop::collection::vec(op(), 1..30)) {
        let dir = tempfile::tempdir().unwrap();
        let mut engine = Engine::open(dir.path()).unwrap();
        let config = CollectionConfig {
            nlist: 4,
            min_rows_per_list: 3,
            flush_rows: 13,
            fields: fields(),
            ..CollectionConfig::new(4)
        };
        engine.create_collection("f", config).unwrap();
        let mut model = Model::new();
        for op in ops {
            let c = engine.collection("f").unwrap();
            match op {
                Op::Upsert(rows) => {
                    let rows: Vec<Row> = rows
                        .into_iter()
                        .map(|(id, v, seed)| Row { id, vector: vector(v), payload: None, fields: values(seed) })
                        .collect();
                    for r in &rows {
                        model.insert(r.id, (r.vector.clone(), r.fields.clone()));
                    }
                    c.upsert(rows).unwrap();
                }
                Op::Delete(ids) => {
                    for id in &ids {
                        model.remove(id);
                    }
                    c.delete(&ids).unwrap();
                }
                Op::Flush => c.flush().unwrap(),
                Op::Compact => {
                    c.compact().unwrap();
                }
                Op::Retrain(nlist) => {
                    if nlist <= model.len() {
                        c.retrain(Some(nlist)).unwrap();
                    }
                }
                Op::Reopen => {
                    drop(c);
                    drop(engine);
                    engine = Engine::open(dir.path()).unwrap();
                }
            }
            check(&engine, &model)?;
        }
    }
}

fn invalid(e: Error) -> String {
    match e {
        Error::InvalidArgument { field, reason } => format!("{field}: {reason}"),
        other => panic!("expected InvalidArgument, got {other}"),
    }
}

#[test]
fn bad_filters_and_values_are_refused_by_name_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let config = CollectionConfig {
        fields: fields(),
        ..CollectionConfig::new(2)
    };
    let c = engine.create_collection("f", config).unwrap();
    let row = |id, fields| Row {
        id,
        vector: vec![id as f32, 0.0],
        payload: None,
        fields,
    };
    c.upsert(vec![row(1, values(0xff))]).unwrap();
    for (fields, want) in [
        (
            vec![("albm".to_string(), Value::Keyword("x".into()))],
            "rows[1].fields.albm: the collection has no field",
        ),
        (
            vec![("year".to_string(), Value::Keyword("x".into()))],
            "rows[1].fields.year: field \"year\" is int, the value is keyword",
        ),
        (
            vec![("score".to_string(), Value::Float(f64::NAN))],
            "rows[1].fields.score: NaN is not finite",
        ),
    ] {
        let e = c.upsert(vec![row(2, vec![]), row(3, fields)]).unwrap_err();
        let msg = invalid(e);
        assert!(msg.starts_with(want), "{msg}");
    }
    assert!(
        c.get(2).unwrap().is_none(),
        "a refused batch writes nothing"
    );
    for (filter, want) in [
        ("albm = 'x'", "unknown field \"albm\""),
        ("year = 'x'", "field \"year\" is int"),
        ("album < 'x'", "compares numbers only"),
        ("tags = 'x'", "contains"),
    ] {
        let opts = SearchOptions {
            filter: Some(Filter::parse(filter).unwrap()),
            ..Default::default()
        };
        let msg = invalid(c.search(&[vec![0.0, 0.0]], opts).unwrap_err());
        assert!(
            msg.starts_with("filter: ") && msg.contains(want),
            "{filter}: {msg}"
        );
    }
    let opts = SearchOptions {
        filter: Some(Filter::Compare {
            field: "year".into(),
            op: CmpOp::Ge,
            value: Value::Int(0),
        }),
        max_probes: Some(0),
        ..Default::default()
    };
    assert!(invalid(c.search(&[vec![0.0, 0.0]], opts).unwrap_err()).starts_with("max_probes"));
    // A collection without fields refuses values and names that.
    let plain = engine
        .create_collection("p", CollectionConfig::new(2))
        .unwrap();
    let msg = invalid(plain.upsert(vec![row(1, values(1))]).unwrap_err());
    assert!(msg.contains("declares none"), "{msg}");
    // Bad declarations.
    for (f, want) in [
        (vec![FieldDef::new("id", FieldType::Int)], "reserved"),
        (
            vec![
                FieldDef::new("a", FieldType::Int),
                FieldDef::new("a", FieldType::Bool),
            ],
            "twice",
        ),
    ] {
        let config = CollectionConfig {
            fields: f,
            ..CollectionConfig::new(2)
        };
        let msg = invalid(engine.create_collection("bad", config).unwrap_err());
        assert!(msg.contains(want), "{msg}");
    }
}

/// Two clusters far apart; `album` and `price` follow the cluster.
fn two_clusters(engine: &Engine) -> std::sync::Arc<vdb_engine::Collection> {
    let config = CollectionConfig {
        nlist: 2,
        min_rows_per_list: 5,
        fields: vec![
            FieldDef::new("album", FieldType::Keyword),
            FieldDef::new("price", FieldType::Int),
        ],
        ..CollectionConfig::new(2)
    };
    let c = engine.create_collection("two", config).unwrap();
    let rows = (0..200u64)
        .map(|i| {
            let (base, album) = if i < 100 {
                (0.0, "left")
            } else {
                (10.0, "right")
            };
            let jitter = (i % 10) as f32 / 10.0;
            Row {
                id: i,
                vector: vec![base + jitter, base - jitter],
                payload: None,
                fields: vec![
                    ("album".into(), Value::Keyword(album.into())),
                    ("price".into(), Value::Int(i as i64)),
                ],
            }
        })
        .collect();
    c.upsert(rows).unwrap();
    c.flush().unwrap();
    assert_eq!(c.snapshot().nlist(), 2);
    c
}

#[test]
fn lists_no_row_of_which_can_pass_are_skipped_and_explain_counts_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let c = two_clusters(&engine);
    let explain = |query: [f32; 2], filter: &str| {
        let opts = vdb_engine::ExplainOptions {
            nprobe: Some(1),
            filter: Some(Filter::parse(filter).unwrap()),
            ..vdb_engine::ExplainOptions::new(5)
        };
        c.explain(&query, opts).unwrap()
    };
    // Near the left cluster, asking for right rows: the left list is
    // ruled out untested, the right one probed past nprobe.
    let e = explain([0.0, 0.0], "album = 'right'");
    assert_eq!(e.hits.len(), 5);
    assert!(e.hits.iter().all(|h| h.hit.id >= 100), "{:?}", e.hits);
    let (first, second) = (&e.trace.probed[0], &e.trace.probed[1]);
    assert_eq!(
        (first.ruled_out, first.filtered_out, first.scanned),
        (100, 100, 0)
    );
    assert_eq!((second.ruled_out, second.filtered_out), (0, 0));
    assert_eq!(e.filter_rows, Some(100));
    assert_eq!(e.trace.filter_estimate, Some(100.0));
    // The target: the rows of the one nearest list; all 100 right rows
    // were scored (they are fewer than... exactly the target).
    assert_eq!((e.trace.filter_target, e.trace.filter_matched), (100, 100));

    // A range no left row is in.
    let e = explain([10.0, 10.0], "price < 50");
    assert_eq!(e.trace.probed[0].ruled_out, 100);
    assert!(e.hits.iter().all(|h| h.hit.id < 50));
    assert_eq!(e.filter_rows, Some(50));
    let est = e.trace.filter_estimate.unwrap();
    assert!((40.0..=60.0).contains(&est), "{est}");

    // Deleted rows leave the true count at once and the estimate in
    // proportion; a `not` never rules a list out.
    c.delete(&(100..110).collect::<Vec<_>>()).unwrap();
    c.flush().unwrap();
    let e = explain([0.0, 0.0], "album = 'right'");
    assert_eq!(e.filter_rows, Some(90));
    let est = e.trace.filter_estimate.unwrap();
    assert!((85.0..=100.0).contains(&est), "{est}");
    let e = explain([0.0, 0.0], "not album = 'left'");
    assert!(e.trace.probed.iter().all(|p| p.ruled_out == 0));
    assert_eq!(e.hits.len(), 5);
}

#[test]
fn tune_measures_recall_of_filtered_searches() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let c = two_clusters(&engine);
    let opts = vdb_engine::TuneOptions {
        k: 5,
        sample: 40,
        filter: Some(Filter::parse("album = 'right' and price >= 150").unwrap()),
        ..vdb_engine::TuneOptions::new(0.9)
    };
    let report = c.tune(&opts).unwrap();
    // Fewer rows pass than one list holds: every list is searched, so
    // the filtered search is exact at any nprobe.
    for p in &report.points {
        assert_eq!(p.recall, 1.0, "{p:?}");
        assert!(p.distances_per_query >= 2.0, "{p:?}");
    }
    assert_eq!(report.recommended, Some(1));
    let bad = vdb_engine::TuneOptions {
        filter: Some(Filter::parse("colour = 'red'").unwrap()),
        ..opts
    };
    let msg = invalid(c.tune(&bad).unwrap_err());
    assert!(msg.contains("unknown field \"colour\""), "{msg}");
}

#[test]
fn fields_declared_later_are_checked_kept_and_filtered_on() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let c = two_clusters(&engine);
    let row = |id: u64, fields: FieldValues| Row {
        id,
        vector: vec![0.5, -0.5],
        payload: None,
        fields,
    };
    let stock = |n| vec![("stock".to_string(), Value::Int(n))];
    let msg = invalid(c.upsert(vec![row(500, stock(3))]).unwrap_err());
    assert!(msg.contains("no field \"stock\""), "{msg}");

    // A clash with a declared field, or a bad name, changes nothing.
    for (def, want) in [
        (FieldDef::new("album", FieldType::Int), "add_fields[0]"),
        (FieldDef::new("id", FieldType::Int), "reserved"),
    ] {
        let alter = vdb_engine::Alter {
            add_fields: vec![def],
            ..Default::default()
        };
        let msg = invalid(c.alter(alter).unwrap_err());
        assert!(msg.contains(want), "{msg}");
    }
    assert_eq!(c.config().fields.len(), 2);

    let cfg = c
        .alter(vdb_engine::Alter {
            add_fields: vec![FieldDef::new("stock", FieldType::Int)],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        cfg.fields.last(),
        Some(&FieldDef::new("stock", FieldType::Int))
    );
    // Row 7 gains the field by being written again; row 500 is new; both
    // stay in the log (unflushed) across the reopen below.
    let mut seven = c.get(7).unwrap().unwrap();
    seven.fields.push(("stock".into(), Value::Int(0)));
    seven.fields.sort_by(|a, b| a.0.cmp(&b.0));
    c.upsert(vec![seven, row(500, stock(3))]).unwrap();

    let in_stock = |c: &vdb_engine::Collection, filter: &str| -> Vec<u64> {
        let opts = SearchOptions {
            k: 300,
            filter: Some(Filter::parse(filter).unwrap()),
            ..Default::default()
        };
        let mut ids: Vec<u64> = c.search(&[vec![0.0, 0.0]], opts).unwrap()[0]
            .iter()
            .map(|h| h.id)
            .collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(in_stock(&c, "stock >= 0"), vec![7, 500]);
    // Rows written before have no value: `!=` is false for them too.
    assert_eq!(in_stock(&c, "stock != 3"), vec![7]);
    assert_eq!(in_stock(&c, "album = 'left' and stock >= 0"), vec![7]);

    drop(c);
    drop(engine);
    let engine = Engine::open(dir.path()).unwrap();
    let c = engine.collection("two").unwrap();
    assert_eq!(c.config().fields.len(), 3);
    assert_eq!(in_stock(&c, "stock >= 0"), vec![7, 500]);
    c.flush().unwrap();
    c.compact().unwrap();
    assert_eq!(in_stock(&c, "stock < 1"), vec![7]);
    let got = c.get(500).unwrap().unwrap();
    assert_eq!(got.fields, stock(3));
}
