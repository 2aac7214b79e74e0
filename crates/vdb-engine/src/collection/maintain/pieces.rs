//! What maintenance's phase 2 writes: a task's rows as segments no
//! larger than the compaction policy's cap — a rewrite larger than it (a
//! training, a full compaction, a rebalancing that moves many rows) is
//! split into pieces of about equal size, in list order, so each piece
//! holds a range of lists and a later merge or rewrite of one piece needs
//! room for that piece only — and the record of what it wrote.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use vdb_core::{Generation, ListId, RowSet, SegmentId};
use vdb_format::{CodeSpec, SegmentMeta, SegmentReader, SegmentWriter};
use vdb_ivf::CoarseQuantizer;
use vdb_ivf::rabitq::Encoder;

use super::super::{Collection, Loc};
use super::frozen::Frozen;
use crate::config::CollectionConfig;
use crate::error::Result;
use crate::manifest::Manifest;
use crate::policy::SegmentStat;

/// The most a task writes into one segment, in bytes and (at the
/// collection's mean row size) rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SegmentCap {
    /// [`crate::CompactionPolicy::segment_cap`] of the collection's live
    /// bytes, with a flush's worth as the floor.
    pub(super) bytes: u64,
    /// Mean bytes a stored row takes (in segment files).
    per_row: u64,
}

impl SegmentCap {
    /// The cap for a collection whose segments are `segs` and whose
    /// memtable holds `memtable_rows` visible rows.
    pub(super) fn new(
        config: &CollectionConfig,
        segs: &[SegmentStat],
        memtable_rows: u64,
    ) -> SegmentCap {
        let (bytes, rows) = segs
            .iter()
            .fold((0u64, 0u64), |(b, r), s| (b + s.bytes, r + s.rows));
        let per_row = match rows {
            0 => 4 * config.dim as u64 + 16,
            _ => (bytes / rows).max(1),
        };
        let live = segs.iter().map(SegmentStat::live_bytes).sum::<u64>()
            + memtable_rows.saturating_mul(per_row);
        let floor = (config.flush_rows as u64).saturating_mul(per_row);
        SegmentCap {
            bytes: config.compaction.segment_cap(live, floor),
            per_row,
        }
    }

    /// The cap in rows of the collection's mean size.
    pub(super) fn rows(&self) -> u64 {
        (self.bytes / self.per_row).max(1)
    }

    /// How `rows` rows are split: the number of pieces, each then holding
    /// `rows / pieces` rows (the first `rows % pieces` one more).
    pub(super) fn pieces(&self, rows: usize) -> usize {
        (rows as u64).div_ceil(self.rows()).max(1) as usize
    }
}

/// A segment as the compaction policy sees it.
pub(super) fn segment_stat(reader: &SegmentReader, hidden: &RowSet) -> SegmentStat {
    SegmentStat {
        rows: reader.rows() as u64,
        hidden: hidden.count() as u64,
        bytes: reader.file_len(),
    }
}

/// What phase 2 of maintenance wrote.
#[derive(Debug)]
pub(super) struct Written {
    pub(super) manifest: Manifest,
    /// The new segments, each with where its rows were in the frozen
    /// state.
    pub(super) segments: Vec<Piece>,
    /// Positions of the segments it replaces, ascending (compaction,
    /// training).
    pub(super) replaces: Vec<usize>,
    /// New centroids (training, rebalancing).
    pub(super) quantizer: Option<Arc<CoarseQuantizer>>,
    /// The lists whose centroids a rebalancing changed (empty: all, or
    /// none).
    pub(super) changed: Vec<ListId>,
}

impl Frozen {
    /// The segments as the compaction policy sees them.
    pub(super) fn segment_stats(&self) -> Vec<SegmentStat> {
        self.segs
            .iter()
            .map(|(reader, hidden)| segment_stat(reader, hidden))
            .collect()
    }

    /// The most a task writes into one segment.
    pub(super) fn segment_cap(&self) -> SegmentCap {
        let memtable: usize = self
            .mem
            .iter()
            .map(|(batch, hidden)| batch.rows() - hidden.count().min(batch.rows()))
            .sum();
        SegmentCap::new(
            &self.manifest.config,
            &self.segment_stats(),
            memtable as u64,
        )
    }
}

/// One segment a task wrote.
#[derive(Debug)]
pub(super) struct Piece {
    /// Its flush sequence number and file name, for the manifest.
    pub(super) seq: u64,
    pub(super) file: String,
    pub(super) reader: SegmentReader,
    /// Where each of its rows was in the frozen state.
    pub(super) origins: Vec<Loc>,
}

impl Collection {
    /// Writes `rows` of the frozen state (ordered by list) as segments of
    /// at most `cap`, numbered from the frozen manifest's `next_seq` on
    /// (the caller moves it past the pieces returned).
    pub(super) fn write_pieces(
        &self,
        f: &Frozen,
        quantizer: &CoarseQuantizer,
        generation: u64,
        rows: &[(ListId, Loc)],
        cap: SegmentCap,
    ) -> Result<Vec<Piece>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let n = cap.pieces(rows.len());
        let (base, extra) = (rows.len() / n, rows.len() % n);
        let mut pieces = Vec::with_capacity(n);
        let mut start = 0;
        for i in 0..n {
            let len = base + usize::from(i < extra);
            let part = &rows[start..start + len];
            start += len;
            let seq = f.manifest.next_seq + i as u64;
            f.last_seq.fetch_max(seq, Ordering::AcqRel);
            let file = vdb_format::segment_file_name(SegmentId(seq));
            let reader = self.write_rows(&file, seq, f, quantizer, generation, part)?;
            pieces.push(Piece {
                seq,
                file,
                reader,
                origins: part.iter().map(|&(_, loc)| loc).collect(),
            });
        }
        Ok(pieces)
    }

    /// Writes rows of the frozen state, ordered by list, as segment `file`.
    fn write_rows(
        &self,
        file: &str,
        seq: u64,
        f: &Frozen,
        quantizer: &CoarseQuantizer,
        generation: u64,
        rows: &[(ListId, Loc)],
    ) -> Result<SegmentReader> {
        let meta = SegmentMeta {
            id: SegmentId(seq),
            generation: Generation(generation),
            metric: self.config.metric,
            dim: self.config.dim,
            nlist: quantizer.nlist(),
            with_payloads: true,
        };
        let fields = &f.manifest.config.fields;
        let codebook = quantizer.codebook();
        let mut w = SegmentWriter::create_with_codes(
            self.files.as_ref(),
            file,
            meta,
            (!fields.is_empty()).then_some(fields.as_slice()),
            codebook.map(|b| CodeSpec {
                seed: b.rotation().seed(),
                extended: true,
            }),
        )?;
        let mut encoder = codebook.map(|b| Encoder::new(b, true));
        for &(list, loc) in rows {
            let row = f.row(loc)?;
            w.push_coded(
                list,
                row.id,
                row.vector,
                row.payload,
                &row.fields(),
                encoder.as_mut().map(|e| e.encode(list, row.vector)),
            )?;
        }
        w.finish()?;
        Ok(SegmentReader::open(&self.files.path(file))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(rows: u64, hidden: u64, bytes: u64) -> SegmentStat {
        SegmentStat {
            rows,
            hidden,
            bytes,
        }
    }

    #[test]
    fn the_cap_is_a_fraction_of_the_live_bytes_and_at_least_a_flush() {
        let mut config = CollectionConfig::new(4);
        config.flush_rows = 10;
        // 100 bytes a row; 1,000 rows live of 1,100, 100 in the memtable.
        let segs = [stat(600, 100, 60_000), stat(500, 0, 50_000)];
        let cap = SegmentCap::new(&config, &segs, 100);
        assert_eq!(cap.bytes, 16_500, "0.15 of 110,000 live bytes");
        assert_eq!(cap.pieces(1_100), 7, "165 rows a piece");
        assert_eq!(cap.pieces(165), 1);
        assert_eq!(cap.pieces(166), 2);
        assert_eq!(cap.pieces(0), 1);
        config.flush_rows = 1_000;
        assert_eq!(SegmentCap::new(&config, &segs, 100).pieces(1_100), 2);
        config.compaction.max_segment_fraction = 0.0;
        assert_eq!(SegmentCap::new(&config, &segs, 100).pieces(1_100), 1);
        // No segment yet: rows of 4·dim + 16 bytes.
        config.flush_rows = 1;
        config.compaction.max_segment_fraction = 0.5;
        let cap = SegmentCap::new(&config, &[], 1_000);
        assert_eq!(cap.bytes, 16_000);
        assert_eq!(cap.pieces(1_000), 2);
    }
}
