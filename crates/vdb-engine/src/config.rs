//! A collection's settings and the validation of names.

use vdb_core::{FieldDef, Metric};
use vdb_wal::SyncMode;

use crate::error::{Error, Result};
use crate::index::{IndexType, RABITQ_SEED};
use crate::policy::{CompactionPolicy, RetrainPolicy};
use vdb_ivf::CoarseQuantizer;

/// Settings of a collection, fixed at creation except where noted.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionConfig {
    /// Vector dimension.
    pub dim: usize,
    /// Distance metric.
    pub metric: Metric,
    /// Inverted lists once trained.
    pub nlist: usize,
    /// Lists probed when a search does not say. With a `target_recall`,
    /// chosen anew at each training and local rebalancing (set this and
    /// clear `target_recall` to fix it).
    pub nprobe: usize,
    /// The recall@10 the default nprobe is chosen for, in (0, 1]: after
    /// each training and local rebalancing (and when the target changes)
    /// the collection measures recall against exact search on 200 of its
    /// own rows used as queries and makes the smallest nprobe reaching the
    /// target its `nprobe`.
    /// `None`: `nprobe` stays as set.
    pub target_recall: Option<f64>,
    /// When writes are acknowledged (see `docs/durability.md`).
    pub sync: SyncMode,
    /// The memtable is flushed to a segment once it holds this many rows.
    pub flush_rows: usize,
    /// The collection is first trained once it holds this many rows per
    /// list (faiss asks for 39).
    pub min_rows_per_list: usize,
    /// When the centroids are retrained (see [`RetrainPolicy`]).
    pub retrain: RetrainPolicy,
    /// When segments are compacted (see [`CompactionPolicy`]).
    pub compaction: CompactionPolicy,
    /// Typed fields rows may carry, for filtered search.
    pub fields: Vec<FieldDef>,
    /// How the lists are stored and scanned (see [`IndexType`]).
    pub index_type: IndexType,
}

impl CollectionConfig {
    /// Defaults for vectors of `dim` components: L2, nlist 256, nprobe
    /// chosen for recall@10 0.95 (8 until the first training), sync always,
    /// flush every 100,000 rows.
    pub fn new(dim: usize) -> CollectionConfig {
        CollectionConfig {
            dim,
            metric: Metric::L2,
            nlist: 256,
            nprobe: 8,
            target_recall: Some(DEFAULT_TARGET_RECALL),
            sync: SyncMode::Always,
            flush_rows: 100_000,
            min_rows_per_list: 39,
            retrain: RetrainPolicy::default(),
            compaction: CompactionPolicy::default(),
            fields: Vec::new(),
            index_type: IndexType::IvfFlat,
        }
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.dim > 65_536 {
            return Err(Error::invalid(
                "dim",
                format!("{} is outside 1..=65536", self.dim),
            ));
        }
        if self.nlist == 0 || self.nlist > 1 << 20 {
            return Err(Error::invalid(
                "nlist",
                format!("{} is outside 1..=1048576", self.nlist),
            ));
        }
        if self.nprobe == 0 {
            return Err(Error::invalid("nprobe", "must be at least 1"));
        }
        if let Some(t) = self.target_recall {
            check_target_recall(t)?;
        }
        if self.flush_rows == 0 {
            return Err(Error::invalid("flush_rows", "must be at least 1"));
        }
        if self.min_rows_per_list == 0 {
            return Err(Error::invalid("min_rows_per_list", "must be at least 1"));
        }
        let h = self.compaction.max_hidden;
        if !(h.is_finite() && (0.0..1.0).contains(&h)) {
            return Err(Error::invalid(
                "compaction.max_hidden",
                format!("{h} must be 0 (off) or a fraction below 1"),
            ));
        }
        let f = self.compaction.max_segment_fraction;
        if !(f.is_finite() && (0.0..=1.0).contains(&f)) {
            return Err(Error::invalid(
                "compaction.max_segment_fraction",
                format!("{f} must be 0 (no limit) or a fraction up to 1"),
            ));
        }
        if self.compaction.fanout == 1 {
            return Err(Error::invalid(
                "compaction.fanout",
                "1 must be 0 (tiers off) or at least 2",
            ));
        }
        vdb_core::fields::validate_schema(&self.fields)
            .map_err(|e| Error::invalid(e.path, e.reason))?;
        let r = &self.retrain;
        for (field, v) in [
            ("retrain.growth", r.growth),
            ("retrain.error_drift", r.error_drift),
            ("retrain.imbalance", r.imbalance),
        ] {
            if !(v == 0.0 || (v.is_finite() && v > 1.0)) {
                return Err(Error::invalid(
                    field,
                    format!("{v} must be 0 (off) or a finite factor above 1"),
                ));
            }
        }
        Ok(())
    }

    /// The quantizer of a trained generation of this collection: with the
    /// RaBitQ codebook of [`RABITQ_SEED`]'s rotation for `ivf_rabitq`.
    pub(crate) fn quantizer(&self, centroids: Vec<f32>) -> Result<CoarseQuantizer> {
        let q = CoarseQuantizer::new(self.dim, self.metric, centroids)?;
        Ok(match self.index_type {
            IndexType::IvfFlat => q,
            IndexType::IvfRabitq => q.with_codes(RABITQ_SEED),
        })
    }

    /// Rows needed before the first training.
    pub fn train_threshold(&self) -> usize {
        self.nlist.saturating_mul(self.min_rows_per_list)
    }
}

/// The recall target of a collection that sets neither nprobe nor one.
pub const DEFAULT_TARGET_RECALL: f64 = 0.95;

/// Checks a recall target: in (0, 1].
pub fn check_target_recall(t: f64) -> Result<()> {
    if t > 0.0 && t <= 1.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            "target_recall",
            format!("{t} is not in (0, 1]"),
        ))
    }
}

/// Checks a collection name: `[A-Za-z0-9_-]{1,64}`, so it is always a plain
/// directory name and never a path.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 64 {
        return Err(Error::invalid(
            "name",
            format!("{name:?} must be 1 to 64 characters long"),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(Error::invalid(
            "name",
            format!("{name:?} contains {c:?}; only ASCII letters, digits, '_' and '-' are allowed"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("images_v2-small").is_ok());
        for bad in ["", "../x", "a/b", "é", "a b", ".", &"x".repeat(65)] {
            let e = validate_name(bad).unwrap_err();
            assert!(e.to_string().starts_with("invalid name"), "{bad}: {e}");
        }
    }

    #[test]
    fn config_fields_are_named() {
        let ok = CollectionConfig::new(4);
        assert!(ok.validate().is_ok());
        for (c, field) in [
            (
                CollectionConfig {
                    dim: 0,
                    ..ok.clone()
                },
                "dim",
            ),
            (
                CollectionConfig {
                    nlist: 0,
                    ..ok.clone()
                },
                "nlist",
            ),
            (
                CollectionConfig {
                    nprobe: 0,
                    ..ok.clone()
                },
                "nprobe",
            ),
            (
                CollectionConfig {
                    flush_rows: 0,
                    ..ok.clone()
                },
                "flush_rows",
            ),
        ] {
            assert!(c.validate().unwrap_err().to_string().contains(field));
        }
    }
}
