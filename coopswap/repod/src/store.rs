//! Page storage: one preallocated, mlocked region of `capacity` 4 KiB slots, an index from (client, page) to slot,
//! and per-client usage for quotas.
//!
//! The whole region is allocated and locked at start (not as it fills): the repository promises this RAM to the cloud
//! as excess space (dissertation §6.2.3/§6.2.4: page repositories "pin memory to ensure that pages written and read
//! do not encounter additional delays"), so it should fail at start rather than under load.
//!
//! Isolation: the index key includes the client id, which the server takes from the authenticated connection, never
//! from the request; there is no operation that names another client's pages. A slot is zeroed when it is freed.

use crate::config::MemLock;
use coopswap_proto::wire::{Page, PAGE_SIZE};
use std::collections::{BTreeMap, HashMap};

/// Page memory, locked in RAM if asked.
pub struct LockedMem {
    buf: Vec<u8>,
    locked: bool,
}

impl LockedMem {
    /// Allocate `pages` zeroed pages and lock them according to `policy`.
    pub fn new(pages: u64, policy: MemLock) -> anyhow::Result<LockedMem> {
        let len = usize::try_from(pages)
            .ok()
            .and_then(|p| p.checked_mul(PAGE_SIZE))
            .ok_or_else(|| anyhow::anyhow!("capacity too large"))?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(len)
            .map_err(|e| anyhow::anyhow!("cannot allocate {len} bytes: {e}"))?;
        buf.resize(len, 0);
        let mut mem = LockedMem { buf, locked: false };
        if policy != MemLock::Off && len > 0 {
            // SAFETY: the range is exactly the live allocation owned by `mem.buf`, which is never reallocated.
            let rc = unsafe { libc::mlock(mem.buf.as_ptr().cast(), len) };
            if rc == 0 {
                mem.locked = true;
                // The daemon's own code, stack and heap must not be swapped either: it may be serving the swap
                // device of this very host (a repository in Dom0), and a page fault that waits for swap-in from
                // ourselves would stall until the client's timeout.
                // SAFETY: mlockall only changes residency of this process's current mappings.
                if unsafe { libc::mlockall(libc::MCL_CURRENT) } != 0 {
                    log::warn!(
                        "mlockall failed: {}; the daemon's own pages may be swapped out",
                        std::io::Error::last_os_error()
                    );
                }
            } else {
                let err = std::io::Error::last_os_error();
                let msg = format!(
                    "mlock of {} MiB failed: {err} (raise LimitMEMLOCK / ulimit -l, or grant CAP_IPC_LOCK)",
                    len >> 20
                );
                if policy == MemLock::Require {
                    anyhow::bail!("{msg}; set memlock = \"try\" or \"off\" to run without locking");
                }
                log::warn!("{msg}; continuing unlocked (memlock = \"try\")");
            }
        }
        Ok(mem)
    }

    /// Whether the memory is locked.
    pub fn locked(&self) -> bool {
        self.locked
    }

    fn slot(&self, i: u32) -> Option<&[u8]> {
        let start = (i as usize).checked_mul(PAGE_SIZE)?;
        self.buf.get(start..start.checked_add(PAGE_SIZE)?)
    }

    fn slot_mut(&mut self, i: u32) -> Option<&mut [u8]> {
        let start = (i as usize).checked_mul(PAGE_SIZE)?;
        self.buf.get_mut(start..start.checked_add(PAGE_SIZE)?)
    }
}

impl Drop for LockedMem {
    fn drop(&mut self) {
        if self.locked {
            // SAFETY: same range that was locked in `new`.
            unsafe { libc::munlock(self.buf.as_ptr().cast(), self.buf.len()) };
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    index: u32,
    crc: u32,
}

/// Why a store was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// No free slot, or the client's quota is used up.
    Full,
}

/// The page store. Not synchronised: the server wraps it in a mutex.
pub struct PageStore {
    mem: LockedMem,
    free: Vec<u32>,
    index: BTreeMap<(u64, u64), Slot>,
    used: HashMap<u64, u64>,
}

impl PageStore {
    /// A store over `mem` (all slots free).
    pub fn new(mem: LockedMem) -> PageStore {
        let slots = (mem.buf.len() / PAGE_SIZE) as u32;
        // pop() hands out low slots first
        let free = (0..slots).rev().collect();
        PageStore {
            mem,
            free,
            index: BTreeMap::new(),
            used: HashMap::new(),
        }
    }

    /// Total slots.
    pub fn capacity(&self) -> u64 {
        (self.mem.buf.len() / PAGE_SIZE) as u64
    }

    /// Slots in use.
    pub fn used_pages(&self) -> u64 {
        self.index.len() as u64
    }

    /// Pages held by `client`.
    pub fn client_pages(&self, client: u64) -> u64 {
        self.used.get(&client).copied().unwrap_or(0)
    }

    /// Pages `client` may still store given its quota `max_pages`.
    pub fn room_for(&self, client: u64, max_pages: u64) -> u64 {
        max_pages
            .saturating_sub(self.client_pages(client))
            .min(self.free.len() as u64)
    }

    /// Whether the memory is locked.
    pub fn locked(&self) -> bool {
        self.mem.locked()
    }

    /// Store (or overwrite) `client`'s page `page`. Overwrites never need a new slot, so they succeed even when full.
    pub fn store(
        &mut self,
        client: u64,
        page: u64,
        data: &Page,
        crc: u32,
        max_pages: u64,
    ) -> Result<(), StoreError> {
        let slot = match self.index.get(&(client, page)) {
            Some(s) => s.index,
            None => {
                if self.client_pages(client) >= max_pages {
                    return Err(StoreError::Full);
                }
                let Some(i) = self.free.pop() else {
                    return Err(StoreError::Full);
                };
                *self.used.entry(client).or_insert(0) += 1;
                i
            }
        };
        if let Some(dst) = self.mem.slot_mut(slot) {
            dst.copy_from_slice(data);
        }
        self.index.insert((client, page), Slot { index: slot, crc });
        Ok(())
    }

    /// Copy `client`'s page `page` into `out`; returns its checksum, or None if absent.
    pub fn fetch(&self, client: u64, page: u64, out: &mut Page) -> Option<u32> {
        let s = self.index.get(&(client, page))?;
        out.copy_from_slice(self.mem.slot(s.index)?);
        Some(s.crc)
    }

    /// Drop `client`'s pages in `first .. first + count`; returns how many existed.
    pub fn drop_range(&mut self, client: u64, first: u64, count: u32) -> u64 {
        let end = first.saturating_add(u64::from(count));
        self.drop_keys(client, (client, first)..(client, end))
    }

    /// Drop every page of `client` (the client was removed from the configuration).
    pub fn drop_client(&mut self, client: u64) -> u64 {
        self.drop_keys(client, (client, 0)..=(client, u64::MAX))
    }

    fn drop_keys(&mut self, client: u64, range: impl std::ops::RangeBounds<(u64, u64)>) -> u64 {
        let keys: Vec<(u64, u64)> = self.index.range(range).map(|(k, _)| *k).collect();
        for k in &keys {
            if let Some(s) = self.index.remove(k) {
                if let Some(dst) = self.mem.slot_mut(s.index) {
                    dst.fill(0);
                }
                self.free.push(s.index);
            }
        }
        let n = keys.len() as u64;
        if let Some(u) = self.used.get_mut(&client) {
            *u = u.saturating_sub(n);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(pages: u64) -> PageStore {
        PageStore::new(LockedMem::new(pages, MemLock::Off).unwrap())
    }

    #[test]
    fn store_fetch_overwrite_drop() {
        let mut s = store(2);
        let a = [1u8; PAGE_SIZE];
        let b = [2u8; PAGE_SIZE];
        let mut out = [0u8; PAGE_SIZE];
        s.store(1, 10, &a, 11, 2).unwrap();
        s.store(1, 11, &b, 22, 2).unwrap();
        assert_eq!(s.store(1, 12, &b, 22, 2), Err(StoreError::Full));
        s.store(1, 10, &b, 33, 2).unwrap(); // overwrite while full
        assert_eq!(s.fetch(1, 10, &mut out), Some(33));
        assert_eq!(out, b);
        assert_eq!(s.fetch(2, 10, &mut out), None, "other client sees nothing");
        assert_eq!(s.drop_range(2, 0, 100), 0);
        assert_eq!(s.drop_range(1, 11, u32::MAX), 1);
        assert_eq!(s.used_pages(), 1);
        assert_eq!(s.client_pages(1), 1);
        s.store(2, 10, &a, 44, 2).unwrap();
        assert_eq!(s.fetch(2, 10, &mut out), Some(44));
        assert_eq!(out, a);
        assert_eq!(s.fetch(1, 10, &mut out), Some(33));
        assert_eq!(out, b);
        assert_eq!(s.drop_client(1), 1);
        assert_eq!(s.client_pages(1), 0);
        assert_eq!(
            s.fetch(2, 10, &mut out),
            Some(44),
            "other clients keep their pages"
        );
    }

    #[test]
    fn quota_is_per_client() {
        let mut s = store(4);
        let p = [0u8; PAGE_SIZE];
        s.store(1, 0, &p, 0, 1).unwrap();
        assert_eq!(s.store(1, 1, &p, 0, 1), Err(StoreError::Full));
        s.store(2, 1, &p, 0, 4).unwrap();
        assert_eq!(s.room_for(1, 1), 0);
        assert_eq!(s.room_for(2, 4), 2);
    }

    #[test]
    fn freed_slots_are_zeroed() {
        let mut s = store(1);
        s.store(1, 0, &[7u8; PAGE_SIZE], 0, 1).unwrap();
        s.drop_range(1, 0, 1);
        assert!(s.mem.slot(0).unwrap().iter().all(|&b| b == 0));
    }
}
