//! Shared by the engine's tests: a workload of upserts and deletes with an
//! in-memory model of what the collection must hold, and a checker (the
//! fault tests); clustered data (explain, tune).

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::collections::BTreeMap;
use std::path::Path;

use vdb_engine::{Collection, CollectionConfig, Engine, EngineOptions, Row, SearchOptions};

pub const DIM: usize = 8;
pub const IDS: u64 = 300;

/// The expected content: id → (vector, payload).
pub type Model = BTreeMap<u64, (Vec<f32>, Option<Vec<u8>>)>;

/// A small collection that flushes, trains and compacts often.
pub fn config() -> CollectionConfig {
    CollectionConfig {
        nlist: 4,
        min_rows_per_list: 10,
        flush_rows: 97,
        ..CollectionConfig::new(DIM)
    }
}

/// The vector written for `id` at `version`: every component says both.
pub fn vector(id: u64, version: u64) -> Vec<f32> {
    (0..DIM)
        .map(|j| (id * 1000 + version) as f32 + j as f32 * 0.25)
        .collect()
}

/// One write of the workload.
#[derive(Debug, Clone)]
pub enum Op {
    Upsert(Vec<u64>),
    Delete(Vec<u64>),
}

/// A deterministic stream of writes.
#[derive(Debug)]
pub struct Workload {
    state: u64,
    pub version: u64,
}

impl Workload {
    pub fn new(seed: u64) -> Workload {
        Workload {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            version: seed * 1_000_000,
        }
    }

    pub fn rand(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// The next write and its version.
    pub fn next_op(&mut self) -> (u64, Op) {
        self.version += 1;
        let n = 1 + self.rand() % 20;
        let mut ids: Vec<u64> = (0..n).map(|_| self.rand() % IDS).collect();
        ids.sort_unstable();
        ids.dedup();
        if self.rand().is_multiple_of(5) {
            (self.version, Op::Delete(ids))
        } else {
            (self.version, Op::Upsert(ids))
        }
    }
}

/// Performs `op` on the collection.
pub fn perform(c: &Collection, version: u64, op: &Op) -> vdb_engine::Result<()> {
    match op {
        Op::Delete(ids) => c.delete(ids).map(|_| ()),
        Op::Upsert(ids) => c
            .upsert(
                ids.iter()
                    .map(|&id| Row {
                        id,
                        vector: vector(id, version),
                        payload: Some(version.to_le_bytes().to_vec()),
                        fields: Default::default(),
                    })
                    .collect(),
            )
            .map(|_| ()),
    }
}

/// Applies `op` to the model.
pub fn apply(model: &mut Model, version: u64, op: &Op) {
    match op {
        Op::Delete(ids) => {
            for id in ids {
                model.remove(id);
            }
        }
        Op::Upsert(ids) => {
            for &id in ids {
                model.insert(
                    id,
                    (vector(id, version), Some(version.to_le_bytes().to_vec())),
                );
            }
        }
    }
}

/// Whether the collection holds exactly `model`: every row by `get`, the row
/// count, and an exact search that returns every row exactly once.
pub fn holds(c: &Collection, model: &Model) -> Result<(), String> {
    let stats = c.stats();
    if stats.rows != model.len() as u64 {
        return Err(format!("{} rows, expected {}", stats.rows, model.len()));
    }
    for id in 0..IDS {
        let got = c.get(id).map_err(|e| e.to_string())?;
        let want = model.get(&id);
        match (got, want) {
            (None, None) => {}
            (Some(r), Some((v, p))) if &r.vector == v && &r.payload == p => {}
            (got, want) => return Err(format!("id {id}: got {got:?}, expected {want:?}")),
        }
    }
    if !model.is_empty() {
        let hits = c
            .search(
                &[vec![0.0; DIM]],
                SearchOptions {
                    k: model.len(),
                    nprobe: Some(usize::MAX),
                    with_payload: false,
                    with_vectors: false,
                    ..Default::default()
                },
            )
            .map_err(|e| e.to_string())?;
        let mut ids: Vec<u64> = hits[0].iter().map(|h| h.id).collect();
        ids.sort_unstable();
        let want: Vec<u64> = model.keys().copied().collect();
        if ids != want {
            return Err(format!(
                "an exact search returned {} rows, not each of the {} once",
                ids.len(),
                want.len()
            ));
        }
    }
    Ok(())
}

/// Files in a collection directory that its manifest does not name
/// (besides `MANIFEST` and the `wal` directory): leftovers of a crash.
pub fn leaked_files(dir: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(dir.join("MANIFEST")).unwrap_or_default();
    let named: Vec<&str> = manifest.split_whitespace().collect();
    let mut leaked = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name != "MANIFEST" && name != "wal" && !named.contains(&name.as_str()) {
            leaked.push(name);
        }
    }
    leaked
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for e in std::fs::read_dir(from).into_iter().flatten().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target)
                .unwrap_or_else(|err| panic!("copy {}: {err}", e.path().display()));
        }
    }
}

/// `vectors` as rows whose ids are their positions, without payloads.
pub fn numbered(vectors: &[Vec<f32>]) -> Vec<Row> {
    vectors
        .iter()
        .enumerate()
        .map(|(i, v)| Row {
            id: i as u64,
            vector: v.clone(),
            payload: None,
            fields: Default::default(),
        })
        .collect()
}

/// `n` points of dimension `dim` around `centres` random centres in
/// [0, 4)^dim, uniform noise of width 2: clusters close enough that a
/// point's neighbours often sit in other lists than its own.
pub fn clustered(n: usize, dim: usize, centres: usize, seed: u64) -> Vec<Vec<f32>> {
    // The centres depend on `centres` and `dim` only, so sets drawn with
    // different seeds come from the same distribution.
    let mut c = vdb_ivf::SplitMix64::new(0x5eed ^ (centres as u64) << 8 ^ dim as u64);
    let centres: Vec<Vec<f32>> = (0..centres)
        .map(|_| (0..dim).map(|_| c.next_f32() * 4.0).collect())
        .collect();
    let mut rng = vdb_ivf::SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let c = &centres[rng.below(centres.len())];
            c.iter().map(|x| x + 2.0 * rng.next_f32() - 1.0).collect()
        })
        .collect()
}

/// A retraining policy with every rule off: the centroids stay those of
/// the first training.
pub fn never_retrain() -> vdb_engine::RetrainPolicy {
    vdb_engine::RetrainPolicy {
        growth: 0.0,
        error_drift: 0.0,
        imbalance: 0.0,
        ..vdb_engine::RetrainPolicy::default()
    }
}

/// The engine of `dir` on the simulated disk `sim`.
pub fn open_on(dir: &Path, sim: &vdb_fs::SimFs) -> vdb_engine::Result<Engine> {
    Engine::open_with(
        dir,
        EngineOptions {
            fs: sim.shared(),
            ..Default::default()
        },
    )
}

/// The rows a collection's export holds, and how many of them are not in
/// the list of their nearest centroid (L2). Lists are assigned with
/// distances expanded as |x|² - 2x·c + |c|², whose rounding grows with
/// the vectors' norms: a row counts as misplaced only when its own
/// centroid is farther than the nearest by more than that rounding.
pub fn rows_outside_nearest_list(c: &Collection) -> (u64, u64) {
    let export = c.export();
    let dim = c.config().dim;
    let nlist = export.sizes.len();
    let centroid = |l: usize| &export.centroids[l * dim..(l + 1) * dim];
    let dist =
        |x: &[f32], c: &[f32]| -> f32 { x.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum() };
    let norm = |x: &[f32]| -> f32 { x.iter().map(|a| a * a).sum() };
    let (mut rows, mut misplaced) = (0u64, 0u64);
    export
        .for_each_chunk::<vdb_engine::Error>(4096, |list, _, vectors| {
            for x in vectors.chunks_exact(dim) {
                rows += 1;
                let own_centroid = centroid(list as usize);
                let own = dist(x, own_centroid);
                let best = (0..nlist)
                    .map(|l| dist(x, centroid(l)))
                    .fold(f32::INFINITY, f32::min);
                let rounding = 1e-5 * (norm(x) + norm(own_centroid)) + 1e-4;
                if own > best * (1.0 + 1e-4) + rounding {
                    misplaced += 1;
                }
            }
            Ok(())
        })
        .unwrap();
    (rows, misplaced)
}
