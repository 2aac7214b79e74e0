//! Newtypes for every kind of id, so a list number can never be passed where
//! a row id is expected.

use std::fmt;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$inner> for $name {
            fn from(value: $inner) -> Self {
                $name(value)
            }
        }
    };
}

id_newtype!(
    /// A row's id, chosen by the client.
    VectorId(u64)
);
id_newtype!(
    /// An inverted list (cluster) number, `0..nlist`.
    ListId(u32)
);
id_newtype!(
    /// A centroid generation: bumped every time a collection is (re)trained.
    Generation(u64)
);
id_newtype!(
    /// A segment file's number inside a collection.
    SegmentId(u64)
);

id_newtype!(
    /// A log sequence number: the position of a record in the write-ahead
    /// log. Records are numbered 1, 2, 3, … without gaps; 0 means "none".
    Lsn(u64)
);

impl Lsn {
    /// The next sequence number.
    pub fn next(self) -> Lsn {
        Lsn(self.0 + 1)
    }
}

impl ListId {
    /// The list number as an index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}
