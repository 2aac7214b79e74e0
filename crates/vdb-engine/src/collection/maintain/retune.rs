//! Choosing nprobe for a collection's recall target whenever its lists
//! change: measured on the state a maintenance task is about to publish.

use vdb_format::SegmentReader;
use vdb_ivf::{CoarseQuantizer, Source};

use vdb_core::{ListId, RowSet};

use super::super::Loc;
use super::frozen::Frozen;
use crate::error::Result;
use crate::manifest::Manifest;
use crate::tune::nprobe_for_recall;

/// With a recall target, sets the manifest's nprobe to the one the target
/// chooses on `sources`, searched with `q`.
pub(super) fn retune(
    next: &mut Manifest,
    q: &CoarseQuantizer,
    sources: &[Source<'_>],
) -> Result<()> {
    if let Some(target) = next.config.target_recall
        && next.generation > 0
        && let Some(t) = nprobe_for_recall(q, sources, target)?
    {
        next.config.nprobe = t.nprobe;
        next.tuned_recall = t.recall;
    }
    Ok(())
}

/// With a recall target not yet measured on this generation (centroids
/// given at creation, or too few rows before), measures it on the frozen
/// segments at positions `kept` and the segments just written.
pub(super) fn retune_untuned(
    next: &mut Manifest,
    f: &Frozen,
    kept: &[usize],
    written: &[&SegmentReader],
) -> Result<()> {
    if next.tuned_recall != 0.0 || next.generation == 0 || next.config.target_recall.is_none() {
        return Ok(());
    }
    let mut sources: Vec<Source<'_>> = kept
        .iter()
        .filter_map(|&i| f.segs.get(i))
        .map(|(seg, deleted)| Source {
            lists: seg.as_ref(),
            deleted: Some(deleted.as_ref()),
            filter: None,
        })
        .collect();
    sources.extend(written.iter().map(|r| whole(r)));
    retune(next, &f.quantizer, &sources)
}

/// After a step that moved `rows` out of the frozen segments into
/// `written` (a rebalancing's, a retraining step's): sets the manifest's
/// nprobe for the recall target on the state it publishes — the frozen
/// segments without the rows that moved, and the new segments.
pub(super) fn retune_moved(
    next: &mut Manifest,
    q: &CoarseQuantizer,
    f: &Frozen,
    rows: &[(ListId, Loc)],
    written: &[&SegmentReader],
) -> Result<()> {
    let mut hidden: Vec<RowSet> = f.segs.iter().map(|(_, d)| (**d).clone()).collect();
    for &(_, loc) in rows {
        if let Loc::Seg(s, r) = loc
            && let Some(h) = hidden.get_mut(s as usize)
        {
            h.insert(r as usize);
        }
    }
    let mut sources: Vec<Source<'_>> = f
        .segs
        .iter()
        .zip(&hidden)
        .map(|((seg, _), hidden)| Source {
            lists: seg.as_ref(),
            deleted: Some(hidden),
            filter: None,
        })
        .collect();
    sources.extend(written.iter().map(|r| whole(r)));
    retune(next, q, &sources)
}

/// The mean distance of rows to their list's centroid and faiss's
/// imbalance factor of `nlist` lists, from an assignment.
pub(super) fn assignment_numbers(assignment: &[(ListId, f32)], nlist: usize) -> (f64, f64) {
    let mut sizes = vec![0u64; nlist];
    for (l, _) in assignment {
        if let Some(s) = sizes.get_mut(l.index()) {
            *s += 1;
        }
    }
    let error =
        assignment.iter().map(|&(_, d)| d as f64).sum::<f64>() / assignment.len().max(1) as f64;
    (error, vdb_ivf::imbalance_factor(&sizes))
}

/// Every row of a newly written segment, as a search source.
pub(super) fn whole(reader: &SegmentReader) -> Source<'_> {
    Source {
        lists: reader,
        deleted: None,
        filter: None,
    }
}
