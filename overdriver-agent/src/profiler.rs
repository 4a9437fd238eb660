//! Workload profiler (§6.2.1): per-VM buckets of transient-overload durations and the adaptive migration threshold.
//!
//! Each VM starts with the configured threshold (paper: 120 s). Every transient episode's duration is counted in a
//! bucket of `bucket_secs` (the monitoring interval). Once at least `base_observations` transient overloads have been
//! seen, the profiler treats the durations as normally distributed (the paper's heuristic) and sets
//! `threshold = max(floor, min(current, mu + 3 sigma))`. A bucket's duration is its upper edge, which errs on the side
//! of a later migration. The `floor` is this implementation's addition: the sliding window already needs
//! `window_overloaded` intervals, so a lower threshold buys nothing and a degenerate profile (all bursts one interval
//! long, sigma = 0) must not make every short burst a migration. After a migration the profile is reset (the VM's
//! allocation changed). Profiles are stored as JSON and survive agent restarts.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Profiler parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfilerParams {
    /// Initial (and maximum) migration threshold, seconds.
    pub initial_threshold_secs: u64,
    /// Width of a duration bucket, seconds (the monitoring interval).
    pub bucket_secs: u64,
    /// Transient observations needed before the threshold adapts.
    pub base_observations: u64,
    /// Lowest threshold the profiler will set, seconds.
    pub min_threshold_secs: u64,
}

impl Default for ProfilerParams {
    fn default() -> Self {
        ProfilerParams { initial_threshold_secs: 120, bucket_secs: 10, base_observations: 10, min_threshold_secs: 30 }
    }
}

/// One VM's learned overload profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Bucket width in seconds when the profile was recorded.
    pub bucket_secs: u64,
    /// bucket index i (durations in ((i-1)*w, i*w]) → count of transient overloads.
    pub buckets: BTreeMap<u64, u64>,
    /// Migration threshold currently in force, seconds.
    pub threshold_secs: u64,
    /// Sustained overloads seen since the last reset.
    pub sustained: u64,
    /// Migrations (profile resets) over the VM's life.
    pub migrations: u64,
    /// Intervals with a known rate since the last reset.
    #[serde(default)]
    pub intervals: u64,
    /// Of those, overloaded ones.
    #[serde(default)]
    pub overloaded_intervals: u64,
}

impl Profile {
    pub fn new(p: &ProfilerParams) -> Self {
        Profile {
            bucket_secs: p.bucket_secs.max(1),
            buckets: BTreeMap::new(),
            threshold_secs: p.initial_threshold_secs,
            sustained: 0,
            migrations: 0,
            intervals: 0,
            overloaded_intervals: 0,
        }
    }

    /// Probability that an interval is overloaded (Fig. 2.3(a)'s "probability of overload", per interval).
    pub fn overload_probability(&self) -> Option<f64> {
        (self.intervals > 0).then(|| self.overloaded_intervals as f64 / self.intervals as f64)
    }

    /// Transient overloads recorded since the last reset.
    pub fn observations(&self) -> u64 {
        self.buckets.values().fold(0u64, |a, c| a.saturating_add(*c))
    }

    /// Mean and standard deviation (population) of the recorded durations in seconds, using bucket upper edges.
    pub fn mean_std(&self) -> Option<(f64, f64)> {
        let n = self.observations();
        if n == 0 {
            return None;
        }
        let w = self.bucket_secs as f64;
        let (mut sum, mut sq) = (0.0f64, 0.0f64);
        for (&i, &c) in &self.buckets {
            let d = i as f64 * w;
            sum += d * c as f64;
            sq += d * d * c as f64;
        }
        let mean = sum / n as f64;
        let var = (sq / n as f64 - mean * mean).max(0.0);
        Some((mean, var.sqrt()))
    }

    /// Fraction of recorded transient overloads lasting at most `secs`.
    pub fn cdf(&self, secs: u64) -> Option<f64> {
        let n = self.observations();
        if n == 0 {
            return None;
        }
        let w = self.bucket_secs.max(1);
        let within: u64 = self.buckets.iter().filter(|(&i, _)| i.saturating_mul(w) <= secs).map(|(_, c)| *c).sum();
        Some(within as f64 / n as f64)
    }
}

/// All VMs' profiles, as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileStore {
    pub version: u32,
    pub params: ProfilerParams,
    pub profiles: BTreeMap<String, Profile>,
}

/// Profiles summarised for capacity planning.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Aggregate {
    pub vms: u64,
    /// (VM, probability) of the most overload-prone VM.
    pub max_overload_probability: Option<(String, f64)>,
    pub transient: u64,
    pub sustained: u64,
    pub transient_fraction: Option<f64>,
}

/// Errors loading or saving profiles.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("profile store {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("profile store {path} is not valid JSON: {source}")]
    Json { path: String, source: serde_json::Error },
}

impl ProfileStore {
    pub fn new(params: ProfilerParams) -> Self {
        ProfileStore { version: 1, params, profiles: BTreeMap::new() }
    }

    /// Threshold in force for `vm`, seconds (the initial one for an unknown VM).
    pub fn threshold_secs(&self, vm: &str) -> u64 {
        self.profiles.get(vm).map_or(self.params.initial_threshold_secs, |p| p.threshold_secs)
    }

    pub fn get(&self, vm: &str) -> Option<&Profile> {
        self.profiles.get(vm)
    }

    fn entry(&mut self, vm: &str) -> &mut Profile {
        let params = self.params.clone();
        self.profiles.entry(vm.to_string()).or_insert_with(|| Profile::new(&params))
    }

    /// Record a transient overload of `duration_ms` and adapt the threshold. Returns the new threshold (seconds).
    pub fn record_transient(&mut self, vm: &str, duration_ms: u64) -> u64 {
        let base = self.params.base_observations;
        let floor = self.params.min_threshold_secs;
        let p = self.entry(vm);
        let w_ms = p.bucket_secs.saturating_mul(1000).max(1);
        let bucket = duration_ms.div_ceil(w_ms).max(1);
        let c = p.buckets.entry(bucket).or_insert(0);
        *c = c.saturating_add(1);
        if p.observations() >= base {
            if let Some((mu, sigma)) = p.mean_std() {
                let candidate = (mu + 3.0 * sigma).ceil();
                if candidate.is_finite() && candidate < p.threshold_secs as f64 {
                    p.threshold_secs = (candidate as u64).max(floor).min(p.threshold_secs);
                }
            }
        }
        p.threshold_secs
    }

    /// Count a sustained overload (not used for the threshold: the paper learns from transient durations only).
    pub fn record_sustained(&mut self, vm: &str) {
        let p = self.entry(vm);
        p.sustained = p.sustained.saturating_add(1);
    }

    /// Count one interval with a known rate.
    pub fn record_interval(&mut self, vm: &str, overloaded: bool) {
        let p = self.entry(vm);
        p.intervals = p.intervals.saturating_add(1);
        if overloaded {
            p.overloaded_intervals = p.overloaded_intervals.saturating_add(1);
        }
    }

    /// Merge another store's profiles (e.g. from other hosts) into this one; same-named VMs are summed.
    pub fn merge(&mut self, other: &ProfileStore) {
        for (name, o) in &other.profiles {
            let p = self.entry(name);
            for (b, c) in &o.buckets {
                let e = p.buckets.entry(*b).or_insert(0);
                *e = e.saturating_add(*c);
            }
            p.sustained = p.sustained.saturating_add(o.sustained);
            p.intervals = p.intervals.saturating_add(o.intervals);
            p.overloaded_intervals = p.overloaded_intervals.saturating_add(o.overloaded_intervals);
            p.migrations = p.migrations.saturating_add(o.migrations);
        }
    }

    /// What §6.2.2's planning needs from the profiles: the most overload-prone VM's probability and the fraction
    /// of overloads that were transient.
    pub fn aggregate(&self) -> Aggregate {
        let mut a = Aggregate { vms: self.profiles.len() as u64, ..Default::default() };
        for (name, p) in &self.profiles {
            a.transient = a.transient.saturating_add(p.observations());
            a.sustained = a.sustained.saturating_add(p.sustained);
            if let Some(prob) = p.overload_probability() {
                if a.max_overload_probability.as_ref().is_none_or(|(_, m)| prob > *m) {
                    a.max_overload_probability = Some((name.clone(), prob));
                }
            }
        }
        let total = a.transient.saturating_add(a.sustained);
        a.transient_fraction = (total > 0).then(|| a.transient as f64 / total as f64);
        a
    }

    /// Reset `vm`'s profile after a migration changed its allocation.
    pub fn reset_after_migration(&mut self, vm: &str) {
        let params = self.params.clone();
        let p = self.entry(vm);
        let migrations = p.migrations.saturating_add(1);
        *p = Profile::new(&params);
        p.migrations = migrations;
    }

    /// Load from `path`; a missing file gives an empty store. Parameters come from the caller (the configuration
    /// wins over what was stored), and stored thresholds above the configured initial threshold are clamped.
    pub fn load(path: &Path, params: ProfilerParams) -> Result<Self, ProfileError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ProfileStore::new(params)),
            Err(source) => return Err(ProfileError::Io { path: path.display().to_string(), source }),
        };
        let mut store: ProfileStore = serde_json::from_str(&text)
            .map_err(|source| ProfileError::Json { path: path.display().to_string(), source })?;
        for p in store.profiles.values_mut() {
            p.threshold_secs = p.threshold_secs.min(params.initial_threshold_secs);
            p.bucket_secs = p.bucket_secs.max(1);
        }
        store.params = params;
        Ok(store)
    }

    /// Write atomically (temporary file + rename).
    pub fn save(&self, path: &Path) -> Result<(), ProfileError> {
        let err = |source| ProfileError::Io { path: path.display().to_string(), source };
        let text = serde_json::to_string_pretty(self).map_err(|source| ProfileError::Json {
            path: path.display().to_string(),
            source,
        })?;
        crate::util::write_atomic(path, text.as_bytes()).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn store(base: u64) -> ProfileStore {
        ProfileStore::new(ProfilerParams { base_observations: base, ..Default::default() })
    }

    #[test]
    fn threshold_unchanged_before_base_observations() {
        let mut s = store(5);
        for _ in 0..4 {
            assert_eq!(s.record_transient("vm", 20_000), 120);
        }
        assert_eq!(s.get("vm").map(|p| p.observations()), Some(4));
    }

    #[test]
    fn threshold_becomes_mu_plus_three_sigma() {
        let mut s = store(4);
        // Durations 10,20,30,40 s → mu 25, sigma sqrt(125) = 11.18 → 58.54 → ceil 59.
        for d in [10_000, 20_000, 30_000, 39_000] {
            s.record_transient("vm", d);
        }
        assert_eq!(s.threshold_secs("vm"), 59);
        // Another VM is unaffected.
        assert_eq!(s.threshold_secs("other"), 120);
    }

    #[test]
    fn threshold_never_rises_and_respects_floor() {
        let mut s = store(2);
        s.record_transient("vm", 10_000);
        // Two 10 s bursts: mu 10, sigma 0 → 10, but floor is 30.
        assert_eq!(s.record_transient("vm", 10_000), 30);
        // Long transients push mu+3sigma way up; the threshold stays at its minimum so far.
        for _ in 0..10 {
            assert_eq!(s.record_transient("vm", 110_000), 30);
        }
    }

    #[test]
    fn reset_after_migration_restores_initial_threshold() {
        let mut s = store(2);
        s.record_transient("vm", 10_000);
        s.record_transient("vm", 20_000);
        assert!(s.threshold_secs("vm") < 120);
        s.record_sustained("vm");
        s.reset_after_migration("vm");
        let p = s.get("vm").expect("profile");
        assert_eq!(p.threshold_secs, 120);
        assert_eq!(p.observations(), 0);
        assert_eq!(p.sustained, 0);
        assert_eq!(p.migrations, 1);
    }

    #[test]
    fn profiles_survive_save_and_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("profiles.json");
        let mut s = store(2);
        s.record_transient("web1", 10_000);
        s.record_transient("web1", 20_000);
        s.save(&path).expect("save");
        let loaded = ProfileStore::load(&path, s.params.clone()).expect("load");
        assert_eq!(loaded, s);
        assert_eq!(loaded.threshold_secs("web1"), s.threshold_secs("web1"));
        // Missing file → empty store.
        let empty = ProfileStore::load(&dir.path().join("none.json"), ProfilerParams::default()).expect("load");
        assert!(empty.profiles.is_empty());
        // Corrupt file → error, not panic.
        std::fs::write(&path, "{not json").expect("write");
        assert!(matches!(ProfileStore::load(&path, ProfilerParams::default()), Err(ProfileError::Json { .. })));
    }

    #[test]
    fn load_clamps_thresholds_to_configured_initial() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.json");
        let mut s = store(1);
        s.record_transient("a", 1_000);
        s.save(&path).expect("save");
        let p = ProfilerParams { initial_threshold_secs: 20, ..Default::default() };
        let loaded = ProfileStore::load(&path, p).expect("load");
        assert_eq!(loaded.threshold_secs("a"), 20);
    }

    #[test]
    fn aggregate_gives_planning_inputs() {
        let mut s = store(100);
        for i in 0..100 {
            s.record_interval("a", i % 10 == 0); // 10 %
            s.record_interval("b", i % 4 == 0); // 25 %
        }
        for _ in 0..9 {
            s.record_transient("a", 10_000);
        }
        s.record_sustained("b");
        let g = s.aggregate();
        assert_eq!(g.vms, 2);
        assert_eq!(g.max_overload_probability, Some(("b".to_string(), 0.25)));
        assert_eq!((g.transient, g.sustained), (9, 1));
        assert_eq!(g.transient_fraction, Some(0.9));
        let mut other = store(100);
        other.record_interval("b", true);
        other.record_sustained("c");
        s.merge(&other);
        let g = s.aggregate();
        assert_eq!(g.vms, 3);
        assert_eq!(s.get("b").map(|p| (p.intervals, p.overloaded_intervals)), Some((101, 26)));
        assert_eq!(g.transient_fraction, Some(0.9 * 10.0 / 11.0));
        // Reset after migration clears the interval counts too.
        s.reset_after_migration("b");
        assert_eq!(s.get("b").and_then(|p| p.overload_probability()), None);
        assert!(store(1).aggregate().transient_fraction.is_none());
    }

    #[test]
    fn cdf_counts_bucket_upper_edges() {
        let mut s = store(100);
        for d in [5_000, 10_000, 15_000, 60_000] {
            s.record_transient("vm", d);
        }
        let p = s.get("vm").expect("p");
        assert_eq!(p.cdf(10), Some(0.5));
        assert_eq!(p.cdf(20), Some(0.75));
        assert_eq!(p.cdf(60), Some(1.0));
    }

    proptest! {
        /// The threshold is monotonically non-increasing, stays within [floor, initial] and, once adapted,
        /// is at least the mean duration (mu + 3 sigma >= mu).
        #[test]
        fn threshold_bounds(durs in proptest::collection::vec(1u64..200_000, 1..80), base in 1u64..20) {
            let mut s = store(base);
            let mut last = 120;
            for d in durs {
                let t = s.record_transient("vm", d);
                prop_assert!(t <= last);
                prop_assert!((30..=120).contains(&t));
                let p = s.get("vm").expect("profile");
                if p.observations() >= base {
                    let (mu, sigma) = p.mean_std().expect("stats");
                    prop_assert!(t as f64 <= (mu + 3.0 * sigma).ceil().max(30.0));
                } else {
                    prop_assert_eq!(t, 120);
                }
                last = t;
            }
        }
    }
}
