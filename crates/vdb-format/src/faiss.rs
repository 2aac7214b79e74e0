//! faiss's `IndexIVFFlat` file (`IVF{nlist},Flat`), as `faiss.write_index`
//! writes it and `faiss.read_index` reads it, so vdb collections can go to
//! faiss tooling (and the Feder visualizer, which reads faiss files) and
//! come back.
//!
//! The layout, little-endian, with faiss's C++ field sizes on 64-bit hosts
//! (`docs/format.md` has the table):
//!
//! ```text
//! "IwFl"  index header  nlist:u64  nprobe:u64
//!         quantizer: "IxF2"|"IxFI"  index header  n:u64 (= nlist·d)  n × f32
//!         direct map: type:u8 (0)  n:u64 (0)
//!         lists: "ilar"  nlist:u64  code_size:u64 (= 4·d)  "full"  n:u64 (= nlist)  nlist × size:u64
//!                then per non-empty list: size × d × f32, then size × id:i64
//! index header: d:i32  ntotal:i64  1<<20:i64  1<<20:i64  is_trained:u8  metric:i32 (0 = inner product, 1 = L2)
//! ```
//!
//! The reader also takes what faiss itself may write in these places: a
//! generic flat quantizer (`"IxFl"`), a direct map, and sparse list sizes
//! (`"sprs"`: pairs of list number and size for the non-empty lists).
//! It checks every count against the bytes the file has before allocating,
//! and answers a bad file with [`Error::Corrupt`] or [`Error::Truncated`]
//! naming the field, never a panic.

use std::path::{Path, PathBuf};
use vdb_fs::NewFile;

use crate::error::{Error, Result};

/// faiss's metrics that IVF_Flat files carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaissMetric {
    /// `METRIC_INNER_PRODUCT` (0): larger is closer.
    InnerProduct,
    /// `METRIC_L2` (1): squared Euclidean distance.
    L2,
}

impl FaissMetric {
    fn code(self) -> i32 {
        match self {
            FaissMetric::InnerProduct => 0,
            FaissMetric::L2 => 1,
        }
    }
}

/// Everything of an IVF_Flat file but the lists' rows.
#[derive(Debug, Clone, PartialEq)]
pub struct FaissIvfHeader {
    /// Vector dimension.
    pub dim: usize,
    /// The metric.
    pub metric: FaissMetric,
    /// faiss's default nprobe for searches of the index.
    pub nprobe: usize,
    /// `nlist × dim` centroids, row-major.
    pub centroids: Vec<f32>,
    /// Rows per list.
    pub sizes: Vec<u64>,
}

impl FaissIvfHeader {
    /// Number of lists.
    pub fn nlist(&self) -> usize {
        self.sizes.len()
    }
}

/// A whole IVF_Flat file in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct FaissIvfFlat {
    /// Dimension, metric, centroids, sizes.
    pub header: FaissIvfHeader,
    /// Per list: the ids, and the vectors (`ids.len() × dim`).
    pub lists: Vec<(Vec<i64>, Vec<f32>)>,
}

const DUMMY: i64 = 1 << 20;

fn index_header(out: &mut Vec<u8>, dim: usize, ntotal: u64, metric: FaissMetric) {
    out.extend_from_slice(&(dim as i32).to_le_bytes());
    out.extend_from_slice(&(ntotal as i64).to_le_bytes());
    out.extend_from_slice(&DUMMY.to_le_bytes());
    out.extend_from_slice(&DUMMY.to_le_bytes());
    out.push(1); // is_trained
    out.extend_from_slice(&metric.code().to_le_bytes());
}

/// Writes an IVF_Flat file list by list, streaming: the header goes out at
/// [`FaissIvfWriter::create`], then each list's rows in list order (in as
/// many [`FaissIvfWriter::push`] calls as convenient), then
/// [`FaissIvfWriter::finish`]. The file is written as `<path>.tmp` and
/// renamed into place by `finish`, so a failed export leaves no file that
/// looks complete.
#[derive(Debug)]
pub struct FaissIvfWriter {
    path: PathBuf,
    /// The file, under its temporary name until `finish` commits it
    /// (dropping the writer unfinished removes it).
    out: Box<vdb_fs::AtomicFile>,
    /// Bytes not yet written to `out`.
    buf: Vec<u8>,
    dim: usize,
    sizes: Vec<u64>,
    /// The list being written and its rows so far; its ids wait here
    /// because faiss stores a list's vectors before its ids.
    list: usize,
    ids: Vec<i64>,
}

/// Bytes the faiss writer buffers before writing them out.
const WRITE_BUFFER: usize = 1 << 20;

impl FaissIvfWriter {
    /// Starts the file at `path` with everything up to the list sizes.
    pub fn create(path: &Path, header: &FaissIvfHeader) -> Result<FaissIvfWriter> {
        let (dim, nlist) = (header.dim, header.nlist());
        let bad = |reason: String| Error::corrupt(path, "header", 0, reason);
        if dim == 0 || dim > i32::MAX as usize / 4 {
            return Err(bad(format!("dimension {dim} cannot be written")));
        }
        if nlist == 0 || header.centroids.len() != nlist * dim {
            return Err(bad(format!(
                "{} centroid values for {nlist} lists of dimension {dim}",
                header.centroids.len()
            )));
        }
        let ntotal: u64 = header.sizes.iter().sum();
        let mut head = Vec::with_capacity(128 + header.centroids.len() * 4 + nlist * 8);
        head.extend_from_slice(b"IwFl");
        index_header(&mut head, dim, ntotal, header.metric);
        head.extend_from_slice(&(nlist as u64).to_le_bytes());
        head.extend_from_slice(&(header.nprobe.max(1) as u64).to_le_bytes());
        head.extend_from_slice(match header.metric {
            FaissMetric::L2 => b"IxF2",
            FaissMetric::InnerProduct => b"IxFI",
        });
        index_header(&mut head, dim, nlist as u64, header.metric);
        head.extend_from_slice(&(header.centroids.len() as u64).to_le_bytes());
        for c in &header.centroids {
            head.extend_from_slice(&c.to_le_bytes());
        }
        head.push(0); // no direct map
        head.extend_from_slice(&0u64.to_le_bytes());
        head.extend_from_slice(b"ilar");
        head.extend_from_slice(&(nlist as u64).to_le_bytes());
        head.extend_from_slice(&(dim as u64 * 4).to_le_bytes());
        head.extend_from_slice(b"full");
        head.extend_from_slice(&(nlist as u64).to_le_bytes());
        for s in &header.sizes {
            head.extend_from_slice(&s.to_le_bytes());
        }
        let out = Box::new(vdb_fs::AtomicFile::create(&vdb_fs::os(), path)?);
        let mut w = FaissIvfWriter {
            path: path.to_path_buf(),
            out,
            buf: Vec::with_capacity(WRITE_BUFFER),
            dim,
            sizes: header.sizes.clone(),
            list: 0,
            ids: Vec::new(),
        };
        w.write(&head)?;
        w.skip_empty()?;
        Ok(w)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= WRITE_BUFFER {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Appends rows of `list` (`ids.len() × dim` values in `vectors`). Lists
    /// come in order, each with exactly the rows its size says.
    pub fn push(&mut self, list: usize, ids: &[i64], vectors: &[f32]) -> Result<()> {
        let bad = |reason: String| Error::corrupt(&self.path, "lists", 0, reason);
        if list != self.list {
            return Err(bad(format!(
                "rows of list {list} arrived while list {} is being written",
                self.list
            )));
        }
        if vectors.len() != ids.len() * self.dim {
            return Err(bad(format!(
                "{} values for {} rows of dimension {}",
                vectors.len(),
                ids.len(),
                self.dim
            )));
        }
        let size = self.sizes.get(list).copied().unwrap_or(0);
        if (self.ids.len() + ids.len()) as u64 > size {
            return Err(bad(format!(
                "list {list} has more rows than its size {size}"
            )));
        }
        let mut bytes = Vec::with_capacity(vectors.len() * 4);
        for v in vectors {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.write(&bytes)?;
        self.ids.extend_from_slice(ids);
        if self.ids.len() as u64 == size {
            let mut bytes = Vec::with_capacity(self.ids.len() * 8);
            for id in &self.ids {
                bytes.extend_from_slice(&id.to_le_bytes());
            }
            self.write(&bytes)?;
            self.ids.clear();
            self.list += 1;
            self.skip_empty()?;
        }
        Ok(())
    }

    fn skip_empty(&mut self) -> Result<()> {
        while self.sizes.get(self.list) == Some(&0) {
            self.list += 1;
        }
        Ok(())
    }

    /// Checks every list is complete, makes the file durable and renames it
    /// into place.
    pub fn finish(self) -> Result<()> {
        if self.list < self.sizes.len() {
            return Err(Error::corrupt(
                &self.path,
                "lists",
                0,
                format!(
                    "list {} has {} of its {} rows",
                    self.list,
                    self.ids.len(),
                    self.sizes.get(self.list).copied().unwrap_or(0)
                ),
            ));
        }
        let mut out = self.out;
        out.write_all(&self.buf)?;
        out.commit()?;
        Ok(())
    }
}

/// Writes `index` to `path`.
pub fn write_faiss_ivf_flat(path: &Path, index: &FaissIvfFlat) -> Result<()> {
    let mut w = FaissIvfWriter::create(path, &index.header)?;
    for (l, (ids, vectors)) in index.lists.iter().enumerate() {
        if !ids.is_empty() {
            w.push(l, ids, vectors)?;
        }
    }
    w.finish()
}

/// A cursor over the file's bytes that names what it reads.
struct Cursor<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end.and_then(|e| self.bytes.get(self.at..e)) {
            Some(s) => {
                self.at += n;
                Ok(s)
            }
            None => Err(Error::Truncated {
                file: self.path.to_path_buf(),
                region: what.to_string(),
                needed: (self.at as u64).saturating_add(n as u64),
                len: self.bytes.len() as u64,
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn i64(&mut self, what: &str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    fn corrupt(&self, what: &str, reason: impl Into<String>) -> Error {
        Error::corrupt(self.path, what, self.at as u64, reason)
    }

    /// A count of `unit`-byte items that must fit in the rest of the file.
    fn count(&mut self, unit: usize, what: &str) -> Result<usize> {
        let n = self.u64(what)?;
        let left = (self.bytes.len() - self.at) as u64;
        if n.checked_mul(unit as u64).is_none_or(|b| b > left) {
            return Err(Error::Truncated {
                file: self.path.to_path_buf(),
                region: what.to_string(),
                needed: (self.at as u64).saturating_add(n.saturating_mul(unit as u64)),
                len: self.bytes.len() as u64,
            });
        }
        Ok(n as usize)
    }

    fn f32s(&mut self, n: usize, what: &str) -> Result<Vec<f32>> {
        let bytes = self.take(n * 4, what)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| {
                let mut a = [0u8; 4];
                a.copy_from_slice(b);
                f32::from_le_bytes(a)
            })
            .collect())
    }

    /// faiss's index header: (d, ntotal, metric).
    fn index_header(&mut self, what: &str) -> Result<(usize, u64, FaissMetric)> {
        let d = self.i32(what)?;
        if !(1..=65_536).contains(&d) {
            return Err(self.corrupt(what, format!("dimension {d} is not in 1..=65536")));
        }
        let ntotal = self.i64(what)?;
        if ntotal < 0 {
            return Err(self.corrupt(what, format!("negative row count {ntotal}")));
        }
        self.i64(what)?;
        self.i64(what)?;
        let trained = self.u8(what)?;
        let metric = match self.i32(what)? {
            0 => FaissMetric::InnerProduct,
            1 => FaissMetric::L2,
            m => {
                return Err(self.corrupt(
                    what,
                    format!("metric {m} is not supported (vdb reads inner product 0 and L2 1)"),
                ));
            }
        };
        if trained != 1 {
            return Err(self.corrupt(what, "the index is not trained"));
        }
        Ok((d as usize, ntotal as u64, metric))
    }
}

/// Reads an IVF_Flat file whole, checking its structure.
pub fn read_faiss_ivf_flat(path: &Path) -> Result<FaissIvfFlat> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "read", e))?;
    parse(path, &bytes)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<FaissIvfFlat> {
    let mut c = Cursor { path, bytes, at: 0 };
    let fourcc = c.array::<4>("index type")?;
    if &fourcc != b"IwFl" {
        return Err(Error::corrupt(
            path,
            "index type",
            0,
            format!(
                "{:?} is not an IndexIVFFlat (\"IwFl\"); export other faiss indexes as IVF{{nlist}},Flat",
                String::from_utf8_lossy(&fourcc)
            ),
        ));
    }
    let (dim, ntotal, metric) = c.index_header("index header")?;
    let nlist = c.u64("nlist")?;
    let nprobe = c.u64("nprobe")?;
    if nlist == 0 || nlist > (1 << 24) {
        return Err(c.corrupt("nlist", format!("{nlist} lists is not in 1..=16777216")));
    }
    let nlist = nlist as usize;

    let q = c.array::<4>("quantizer type")?;
    if !matches!(&q, b"IxF2" | b"IxFI" | b"IxFl") {
        return Err(c.corrupt(
            "quantizer type",
            format!(
                "quantizer {:?} is not a flat index",
                String::from_utf8_lossy(&q)
            ),
        ));
    }
    let (qd, qn, qmetric) = c.index_header("quantizer header")?;
    if qd != dim || qn != nlist as u64 || qmetric != metric {
        return Err(c.corrupt(
            "quantizer header",
            format!(
                "quantizer of {qn} centroids of dimension {qd} ({qmetric:?}) does not match {nlist} lists of dimension {dim} ({metric:?})"
            ),
        ));
    }
    let n = c.count(4, "centroids")?;
    if n != nlist * dim {
        return Err(c.corrupt(
            "centroids",
            format!("{n} values for {nlist} centroids of dimension {dim}"),
        ));
    }
    let centroids = c.f32s(n, "centroids")?;

    let map_type = c.u8("direct map")?;
    let n = c.count(8, "direct map")?;
    c.take(n * 8, "direct map")?;
    match map_type {
        0 | 1 => {}
        2 => {
            let n = c.count(16, "direct map")?;
            c.take(n * 16, "direct map")?;
        }
        t => return Err(c.corrupt("direct map", format!("unknown type {t}"))),
    }

    let lists_type = c.array::<4>("inverted lists type")?;
    if &lists_type != b"ilar" {
        return Err(c.corrupt(
            "inverted lists type",
            format!(
                "{:?} lists are not in the file (vdb reads in-memory \"ilar\" lists)",
                String::from_utf8_lossy(&lists_type)
            ),
        ));
    }
    if c.u64("inverted lists")? != nlist as u64 {
        return Err(c.corrupt("inverted lists", "list count differs from the header's"));
    }
    let code_size = c.u64("inverted lists")?;
    if code_size != dim as u64 * 4 {
        return Err(c.corrupt(
            "inverted lists",
            format!("code size {code_size} is not 4 × dimension {dim}"),
        ));
    }
    let mut sizes = vec![0u64; nlist];
    match &c.array::<4>("list sizes")? {
        b"full" => {
            let n = c.count(8, "list sizes")?;
            if n != nlist {
                return Err(c.corrupt("list sizes", format!("{n} sizes for {nlist} lists")));
            }
            for s in &mut sizes {
                *s = c.u64("list sizes")?;
            }
        }
        b"sprs" => {
            let n = c.count(8, "list sizes")?;
            if n % 2 != 0 {
                return Err(c.corrupt("list sizes", "an odd number of sparse entries"));
            }
            for _ in 0..n / 2 {
                let l = c.u64("list sizes")?;
                let s = c.u64("list sizes")?;
                match sizes.get_mut(l as usize) {
                    Some(slot) => *slot = s,
                    None => {
                        return Err(c.corrupt("list sizes", format!("list {l} of {nlist}")));
                    }
                }
            }
        }
        other => {
            return Err(c.corrupt(
                "list sizes",
                format!("unknown layout {:?}", String::from_utf8_lossy(other)),
            ));
        }
    }
    let total = sizes.iter().try_fold(0u64, |a, &s| a.checked_add(s));
    if total != Some(ntotal) {
        return Err(c.corrupt(
            "list sizes",
            format!("the sizes do not add up to the {ntotal} rows of the header"),
        ));
    }
    let row_bytes = dim as u64 * 4 + 8;
    let left = (bytes.len() - c.at) as u64;
    if ntotal.checked_mul(row_bytes).is_none_or(|b| b != left) {
        return Err(c.corrupt(
            "lists",
            format!(
                "{ntotal} rows need {} bytes of lists; the file has {left} after the sizes",
                ntotal.saturating_mul(row_bytes)
            ),
        ));
    }
    let mut lists = Vec::with_capacity(nlist);
    for (l, &s) in sizes.iter().enumerate() {
        let s = s as usize;
        let vectors = c.f32s(s * dim, &format!("list {l} vectors"))?;
        let ids = (0..s)
            .map(|_| c.i64(&format!("list {l} ids")))
            .collect::<Result<Vec<i64>>>()?;
        lists.push((ids, vectors));
    }
    Ok(FaissIvfFlat {
        header: FaissIvfHeader {
            dim,
            metric,
            nprobe: nprobe as usize,
            centroids,
            sizes,
        },
        lists,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn index(dim: usize, sizes: &[u64], metric: FaissMetric, seed: u64) -> FaissIvfFlat {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 20) as f32 - 8.0
        };
        let centroids = (0..sizes.len() * dim).map(|_| next()).collect();
        let mut id = 0i64;
        let lists = sizes
            .iter()
            .map(|&s| {
                let ids: Vec<i64> = (0..s as i64).map(|i| id + i * 3).collect();
                id += s as i64 * 3 + 1;
                (ids, (0..s as usize * dim).map(|_| next()).collect())
            })
            .collect();
        FaissIvfFlat {
            header: FaissIvfHeader {
                dim,
                metric,
                nprobe: 4,
                centroids,
                sizes: sizes.to_vec(),
            },
            lists,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn what_is_written_reads_back(dim in 1usize..20, sizes in proptest::collection::vec(0u64..9, 1..12), ip in any::<bool>(), seed in any::<u64>()) {
            let metric = if ip { FaissMetric::InnerProduct } else { FaissMetric::L2 };
            let idx = index(dim, &sizes, metric, seed);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("x.faiss");
            write_faiss_ivf_flat(&path, &idx).unwrap();
            prop_assert_eq!(read_faiss_ivf_flat(&path).unwrap(), idx);
            prop_assert!(!crate::tmp_path(&path).exists());
        }

        /// Any truncation or flipped byte gives an error or a valid index,
        /// never a panic.
        #[test]
        fn damaged_files_never_panic(cut in 0usize..2000, flip in 0usize..2000, bit in 0u8..8) {
            let idx = index(6, &[3, 0, 5, 1], FaissMetric::L2, 9);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("x.faiss");
            write_faiss_ivf_flat(&path, &idx).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let cut = cut % bytes.len();
            let _ = parse(&path, &bytes[..cut]);
            let mut flipped = bytes.clone();
            let at = flip % flipped.len();
            flipped[at] ^= 1 << bit;
            let _ = parse(&path, &flipped);
        }
    }

    #[test]
    fn sparse_sizes_and_direct_maps_from_faiss_are_read() {
        // Build the sparse layout by hand from a full one.
        let idx = index(2, &[0, 2, 0, 0, 1], FaissMetric::InnerProduct, 3);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.faiss");
        write_faiss_ivf_flat(&path, &idx).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let at = bytes.windows(4).position(|w| w == b"full").unwrap();
        let mut sparse = bytes[..at].to_vec();
        sparse.extend_from_slice(b"sprs");
        sparse.extend_from_slice(&4u64.to_le_bytes());
        for v in [1u64, 2, 4, 1] {
            sparse.extend_from_slice(&v.to_le_bytes());
        }
        sparse.extend_from_slice(&bytes[at + 4 + 8 + 5 * 8..]);
        assert_eq!(parse(&path, &sparse).unwrap(), idx);
    }

    #[test]
    fn wrong_files_are_refused_by_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.faiss");
        let idx = index(4, &[2, 2], FaissMetric::L2, 5);
        write_faiss_ivf_flat(&path, &idx).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let mut other = bytes.clone();
        other[..4].copy_from_slice(b"IwPQ");
        let e = parse(&path, &other).unwrap_err().to_string();
        assert!(e.contains("IndexIVFFlat"), "{e}");
        let e = parse(&path, &bytes[..bytes.len() - 1])
            .unwrap_err()
            .to_string();
        assert!(e.contains("lists"), "{e}");
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(parse(&path, &extra).is_err());
        // A writer given the wrong rows refuses them.
        let mut w = FaissIvfWriter::create(&path, &idx.header).unwrap();
        assert!(w.push(1, &[1, 2], &[0.0; 8]).is_err(), "out of order");
        assert!(w.push(0, &[1, 2, 3], &[0.0; 12]).is_err(), "too many rows");
        w.push(0, &[1], &[0.0; 4]).unwrap();
        assert!(w.finish().is_err(), "incomplete");
        assert!(
            !crate::tmp_path(&path).exists(),
            "the unfinished file is removed"
        );
    }
}
