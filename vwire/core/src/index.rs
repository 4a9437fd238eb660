//! A receive-path index: (connector id, local address) -> table slot in O(1) expected time, allocation-free.
//!
//! [`super::table::Table::find`] is a linear scan, fine for the control path.  For the per-packet lookup the module
//! can keep an `RxIndex` next to the table, [`RxIndex::rebuild`] it after every table change (under the same lock
//! or as a new RCU copy), and call [`RxIndex::lookup`] per received datagram.  It is an open-addressing hash table
//! with linear probing over caller-provided buckets (`u32` slot numbers, [`EMPTY_BUCKET`] for none); give it at
//! least twice as many buckets as the table has slots.  Keys are configured by the operator, not by senders, so a
//! sender can make a lookup walk at most one probe cluster.

use core::net::SocketAddr;

use super::id::ConnectorId;
use super::table::{Storage, Table};

/// Value of an unused bucket.
pub const EMPTY_BUCKET: u32 = u32::MAX;

/// Backing store of an [`RxIndex`].
pub trait BucketStorage {
    /// All buckets.
    fn buckets(&self) -> &[u32];
    /// All buckets, mutably.
    fn buckets_mut(&mut self) -> &mut [u32];
}

impl<const N: usize> BucketStorage for [u32; N] {
    fn buckets(&self) -> &[u32] {
        self
    }
    fn buckets_mut(&mut self) -> &mut [u32] {
        self
    }
}

impl BucketStorage for &mut [u32] {
    fn buckets(&self) -> &[u32] {
        self
    }
    fn buckets_mut(&mut self) -> &mut [u32] {
        self
    }
}

/// Why an index could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexError {
    /// Fewer buckets than twice the table's capacity, or a slot number that does not fit a bucket.
    TooSmall,
}

/// The index.
pub struct RxIndex<B: BucketStorage> {
    buckets: B,
}

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn hash(id: ConnectorId, local: &SocketAddr) -> u64 {
    let mut h = fnv(0xcbf2_9ce4_8422_2325, &id.get().to_be_bytes());
    h = match local {
        SocketAddr::V4(a) => fnv(h, &a.ip().octets()),
        SocketAddr::V6(a) => fnv(fnv(h, &a.ip().octets()), &a.scope_id().to_be_bytes()),
    };
    fnv(h, &local.port().to_be_bytes())
}

impl<B: BucketStorage> RxIndex<B> {
    /// An empty index over `buckets`.
    pub fn new(mut buckets: B) -> RxIndex<B> {
        buckets.buckets_mut().fill(EMPTY_BUCKET);
        RxIndex { buckets }
    }

    fn start(&self, id: ConnectorId, local: &SocketAddr) -> usize {
        let n = self.buckets.buckets().len() as u64;
        if n == 0 {
            return 0;
        }
        // n fits usize (it is a slice length), and the remainder is smaller than n.
        usize::try_from(hash(id, local) % n).unwrap_or(0)
    }

    /// Rebuilds the index from `table`.  On error the index is left empty (every lookup misses).
    pub fn rebuild<S: Storage>(&mut self, table: &Table<S>) -> Result<(), IndexError> {
        self.buckets.buckets_mut().fill(EMPTY_BUCKET);
        let n = self.buckets.buckets().len();
        let big_enough = table
            .capacity()
            .checked_mul(2)
            .is_some_and(|need| n >= need && need > 0)
            && u32::try_from(table.capacity()).is_ok_and(|c| c < EMPTY_BUCKET);
        if !big_enough {
            return Err(IndexError::TooSmall);
        }
        for (slot, e) in table.iter() {
            let value = u32::try_from(slot).map_err(|_| IndexError::TooSmall)?;
            let start = self.start(e.id(), &e.local());
            let buckets = self.buckets.buckets_mut();
            // At most half the buckets are used, so an empty one is always found within n probes.
            let free = (0..n)
                .map(|k| (start + k) % n)
                .find(|&i| buckets.get(i) == Some(&EMPTY_BUCKET))
                .ok_or(IndexError::TooSmall)?;
            if let Some(b) = buckets.get_mut(free) {
                *b = value;
            }
        }
        Ok(())
    }

    /// The slot of the entry (`id`, `local`), checked against `table` (the table the index was last built from).
    pub fn lookup<S: Storage>(
        &self,
        table: &Table<S>,
        id: ConnectorId,
        local: &SocketAddr,
    ) -> Option<usize> {
        let buckets = self.buckets.buckets();
        let n = buckets.len();
        let start = self.start(id, local);
        for k in 0..n {
            let value = *buckets.get((start + k) % n)?;
            if value == EMPTY_BUCKET {
                return None;
            }
            let slot = usize::try_from(value).ok()?;
            if table
                .get(slot)
                .is_some_and(|e| e.id() == id && e.local() == *local)
            {
                return Some(slot);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::cmd::parse_create;
    use super::super::table::{Slot, EMPTY_SLOT};
    use super::*;

    fn cid(n: u32) -> ConnectorId {
        ConnectorId::new(n).unwrap()
    }

    #[test]
    fn finds_what_the_table_finds() {
        let mut t: Table<[Slot; 8]> = Table::new([EMPTY_SLOT; 8]);
        for c in [
            &b"7 10.0.0.1 10.0.0.2"[..],
            b"8 10.0.0.1 10.0.0.2",
            b"7 10.0.0.1:2 10.0.0.1:4789",
            b"relay 9 [2001:db8::1]:5 [2001:db8::2]",
            b"9 [fe80::1%3]:5 [fe80::2%3]:5",
        ] {
            t.create(&parse_create(c, 4789).unwrap(), 1500).unwrap();
        }
        let mut idx = RxIndex::new([0u32; 16]);
        assert_eq!(
            idx.lookup(&t, cid(7), &"10.0.0.1:4789".parse().unwrap()),
            None
        );
        idx.rebuild(&t).unwrap();
        for (slot, e) in t.iter() {
            assert_eq!(idx.lookup(&t, e.id(), &e.local()), Some(slot));
        }
        assert_eq!(idx.lookup(&t, cid(8), &"10.0.0.1:2".parse().unwrap()), None);
        assert_eq!(
            idx.lookup(&t, cid(9), &"[fe80::1%4]:5".parse().unwrap()),
            None
        );
        // Stale index against a changed table: lookups are verified, so a destroyed entry is not returned.
        t.destroy(cid(8), None).unwrap();
        assert_eq!(
            idx.lookup(&t, cid(8), &"10.0.0.1:4789".parse().unwrap()),
            None
        );
    }

    #[test]
    fn too_small() {
        let t: Table<[Slot; 8]> = Table::new([EMPTY_SLOT; 8]);
        let mut idx = RxIndex::new([0u32; 15]);
        assert_eq!(idx.rebuild(&t), Err(IndexError::TooSmall));
        let mut empty: [u32; 0] = [];
        let mut idx = RxIndex::new(&mut empty[..]);
        assert_eq!(idx.rebuild(&t), Err(IndexError::TooSmall));
        assert_eq!(idx.lookup(&t, cid(1), &"10.0.0.1:1".parse().unwrap()), None);
    }

    #[test]
    fn full_table_all_found() {
        let mut t: Table<[Slot; 64]> = Table::new([EMPTY_SLOT; 64]);
        let mut buf = [0u8; 64];
        for n in 1..=64u32 {
            let mut w = super::super::status::BufWriter::new(&mut buf);
            core::fmt::Write::write_fmt(
                &mut w,
                format_args!("{n} 10.0.0.1:{} 10.0.0.2", 1 + n % 3),
            )
            .unwrap();
            let len = w.len();
            t.create(&parse_create(&buf[..len], 4789).unwrap(), 1500)
                .unwrap();
        }
        let mut idx = RxIndex::new([0u32; 128]);
        idx.rebuild(&t).unwrap();
        for (slot, e) in t.iter() {
            assert_eq!(idx.lookup(&t, e.id(), &e.local()), Some(slot));
        }
    }
}
