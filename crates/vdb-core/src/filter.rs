//! Filter expressions over a row's id and typed fields: the tree, its text
//! form (`album = 'cats' and year >= 2020`), the check against a
//! collection's fields, and evaluation over a source's [`Columns`].
//!
//! Semantics (`docs/filters.md`): a condition on a field the row
//! has no value for is false — `!=` included — and `not` inverts what it
//! wraps, so `not album = 'cats'` holds for rows without an album while
//! `album != 'cats'` does not. Numbers compare by value whatever their
//! type (`year >= 2019.5`); keywords compare with `=`, `!=` and `in`; a
//! `keywords` field (tags) with `contains` (one value) or `in` (any of
//! several); `id = N`, `id in [...]` select rows by id.

use std::fmt;

use crate::fields::{
    ABSENT, ColumnData, Columns, FieldDef, FieldError, FieldType, ListIndex, Summary, Value, known,
};
use crate::ids::ListId;
use crate::rowset::RowSet;

/// Most values in one `in` list or id set.
pub const MAX_SET: usize = 65_536;
/// Most conditions in one filter.
pub const MAX_NODES: usize = 1024;
/// Deepest nesting of a filter.
pub const MAX_DEPTH: usize = 32;

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// As the text form writes it.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    fn holds<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
        }
    }
}

/// A filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every one holds (an empty list: true).
    And(Vec<Filter>),
    /// At least one holds (an empty list: false).
    Or(Vec<Filter>),
    /// It does not hold.
    Not(Box<Filter>),
    /// `field op value`.
    Compare {
        /// The field.
        field: String,
        /// The comparison.
        op: CmpOp,
        /// A keyword, number or bool.
        value: Value,
    },
    /// The field's value is one of `values` (for tags: the set holds one).
    In {
        /// The field.
        field: String,
        /// Candidates.
        values: Vec<Value>,
    },
    /// A `keywords` field's set holds `value`.
    Contains {
        /// The field.
        field: String,
        /// The keyword.
        value: String,
    },
    /// The row's id is one of these.
    Ids(Vec<u64>),
}

impl Filter {
    /// Checks the filter against a collection's fields: every field
    /// declared, every value of a type the field compares with, sizes
    /// within bounds. Errors name the field and what is wrong.
    pub fn check(&self, fields: &[FieldDef]) -> Result<(), FieldError> {
        let mut nodes = 0;
        self.check_at(fields, 0, &mut nodes)
    }

    fn check_at(
        &self,
        fields: &[FieldDef],
        depth: usize,
        nodes: &mut usize,
    ) -> Result<(), FieldError> {
        *nodes += 1;
        if *nodes > MAX_NODES {
            return Err(err(format!("more than {MAX_NODES} conditions")));
        }
        if depth > MAX_DEPTH {
            return Err(err(format!("nested deeper than {MAX_DEPTH}")));
        }
        let field_of = |name: &str| {
            fields.iter().find(|f| f.name == name).ok_or_else(|| {
                err(format!(
                    "unknown field {name:?}: the collection{}",
                    known(fields).replacen(" (", " has (", 1)
                ))
            })
        };
        match self {
            Filter::And(v) | Filter::Or(v) => {
                for f in v {
                    f.check_at(fields, depth + 1, nodes)?;
                }
            }
            Filter::Not(f) => f.check_at(fields, depth + 1, nodes)?,
            Filter::Compare { field, op, value } => {
                let def = field_of(field)?;
                check_value(def, value)?;
                let ordered = !matches!(op, CmpOp::Eq | CmpOp::Ne);
                if def.ty == FieldType::Keywords {
                    return Err(err(format!(
                        "field {field:?} is keywords: use `{field} contains 'x'` or `{field} in [...]`, not {}",
                        op.symbol()
                    )));
                }
                if ordered && !def.ty.is_numeric() {
                    return Err(err(format!(
                        "field {field:?} is {}: {} compares numbers only",
                        def.ty,
                        op.symbol()
                    )));
                }
            }
            Filter::In { field, values } => {
                let def = field_of(field)?;
                if values.len() > MAX_SET {
                    return Err(err(format!("`{field} in` has over {MAX_SET} values")));
                }
                for v in values {
                    check_value(def, v)?;
                }
            }
            Filter::Contains { field, .. } => {
                let def = field_of(field)?;
                if def.ty != FieldType::Keywords {
                    return Err(err(format!(
                        "field {field:?} is {}: contains applies to keywords fields",
                        def.ty
                    )));
                }
            }
            Filter::Ids(ids) => {
                if ids.len() > MAX_SET {
                    return Err(err(format!("an id set of over {MAX_SET} ids")));
                }
            }
        }
        Ok(())
    }

    /// The filter evaluated over rows with field values `columns` and ids
    /// `ids` (row `r` has id `ids[r]`), with the per-list summaries
    /// `index` of those columns when there are any. The filter must have
    /// passed [`Filter::check`]; what does not apply evaluates to false.
    pub fn bind<'a>(
        &self,
        columns: &'a Columns,
        ids: &'a [u64],
        index: Option<&'a ListIndex>,
    ) -> Bound<'a> {
        Bound {
            node: bind(self, columns),
            ids,
            index: index.filter(|i| i.lists() > 0),
        }
    }

    /// Parses the text form; errors give the byte position.
    pub fn parse(text: &str) -> Result<Filter, FieldError> {
        parse::parse(text)
    }
}

fn err(reason: String) -> FieldError {
    FieldError::new("filter", reason)
}

fn check_value(def: &FieldDef, v: &Value) -> Result<(), FieldError> {
    let ok = match def.ty {
        FieldType::Int | FieldType::Float => v.as_f64().is_some_and(f64::is_finite),
        FieldType::Keyword | FieldType::Keywords => matches!(v, Value::Keyword(_)),
        FieldType::Bool => matches!(v, Value::Bool(_)),
    };
    if ok {
        Ok(())
    } else {
        Err(err(format!(
            "field {:?} is {}, compared with {} {v}",
            def.name,
            def.ty,
            v.field_type()
        )))
    }
}

impl Filter {
    /// The filter with one-element `and`/`or` lists unwrapped.
    fn unwrapped(&self) -> &Filter {
        match self {
            Filter::And(v) | Filter::Or(v) if v.len() == 1 => v[0].unwrapped(),
            f => f,
        }
    }

    /// Whether its text needs parentheses inside another expression.
    fn is_compound(&self) -> bool {
        matches!(self.unwrapped(), Filter::And(v) | Filter::Or(v) if v.len() > 1)
    }
}

impl fmt::Display for Filter {
    /// The text form, which [`Filter::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, v: &[Filter], word: &str, empty: &str| {
            if v.is_empty() {
                return f.write_str(empty);
            }
            for (i, c) in v.iter().enumerate() {
                if i > 0 {
                    write!(f, " {word} ")?;
                }
                if c.is_compound() {
                    write!(f, "({c})")?;
                } else {
                    write!(f, "{c}")?;
                }
            }
            Ok(())
        };
        match self.unwrapped() {
            Filter::And(v) => list(f, v, "and", "true"),
            Filter::Or(v) => list(f, v, "or", "false"),
            Filter::Not(c) if c.is_compound() => write!(f, "not ({c})"),
            Filter::Not(c) => write!(f, "not {c}"),
            Filter::Compare { field, op, value } => write!(f, "{field} {} {value}", op.symbol()),
            Filter::In { field, values } => {
                write!(f, "{field} in [")?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Filter::Contains { field, value } => {
                write!(f, "{field} contains ")?;
                crate::fields::write_quoted(f, value)
            }
            Filter::Ids(ids) => {
                f.write_str("id in [")?;
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{id}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// Which rows of a source a search may return (besides deletions).
/// Rows are numbered as deletion sets number them.
pub trait RowFilter: Send + Sync {
    /// Whether row `row` passes.
    fn matches(&self, row: usize) -> bool;
    /// Whether no row can pass (the source can be skipped).
    fn is_none(&self) -> bool {
        false
    }
    /// Whether a row of list `list` may pass: `false` only when none
    /// can, so the search skips the list without testing its rows.
    fn may_match(&self, list: ListId) -> bool {
        let _ = list;
        true
    }
    /// The rows of list `list` expected to pass, from summaries of the
    /// list (`None`: nothing known).
    fn estimate(&self, list: ListId) -> Option<f64> {
        let _ = list;
        None
    }
}

/// A filter bound to one source's columns, ids and list summaries.
#[derive(Debug)]
pub struct Bound<'a> {
    node: Node<'a>,
    ids: &'a [u64],
    index: Option<&'a ListIndex>,
}

impl RowFilter for Bound<'_> {
    #[inline]
    fn matches(&self, row: usize) -> bool {
        self.node.eval(row, self.ids)
    }
    fn is_none(&self) -> bool {
        matches!(self.node, Node::Const(false))
    }
    fn may_match(&self, list: ListId) -> bool {
        match self.index {
            Some(index) => self.node.may_match(index, list.index()),
            None => !self.is_none(),
        }
    }
    fn estimate(&self, list: ListId) -> Option<f64> {
        let index = self.index?;
        let rows = index.rows(list.index());
        let all = self.ids.len().max(1) as f64;
        Some(rows as f64 * self.node.fraction(index, list.index(), rows, all))
    }
}

#[derive(Debug)]
enum Node<'a> {
    Const(bool),
    And(Vec<Node<'a>>),
    Or(Vec<Node<'a>>),
    Not(Box<Node<'a>>),
    Int {
        col: usize,
        values: &'a [i64],
        present: &'a RowSet,
        op: CmpOp,
        rhs: i64,
    },
    /// An int column against a non-integral number.
    IntF {
        col: usize,
        values: &'a [i64],
        present: &'a RowSet,
        op: CmpOp,
        rhs: f64,
    },
    Float {
        col: usize,
        values: &'a [f64],
        present: &'a RowSet,
        op: CmpOp,
        rhs: f64,
    },
    /// Row's value is (or, `negate`, is not) `want`; absent rows fail.
    Bool {
        col: usize,
        values: &'a [u8],
        want: u8,
        negate: bool,
    },
    /// Row's code is in `set` (sorted) — or, `negate`, present and not.
    Code {
        col: usize,
        codes: &'a [u32],
        set: Vec<u32>,
        negate: bool,
    },
    /// Row's set holds a code of `set` (sorted).
    Tags {
        col: usize,
        starts: &'a [u32],
        codes: &'a [u32],
        absent: &'a RowSet,
        set: Vec<u32>,
    },
    IntIn {
        col: usize,
        values: &'a [i64],
        present: &'a RowSet,
        set: Vec<f64>,
    },
    FloatIn {
        col: usize,
        values: &'a [f64],
        present: &'a RowSet,
        set: Vec<f64>,
    },
    Ids(Vec<u64>),
}

fn codes_of(dict: &[String], values: impl Iterator<Item = String>) -> Vec<u32> {
    let mut set: Vec<u32> = values
        .filter_map(|s| dict.binary_search(&s).ok().map(|i| i as u32))
        .collect();
    set.sort_unstable();
    set.dedup();
    set
}

fn keywords(values: &[Value]) -> impl Iterator<Item = String> + '_ {
    values.iter().filter_map(|v| match v {
        Value::Keyword(s) => Some(s.clone()),
        _ => None,
    })
}

fn bind<'a>(f: &Filter, columns: &'a Columns) -> Node<'a> {
    match f {
        Filter::And(v) => simplify(
            v.iter().map(|c| bind(c, columns)).collect(),
            false,
            Node::And,
        ),
        Filter::Or(v) => simplify(v.iter().map(|c| bind(c, columns)).collect(), true, Node::Or),
        Filter::Not(c) => match bind(c, columns) {
            Node::Const(b) => Node::Const(!b),
            n => Node::Not(Box::new(n)),
        },
        Filter::Ids(ids) => {
            let mut ids = ids.clone();
            ids.sort_unstable();
            ids.dedup();
            Node::Ids(ids)
        }
        Filter::Compare { field, op, value } => {
            let Some((ci, col)) = columns.position(field) else {
                return Node::Const(false);
            };
            match (col, value) {
                (ColumnData::Int { values, present }, Value::Int(n)) => Node::Int {
                    col: ci,
                    values,
                    present,
                    op: *op,
                    rhs: *n,
                },
                (ColumnData::Int { values, present }, Value::Float(x)) => Node::IntF {
                    col: ci,
                    values,
                    present,
                    op: *op,
                    rhs: *x,
                },
                (ColumnData::Float { values, present }, v) => match v.as_f64() {
                    Some(rhs) => Node::Float {
                        col: ci,
                        values,
                        present,
                        op: *op,
                        rhs,
                    },
                    None => Node::Const(false),
                },
                (ColumnData::Bool { values }, Value::Bool(b)) => Node::Bool {
                    col: ci,
                    values,
                    want: u8::from(*b),
                    negate: *op == CmpOp::Ne,
                },
                (ColumnData::Keyword { dict, codes }, Value::Keyword(s))
                    if matches!(op, CmpOp::Eq | CmpOp::Ne) =>
                {
                    let set = codes_of(dict, std::iter::once(s.clone()));
                    if set.is_empty() && *op == CmpOp::Eq {
                        return Node::Const(false);
                    }
                    Node::Code {
                        col: ci,
                        codes,
                        set,
                        negate: *op == CmpOp::Ne,
                    }
                }
                _ => Node::Const(false),
            }
        }
        Filter::In { field, values } => {
            let Some((ci, col)) = columns.position(field) else {
                return Node::Const(false);
            };
            match col {
                ColumnData::Keyword { dict, codes } => {
                    let set = codes_of(dict, keywords(values));
                    if set.is_empty() {
                        return Node::Const(false);
                    }
                    Node::Code {
                        col: ci,
                        codes,
                        set,
                        negate: false,
                    }
                }
                ColumnData::Keywords { .. } => tags(ci, col, keywords(values)),
                ColumnData::Int { values: v, present } => Node::IntIn {
                    col: ci,
                    values: v,
                    present,
                    set: sorted_numbers(values),
                },
                ColumnData::Float { values: v, present } => Node::FloatIn {
                    col: ci,
                    values: v,
                    present,
                    set: sorted_numbers(values),
                },
                ColumnData::Bool { values: v } => {
                    let has = |b| values.contains(&Value::Bool(b));
                    match (has(false), has(true)) {
                        (false, false) => Node::Const(false),
                        (true, true) => Node::Bool {
                            col: ci,
                            values: v,
                            want: 2,
                            negate: true,
                        },
                        (f, _) => Node::Bool {
                            col: ci,
                            values: v,
                            want: u8::from(!f),
                            negate: false,
                        },
                    }
                }
            }
        }
        Filter::Contains { field, value } => match columns.position(field) {
            Some((ci, col)) => tags(ci, col, std::iter::once(value.clone())),
            None => Node::Const(false),
        },
    }
}

/// A keywords column's set holds one of `wanted` (false for any other
/// column).
fn tags<'a>(col: usize, data: &'a ColumnData, wanted: impl Iterator<Item = String>) -> Node<'a> {
    let ColumnData::Keywords {
        dict,
        starts,
        codes,
        absent,
    } = data
    else {
        return Node::Const(false);
    };
    let set = codes_of(dict, wanted);
    if set.is_empty() {
        return Node::Const(false);
    }
    Node::Tags {
        col,
        starts,
        codes,
        absent,
        set,
    }
}

fn sorted_numbers(values: &[Value]) -> Vec<f64> {
    let mut set: Vec<f64> = values.iter().filter_map(Value::as_f64).collect();
    set.sort_by(f64::total_cmp);
    set.dedup();
    set
}

/// `and` (`absorbing` false) or `or` (`absorbing` true) of `nodes`, with
/// constants folded: one absorbing constant decides, the others drop out.
fn simplify<'a>(
    nodes: Vec<Node<'a>>,
    absorbing: bool,
    make: fn(Vec<Node<'a>>) -> Node<'a>,
) -> Node<'a> {
    if nodes
        .iter()
        .any(|n| matches!(n, Node::Const(b) if *b == absorbing))
    {
        return Node::Const(absorbing);
    }
    let mut kept: Vec<Node<'a>> = nodes
        .into_iter()
        .filter(|n| !matches!(n, Node::Const(b) if *b != absorbing))
        .collect();
    match kept.len() {
        0 => Node::Const(!absorbing),
        1 => kept.pop().unwrap_or(Node::Const(!absorbing)),
        _ => make(kept),
    }
}

/// Whether a value in `min..=max` may satisfy `op rhs`.
fn range_may(op: CmpOp, min: f64, max: f64, rhs: f64) -> bool {
    match op {
        CmpOp::Eq => (min..=max).contains(&rhs),
        CmpOp::Ne => !(min == max && min == rhs),
        CmpOp::Lt => min < rhs,
        CmpOp::Le => min <= rhs,
        CmpOp::Gt => max > rhs,
        CmpOp::Ge => max >= rhs,
    }
}

/// The share of values spread evenly over `min..=max` (integers when
/// `ints`) that satisfy `op rhs`.
fn range_share(op: CmpOp, min: f64, max: f64, rhs: f64, ints: bool) -> f64 {
    if !range_may(op, min, max, rhs) {
        return 0.0;
    }
    let width = if ints { max - min + 1.0 } else { max - min };
    if width <= 0.0 {
        return 1.0;
    }
    let point = if ints { 1.0 / width } else { 0.0 };
    let below = ((rhs - min) / width).clamp(0.0, 1.0);
    match op {
        CmpOp::Eq => point,
        CmpOp::Ne => 1.0 - point,
        CmpOp::Lt => below,
        CmpOp::Le => (below + point).min(1.0),
        CmpOp::Gt => (1.0 - below - point).max(0.0),
        CmpOp::Ge => 1.0 - below,
    }
}

fn in_sorted(set: &[f64], x: f64) -> bool {
    set.binary_search_by(|p| p.total_cmp(&x)).is_ok()
}

impl Node<'_> {
    /// Whether a row of list `list` may pass, by the list's summaries:
    /// `false` only when none can.
    fn may_match(&self, index: &ListIndex, list: usize) -> bool {
        let summary = |col: usize| index.summary(list, col);
        match self {
            Node::Const(b) => *b,
            Node::And(v) => v.iter().all(|n| n.may_match(index, list)),
            Node::Or(v) => v.iter().any(|n| n.may_match(index, list)),
            // Whether every row passes the inner node is not known.
            Node::Not(_) | Node::Ids(_) => true,
            Node::Int { col, op, rhs, .. } => match summary(*col) {
                Some(&Summary::Int { present, min, max }) => {
                    present > 0 && range_may(*op, min as f64, max as f64, *rhs as f64)
                }
                _ => true,
            },
            Node::IntF { col, op, rhs, .. } => match summary(*col) {
                Some(&Summary::Int { present, min, max }) => {
                    present > 0 && range_may(*op, min as f64, max as f64, *rhs)
                }
                _ => true,
            },
            Node::Float { col, op, rhs, .. } => match summary(*col) {
                Some(&Summary::Float { present, min, max }) => {
                    present > 0 && range_may(*op, min, max, *rhs)
                }
                _ => true,
            },
            Node::IntIn { col, set, .. } => match summary(*col) {
                Some(&Summary::Int { present, min, max }) => {
                    present > 0 && set.iter().any(|&x| (min as f64..=max as f64).contains(&x))
                }
                _ => true,
            },
            Node::FloatIn { col, set, .. } => match summary(*col) {
                Some(&Summary::Float { present, min, max }) => {
                    present > 0 && set.iter().any(|&x| (min..=max).contains(&x))
                }
                _ => true,
            },
            Node::Bool {
                col, want, negate, ..
            } => match summary(*col) {
                Some(&Summary::Bool { falses, trues }) => match (*want, *negate) {
                    (0, false) | (1, true) => falses > 0,
                    (1, false) | (0, true) => trues > 0,
                    _ => falses + trues > 0,
                },
                _ => true,
            },
            Node::Code {
                col, set, negate, ..
            } => match summary(*col) {
                Some(s @ Summary::Codes(codes)) => {
                    if *negate {
                        codes.iter().any(|(c, _)| set.binary_search(c).is_err())
                    } else {
                        set.iter().any(|&c| s.count_of(c) > 0)
                    }
                }
                _ => true,
            },
            Node::Tags { col, set, .. } => match summary(*col) {
                Some(s @ Summary::Codes(_)) => set.iter().any(|&c| s.count_of(c) > 0),
                _ => true,
            },
        }
    }

    /// The fraction of list `list`'s `rows` rows expected to pass, from
    /// its summaries (uniform values within a range, independent
    /// conditions); `all` is the source's rows, for id sets.
    fn fraction(&self, index: &ListIndex, list: usize, rows: usize, all: f64) -> f64 {
        let rows_f = rows.max(1) as f64;
        let summary = |col: usize| index.summary(list, col);
        let share = |n: u32| (n as f64 / rows_f).min(1.0);
        let f = match self {
            Node::Const(b) => f64::from(u8::from(*b)),
            Node::And(v) => v
                .iter()
                .map(|n| n.fraction(index, list, rows, all))
                .product(),
            Node::Or(v) => {
                1.0 - v
                    .iter()
                    .map(|n| 1.0 - n.fraction(index, list, rows, all))
                    .product::<f64>()
            }
            Node::Not(n) => 1.0 - n.fraction(index, list, rows, all),
            Node::Ids(ids) => ids.len() as f64 / all,
            Node::Int { col, op, rhs, .. } => match summary(*col) {
                Some(&Summary::Int { present, min, max }) => {
                    share(present) * range_share(*op, min as f64, max as f64, *rhs as f64, true)
                }
                _ => 0.5,
            },
            Node::IntF { col, op, rhs, .. } => match summary(*col) {
                Some(&Summary::Int { present, min, max }) => {
                    share(present) * range_share(*op, min as f64, max as f64, *rhs, true)
                }
                _ => 0.5,
            },
            Node::Float { col, op, rhs, .. } => match summary(*col) {
                Some(&Summary::Float { present, min, max }) => {
                    share(present) * range_share(*op, min, max, *rhs, false)
                }
                _ => 0.5,
            },
            Node::IntIn { col, set, .. } => match summary(*col) {
                Some(&Summary::Int { present, min, max }) => {
                    let inside = set
                        .iter()
                        .filter(|&&x| (min as f64..=max as f64).contains(&x))
                        .count();
                    let width = max as f64 - min as f64 + 1.0;
                    share(present) * (inside as f64 / width.max(1.0)).min(1.0)
                }
                _ => 0.5,
            },
            Node::FloatIn { col, set, .. } => match summary(*col) {
                Some(&Summary::Float { present, min, max }) => {
                    let inside = set.iter().any(|&x| (min..=max).contains(&x));
                    share(present) * if inside && min == max { 1.0 } else { 0.0 }
                }
                _ => 0.5,
            },
            Node::Bool {
                col, want, negate, ..
            } => match summary(*col) {
                Some(&Summary::Bool { falses, trues }) => match (*want, *negate) {
                    (0, false) | (1, true) => share(falses),
                    (1, false) | (0, true) => share(trues),
                    _ => share(falses + trues),
                },
                _ => 0.5,
            },
            Node::Code {
                col, set, negate, ..
            } => match summary(*col) {
                Some(s @ Summary::Codes(_)) => {
                    let hits: u32 = set.iter().map(|&c| s.count_of(c)).sum();
                    if *negate {
                        share(s.present().saturating_sub(hits))
                    } else {
                        share(hits)
                    }
                }
                _ => 0.5,
            },
            Node::Tags { col, set, .. } => match summary(*col) {
                Some(s @ Summary::Codes(_)) => share(set.iter().map(|&c| s.count_of(c)).sum()),
                _ => 0.5,
            },
        };
        if f.is_nan() { 0.5 } else { f.clamp(0.0, 1.0) }
    }

    fn eval(&self, r: usize, ids: &[u64]) -> bool {
        match self {
            Node::Const(b) => *b,
            Node::And(v) => v.iter().all(|n| n.eval(r, ids)),
            Node::Or(v) => v.iter().any(|n| n.eval(r, ids)),
            Node::Not(n) => !n.eval(r, ids),
            Node::Int {
                values,
                present,
                op,
                rhs,
                ..
            } => present.contains(r) && values.get(r).is_some_and(|&v| op.holds(v, *rhs)),
            Node::IntF {
                values,
                present,
                op,
                rhs,
                ..
            } => present.contains(r) && values.get(r).is_some_and(|&v| op.holds(v as f64, *rhs)),
            Node::Float {
                values,
                present,
                op,
                rhs,
                ..
            } => present.contains(r) && values.get(r).is_some_and(|&v| op.holds(v, *rhs)),
            Node::Bool {
                values,
                want,
                negate,
                ..
            } => match values.get(r) {
                Some(&b) if b <= 1 => (b == *want) != *negate,
                _ => false,
            },
            Node::Code {
                codes, set, negate, ..
            } => match codes.get(r) {
                Some(&c) if c != ABSENT => set.binary_search(&c).is_ok() != *negate,
                _ => false,
            },
            Node::Tags {
                starts,
                codes,
                absent,
                set,
                ..
            } => {
                if absent.contains(r) {
                    return false;
                }
                let (Some(&a), Some(&b)) = (starts.get(r), starts.get(r + 1)) else {
                    return false;
                };
                codes
                    .get(a as usize..b as usize)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| set.binary_search(c).is_ok())
            }
            Node::IntIn {
                values,
                present,
                set,
                ..
            } => present.contains(r) && values.get(r).is_some_and(|&v| in_sorted(set, v as f64)),
            Node::FloatIn {
                values,
                present,
                set,
                ..
            } => present.contains(r) && values.get(r).is_some_and(|&v| in_sorted(set, v)),
            Node::Ids(set) => ids.get(r).is_some_and(|id| set.binary_search(id).is_ok()),
        }
    }
}

/// Evaluates `filter` on one row given its id and values, directly from
/// the tree: the reference the column evaluation is tested against, and
/// what a model of the engine uses.
pub fn matches_values(filter: &Filter, id: u64, values: &[(String, Value)]) -> bool {
    let get = |field: &str| values.iter().find(|(n, _)| n == field).map(|(_, v)| v);
    let num_eq = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    };
    match filter {
        Filter::And(v) => v.iter().all(|f| matches_values(f, id, values)),
        Filter::Or(v) => v.iter().any(|f| matches_values(f, id, values)),
        Filter::Not(f) => !matches_values(f, id, values),
        Filter::Ids(ids) => ids.contains(&id),
        Filter::Compare { field, op, value } => match get(field) {
            None => false,
            Some(Value::Int(a)) => match value {
                Value::Int(b) => op.holds(*a, *b),
                v => v.as_f64().is_some_and(|b| op.holds(*a as f64, b)),
            },
            Some(Value::Float(a)) => value.as_f64().is_some_and(|b| op.holds(*a, b)),
            Some(Value::Keyword(a)) => match (op, value) {
                (CmpOp::Eq, Value::Keyword(b)) => a == b,
                (CmpOp::Ne, Value::Keyword(b)) => a != b,
                _ => false,
            },
            Some(Value::Bool(a)) => match (op, value) {
                (CmpOp::Eq, Value::Bool(b)) => a == b,
                (CmpOp::Ne, Value::Bool(b)) => a != b,
                _ => false,
            },
            Some(Value::Keywords(_)) => false,
        },
        Filter::In { field, values: set } => match get(field) {
            None => false,
            Some(Value::Keywords(tags)) => set
                .iter()
                .any(|v| matches!(v, Value::Keyword(s) if tags.contains(s))),
            Some(v) => set.iter().any(|c| num_eq(v, c)),
        },
        Filter::Contains { field, value } => {
            matches!(get(field), Some(Value::Keywords(tags)) if tags.contains(value))
        }
    }
}

mod parse;

#[cfg(test)]
mod tests;
