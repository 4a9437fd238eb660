//! Interval paging rates from cumulative counters (§6.2.4 "Overload Controller": the agent measures each VM's
//! paging rate once per monitoring interval).
//!
//! A source reports a cumulative count of paging operations (swap reads + writes). The rate for an interval is the
//! difference between two samples divided by the elapsed time. Anything that makes that difference meaningless — no
//! previous sample, a counter that went backwards (device re-created, module reloaded), a change in what the counter
//! counts, a read error, a clock that did not advance, or an implausibly large jump — yields
//! [`RateSample::Unknown`], and the controller never acts on an unknown interval.

use serde::Serialize;

/// Why an interval's rate is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownReason {
    /// First sample (or first after a reset): nothing to difference against.
    NoBaseline,
    /// The cumulative counter decreased: the device or counter was reset.
    CounterWentBackwards,
    /// The set of fields summed by the source changed between samples.
    BasisChanged,
    /// The source could not be read or returned garbage.
    SourceError,
    /// Time did not advance between samples.
    NoElapsedTime,
    /// The computed rate exceeds the plausibility ceiling.
    Implausible,
}

/// One interval's result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum RateSample {
    /// Paging operations per second over the interval.
    Known(f64),
    Unknown(UnknownReason),
}

impl RateSample {
    pub fn known(self) -> Option<f64> {
        match self {
            RateSample::Known(r) => Some(r),
            RateSample::Unknown(_) => None,
        }
    }
}

/// A single cumulative counter reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterReading {
    /// Cumulative paging operations.
    pub value: u64,
    /// Identifies which fields were summed (e.g. swap in/out vs. major faults); a change forces a new baseline.
    pub basis: u32,
}

/// Differences successive cumulative readings of one VM into rates.
#[derive(Debug, Clone)]
pub struct RateTracker {
    last: Option<(u64, CounterReading)>,
    max_rate: f64,
}

/// Default plausibility ceiling: 10 million paging operations per second is ~40 GB/s of 4 KiB pages, far beyond
/// any swap device; a larger jump means the counter is garbage.
pub const DEFAULT_MAX_RATE: f64 = 10_000_000.0;

impl RateTracker {
    pub fn new(max_rate: f64) -> Self {
        RateTracker { last: None, max_rate }
    }

    /// Forget the baseline (the next sample is `NoBaseline`).
    pub fn reset(&mut self) {
        self.last = None;
    }

    /// Feed the reading taken at `now_ms` (or the read error) and get the rate for the interval that just ended.
    pub fn sample(&mut self, now_ms: u64, reading: Option<CounterReading>) -> RateSample {
        let Some(cur) = reading else {
            self.last = None;
            return RateSample::Unknown(UnknownReason::SourceError);
        };
        let prev = self.last.replace((now_ms, cur));
        let Some((prev_ms, prev)) = prev else {
            return RateSample::Unknown(UnknownReason::NoBaseline);
        };
        if prev.basis != cur.basis {
            return RateSample::Unknown(UnknownReason::BasisChanged);
        }
        let Some(delta) = cur.value.checked_sub(prev.value) else {
            return RateSample::Unknown(UnknownReason::CounterWentBackwards);
        };
        let elapsed_ms = match now_ms.checked_sub(prev_ms) {
            Some(e) if e > 0 => e,
            _ => {
                // Keep the older baseline so that the next interval is measured over the full span.
                self.last = Some((prev_ms, prev));
                return RateSample::Unknown(UnknownReason::NoElapsedTime);
            }
        };
        let rate = delta as f64 * 1000.0 / elapsed_ms as f64;
        if !rate.is_finite() || rate > self.max_rate {
            return RateSample::Unknown(UnknownReason::Implausible);
        }
        RateSample::Known(rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(v: u64) -> Option<CounterReading> {
        Some(CounterReading { value: v, basis: 0 })
    }

    #[test]
    fn first_sample_has_no_baseline_then_rates_follow() {
        let mut t = RateTracker::new(DEFAULT_MAX_RATE);
        assert_eq!(t.sample(0, r(100)), RateSample::Unknown(UnknownReason::NoBaseline));
        assert_eq!(t.sample(10_000, r(2_100)), RateSample::Known(200.0));
        assert_eq!(t.sample(20_000, r(2_100)), RateSample::Known(0.0));
        assert_eq!(t.sample(25_000, r(7_100)), RateSample::Known(1000.0));
    }

    #[test]
    fn counter_going_backwards_is_unknown_and_rebaselines() {
        let mut t = RateTracker::new(DEFAULT_MAX_RATE);
        t.sample(0, r(5_000));
        assert_eq!(t.sample(10_000, r(10)), RateSample::Unknown(UnknownReason::CounterWentBackwards));
        // Next interval differences against the new (reset) counter value.
        assert_eq!(t.sample(20_000, r(510)), RateSample::Known(50.0));
    }

    #[test]
    fn read_error_drops_baseline() {
        let mut t = RateTracker::new(DEFAULT_MAX_RATE);
        t.sample(0, r(0));
        assert_eq!(t.sample(10_000, None), RateSample::Unknown(UnknownReason::SourceError));
        assert_eq!(t.sample(20_000, r(1_000_000)), RateSample::Unknown(UnknownReason::NoBaseline));
        assert_eq!(t.sample(30_000, r(1_000_100)), RateSample::Known(10.0));
    }

    #[test]
    fn basis_change_is_unknown() {
        let mut t = RateTracker::new(DEFAULT_MAX_RATE);
        t.sample(0, Some(CounterReading { value: 5, basis: 1 }));
        assert_eq!(
            t.sample(10_000, Some(CounterReading { value: 50, basis: 2 })),
            RateSample::Unknown(UnknownReason::BasisChanged)
        );
    }

    #[test]
    fn zero_elapsed_is_unknown_and_keeps_old_baseline() {
        let mut t = RateTracker::new(DEFAULT_MAX_RATE);
        t.sample(10_000, r(0));
        assert_eq!(t.sample(10_000, r(500)), RateSample::Unknown(UnknownReason::NoElapsedTime));
        assert_eq!(t.sample(20_000, r(1_000)), RateSample::Known(100.0));
    }

    #[test]
    fn implausible_jump_is_unknown() {
        let mut t = RateTracker::new(1_000.0);
        t.sample(0, r(0));
        assert_eq!(t.sample(1_000, r(1_001)), RateSample::Unknown(UnknownReason::Implausible));
        assert_eq!(t.sample(2_000, r(2_000)), RateSample::Known(999.0));
    }

    proptest! {
        /// Whatever the sequence of readings, a Known rate is finite, non-negative, within the ceiling, and equals the
        /// counter delta over the elapsed time of a consecutive, same-basis, non-decreasing pair.
        #[test]
        fn known_rates_are_always_sane(steps in proptest::collection::vec(
            (0u64..20_000, proptest::option::weighted(0.9, (0u64..u64::MAX, 0u32..3))), 1..60)) {
            let mut t = RateTracker::new(DEFAULT_MAX_RATE);
            let mut now = 0u64;
            let mut prev: Option<(u64, CounterReading)> = None;
            for (dt, reading) in steps {
                now += dt;
                let reading = reading.map(|(value, basis)| CounterReading { value, basis });
                let s = t.sample(now, reading);
                if let RateSample::Known(rate) = s {
                    let (pms, p) = prev.expect("known rate needs a previous reading");
                    let cur = reading.expect("known rate needs a current reading");
                    prop_assert_eq!(p.basis, cur.basis);
                    prop_assert!(cur.value >= p.value);
                    prop_assert!(now > pms);
                    prop_assert!(rate.is_finite() && (0.0..=DEFAULT_MAX_RATE).contains(&rate));
                    let expect = (cur.value - p.value) as f64 * 1000.0 / (now - pms) as f64;
                    prop_assert!((rate - expect).abs() <= expect.abs() * 1e-12);
                }
                match (s, reading) {
                    (RateSample::Unknown(UnknownReason::NoElapsedTime), _) => {}
                    (_, Some(c)) => prev = Some((now, c)),
                    (_, None) => prev = None,
                }
            }
        }

        /// A monotone counter sampled at strictly increasing times never produces an Unknown after the first sample.
        #[test]
        fn monotone_counter_is_always_known(incs in proptest::collection::vec((1u64..60_000, 0u64..10_000), 1..50)) {
            let mut t = RateTracker::new(DEFAULT_MAX_RATE);
            let (mut now, mut v) = (0u64, 0u64);
            prop_assert_eq!(t.sample(now, r(v)), RateSample::Unknown(UnknownReason::NoBaseline));
            for (dt, inc) in incs {
                now += dt;
                v += inc;
                prop_assert!(matches!(t.sample(now, r(v)), RateSample::Known(_)));
            }
        }
    }
}
