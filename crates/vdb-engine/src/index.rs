//! Index types: how a trained collection's lists are stored and scanned.

use std::fmt;
use std::str::FromStr;

/// How a collection's lists are scanned, chosen at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IndexType {
    /// Every probed row's exact distance (faiss `IVF{nlist},Flat`).
    #[default]
    IvfFlat,
    /// Segments also keep each row's 1-bit RaBitQ code; a search
    /// estimates every probed row's distance from its code and computes
    /// exact distances only for the rows the estimate's error bound
    /// cannot rule out (`vdb_ivf::rabitq`). The full vectors stay, so
    /// results, get, export and retraining are those of `IvfFlat`.
    IvfRabitq,
}

impl IndexType {
    /// Its name in the manifest, the API and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            IndexType::IvfFlat => "ivf_flat",
            IndexType::IvfRabitq => "ivf_rabitq",
        }
    }
}

impl fmt::Display for IndexType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for IndexType {
    type Err = String;

    fn from_str(s: &str) -> Result<IndexType, String> {
        match s.to_ascii_lowercase().as_str() {
            "ivf_flat" => Ok(IndexType::IvfFlat),
            "ivf_rabitq" => Ok(IndexType::IvfRabitq),
            other => Err(format!(
                "unknown index type {other:?} (ivf_flat or ivf_rabitq)"
            )),
        }
    }
}

/// The seed of the rotation every `IVF_RABITQ` code is made with. RaBitQ
/// needs a rotation independent of the data, not a different one per
/// collection; one fixed seed keeps a row's code valid across trainings
/// and local rebalancing (segments record it, and a search uses codes
/// only with the rotation they were made with).
pub const RABITQ_SEED: u64 = 0x5241_4249_5451_0001;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_named() {
        for t in [IndexType::IvfFlat, IndexType::IvfRabitq] {
            assert_eq!(t.name().parse::<IndexType>(), Ok(t));
        }
        assert_eq!("IVF_RABITQ".parse::<IndexType>(), Ok(IndexType::IvfRabitq));
        let e = "hnsw".parse::<IndexType>().unwrap_err();
        assert!(e.contains("\"hnsw\""), "{e}");
    }
}
