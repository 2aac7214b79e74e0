use proptest::prelude::*;

use super::*;
use crate::fields::{ColumnsBuilder, FieldType, FieldValues};
use crate::ids::ListId;

fn schema() -> Vec<FieldDef> {
    vec![
        FieldDef::new("album", FieldType::Keyword),
        FieldDef::new("year", FieldType::Int),
        FieldDef::new("score", FieldType::Float),
        FieldDef::new("ok", FieldType::Bool),
        FieldDef::new("tags", FieldType::Keywords),
    ]
}

#[test]
fn parses_the_text_form() {
    let f = Filter::parse("album = 'cats' and year >= 2020").unwrap();
    assert_eq!(
        f,
        Filter::And(vec![
            Filter::Compare {
                field: "album".into(),
                op: CmpOp::Eq,
                value: Value::Keyword("cats".into())
            },
            Filter::Compare {
                field: "year".into(),
                op: CmpOp::Ge,
                value: Value::Int(2020)
            },
        ])
    );
    let f = Filter::parse(
        "NOT (tags contains \"x\" OR id in [1, 18446744073709551615]) and score < -1.5e3 and ok != true and year not in (1, 2)",
    )
    .unwrap();
    let text = f.to_string();
    assert_eq!(Filter::parse(&text).unwrap(), f, "{text}");
    assert!(text.contains("18446744073709551615"), "{text}");
    assert_eq!(
        Filter::parse("id != 4").unwrap(),
        Filter::Not(Box::new(Filter::Ids(vec![4])))
    );
    assert_eq!(
        Filter::parse("album = 'it\\'s'").unwrap().to_string(),
        "album = 'it\\'s'"
    );
}

#[test]
fn syntax_errors_name_the_position() {
    for (text, at, what) in [
        ("", "at 0", "empty"),
        ("album = ", "at 8", "expected a value"),
        ("album = cats", "at 8", "quote strings"),
        ("album == 'x' year > 1", "at 13", "expected 'and'"),
        ("(year > 1", "at 9", "expected ')'"),
        ("year ~ 1", "at 5", "unexpected '~'"),
        ("album = 'x", "at 8", "not closed"),
        ("tags contains 3", "at 14", "contains takes a string"),
        ("id in [1, -2]", "at 10", "non-negative"),
        ("id > 3", "at 3", "id compares"),
        ("year in [1 2]", "at 11", "expected ','"),
        ("year = 9223372036854775808", "at 7", "largest int"),
        ("and = 1", "at 0", "expected a field name"),
    ] {
        let e = Filter::parse(text).unwrap_err();
        assert_eq!(e.path, "filter");
        assert!(
            e.reason.starts_with(at) && e.reason.contains(what),
            "{text:?}: {e}"
        );
    }
    let deep = format!("{}year = 1{}", "(".repeat(40), ")".repeat(40));
    assert!(Filter::parse(&deep).unwrap_err().reason.contains("nested"));
}

#[test]
fn checks_name_the_field_and_the_type() {
    let s = schema();
    for (text, what) in [
        ("albm = 'x'", "unknown field \"albm\""),
        ("year = 'x'", "field \"year\" is int, compared with keyword"),
        ("album > 'x'", "compares numbers only"),
        ("tags = 'x'", "use `tags contains"),
        ("album contains 'x'", "contains applies to keywords"),
        ("ok in [1]", "field \"ok\" is bool"),
    ] {
        let e = Filter::parse(text).unwrap().check(&s).unwrap_err();
        assert!(e.reason.contains(what), "{text}: {e}");
    }
    let e = Filter::parse("x = 1").unwrap().check(&[]).unwrap_err();
    assert!(e.reason.contains("declares none"), "{e}");
    for ok in [
        "year >= 2019.5 and score = 1",
        "tags in ['a', 'b'] and not ok = false",
        "id in [1, 2] or album in ['a']",
    ] {
        Filter::parse(ok).unwrap().check(&s).unwrap();
    }
}

fn value(ty: FieldType) -> impl Strategy<Value = Value> {
    let word = prop::sample::select(vec!["a", "b", "c", "d"]).prop_map(String::from);
    match ty {
        FieldType::Keyword => word.prop_map(Value::Keyword).boxed(),
        FieldType::Int => (-3i64..4).prop_map(Value::Int).boxed(),
        FieldType::Float => (-3i32..4)
            .prop_map(|x| Value::Float(x as f64 / 2.0))
            .boxed(),
        FieldType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        FieldType::Keywords => prop::collection::vec(word, 0..3)
            .prop_map(|mut v| {
                v.sort();
                v.dedup();
                Value::Keywords(v)
            })
            .boxed(),
    }
}

fn row() -> impl Strategy<Value = FieldValues> {
    let s = schema();
    let parts: Vec<_> = s
        .into_iter()
        .map(|f| prop::option::of(value(f.ty)).prop_map(move |v| v.map(|v| (f.name.clone(), v))))
        .collect();
    parts.prop_map(|v| {
        let mut v: FieldValues = v.into_iter().flatten().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    })
}

fn cond() -> impl Strategy<Value = Filter> {
    let ops = prop::sample::select(vec![
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
    ]);
    let eq = prop::sample::select(vec![CmpOp::Eq, CmpOp::Ne]);
    let word = prop::sample::select(vec!["a", "b", "c", "zz"]).prop_map(String::from);
    prop_oneof![
        (eq.clone(), word.clone()).prop_map(|(op, w)| Filter::Compare {
            field: "album".into(),
            op,
            value: Value::Keyword(w)
        }),
        (ops.clone(), -4i64..5).prop_map(|(op, n)| Filter::Compare {
            field: "year".into(),
            op,
            value: Value::Int(n)
        }),
        (ops.clone(), -8i32..9).prop_map(|(op, n)| Filter::Compare {
            field: "year".into(),
            op,
            value: Value::Float(n as f64 / 2.0)
        }),
        (ops, -8i32..9).prop_map(|(op, n)| Filter::Compare {
            field: "score".into(),
            op,
            value: Value::Float(n as f64 / 2.0)
        }),
        (eq, any::<bool>()).prop_map(|(op, b)| Filter::Compare {
            field: "ok".into(),
            op,
            value: Value::Bool(b)
        }),
        prop::collection::vec(word.clone(), 0..3).prop_map(|v| Filter::In {
            field: "album".into(),
            values: v.into_iter().map(Value::Keyword).collect()
        }),
        prop::collection::vec(word.clone(), 0..3).prop_map(|v| Filter::In {
            field: "tags".into(),
            values: v.into_iter().map(Value::Keyword).collect()
        }),
        prop::collection::vec(-3i64..4, 0..3).prop_map(|v| Filter::In {
            field: "year".into(),
            values: v.into_iter().map(Value::Int).collect()
        }),
        prop::collection::vec(any::<bool>(), 0..3).prop_map(|v| Filter::In {
            field: "ok".into(),
            values: v.into_iter().map(Value::Bool).collect()
        }),
        word.prop_map(|w| Filter::Contains {
            field: "tags".into(),
            value: w
        }),
        prop::collection::vec(0u64..12, 0..4).prop_map(Filter::Ids),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    cond().prop_recursive(3, 24, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Filter::And),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Filter::Or),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
}

proptest! {
    /// Column evaluation agrees with the tree evaluated on each row's
    /// values, and the text form reads back as the same tree.
    #[test]
    fn columns_agree_with_the_reference(rows in prop::collection::vec(row(), 0..12), f in filter()) {
        prop_assert!(f.check(&schema()).is_ok(), "{f}");
        let text = f.to_string();
        let parsed = Filter::parse(&text).unwrap();
        prop_assert_eq!(&parsed.to_string(), &text);
        let mut b = ColumnsBuilder::new(&schema());
        for r in &rows {
            b.push(r);
        }
        let cols = b.finish();
        let ids: Vec<u64> = (0..rows.len() as u64).collect();
        // Lists of 3 rows: the summaries never rule out a passing row.
        let starts: Vec<usize> = (0..rows.len()).step_by(3).chain([rows.len()]).collect();
        let index = ListIndex::build(&cols, &starts);
        let bound = f.bind(&cols, &ids, Some(&index));
        for (l, w) in starts.windows(2).enumerate() {
            let any = (w[0]..w[1]).any(|r| matches_values(&f, r as u64, &rows[r]));
            if any {
                prop_assert!(bound.may_match(ListId(l as u32)), "list {} filter {}", l, text);
            }
            let e = bound.estimate(ListId(l as u32)).unwrap_or(0.0);
            prop_assert!((0.0..=(w[1] - w[0]) as f64).contains(&e), "estimate {}", e);
        }
        for (i, r) in rows.iter().enumerate() {
            let want = matches_values(&f, i as u64, r);
            prop_assert_eq!(bound.matches(i), want, "row {} {:?} filter {}", i, r, text);
            prop_assert_eq!(matches_values(&parsed, i as u64, r), want, "parsed {}", text);
        }
        if bound.is_none() {
            prop_assert!(rows.iter().enumerate().all(|(i, r)| !matches_values(&f, i as u64, r)));
        }
    }
}
