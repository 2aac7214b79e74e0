//! Typed fields and filters between the API's messages and the engine's
//! types, both ways (the client side, `vdbctl`, uses the way out).
//! Errors name the field as the client sent it (`rows[2].fields.year`,
//! `filter.and[1].condition.values`).

use std::collections::HashMap;

use tonic::Status;
use vdb_engine::{FieldDef, FieldType, FieldValues, Filter, Value};
use vdb_proto::v1 as pb;
use vdb_proto::v1::FilterOp as Op;
use vdb_proto::v1::field_value::Kind as VKind;
use vdb_proto::v1::filter::Kind as FKind;

use crate::status::invalid;

/// A declared field from the API's.
pub fn field_def_from_pb(f: &pb::FieldSpec, path: &str) -> Result<FieldDef, Status> {
    let ty: FieldType = f
        .r#type
        .parse()
        .map_err(|e| invalid(&format!("{path}.type"), e))?;
    Ok(FieldDef::new(f.name.clone(), ty))
}

/// A declared field as the API's.
pub fn field_def_to_pb(f: &FieldDef) -> pb::FieldSpec {
    pb::FieldSpec {
        name: f.name.clone(),
        r#type: f.ty.name().to_string(),
    }
}

/// A field value from the API's.
pub fn value_from_pb(v: &pb::FieldValue, path: &str) -> Result<Value, Status> {
    Ok(match &v.kind {
        None => return Err(invalid(path, "no value is set")),
        Some(VKind::Keyword(s)) => Value::Keyword(s.clone()),
        Some(VKind::Int(n)) => Value::Int(*n),
        Some(VKind::Float(x)) => Value::Float(*x),
        Some(VKind::Bool(b)) => Value::Bool(*b),
        Some(VKind::Keywords(k)) => Value::Keywords(k.values.clone()),
    })
}

/// A field value as the API's.
pub fn value_to_pb(v: &Value) -> pb::FieldValue {
    let kind = match v {
        Value::Keyword(s) => VKind::Keyword(s.clone()),
        Value::Int(n) => VKind::Int(*n),
        Value::Float(x) => VKind::Float(*x),
        Value::Bool(b) => VKind::Bool(*b),
        Value::Keywords(k) => VKind::Keywords(pb::Keywords { values: k.clone() }),
    };
    pb::FieldValue { kind: Some(kind) }
}

/// A row's field values from the API's map (checked against the
/// collection by the engine).
pub fn values_from_pb(
    map: HashMap<String, pb::FieldValue>,
    path: &str,
) -> Result<FieldValues, Status> {
    let mut out = map
        .iter()
        .map(|(name, v)| Ok((name.clone(), value_from_pb(v, &format!("{path}.{name}"))?)))
        .collect::<Result<FieldValues, Status>>()?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// A row's field values as the API's map.
pub fn values_to_pb(values: &FieldValues) -> HashMap<String, pb::FieldValue> {
    values
        .iter()
        .map(|(n, v)| (n.clone(), value_to_pb(v)))
        .collect()
}

/// A filter from the API's; the engine checks it against the collection.
pub fn filter_from_pb(f: &pb::Filter, path: &str) -> Result<Filter, Status> {
    filter_at(f, path, 0)
}

fn filter_at(f: &pb::Filter, path: &str, depth: usize) -> Result<Filter, Status> {
    if depth > vdb_engine::filter::MAX_DEPTH {
        return Err(invalid(
            path,
            format!("nested deeper than {}", vdb_engine::filter::MAX_DEPTH),
        ));
    }
    let list = |l: &pb::FilterList, word: &str| -> Result<Vec<Filter>, Status> {
        l.filters
            .iter()
            .enumerate()
            .map(|(i, f)| filter_at(f, &format!("{path}.{word}[{i}]"), depth + 1))
            .collect()
    };
    Ok(match &f.kind {
        None => return Err(invalid(path, "empty: set and, or, not, condition or ids")),
        Some(FKind::And(l)) => Filter::And(list(l, "and")?),
        Some(FKind::Or(l)) => Filter::Or(list(l, "or")?),
        Some(FKind::Not(inner)) => Filter::Not(Box::new(filter_at(
            inner,
            &format!("{path}.not"),
            depth + 1,
        )?)),
        Some(FKind::Ids(ids)) => Filter::Ids(ids.ids.clone()),
        Some(FKind::Condition(c)) => condition_from_pb(c, &format!("{path}.condition"))?,
    })
}

fn condition_from_pb(c: &pb::Condition, path: &str) -> Result<Filter, Status> {
    let op = Op::try_from(c.op).map_err(|_| invalid(&format!("{path}.op"), "unknown value"))?;
    let values = c
        .values
        .iter()
        .enumerate()
        .map(|(i, v)| value_from_pb(v, &format!("{path}.values[{i}]")))
        .collect::<Result<Vec<Value>, Status>>()?;
    let one = || -> Result<Value, Status> {
        match values.as_slice() {
            [v] => Ok(v.clone()),
            _ => Err(invalid(
                &format!("{path}.values"),
                format!(
                    "{} values; {} takes exactly one",
                    values.len(),
                    op.as_str_name().trim_start_matches("FILTER_OP_")
                ),
            )),
        }
    };
    let field = c.field.clone();
    let cmp = |op| -> Result<Filter, Status> {
        Ok(Filter::Compare {
            field: field.clone(),
            op,
            value: one()?,
        })
    };
    use vdb_engine::filter::CmpOp;
    Ok(match op {
        Op::Unspecified => return Err(invalid(&format!("{path}.op"), "not set")),
        Op::Eq => cmp(CmpOp::Eq)?,
        Op::Ne => cmp(CmpOp::Ne)?,
        Op::Lt => cmp(CmpOp::Lt)?,
        Op::Le => cmp(CmpOp::Le)?,
        Op::Gt => cmp(CmpOp::Gt)?,
        Op::Ge => cmp(CmpOp::Ge)?,
        Op::In => Filter::In { field, values },
        Op::Contains => match one()? {
            Value::Keyword(value) => Filter::Contains { field, value },
            v => {
                return Err(invalid(
                    &format!("{path}.values[0]"),
                    format!("contains takes a keyword, not {}", v.field_type()),
                ));
            }
        },
    })
}

/// A filter as the API's.
pub fn filter_to_pb(f: &Filter) -> pb::Filter {
    use vdb_engine::filter::CmpOp;
    let list = |v: &[Filter]| pb::FilterList {
        filters: v.iter().map(filter_to_pb).collect(),
    };
    let cond = |field: &str, op: Op, values: Vec<pb::FieldValue>| {
        FKind::Condition(pb::Condition {
            field: field.to_string(),
            op: op as i32,
            values,
        })
    };
    let kind = match f {
        Filter::And(v) => FKind::And(list(v)),
        Filter::Or(v) => FKind::Or(list(v)),
        Filter::Not(inner) => FKind::Not(Box::new(filter_to_pb(inner))),
        Filter::Ids(ids) => FKind::Ids(pb::IdSet { ids: ids.clone() }),
        Filter::Compare { field, op, value } => {
            let op = match op {
                CmpOp::Eq => Op::Eq,
                CmpOp::Ne => Op::Ne,
                CmpOp::Lt => Op::Lt,
                CmpOp::Le => Op::Le,
                CmpOp::Gt => Op::Gt,
                CmpOp::Ge => Op::Ge,
            };
            cond(field, op, vec![value_to_pb(value)])
        }
        Filter::In { field, values } => {
            cond(field, Op::In, values.iter().map(value_to_pb).collect())
        }
        Filter::Contains { field, value } => cond(
            field,
            Op::Contains,
            vec![value_to_pb(&Value::Keyword(value.clone()))],
        ),
    };
    pb::Filter { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_round_trip_and_bad_ones_are_named() {
        for text in [
            "album = 'cats' and year >= 2020",
            "not (tags contains 'x' or id in [1, 2]) and score < 1.5 and ok != true",
            "year in [1, 2] or album in ['a', 'b']",
        ] {
            let f = Filter::parse(text).unwrap();
            assert_eq!(filter_from_pb(&filter_to_pb(&f), "filter").unwrap(), f);
        }
        let empty = pb::Filter { kind: None };
        let e = filter_from_pb(&empty, "filter").unwrap_err();
        assert!(e.message().contains("invalid filter: empty"), "{e:?}");
        let two = pb::Filter {
            kind: Some(FKind::And(pb::FilterList {
                filters: vec![pb::Filter {
                    kind: Some(FKind::Condition(pb::Condition {
                        field: "year".into(),
                        op: Op::Eq as i32,
                        values: vec![value_to_pb(&Value::Int(1)), value_to_pb(&Value::Int(2))],
                    })),
                }],
            })),
        };
        let e = filter_from_pb(&two, "filter").unwrap_err();
        assert!(
            e.message()
                .contains("filter.and[0].condition.values: 2 values; EQ takes exactly one"),
            "{e:?}"
        );
    }
}
