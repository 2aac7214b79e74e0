//! Typed fields: what a collection declares beside the opaque payload,
//! the values a row carries for them, and the columns that hold a set of
//! rows' values for filtering (a memtable batch's, a segment's).
//!
//! A row's values are a list of `(name, value)` sorted by name, each
//! naming a declared field with a value of its type; a row may lack any
//! field. Columns hold one field's values for rows `0..rows`, numbered
//! as deletion sets number them; keyword columns keep a sorted dictionary
//! and a `u32` code per row, so a filter compares integers.

use std::fmt;
use std::str::FromStr;

use crate::rowset::RowSet;

mod index;

pub use index::{ListIndex, Summary};

/// Most bytes of one keyword.
pub const MAX_KEYWORD_BYTES: usize = 1024;
/// Most keywords in one `keywords` value.
pub const MAX_KEYWORDS: usize = 1024;
/// Most fields a collection declares.
pub const MAX_FIELDS: usize = 64;
/// The code of "no value" in a keyword column.
pub const ABSENT: u32 = u32::MAX;

/// Words a field may not be called: the filter language's own, and `id`.
const RESERVED: [&str; 10] = [
    "id", "and", "or", "not", "in", "contains", "true", "false", "null", "exists",
];

/// A bad field declaration, value or filter: where (`rows[3].fields.year`,
/// `filter`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {path}: {reason}")]
pub struct FieldError {
    /// What was bad.
    pub path: String,
    /// Why.
    pub reason: String,
}

impl FieldError {
    /// A new error.
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// The type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// One string (an album, a tenant).
    Keyword,
    /// A signed 64-bit integer.
    Int,
    /// A finite 64-bit float.
    Float,
    /// True or false.
    Bool,
    /// A set of strings (tags).
    Keywords,
}

impl FieldType {
    /// Every type, in code order.
    pub const ALL: [FieldType; 5] = [
        FieldType::Keyword,
        FieldType::Int,
        FieldType::Float,
        FieldType::Bool,
        FieldType::Keywords,
    ];

    /// Its name: `keyword`, `int`, `float`, `bool`, `keywords`.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Keyword => "keyword",
            FieldType::Int => "int",
            FieldType::Float => "float",
            FieldType::Bool => "bool",
            FieldType::Keywords => "keywords",
        }
    }

    /// Its code in files (1..=5).
    pub fn code(self) -> u8 {
        match self {
            FieldType::Keyword => 1,
            FieldType::Int => 2,
            FieldType::Float => 3,
            FieldType::Bool => 4,
            FieldType::Keywords => 5,
        }
    }

    /// The type with code `code`.
    pub fn from_code(code: u8) -> Option<FieldType> {
        FieldType::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Whether values are numbers (compared with `<` and friends).
    pub fn is_numeric(self) -> bool {
        matches!(self, FieldType::Int | FieldType::Float)
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FieldType {
    type Err = String;
    fn from_str(s: &str) -> Result<FieldType, String> {
        FieldType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown field type {s:?} (keyword, int, float, bool, keywords)")
            })
    }
}

/// A declared field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldDef {
    /// Its name: an ASCII letter or `_`, then letters, digits and `_`; at
    /// most 64 bytes; not a reserved word.
    pub name: String,
    /// Its type.
    pub ty: FieldType,
}

impl FieldDef {
    /// A field called `name` of type `ty`.
    pub fn new(name: impl Into<String>, ty: FieldType) -> FieldDef {
        FieldDef {
            name: name.into(),
            ty,
        }
    }
}

impl fmt::Display for FieldDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.ty)
    }
}

impl FromStr for FieldDef {
    type Err = FieldError;
    /// `name:type`, as `vdbctl create-collection --field` takes it.
    fn from_str(s: &str) -> Result<FieldDef, FieldError> {
        let (name, ty) = s
            .split_once(':')
            .ok_or_else(|| FieldError::new("field", format!("{s:?} is not NAME:TYPE")))?;
        let ty = ty.parse().map_err(|e| FieldError::new("field", e))?;
        let def = FieldDef::new(name, ty);
        validate_field_name(&def.name)?;
        Ok(def)
    }
}

/// Checks a field name (see [`FieldDef::name`]).
pub fn validate_field_name(name: &str) -> Result<(), FieldError> {
    let bad = |why: &str| Err(FieldError::new("field name", format!("{name:?} {why}")));
    let mut chars = name.chars();
    match chars.next() {
        None => return bad("is empty"),
        Some(c) if !(c.is_ascii_alphabetic() || c == '_') => {
            return bad("must start with an ASCII letter or '_'");
        }
        _ => {}
    }
    if name.len() > 64 {
        return bad("is longer than 64 bytes");
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return bad("may hold only ASCII letters, digits and '_'");
    }
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return bad("is a reserved word");
    }
    Ok(())
}

/// Checks a collection's field list: valid, distinct names, at most
/// [`MAX_FIELDS`].
pub fn validate_schema(fields: &[FieldDef]) -> Result<(), FieldError> {
    if fields.len() > MAX_FIELDS {
        return Err(FieldError::new(
            "fields",
            format!("{} fields, at most {MAX_FIELDS}", fields.len()),
        ));
    }
    for (i, f) in fields.iter().enumerate() {
        validate_field_name(&f.name)?;
        if fields[..i].iter().any(|g| g.name == f.name) {
            return Err(FieldError::new(
                "fields",
                format!("field {:?} is declared twice", f.name),
            ));
        }
    }
    Ok(())
}

/// A value of a field.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Of a `keyword` field.
    Keyword(String),
    /// Of an `int` field.
    Int(i64),
    /// Of a `float` field (finite).
    Float(f64),
    /// Of a `bool` field.
    Bool(bool),
    /// Of a `keywords` field: a set, kept sorted and without repeats.
    Keywords(Vec<String>),
}

impl Value {
    /// The type of field it belongs to.
    pub fn field_type(&self) -> FieldType {
        match self {
            Value::Keyword(_) => FieldType::Keyword,
            Value::Int(_) => FieldType::Int,
            Value::Float(_) => FieldType::Float,
            Value::Bool(_) => FieldType::Bool,
            Value::Keywords(_) => FieldType::Keywords,
        }
    }

    /// The value as a number, if it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::Float(x) => Some(x),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    /// As the filter language writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Keyword(s) => write_quoted(f, s),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Keywords(v) => {
                f.write_str("[")?;
                for (i, s) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_quoted(f, s)?;
                }
                f.write_str("]")
            }
        }
    }
}

pub(crate) fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("'")?;
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("'")
}

/// A row's field values: `(name, value)`, sorted by name, names distinct.
pub type FieldValues = Vec<(String, Value)>;

/// Checks `values` against the collection's `fields` and puts them in
/// canonical form: sorted by name, an integer given for a `float` field
/// made a float, a `keywords` set sorted and deduplicated. `path` names
/// the row in errors (`rows[3].fields`).
pub fn validate_values(
    fields: &[FieldDef],
    values: &mut FieldValues,
    path: impl Fn() -> String,
) -> Result<(), FieldError> {
    values.sort_by(|a, b| a.0.cmp(&b.0));
    for i in 0..values.len() {
        let (name, value) = &mut values[i];
        let at = || format!("{}.{name}", path());
        let Some(def) = fields.iter().find(|f| &f.name == name) else {
            return Err(FieldError::new(
                at(),
                format!("the collection has no field {name:?}{}", known(fields)),
            ));
        };
        if let (FieldType::Float, Value::Int(n)) = (def.ty, &*value) {
            *value = Value::Float(*n as f64);
        }
        match value {
            Value::Float(x) if !x.is_finite() => {
                return Err(FieldError::new(at(), format!("{x} is not finite")));
            }
            Value::Keyword(s) if s.len() > MAX_KEYWORD_BYTES => {
                return Err(FieldError::new(
                    at(),
                    format!("{} bytes, at most {MAX_KEYWORD_BYTES}", s.len()),
                ));
            }
            Value::Keywords(v) => {
                if v.len() > MAX_KEYWORDS {
                    return Err(FieldError::new(
                        at(),
                        format!("{} keywords, at most {MAX_KEYWORDS}", v.len()),
                    ));
                }
                if let Some(s) = v.iter().find(|s| s.len() > MAX_KEYWORD_BYTES) {
                    return Err(FieldError::new(
                        at(),
                        format!(
                            "a keyword of {} bytes, at most {MAX_KEYWORD_BYTES}",
                            s.len()
                        ),
                    ));
                }
                v.sort();
                v.dedup();
            }
            _ => {}
        }
        if value.field_type() != def.ty {
            return Err(FieldError::new(
                at(),
                format!(
                    "field {name:?} is {}, the value is {}",
                    def.ty,
                    value.field_type()
                ),
            ));
        }
        if i > 0 && values[i - 1].0 == values[i].0 {
            return Err(FieldError::new(
                format!("{}.{}", path(), values[i].0),
                "the field is given twice",
            ));
        }
    }
    Ok(())
}

/// `" (fields: a, b)"`, or `" (it declares none)"`, for errors.
pub fn known(fields: &[FieldDef]) -> String {
    if fields.is_empty() {
        " (it declares none)".into()
    } else {
        let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        format!(" (fields: {})", names.join(", "))
    }
}

/// One field's values for a set of rows.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// `values[r]` where `present` holds `r`.
    Int {
        /// Per row (0 where absent).
        values: Vec<i64>,
        /// Rows with a value.
        present: RowSet,
    },
    /// `values[r]` where `present` holds `r`.
    Float {
        /// Per row (0 where absent).
        values: Vec<f64>,
        /// Rows with a value.
        present: RowSet,
    },
    /// 0 false, 1 true, 2 absent.
    Bool {
        /// Per row.
        values: Vec<u8>,
    },
    /// `dict[codes[r]]`, [`ABSENT`] for none.
    Keyword {
        /// Distinct values, sorted.
        dict: Vec<String>,
        /// Per row.
        codes: Vec<u32>,
    },
    /// Row `r`'s set is `dict[c]` for `c` in `codes[starts[r]..starts[r + 1]]`
    /// (ascending); absent rows are `absent`.
    Keywords {
        /// Distinct values, sorted.
        dict: Vec<String>,
        /// `rows + 1` offsets into `codes`.
        starts: Vec<u32>,
        /// Codes, ascending within a row.
        codes: Vec<u32>,
        /// Rows without a value (an empty set is a value).
        absent: RowSet,
    },
}

impl ColumnData {
    /// The column's type.
    pub fn field_type(&self) -> FieldType {
        match self {
            ColumnData::Int { .. } => FieldType::Int,
            ColumnData::Float { .. } => FieldType::Float,
            ColumnData::Bool { .. } => FieldType::Bool,
            ColumnData::Keyword { .. } => FieldType::Keyword,
            ColumnData::Keywords { .. } => FieldType::Keywords,
        }
    }

    fn rows(&self) -> usize {
        match self {
            ColumnData::Int { values, .. } => values.len(),
            ColumnData::Float { values, .. } => values.len(),
            ColumnData::Bool { values } => values.len(),
            ColumnData::Keyword { codes, .. } => codes.len(),
            ColumnData::Keywords { starts, .. } => starts.len().saturating_sub(1),
        }
    }

    /// Row `r`'s value.
    pub fn value(&self, r: usize) -> Option<Value> {
        match self {
            ColumnData::Int { values, present } => present
                .contains(r)
                .then(|| values.get(r).map(|&v| Value::Int(v)))?,
            ColumnData::Float { values, present } => present
                .contains(r)
                .then(|| values.get(r).map(|&v| Value::Float(v)))?,
            ColumnData::Bool { values } => match values.get(r)? {
                0 => Some(Value::Bool(false)),
                1 => Some(Value::Bool(true)),
                _ => None,
            },
            ColumnData::Keyword { dict, codes } => dict
                .get(*codes.get(r)? as usize)
                .cloned()
                .map(Value::Keyword),
            ColumnData::Keywords {
                dict,
                starts,
                codes,
                absent,
            } => {
                if absent.contains(r) {
                    return None;
                }
                let (a, b) = (*starts.get(r)? as usize, *starts.get(r + 1)? as usize);
                let set = codes
                    .get(a..b)?
                    .iter()
                    .filter_map(|&c| dict.get(c as usize).cloned())
                    .collect();
                Some(Value::Keywords(set))
            }
        }
    }

    /// Checks the invariants a reader relies on, for `rows` rows: lengths,
    /// codes inside the dictionary, a sorted dictionary without repeats,
    /// offsets ascending. A column read from a file passes here first.
    pub fn check(&self, rows: usize) -> Result<(), String> {
        if self.rows() != rows {
            return Err(format!("{} rows, expected {rows}", self.rows()));
        }
        let sorted = |dict: &[String]| {
            if dict.windows(2).all(|w| w[0] < w[1]) {
                Ok(())
            } else {
                Err("dictionary is not sorted and distinct".to_string())
            }
        };
        match self {
            ColumnData::Int { present, .. } | ColumnData::Float { present, .. } => {
                if present.capacity() != rows {
                    return Err("presence bits do not match the rows".into());
                }
            }
            ColumnData::Bool { values } => {
                if values.iter().any(|&b| b > 2) {
                    return Err("a bool byte is above 2".into());
                }
            }
            ColumnData::Keyword { dict, codes } => {
                sorted(dict)?;
                if codes
                    .iter()
                    .any(|&c| c != ABSENT && c as usize >= dict.len())
                {
                    return Err("a code is outside the dictionary".into());
                }
            }
            ColumnData::Keywords {
                dict,
                starts,
                codes,
                absent,
            } => {
                sorted(dict)?;
                if absent.capacity() != rows {
                    return Err("absence bits do not match the rows".into());
                }
                if starts.first() != Some(&0)
                    || starts.last().map(|&s| s as usize) != Some(codes.len())
                    || starts.windows(2).any(|w| w[0] > w[1])
                {
                    return Err("offsets are not ascending from 0 to the codes' length".into());
                }
                for w in starts.windows(2) {
                    let row = codes.get(w[0] as usize..w[1] as usize).unwrap_or_default();
                    if row.windows(2).any(|p| p[0] >= p[1])
                        || row.iter().any(|&c| c as usize >= dict.len())
                    {
                        return Err("a row's codes are unsorted or outside the dictionary".into());
                    }
                }
            }
        }
        if let ColumnData::Float { values, .. } = self
            && values.iter().any(|x| !x.is_finite())
        {
            return Err("a float is not finite".into());
        }
        Ok(())
    }
}

/// A declared field's column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The field's name.
    pub name: String,
    /// Its values.
    pub data: ColumnData,
}

/// The field values of rows `0..rows`: one column per field the rows were
/// written with. A field without a column has no value in any row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Columns {
    rows: usize,
    columns: Vec<Column>,
}

impl Columns {
    /// The memory its values hold, roughly (the vectors and strings, not
    /// the allocator's overhead).
    pub fn approx_bytes(&self) -> usize {
        let strings = |dict: &[String]| dict.iter().map(|s| s.len() + 24).sum::<usize>();
        self.columns
            .iter()
            .map(|c| match &c.data {
                ColumnData::Int { values, .. } => values.len() * 8 + values.len() / 8,
                ColumnData::Float { values, .. } => values.len() * 8 + values.len() / 8,
                ColumnData::Bool { values } => values.len(),
                ColumnData::Keyword { dict, codes } => strings(dict) + codes.len() * 4,
                ColumnData::Keywords {
                    dict,
                    starts,
                    codes,
                    ..
                } => strings(dict) + (starts.len() + codes.len()) * 4,
            })
            .sum()
    }

    /// `rows` rows without field values.
    pub fn empty(rows: usize) -> Columns {
        Columns {
            rows,
            columns: Vec::new(),
        }
    }

    /// Columns for `rows` rows, checked (see [`ColumnData::check`]); names
    /// must be distinct.
    pub fn new(rows: usize, columns: Vec<Column>) -> Result<Columns, String> {
        for (i, c) in columns.iter().enumerate() {
            c.data
                .check(rows)
                .map_err(|e| format!("column {:?}: {e}", c.name))?;
            if columns[..i].iter().any(|d| d.name == c.name) {
                return Err(format!("column {:?} appears twice", c.name));
            }
        }
        Ok(Columns { rows, columns })
    }

    /// Rows covered.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The columns.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The position (in [`Columns::columns`]) and column of field `name`.
    pub fn position(&self, name: &str) -> Option<(usize, &ColumnData)> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .and_then(|i| Some((i, &self.columns.get(i)?.data)))
    }

    /// The column of field `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnData> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.data)
    }

    /// Row `r`'s values, sorted by name.
    pub fn row_values(&self, r: usize) -> FieldValues {
        let mut out: FieldValues = self
            .columns
            .iter()
            .filter_map(|c| Some((c.name.clone(), c.data.value(r)?)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// Builds [`Columns`] row by row for the fields of a schema.
#[derive(Debug)]
pub struct ColumnsBuilder {
    rows: usize,
    fields: Vec<FieldDef>,
    /// Per field: values as they came (`None` absent).
    values: Vec<Vec<Option<Value>>>,
    /// Whether any row has a value for the field.
    used: Vec<bool>,
}

impl ColumnsBuilder {
    /// A builder for the fields `fields`.
    pub fn new(fields: &[FieldDef]) -> ColumnsBuilder {
        ColumnsBuilder {
            rows: 0,
            fields: fields.to_vec(),
            values: vec![Vec::new(); fields.len()],
            used: vec![false; fields.len()],
        }
    }

    /// Adds a row with `values` (validated: a value of a field not in the
    /// schema, or of another type, is dropped).
    pub fn push(&mut self, values: &[(String, Value)]) {
        for (i, f) in self.fields.iter().enumerate() {
            let v = values
                .iter()
                .find(|(n, v)| *n == f.name && v.field_type() == f.ty)
                .map(|(_, v)| v.clone());
            self.used[i] |= v.is_some();
            self.values[i].push(v);
        }
        self.rows += 1;
    }

    /// Rows pushed.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The columns: one per field some row has a value for.
    pub fn finish(self) -> Columns {
        let rows = self.rows;
        let columns = self
            .fields
            .into_iter()
            .zip(self.values)
            .zip(self.used)
            .filter(|(_, used)| *used)
            .map(|((f, vals), _)| Column {
                data: build_column(f.ty, vals, rows),
                name: f.name,
            })
            .collect();
        Columns { rows, columns }
    }
}

/// The numbers `get` finds in `vals` (0 where none) and the rows that
/// have one.
fn numbers<T: Default>(
    vals: &[Option<Value>],
    rows: usize,
    get: impl Fn(&Value) -> Option<T>,
) -> (Vec<T>, RowSet) {
    let mut present = RowSet::new(rows);
    let values = vals
        .iter()
        .enumerate()
        .map(|(r, v)| match v.as_ref().and_then(&get) {
            Some(x) => {
                present.insert(r);
                x
            }
            None => T::default(),
        })
        .collect();
    (values, present)
}

fn build_column(ty: FieldType, vals: Vec<Option<Value>>, rows: usize) -> ColumnData {
    match ty {
        FieldType::Int => {
            let (values, present) = numbers(&vals, rows, |v| match v {
                Value::Int(n) => Some(*n),
                _ => None,
            });
            ColumnData::Int { values, present }
        }
        FieldType::Float => {
            let (values, present) = numbers(&vals, rows, |v| match v {
                Value::Float(x) => Some(*x),
                _ => None,
            });
            ColumnData::Float { values, present }
        }
        FieldType::Bool => ColumnData::Bool {
            values: vals
                .iter()
                .map(|v| match v {
                    Some(Value::Bool(b)) => u8::from(*b),
                    _ => 2,
                })
                .collect(),
        },
        FieldType::Keyword => {
            let dict = dictionary(vals.iter().filter_map(|v| match v {
                Some(Value::Keyword(s)) => Some(s.as_str()),
                _ => None,
            }));
            let codes = vals
                .iter()
                .map(|v| match v {
                    Some(Value::Keyword(s)) => code_of(&dict, s),
                    _ => ABSENT,
                })
                .collect();
            ColumnData::Keyword { dict, codes }
        }
        FieldType::Keywords => {
            let dict = dictionary(vals.iter().flat_map(|v| match v {
                Some(Value::Keywords(set)) => set.iter().map(String::as_str).collect(),
                _ => Vec::new(),
            }));
            let mut absent = RowSet::new(rows);
            let mut starts = vec![0u32];
            let mut codes = Vec::new();
            for (r, v) in vals.iter().enumerate() {
                match v {
                    Some(Value::Keywords(set)) => {
                        let mut row: Vec<u32> = set.iter().map(|s| code_of(&dict, s)).collect();
                        row.sort_unstable();
                        row.dedup();
                        codes.extend(row);
                    }
                    _ => {
                        absent.insert(r);
                    }
                }
                starts.push(codes.len() as u32);
            }
            ColumnData::Keywords {
                dict,
                starts,
                codes,
                absent,
            }
        }
    }
}

fn dictionary<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let set: std::collections::BTreeSet<&str> = values.collect();
    set.into_iter().map(str::to_string).collect()
}

fn code_of(dict: &[String], s: &str) -> u32 {
    dict.binary_search_by(|d| d.as_str().cmp(s))
        .map_or(ABSENT, |i| i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn names_and_declarations() {
        assert!(validate_field_name("album_2").is_ok());
        for bad in ["", "2x", "a-b", "id", "AND", "é", &"x".repeat(65)] {
            assert!(validate_field_name(bad).is_err(), "{bad}");
        }
        let d: FieldDef = "tags:keywords".parse().unwrap();
        assert_eq!(d, FieldDef::new("tags", FieldType::Keywords));
        assert_eq!(d.to_string(), "tags:keywords");
        assert!("tags".parse::<FieldDef>().is_err());
        assert!("tags:text".parse::<FieldDef>().is_err());
        let twice = vec![FieldDef::new("a", FieldType::Int); 2];
        assert!(
            validate_schema(&twice)
                .unwrap_err()
                .reason
                .contains("twice")
        );
    }

    #[test]
    fn values_are_checked_and_made_canonical() {
        let s = schema();
        let mut v: FieldValues = vec![
            ("year".into(), Value::Int(2020)),
            ("score".into(), Value::Int(3)),
            (
                "tags".into(),
                Value::Keywords(vec!["b".into(), "a".into(), "b".into()]),
            ),
        ];
        validate_values(&s, &mut v, || "rows[0].fields".into()).unwrap();
        assert_eq!(v[0], ("score".into(), Value::Float(3.0)));
        assert_eq!(v[1].1, Value::Keywords(vec!["a".into(), "b".into()]));
        let e = validate_values(&s, &mut vec![("albm".into(), Value::Int(1))], || "r".into())
            .unwrap_err();
        assert_eq!(e.path, "r.albm");
        assert!(e.reason.contains("fields: album"), "{e}");
        let e = validate_values(
            &s,
            &mut vec![("year".into(), Value::Keyword("x".into()))],
            || "r".into(),
        )
        .unwrap_err();
        assert!(e.reason.contains("is int, the value is keyword"), "{e}");
        let e = validate_values(
            &s,
            &mut vec![("score".into(), Value::Float(f64::NAN))],
            || "r".into(),
        )
        .unwrap_err();
        assert!(e.reason.contains("not finite"), "{e}");
        let mut twice = vec![
            ("year".into(), Value::Int(1)),
            ("year".into(), Value::Int(2)),
        ];
        assert!(validate_values(&s, &mut twice, || "r".into()).is_err());
    }

    #[test]
    fn columns_round_trip_every_type() {
        let s = schema();
        let rows: Vec<FieldValues> = vec![
            vec![
                ("album".into(), Value::Keyword("cats".into())),
                ("ok".into(), Value::Bool(true)),
                ("score".into(), Value::Float(0.5)),
                ("tags".into(), Value::Keywords(vec!["x".into(), "y".into()])),
                ("year".into(), Value::Int(-3)),
            ],
            vec![],
            vec![
                ("album".into(), Value::Keyword("dogs".into())),
                ("tags".into(), Value::Keywords(vec![])),
            ],
        ];
        let mut b = ColumnsBuilder::new(&s);
        for r in &rows {
            b.push(r);
        }
        let cols = b.finish();
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(&cols.row_values(i), r);
        }
        let checked = Columns::new(3, cols.columns().to_vec()).unwrap();
        assert_eq!(checked, cols);
        assert!(Columns::new(4, cols.columns().to_vec()).is_err());
    }

    #[test]
    fn bad_columns_are_refused() {
        let bad = [
            ColumnData::Keyword {
                dict: vec!["b".into(), "a".into()],
                codes: vec![0],
            },
            ColumnData::Keyword {
                dict: vec!["a".into()],
                codes: vec![1],
            },
            ColumnData::Bool { values: vec![3] },
            ColumnData::Float {
                values: vec![f64::INFINITY],
                present: RowSet::new(1),
            },
            ColumnData::Keywords {
                dict: vec!["a".into()],
                starts: vec![0, 2],
                codes: vec![0, 0],
                absent: RowSet::new(1),
            },
        ];
        for data in bad {
            assert!(data.check(1).is_err(), "{data:?}");
        }
    }
}
