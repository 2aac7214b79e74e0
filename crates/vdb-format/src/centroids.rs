//! Centroid files: `centroids-{generation:020}.cen`, the `nlist × dim`
//! centroids of one training run. Small, so the CRC is checked at open.

use std::path::Path;

use vdb_core::{Generation, Metric};
use zerocopy::{FromBytes, IntoBytes};

use crate::error::{Error, Result};
use crate::header::{self, FileKind, FrameBuilder, Region, region};
use crate::mmap::MappedFile;
use crate::writer::FileWriter;

/// Identity of a centroid file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CentroidMeta {
    /// The generation these centroids are.
    pub generation: Generation,
    /// The metric they were trained for.
    pub metric: Metric,
    /// Dimension.
    pub dim: usize,
}

/// Writes `centroids` (`nlist × dim`, row-major, all finite) to `path`
/// atomically and durably. Returns the file's length.
pub fn write_centroids(path: &Path, meta: CentroidMeta, centroids: &[f32]) -> Result<u64> {
    let (dir, name) = crate::writer::local(path)?;
    write_centroids_in(&dir, &name, meta, centroids)
}

/// [`write_centroids`] as file `name` of `dir`.
pub fn write_centroids_in(
    dir: &dyn vdb_fs::Directory,
    name: &str,
    meta: CentroidMeta,
    centroids: &[f32],
) -> Result<u64> {
    let invalid = |source| Error::InvalidRow {
        file: dir.path(name),
        source,
    };
    if meta.dim == 0 || centroids.is_empty() || !centroids.len().is_multiple_of(meta.dim) {
        return Err(invalid(vdb_core::Error::invalid(
            "centroids",
            format!(
                "{} values is not a positive multiple of dim {}",
                centroids.len(),
                meta.dim
            ),
        )));
    }
    for c in centroids.chunks_exact(meta.dim) {
        vdb_core::validate_vector(c, meta.dim).map_err(invalid)?;
    }
    let nlist = centroids.len() / meta.dim;
    let mut w = FileWriter::create(dir, name, header::first_region_offset(1))?;
    let offset = w.begin_region()?;
    w.write(centroids.as_bytes())?;
    let (_, len, crc) = w.end_region();
    let mut frame = FrameBuilder::new(FileKind::Centroids, meta.metric, meta.dim, nlist);
    frame.header.generation = meta.generation.0.into();
    frame.header.rows = (nlist as u64).into();
    frame.regions.push(Region {
        kind: region::CENTROIDS,
        offset,
        len,
        crc,
    });
    w.finish(|file_len| frame.encode(file_len))
}

/// A mapped, validated centroid file.
#[derive(Debug, Clone)]
pub struct CentroidFile {
    file: MappedFile,
    meta: CentroidMeta,
    nlist: usize,
    region: Region,
}

impl CentroidFile {
    /// Opens and fully validates (including the CRC) the centroid file at
    /// `path`.
    pub fn open(path: &Path) -> Result<CentroidFile> {
        let file = MappedFile::open(path)?;
        let bytes = file.bytes();
        let parsed = header::parse(path, bytes, FileKind::Centroids, |_| {
            vec![region::CENTROIDS]
        })?;
        let region = *parsed
            .regions
            .first()
            .ok_or_else(|| Error::corrupt(path, "region table", 0, "no centroid region"))?;
        let want = (parsed.nlist as u64)
            .checked_mul(parsed.dim as u64 * 4)
            .filter(|&n| n == region.len && parsed.nlist > 0 && parsed.rows == parsed.nlist as u64);
        if want.is_none() {
            return Err(Error::corrupt(
                path,
                "centroids",
                region.offset,
                format!(
                    "{} bytes cannot hold {} centroids of dim {} (header rows {})",
                    region.len, parsed.nlist, parsed.dim, parsed.rows
                ),
            ));
        }
        header::verify_regions(path, bytes, &parsed)?;
        let c = CentroidFile {
            meta: CentroidMeta {
                generation: Generation(parsed.generation),
                metric: parsed.metric,
                dim: parsed.dim,
            },
            nlist: parsed.nlist,
            region,
            file,
        };
        if let Some(i) = c.centroids().iter().position(|x| !x.is_finite()) {
            return Err(Error::corrupt(
                path,
                "centroids",
                region.offset + 4 * i as u64,
                "centroid value is not finite",
            ));
        }
        Ok(c)
    }

    /// Generation, metric and dimension.
    pub fn meta(&self) -> CentroidMeta {
        self.meta
    }

    /// Number of centroids.
    pub fn nlist(&self) -> usize {
        self.nlist
    }

    /// The centroids, row-major, viewed in the mapped file.
    pub fn centroids(&self) -> &[f32] {
        self.file
            .bytes()
            .get(self.region.range())
            .and_then(|b| <[f32]>::ref_from_bytes(b).ok())
            .unwrap_or_default()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> CentroidMeta {
        CentroidMeta {
            generation: Generation(7),
            metric: Metric::InnerProduct,
            dim: 3,
        }
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(crate::centroid_file_name(Generation(7)));
        let cents: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
        let len = write_centroids(&p, meta(), &cents).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), len);
        assert!(!crate::tmp_path(&p).exists());
        let c = CentroidFile::open(&p).unwrap();
        assert_eq!(c.meta(), meta());
        assert_eq!(c.nlist(), 4);
        assert_eq!(c.centroids(), &cents[..]);
    }

    #[test]
    fn rejects_bad_input_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.cen");
        assert!(write_centroids(&p, meta(), &[1.0, 2.0]).is_err());
        assert!(write_centroids(&p, meta(), &[]).is_err());
        let err = write_centroids(&p, meta(), &[1.0, f32::NAN, 3.0]).unwrap_err();
        assert!(err.to_string().contains("c.cen"), "{err}");
        assert!(!p.exists());
    }
}
