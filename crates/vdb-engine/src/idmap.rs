//! The id → row index: a hash map keyed by client-chosen `u64` ids with a
//! cheap keyed hash. SipHash (std's default) costs more than the rest of an
//! insert for 8-byte keys; this hash is one 128-bit multiply that folds
//! the high and low halves, keyed by a per-process random value so clients
//! cannot choose ids that all collide.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// A map from row id to `V`.
pub(crate) type IdMap<V> = HashMap<u64, V, IdHash>;

/// Builds [`IdHasher`]s with the process's key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdHash {
    key: u64,
}

impl Default for IdHash {
    fn default() -> Self {
        use std::sync::OnceLock;
        static KEY: OnceLock<u64> = OnceLock::new();
        let key = *KEY.get_or_init(|| {
            // std's RandomState is seeded from the OS once per process.
            std::collections::hash_map::RandomState::new().hash_one(0x5644_4230u64)
        });
        IdHash { key }
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher {
            key: self.key,
            hash: 0,
        }
    }
}

/// Hashes one `u64`.
#[derive(Debug)]
pub(crate) struct IdHasher {
    key: u64,
    hash: u64,
}

impl Hasher for IdHasher {
    fn write_u64(&mut self, id: u64) {
        let m = u128::from(id ^ self.key) * 0x9e37_79b9_7f4a_7c15_u128;
        self.hash = (m as u64) ^ ((m >> 64) as u64);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; other writes fold in byte by byte.
        for &b in bytes {
            self.write_u64(self.hash ^ u64::from(b));
        }
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// An id map split into shards by hash, so that opening a collection can
/// build the shards on all cores at once: building is a random insert per
/// stored row, one cache miss each, and is most of the time of an open.
#[derive(Debug, Clone)]
pub(crate) struct ShardedIdMap<V> {
    shards: Vec<IdMap<V>>,
    hash: IdHash,
}

impl<V: Copy + Send> ShardedIdMap<V> {
    /// Builds a map by replaying `events` in order on `shards` threads;
    /// `on_replaced` sees every value an insert or a removal displaced.
    pub(crate) fn build(
        shards: usize,
        capacity: usize,
        events: &[Event<'_, V>],
        on_replaced: &mut dyn FnMut(V),
    ) -> ShardedIdMap<V> {
        let shards = shards.clamp(1, 64);
        let hash = IdHash::default();
        let build_one = |shard: usize| {
            let mut map = HashMap::with_capacity_and_hasher(capacity / shards + 1, hash);
            let mut replaced = Vec::new();
            let mine = |id: &u64| shard_of(&hash, *id, shards) == shard;
            for e in events {
                match e {
                    Event::Insert(ids, value) => {
                        for (i, id) in ids.iter().enumerate().filter(|(_, id)| mine(id)) {
                            if let Some(old) = map.insert(*id, value(i)) {
                                replaced.push(old);
                            }
                        }
                    }
                    Event::Remove(ids) => {
                        for id in ids.iter().filter(|id| mine(id)) {
                            if let Some(old) = map.remove(id) {
                                replaced.push(old);
                            }
                        }
                    }
                }
            }
            (map, replaced)
        };
        let built: Vec<(IdMap<V>, Vec<V>)> = if shards == 1 {
            vec![build_one(0)]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..shards).map(|i| s.spawn(move || build_one(i))).collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            })
        };
        let mut maps = Vec::with_capacity(shards);
        for (map, replaced) in built {
            replaced.into_iter().for_each(&mut *on_replaced);
            maps.push(map);
        }
        ShardedIdMap { shards: maps, hash }
    }
}

impl<V> ShardedIdMap<V> {
    fn shard(&self, id: u64) -> usize {
        shard_of(&self.hash, id, self.shards.len())
    }

    pub(crate) fn get(&self, id: &u64) -> Option<&V> {
        self.shards.get(self.shard(*id))?.get(id)
    }

    pub(crate) fn insert(&mut self, id: u64, v: V) -> Option<V> {
        let s = self.shard(id);
        self.shards.get_mut(s)?.insert(id, v)
    }

    pub(crate) fn remove(&mut self, id: &u64) -> Option<V> {
        let s = self.shard(*id);
        self.shards.get_mut(s)?.remove(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }
}

/// A step of building a [`ShardedIdMap`]: insert `ids[i]` with `value(i)`,
/// or remove ids.
pub(crate) enum Event<'a, V> {
    Insert(&'a [u64], Box<dyn Fn(usize) -> V + Sync + 'a>),
    Remove(&'a [u64]),
}

fn shard_of(hash: &IdHash, id: u64, shards: usize) -> usize {
    // The top bits pick the shard; the map uses the low bits for its slot.
    ((u128::from(hash.hash_one(id)) * shards as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_capacity<V>(n: usize) -> IdMap<V> {
        HashMap::with_capacity_and_hasher(n, IdHash::default())
    }

    #[test]
    fn strided_and_sequential_ids_spread_over_the_buckets() {
        let h = IdHash::default();
        for stride in [1u64, 2, 1 << 10, 1 << 32] {
            let buckets: std::collections::HashSet<u64> = (0..4096u64)
                .map(|i| h.hash_one(i * stride) & 4095)
                .collect();
            assert!(
                buckets.len() > 2000,
                "stride {stride}: {} buckets",
                buckets.len()
            );
        }
    }

    #[test]
    fn sharded_builds_equal_plain_inserts_and_report_what_they_displace() {
        let ids: Vec<u64> = (0..20_000u64).map(|i| (i % 15_000) * 13).collect();
        let gone: Vec<u64> = (0..100u64).map(|i| i * 13).collect();
        let mut plain = with_capacity(0);
        let mut plain_old = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            plain_old.extend(plain.insert(id, i));
        }
        for id in &gone {
            plain_old.extend(plain.remove(id));
        }
        for shards in [1, 2, 5] {
            let events = [
                Event::Insert(&ids[..], Box::new(|i| i)),
                Event::Remove(&gone[..]),
            ];
            let mut old = Vec::new();
            let m = ShardedIdMap::build(shards, ids.len(), &events, &mut |v| old.push(v));
            assert_eq!(m.len(), plain.len());
            for (id, v) in &plain {
                assert_eq!(m.get(id), Some(v));
            }
            old.sort_unstable();
            let mut want = plain_old.clone();
            want.sort_unstable();
            assert_eq!(old, want, "{shards} shards");
        }
    }

    #[test]
    fn it_is_a_map() {
        let mut m = with_capacity(4);
        for i in 0..10_000u64 {
            m.insert(i * 7, i);
        }
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.get(&(7 * 9_999)), Some(&9_999));
        assert_eq!(m.get(&1), None);
    }
}
