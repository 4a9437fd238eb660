//! Time source for the agent. All decision logic takes time from a [`Clock`] so that tests can drive it with a
//! [`FakeClock`] instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A monotonic clock measured in milliseconds since an arbitrary origin.
pub trait Clock: Send + Sync {
    /// Milliseconds since the clock's origin; never goes backwards.
    fn now_ms(&self) -> u64;
}

/// The real monotonic clock (`std::time::Instant`).
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        SystemClock { origin: Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
#[derive(Debug, Clone, Default)]
pub struct FakeClock {
    ms: Arc<AtomicU64>,
}

impl FakeClock {
    pub fn new(start_ms: u64) -> Self {
        FakeClock { ms: Arc::new(AtomicU64::new(start_ms)) }
    }
    /// Move the clock forward by `ms` milliseconds.
    pub fn advance_ms(&self, ms: u64) {
        self.ms.fetch_add(ms, Ordering::SeqCst);
    }
    /// Move the clock forward by `s` seconds.
    pub fn advance_secs(&self, s: u64) {
        self.advance_ms(s.saturating_mul(1000));
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_is_shared_between_clones_and_moves_only_when_told() {
        let a = FakeClock::new(5);
        let b = a.clone();
        assert_eq!(a.now_ms(), 5);
        b.advance_secs(2);
        assert_eq!(a.now_ms(), 2005);
        assert_eq!(b.now_ms(), 2005);
    }

    #[test]
    fn system_clock_is_monotonic() {
        let c = SystemClock::new();
        let t1 = c.now_ms();
        let t2 = c.now_ms();
        assert!(t2 >= t1);
    }
}
