//! vdb's files on disk: segment files (inverted lists, ids, payloads) and
//! centroid files, specified byte for byte in `docs/format.md`.
//!
//! Every file is written once, as a new file of a `vdb_fs::Directory`:
//! under a temporary name, fsynced, renamed into place, the directory
//! fsynced (the protocol lives once, in `vdb_fs::durable`). Readers map the file read-only with `memmap2`
//! and view it through `zerocopy`'s checked casts; the only `unsafe` code is
//! the `Mmap::map` call in [`mmap`]. Opening validates the header, the region
//! table and the list table — work proportional to `nlist`, not to the
//! number of rows — and [`SegmentReader::verify`] checks every region's
//! CRC32. Whatever the bytes, a reader returns an error naming the file and
//! the region; it never panics or reads out of bounds.
//!
//! # The mmap contract
//! A mapped file must not change while it is mapped: vdb never truncates or
//! rewrites a file it has renamed into place, opens them read-only, and
//! unlinks one only when no reader holds it (an unlinked file stays mapped
//! and valid on POSIX systems). A file truncated by another process while
//! mapped would make reads fault with SIGBUS; that is outside what vdb can
//! defend against and is documented as an operational rule.
//!
//! This crate knows nothing of async runtimes, the network or policies.
#![deny(clippy::indexing_slicing)]

#[cfg(target_endian = "big")]
compile_error!(
    "vdb-format views little-endian vectors and ids in place and supports little-endian hosts only"
);

pub mod centroids;
pub mod deletes;
mod error;
pub mod faiss;
pub mod header;
pub mod mmap;
pub mod segment;
mod writer;

pub use centroids::{CentroidFile, CentroidMeta, write_centroids, write_centroids_in};
pub use deletes::{delete_file_name, read_deletes, write_deletes, write_deletes_in};
pub use error::{Error, Result};
pub use faiss::{
    FaissIvfFlat, FaissIvfHeader, FaissIvfWriter, FaissMetric, read_faiss_ivf_flat,
    write_faiss_ivf_flat,
};
pub use segment::{CodeSpec, SegmentInfo, SegmentMeta, SegmentReader, SegmentWriter};
pub use vdb_fs::tmp_path;

/// File name of the centroid file of generation `generation`.
pub fn centroid_file_name(generation: vdb_core::Generation) -> String {
    format!("centroids-{:020}.cen", generation.0)
}

/// File name of the centroid file of generation `generation` written by a
/// writer whose next flush sequence is `seq`: in a shared store two
/// writers (one of them fenced) may train the same generation, and the
/// sequence, unique to each writer, keeps their files apart.
pub fn centroid_file_name_at(generation: vdb_core::Generation, seq: u64) -> String {
    format!("centroids-{:020}-{seq:016x}.cen", generation.0)
}

/// The flush sequence a file name carries (segment and delete files, and
/// centroid files named by [`centroid_file_name_at`]): the 16 hexadecimal
/// digits after the last `-`. `None` for other names.
pub fn file_sequence(name: &str) -> Option<u64> {
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    let (_, digits) = stem.rsplit_once('-')?;
    if digits.len() != 16 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// File name of segment `id`.
pub fn segment_file_name(id: vdb_core::SegmentId) -> String {
    format!("seg-{:016x}.seg", id.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vdb_core::{Generation, SegmentId};

    #[test]
    fn file_names_carry_their_sequence() {
        assert_eq!(
            file_sequence(&segment_file_name(SegmentId(0x2a))),
            Some(0x2a)
        );
        assert_eq!(file_sequence(&delete_file_name(u64::MAX)), Some(u64::MAX));
        let c = centroid_file_name_at(Generation(3), 5 << 40);
        assert_eq!(c, "centroids-00000000000000000003-0000050000000000.cen");
        assert_eq!(file_sequence(&c), Some(5 << 40));
        assert_eq!(file_sequence(&centroid_file_name(Generation(3))), None);
        for other in [
            "MANIFEST",
            "seg-xyz.seg",
            "seg-00000000000000zz.seg",
            "a-1.seg",
        ] {
            assert_eq!(file_sequence(other), None, "{other}");
        }
    }
}
