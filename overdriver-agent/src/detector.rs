//! Overload classification (§6.2.1, §6.2.4).
//!
//! An interval is *overloaded* when its paging rate exceeds `overload_rate` (paper: 200 operations/s). An overload
//! *episode* starts with the first overloaded interval and ends after `quiet_intervals` consecutive normal intervals.
//! While an episode lasts it is *transient*; it becomes *sustained* when both
//!  * at least `window_overloaded` of the last `window` intervals were overloaded (paper: 8 of 12), which keeps an
//!    oscillating but sustained overload from looking like a series of short ones, and
//!  * the episode has lasted at least the migration threshold (paper: 120 s initially; the profiler may lower it).
//!
//! Unknown intervals (see [`crate::rate`]) neither count as overloaded nor as quiet and never trigger anything; a
//! run of `window` unknown intervals abandons the episode without recording it.

use crate::rate::RateSample;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Detector parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorParams {
    /// Paging operations per second above which an interval is overloaded.
    pub overload_rate: f64,
    /// Sliding window length in intervals.
    pub window: usize,
    /// Overloaded intervals needed within the window for sustained overload.
    pub window_overloaded: usize,
    /// Consecutive normal intervals that end an episode.
    pub quiet_intervals: usize,
}

impl Default for DetectorParams {
    fn default() -> Self {
        DetectorParams { overload_rate: 200.0, window: 12, window_overloaded: 8, quiet_intervals: 3 }
    }
}

/// Classification of one interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalState {
    Normal,
    Overloaded,
    Unknown,
}

/// What a VM is doing right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Normal,
    Transient,
    Sustained,
}

/// Something the controller must react to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    /// A new overload episode began: make sure the VM swaps to cooperative swap.
    TransientStarted,
    /// The episode crossed the sustained criteria: migrate.
    Sustained { duration_ms: u64 },
    /// The episode ended. `duration_ms` runs from its start to the end of its last overloaded interval.
    EpisodeEnded { duration_ms: u64, was_sustained: bool },
    /// The episode was abandoned because the VM's counters stayed unknown for a whole window.
    EpisodeAbandoned,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Episode {
    start_ms: u64,
    last_overloaded_end_ms: u64,
    sustained: bool,
    quiet_run: usize,
}

/// Per-VM overload detector.
#[derive(Debug, Clone)]
pub struct Detector {
    params: DetectorParams,
    window: VecDeque<IntervalState>,
    episode: Option<Episode>,
    last_tick_ms: Option<u64>,
    unknown_run: usize,
    last_state: IntervalState,
}

impl Detector {
    pub fn new(params: DetectorParams) -> Self {
        Detector {
            window: VecDeque::with_capacity(params.window),
            params,
            episode: None,
            last_tick_ms: None,
            unknown_run: 0,
            last_state: IntervalState::Unknown,
        }
    }

    pub fn params(&self) -> &DetectorParams {
        &self.params
    }

    pub fn phase(&self) -> Phase {
        match &self.episode {
            None => Phase::Normal,
            Some(e) if e.sustained => Phase::Sustained,
            Some(_) => Phase::Transient,
        }
    }

    /// Classification of the most recent interval.
    pub fn last_state(&self) -> IntervalState {
        self.last_state
    }

    /// Overloaded intervals currently in the window.
    pub fn overloaded_in_window(&self) -> usize {
        self.window.iter().filter(|s| **s == IntervalState::Overloaded).count()
    }

    /// Duration of the current episode at `now_ms`, if any.
    pub fn episode_duration_ms(&self, now_ms: u64) -> Option<u64> {
        self.episode.as_ref().map(|e| now_ms.saturating_sub(e.start_ms))
    }

    /// Forget everything (after a migration the VM's memory allocation, and so its behaviour, changed).
    pub fn reset(&mut self) {
        self.window.clear();
        self.episode = None;
        self.unknown_run = 0;
        self.last_state = IntervalState::Unknown;
    }

    /// Classify a rate sample.
    pub fn classify(&self, sample: RateSample) -> IntervalState {
        match sample {
            RateSample::Known(r) if r > self.params.overload_rate => IntervalState::Overloaded,
            RateSample::Known(_) => IntervalState::Normal,
            RateSample::Unknown(_) => IntervalState::Unknown,
        }
    }

    /// Feed the interval ending at `now_ms`, with the migration threshold currently in force for this VM.
    /// Returns at most one event.
    pub fn observe(&mut self, now_ms: u64, sample: RateSample, threshold_ms: u64) -> Option<Event> {
        let state = self.classify(sample);
        let interval_start = self.last_tick_ms.unwrap_or(now_ms).min(now_ms);
        self.last_tick_ms = Some(now_ms);
        self.last_state = state;
        if self.window.len() >= self.params.window.max(1) {
            self.window.pop_front();
        }
        self.window.push_back(state);

        if state == IntervalState::Unknown {
            self.unknown_run = self.unknown_run.saturating_add(1);
            if self.unknown_run >= self.params.window.max(1) && self.episode.is_some() {
                self.episode = None;
                self.window.clear();
                return Some(Event::EpisodeAbandoned);
            }
            return None;
        }
        self.unknown_run = 0;

        let mut event = None;
        match (&mut self.episode, state) {
            (None, IntervalState::Overloaded) => {
                self.episode = Some(Episode {
                    start_ms: interval_start,
                    last_overloaded_end_ms: now_ms,
                    sustained: false,
                    quiet_run: 0,
                });
                event = Some(Event::TransientStarted);
            }
            (None, _) => return None,
            (Some(ep), IntervalState::Overloaded) => {
                ep.last_overloaded_end_ms = now_ms;
                ep.quiet_run = 0;
            }
            (Some(ep), _) => {
                ep.quiet_run = ep.quiet_run.saturating_add(1);
                if ep.quiet_run >= self.params.quiet_intervals.max(1) {
                    let duration_ms = ep.last_overloaded_end_ms.saturating_sub(ep.start_ms);
                    let was_sustained = ep.sustained;
                    self.episode = None;
                    return Some(Event::EpisodeEnded { duration_ms, was_sustained });
                }
            }
        }
        let overloaded = self.overloaded_in_window();
        if let Some(ep) = &mut self.episode {
            let duration_ms = now_ms.saturating_sub(ep.start_ms);
            if !ep.sustained && overloaded >= self.params.window_overloaded && duration_ms >= threshold_ms {
                ep.sustained = true;
                // A brand-new episode cannot be sustained in the same interval unless the window and threshold are
                // trivially small; report the stronger event.
                event = Some(Event::Sustained { duration_ms });
            }
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate::UnknownReason;
    use proptest::prelude::*;

    const T: u64 = 10_000; // 10 s interval
    const THRESH: u64 = 120_000;

    fn run(d: &mut Detector, t: &mut u64, rates: &[f64]) -> Vec<(u64, Event)> {
        let mut out = vec![];
        for &r in rates {
            *t += T;
            let s = if r < 0.0 { RateSample::Unknown(UnknownReason::SourceError) } else { RateSample::Known(r) };
            if let Some(e) = d.observe(*t, s, THRESH) {
                out.push((*t, e));
            }
        }
        out
    }

    fn det() -> (Detector, u64) {
        let mut d = Detector::new(DetectorParams::default());
        // Prime the tick clock with a normal interval.
        d.observe(0, RateSample::Known(0.0), THRESH);
        (d, 0)
    }

    #[test]
    fn rate_exactly_at_threshold_is_not_overload() {
        let (d, _) = det();
        assert_eq!(d.classify(RateSample::Known(200.0)), IntervalState::Normal);
        assert_eq!(d.classify(RateSample::Known(200.1)), IntervalState::Overloaded);
    }

    #[test]
    fn short_burst_is_transient_and_recorded_with_duration() {
        let (mut d, mut t) = det();
        let ev = run(&mut d, &mut t, &[500.0, 900.0, 300.0, 0.0, 0.0, 0.0]);
        assert_eq!(ev[0], (10_000, Event::TransientStarted));
        assert_eq!(ev[1], (60_000, Event::EpisodeEnded { duration_ms: 30_000, was_sustained: false }));
        assert_eq!(ev.len(), 2);
        assert_eq!(d.phase(), Phase::Normal);
    }

    #[test]
    fn long_burst_becomes_sustained_at_threshold_not_before() {
        let (mut d, mut t) = det();
        let ev = run(&mut d, &mut t, &[1000.0; 15]);
        assert_eq!(ev[0], (10_000, Event::TransientStarted));
        // Episode started at t=0 (start of first overloaded interval); 120 s reached at t=120 s.
        assert_eq!(ev[1], (120_000, Event::Sustained { duration_ms: 120_000 }));
        assert_eq!(ev.len(), 2, "sustained must be reported once");
        assert_eq!(d.phase(), Phase::Sustained);
    }

    #[test]
    fn oscillating_overload_is_sustained_thanks_to_window() {
        // Pattern: 2 overloaded, 1 normal, repeated; 8 of any 12 intervals are overloaded.
        let (mut d, mut t) = det();
        let pattern: Vec<f64> = (0..30).map(|i| if i % 3 == 2 { 10.0 } else { 800.0 }).collect();
        let ev = run(&mut d, &mut t, &pattern);
        assert!(ev.iter().any(|(_, e)| matches!(e, Event::Sustained { .. })), "{ev:?}");
        assert!(!ev.iter().any(|(_, e)| matches!(e, Event::EpisodeEnded { .. })));
    }

    #[test]
    fn sparse_overload_never_sustained() {
        // 1 overloaded of every 2: at most 6 of 12 in the window.
        let mut d = Detector::new(DetectorParams { quiet_intervals: 2, ..Default::default() });
        d.observe(0, RateSample::Known(0.0), THRESH);
        let mut t = 0;
        let pattern: Vec<f64> = (0..60).map(|i| if i % 2 == 0 { 800.0 } else { 0.0 }).collect();
        let ev = run(&mut d, &mut t, &pattern);
        assert!(!ev.iter().any(|(_, e)| matches!(e, Event::Sustained { .. })), "{ev:?}");
    }

    #[test]
    fn lowered_threshold_triggers_earlier_but_window_still_applies() {
        let (mut d, mut t) = det();
        let mut ev = vec![];
        for _ in 0..12 {
            t += T;
            if let Some(e) = d.observe(t, RateSample::Known(1000.0), 30_000) {
                ev.push((t, e));
            }
        }
        // Threshold 30 s, but 8 overloaded intervals are needed: sustained at the 8th interval (80 s).
        assert_eq!(ev[1], (80_000, Event::Sustained { duration_ms: 80_000 }));
    }

    #[test]
    fn unknown_intervals_never_trigger_and_long_unknown_abandons() {
        let (mut d, mut t) = det();
        let mut rates = vec![1000.0; 5];
        rates.extend([-1.0; 11]);
        let ev = run(&mut d, &mut t, &rates);
        assert_eq!(ev, vec![(10_000, Event::TransientStarted)]);
        assert_eq!(d.phase(), Phase::Transient);
        let ev = run(&mut d, &mut t, &[-1.0]);
        assert_eq!(ev, vec![(170_000, Event::EpisodeAbandoned)]);
        assert_eq!(d.phase(), Phase::Normal);
        // All-unknown from a normal state yields nothing at all.
        let ev = run(&mut d, &mut t, &[-1.0; 40]);
        assert!(ev.is_empty());
    }

    #[test]
    fn reset_forgets_episode() {
        let (mut d, mut t) = det();
        run(&mut d, &mut t, &[1000.0; 13]);
        assert_eq!(d.phase(), Phase::Sustained);
        d.reset();
        assert_eq!(d.phase(), Phase::Normal);
        assert_eq!(d.overloaded_in_window(), 0);
    }

    proptest! {
        /// Sustained is only ever reported when the window holds enough overloaded intervals and the episode is
        /// at least the threshold long; unknown samples never produce TransientStarted/Sustained.
        #[test]
        fn sustained_only_when_both_criteria_hold(
            seq in proptest::collection::vec(prop_oneof![Just(-1.0f64), 0.0f64..400.0], 1..200),
            thresh_s in 10u64..300,
        ) {
            let mut d = Detector::new(DetectorParams::default());
            let mut t = 0u64;
            d.observe(t, RateSample::Unknown(UnknownReason::NoBaseline), thresh_s * 1000);
            for r in seq {
                t += T;
                let s = if r < 0.0 { RateSample::Unknown(UnknownReason::SourceError) } else { RateSample::Known(r) };
                let ev = d.observe(t, s, thresh_s * 1000);
                match ev {
                    Some(Event::Sustained { duration_ms }) => {
                        prop_assert!(r >= 0.0);
                        prop_assert!(d.overloaded_in_window() >= 8);
                        prop_assert!(duration_ms >= thresh_s * 1000);
                    }
                    Some(Event::TransientStarted) => prop_assert!(r > 200.0),
                    Some(Event::EpisodeEnded { duration_ms, .. }) => {
                        prop_assert!((0.0..=200.0).contains(&r));
                        prop_assert!(duration_ms % T == 0 && duration_ms >= T);
                    }
                    Some(Event::EpisodeAbandoned) => prop_assert!(r < 0.0),
                    None => {}
                }
                prop_assert!(d.overloaded_in_window() <= 12);
            }
        }
    }
}
