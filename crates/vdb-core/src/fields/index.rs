//! Per-list summaries of a source's field columns: for every list and
//! field, which keyword codes occur and how often, the range of numbers,
//! the count of each bool. A bound filter asks them whether a list can
//! hold a passing row at all (so a search skips lists without testing
//! their rows) and how many of its rows are expected to pass.
//!
//! Built in one pass over the columns when a segment opens or a memtable
//! batch is made, never stored: the columns are read whole anyway. Rows
//! deleted later still count, so a summary may promise rows that are gone
//! (never the other way round).

use super::{ColumnData, Columns};

/// One field's summary over one list's rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Summary {
    /// An int column: rows with a value, and their range.
    Int {
        /// Rows with a value.
        present: u32,
        /// Smallest value (meaningless when `present` is 0).
        min: i64,
        /// Largest value.
        max: i64,
    },
    /// A float column: rows with a value, and their range.
    Float {
        /// Rows with a value.
        present: u32,
        /// Smallest value.
        min: f64,
        /// Largest value.
        max: f64,
    },
    /// A bool column: rows holding false, and true.
    Bool {
        /// Rows holding false.
        falses: u32,
        /// Rows holding true.
        trues: u32,
    },
    /// A keyword or keywords column: the codes occurring, ascending, each
    /// with the rows holding it.
    Codes(Vec<(u32, u32)>),
}

impl Summary {
    /// Rows holding code `code`.
    pub fn count_of(&self, code: u32) -> u32 {
        match self {
            Summary::Codes(c) => c
                .binary_search_by_key(&code, |&(k, _)| k)
                .map_or(0, |i| c.get(i).map_or(0, |&(_, n)| n)),
            _ => 0,
        }
    }

    /// Rows holding any code (a keywords row counts once per code).
    pub fn present(&self) -> u32 {
        match self {
            Summary::Int { present, .. } | Summary::Float { present, .. } => *present,
            Summary::Bool { falses, trues } => falses + trues,
            Summary::Codes(c) => c.iter().map(|&(_, n)| n).sum(),
        }
    }
}

/// The summaries of every list of one source.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListIndex {
    /// `starts[l]..starts[l + 1]` are list `l`'s rows.
    starts: Vec<usize>,
    /// `summaries[l][c]`: list `l`, column `c` (the columns' order).
    summaries: Vec<Vec<Summary>>,
}

impl ListIndex {
    /// Summarises `columns` over lists whose rows are
    /// `starts[l]..starts[l + 1]` (ascending, ending at the rows; anything
    /// else gives an empty index, which rules nothing out).
    pub fn build(columns: &Columns, starts: &[usize]) -> ListIndex {
        let ok = starts.first() == Some(&0)
            && starts.last() == Some(&columns.rows())
            && starts.windows(2).all(|w| w[0] <= w[1]);
        if !ok || columns.columns().is_empty() {
            return ListIndex::default();
        }
        let summaries = starts
            .windows(2)
            .map(|w| {
                columns
                    .columns()
                    .iter()
                    .map(|c| summarise(&c.data, w[0], w[1]))
                    .collect()
            })
            .collect();
        ListIndex {
            starts: starts.to_vec(),
            summaries,
        }
    }

    /// Column `column`'s summary over list `list` (`None`: nothing known).
    pub fn summary(&self, list: usize, column: usize) -> Option<&Summary> {
        self.summaries.get(list)?.get(column)
    }

    /// Rows of list `list`.
    pub fn rows(&self, list: usize) -> usize {
        match (self.starts.get(list), self.starts.get(list + 1)) {
            (Some(a), Some(b)) => b - a,
            _ => 0,
        }
    }

    /// Lists summarised (0 when the index is empty).
    pub fn lists(&self) -> usize {
        self.summaries.len()
    }
}

fn summarise(data: &ColumnData, from: usize, to: usize) -> Summary {
    let rows = from..to;
    match data {
        ColumnData::Int { values, present } => {
            let (present, min, max) = range(values, present, rows, i64::MAX, i64::MIN);
            Summary::Int { present, min, max }
        }
        ColumnData::Float { values, present } => {
            let (present, min, max) =
                range(values, present, rows, f64::INFINITY, f64::NEG_INFINITY);
            Summary::Float { present, min, max }
        }
        ColumnData::Bool { values } => {
            let part = values.get(rows).unwrap_or_default();
            Summary::Bool {
                falses: part.iter().filter(|&&b| b == 0).count() as u32,
                trues: part.iter().filter(|&&b| b == 1).count() as u32,
            }
        }
        ColumnData::Keyword { codes, .. } => {
            count_codes(codes.get(rows).unwrap_or_default().iter().copied())
        }
        ColumnData::Keywords { starts, codes, .. } => {
            let (a, b) = (
                starts.get(from).copied().unwrap_or(0) as usize,
                starts.get(to).copied().unwrap_or(0) as usize,
            );
            count_codes(codes.get(a..b).unwrap_or_default().iter().copied())
        }
    }
}

/// How many of `rows` have a value in `values` (by `present`), and the
/// smallest and largest of them (`empty_min`, `empty_max` when none).
fn range<T: PartialOrd + Copy>(
    values: &[T],
    present: &crate::rowset::RowSet,
    rows: std::ops::Range<usize>,
    empty_min: T,
    empty_max: T,
) -> (u32, T, T) {
    let mut s = (0u32, empty_min, empty_max);
    for r in rows.filter(|&r| present.contains(r)) {
        if let Some(&v) = values.get(r) {
            let min = if v < s.1 { v } else { s.1 };
            let max = if v > s.2 { v } else { s.2 };
            s = (s.0 + 1, min, max);
        }
    }
    s
}

fn count_codes(codes: impl Iterator<Item = u32>) -> Summary {
    let mut v: Vec<u32> = codes.filter(|&c| c != super::ABSENT).collect();
    v.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for c in v {
        match out.last_mut() {
            Some((k, n)) if *k == c => *n += 1,
            _ => out.push((c, 1)),
        }
    }
    Summary::Codes(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::{ColumnsBuilder, FieldDef, FieldType, Value};

    #[test]
    fn summarises_each_list() {
        let schema = [
            FieldDef::new("a", FieldType::Keyword),
            FieldDef::new("n", FieldType::Int),
            FieldDef::new("b", FieldType::Bool),
        ];
        let mut b = ColumnsBuilder::new(&schema);
        for i in 0..6i64 {
            let mut v = vec![("n".to_string(), Value::Int(i * 10))];
            if i != 2 {
                v.push((
                    "a".into(),
                    Value::Keyword(["x", "y"][i as usize % 2].into()),
                ));
            }
            v.push(("b".into(), Value::Bool(i > 3)));
            v.sort_by(|x, y| x.0.cmp(&y.0));
            b.push(&v);
        }
        let cols = b.finish();
        let idx = ListIndex::build(&cols, &[0, 3, 3, 6]);
        let a = cols.columns().iter().position(|c| c.name == "a").unwrap();
        let n = cols.columns().iter().position(|c| c.name == "n").unwrap();
        assert_eq!(
            idx.summary(0, a),
            Some(&Summary::Codes(vec![(0, 1), (1, 1)]))
        );
        assert_eq!(
            idx.summary(0, n),
            Some(&Summary::Int {
                present: 3,
                min: 0,
                max: 20
            })
        );
        assert_eq!(idx.summary(1, n).map(Summary::present), Some(0));
        assert_eq!(idx.rows(2), 3);
        assert_eq!(idx.summary(9, 0), None);
        assert_eq!(ListIndex::build(&cols, &[0, 7]), ListIndex::default());
    }
}
