//! The overload controller (§6.2, §6.2.1, §6.2.4): one tick per monitoring interval reads every VM's counter,
//! classifies the interval, and reacts — transient overload → make sure the VM swaps to cooperative swap;
//! sustained overload → live-migrate it to a host advertising enough excess space. Actions run in the background
//! (see [`crate::actions`]); their results are folded in at the next tick or whenever the run loop polls.

use crate::actions::{backoff_secs, render, ActionKind, ActionRequest, ActionResult, Executor, Outcome, Targets};
use crate::clock::Clock;
use crate::config::{ActionsCfg, Config, DiscoverCfg, SourceCfg};
use crate::detector::{Detector, DetectorParams, Event, IntervalState, Phase};
use crate::profiler::{ProfileStore, ProfilerParams};
use crate::rate::{RateSample, RateTracker};
use crate::source::{self, Source};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A VM the agent watches.
pub struct VmEntry {
    pub name: String,
    pub domain: String,
    pub memory_mib: u64,
    pub source: Box<dyn Source>,
    /// Found by directory scanning (forgotten when it vanishes) rather than configured.
    pub discovered: bool,
}

/// Lifecycle of one kind of action for one VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum SlotState {
    Idle,
    Running { attempt: u32, target: Option<String>, since_ms: u64 },
    RetryAt { attempt: u32, at_ms: u64, last_error: String },
    Failed { attempts: u32, last_error: String },
    Done { dry_run: bool },
}

impl SlotState {
    fn busy(&self) -> bool {
        matches!(self, SlotState::Running { .. } | SlotState::RetryAt { .. })
    }
    pub fn label(&self) -> &'static str {
        match self {
            SlotState::Idle => "idle",
            SlotState::Running { .. } => "running",
            SlotState::RetryAt { .. } => "retry_pending",
            SlotState::Failed { .. } => "failed",
            SlotState::Done { .. } => "done",
        }
    }
}

struct VmRuntime {
    entry: VmEntry,
    rate: RateTracker,
    det: Detector,
    last_sample: RateSample,
    unreadable_run: u64,
    last_error: Option<String>,
    coopswap: SlotState,
    migrate: SlotState,
    migrations: u64,
}

/// Agent settings that are not per-VM.
#[derive(Debug, Clone)]
pub struct AgentParams {
    pub interval_secs: u64,
    pub detector: DetectorParams,
    pub profiler: ProfilerParams,
    pub actions: ActionsCfg,
    pub max_rate: f64,
    pub vanish_intervals: u64,
    /// Where profiles.json and episodes.csv live; None keeps everything in memory.
    pub state_dir: Option<PathBuf>,
}

/// What happened in a tick (also logged).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Happening {
    pub at_ms: u64,
    pub vm: String,
    pub what: String,
}

/// Per-VM status, as written to status.json and shown by `overdriver status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmStatus {
    pub name: String,
    pub domain: String,
    pub source: String,
    pub phase: Phase,
    pub last_interval: IntervalState,
    pub rate: Option<f64>,
    pub unknown_reason: Option<String>,
    pub last_error: Option<String>,
    pub overloaded_in_window: usize,
    pub window: usize,
    pub episode_secs: Option<f64>,
    pub threshold_secs: u64,
    pub transient_observations: u64,
    pub coopswap: SlotState,
    pub migrate: SlotState,
    pub migrations: u64,
}

/// Whole-agent status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub generated_unix: u64,
    pub dry_run: bool,
    pub interval_secs: u64,
    pub overload_rate: f64,
    pub ticks: u64,
    pub last_tick_micros: u64,
    pub vms: Vec<VmStatus>,
    /// (kind, outcome) → count.
    pub actions: Vec<(String, String, u64)>,
}

/// The agent.
pub struct Agent {
    params: AgentParams,
    clock: Arc<dyn Clock>,
    vms: BTreeMap<String, VmRuntime>,
    profiles: ProfileStore,
    executor: Executor,
    targets: Targets,
    discover: DiscoverCfg,
    actions_total: BTreeMap<(ActionKind, &'static str), u64>,
    ticks: u64,
    last_tick_micros: u64,
}

fn build_source(s: &SourceCfg) -> Box<dyn Source> {
    match s {
        SourceCfg::Coopswap { dir } => Box::new(source::CoopswapSource { dir: dir.clone() }),
        SourceCfg::Blkback { dir } => Box::new(source::BlkbackSource { dir: dir.clone() }),
        SourceCfg::Cgroup { path } => Box::new(source::CgroupSource { path: path.clone() }),
        SourceCfg::Procstat { path } => Box::new(source::ProcStatSource { path: path.clone() }),
        SourceCfg::Vmstat { path } => {
            Box::new(source::VmstatSource { path: path.clone().unwrap_or_else(|| PathBuf::from("/proc/vmstat")) })
        }
    }
}

impl Agent {
    /// Build an agent from a validated configuration. `dry_run` overrides the file's setting when true.
    pub fn from_config(cfg: &Config, clock: Arc<dyn Clock>, dry_run: bool) -> anyhow::Result<Agent> {
        let params = AgentParams {
            interval_secs: cfg.agent.interval_secs,
            detector: cfg.detector_params(),
            profiler: cfg.profiler_params(),
            actions: cfg.actions.clone(),
            max_rate: cfg.agent.max_rate,
            vanish_intervals: cfg.agent.vanish_intervals,
            state_dir: Some(cfg.agent.state_dir.clone()),
        };
        let profiles_path = cfg.agent.state_dir.join("profiles.json");
        let profiles = match ProfileStore::load(&profiles_path, params.profiler.clone()) {
            Ok(p) => p,
            Err(e) => {
                // A damaged store must not stop the agent: keep it aside and learn anew.
                let aside = profiles_path.with_extension("json.corrupt");
                log::error!("{e}; moving it to {} and starting with empty profiles", aside.display());
                let _ = std::fs::rename(&profiles_path, &aside);
                ProfileStore::new(params.profiler.clone())
            }
        };
        let executor = Executor::new(dry_run || cfg.agent.dry_run, Duration::from_secs(cfg.actions.timeout_secs));
        let targets = Targets {
            static_hosts: cfg
                .targets
                .hosts
                .iter()
                .map(|h| crate::actions::Advert { host: h.host.clone(), free_mib: h.free_mib })
                .collect(),
            file: cfg.targets.file.clone(),
            self_host: cfg.targets.self_host.clone(),
        };
        let vms = cfg
            .vms
            .iter()
            .map(|v| VmEntry {
                name: v.name.clone(),
                domain: v.domain.clone().unwrap_or_else(|| v.name.clone()),
                memory_mib: v.memory_mib,
                source: build_source(&v.source),
                discovered: false,
            })
            .collect();
        Ok(Agent::new(params, clock, executor, targets, vms, cfg.discover.clone(), profiles))
    }

    pub fn new(
        params: AgentParams,
        clock: Arc<dyn Clock>,
        executor: Executor,
        targets: Targets,
        vms: Vec<VmEntry>,
        discover: DiscoverCfg,
        profiles: ProfileStore,
    ) -> Agent {
        let mut a = Agent {
            params,
            clock,
            vms: BTreeMap::new(),
            profiles,
            executor,
            targets,
            discover,
            actions_total: BTreeMap::new(),
            ticks: 0,
            last_tick_micros: 0,
        };
        for v in vms {
            a.add_vm(v);
        }
        a
    }

    fn add_vm(&mut self, entry: VmEntry) {
        log::info!("watching {} (domain {}, {}, {} MiB)", entry.name, entry.domain, entry.source.describe(), entry.memory_mib);
        let rt = VmRuntime {
            rate: RateTracker::new(self.params.max_rate),
            det: Detector::new(self.params.detector.clone()),
            last_sample: RateSample::Unknown(crate::rate::UnknownReason::NoBaseline),
            unreadable_run: 0,
            last_error: None,
            coopswap: SlotState::Idle,
            migrate: SlotState::Idle,
            migrations: 0,
            entry,
        };
        self.vms.insert(rt.entry.name.clone(), rt);
    }

    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    pub fn profiles(&self) -> &ProfileStore {
        &self.profiles
    }

    pub fn vm_names(&self) -> Vec<String> {
        self.vms.keys().cloned().collect()
    }

    fn save_profiles(&self) {
        if let Some(d) = &self.params.state_dir {
            if let Err(e) = self.profiles.save(&d.join("profiles.json")) {
                log::error!("{e}");
            }
        }
    }

    fn record_episode(&self, vm: &str, duration_ms: u64, kind: &str) {
        let Some(d) = &self.params.state_dir else { return };
        let path = d.join("episodes.csv");
        let res = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(d)?;
            // Keep the record bounded: one rotated generation of 16 MiB.
            if std::fs::metadata(&path).map(|m| m.len() > 16 << 20).unwrap_or(false) {
                std::fs::rename(&path, d.join("episodes.csv.1"))?;
            }
            let new = !path.exists();
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
            if new {
                writeln!(f, "unix_time,vm,duration_secs,kind")?;
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            writeln!(f, "{now},{vm},{:.1},{kind}", duration_ms as f64 / 1000.0)
        })();
        if let Err(e) = res {
            log::warn!("cannot record episode in {}: {e}", path.display());
        }
    }

    fn rescan(&mut self, happened: &mut Vec<Happening>, now: u64) {
        let mut found = Vec::new();
        if let Some(root) = &self.discover.coopswap_root {
            found.extend(source::discover_coopswap(root));
        }
        if let Some(root) = &self.discover.blkback_root {
            found.extend(source::discover_blkback(root, self.discover.blkback_devid));
        }
        for d in found {
            if !self.vms.contains_key(&d.name) {
                happened.push(Happening { at_ms: now, vm: d.name.clone(), what: "appeared".into() });
                self.add_vm(VmEntry {
                    name: d.name,
                    domain: d.domain,
                    memory_mib: self.discover.memory_mib,
                    source: d.source,
                    discovered: true,
                });
            }
        }
    }

    /// One monitoring interval. Returns what happened (for logs and tests).
    pub fn tick(&mut self) -> Vec<Happening> {
        let started = std::time::Instant::now();
        let now = self.clock.now_ms();
        let mut happened = Vec::new();
        let results = self.executor.poll();
        self.apply_results(results, &mut happened);
        self.rescan(&mut happened, now);

        let names: Vec<String> = self.vms.keys().cloned().collect();
        let mut profiles_dirty = false;
        let mut to_migrate = Vec::new();
        for name in &names {
            let threshold_ms = self.profiles.threshold_secs(name).saturating_mul(1000);
            let Some(vm) = self.vms.get_mut(name) else { continue };
            let reading = match vm.entry.source.read() {
                Ok(r) => {
                    vm.unreadable_run = 0;
                    vm.last_error = None;
                    Some(r)
                }
                Err(e) => {
                    vm.unreadable_run = vm.unreadable_run.saturating_add(1);
                    if vm.last_error.as_deref() != Some(&e.to_string()) {
                        log::warn!("{name}: {e}; interval unknown");
                    }
                    vm.last_error = Some(e.to_string());
                    None
                }
            };
            let sample = vm.rate.sample(now, reading);
            vm.last_sample = sample;
            let event = vm.det.observe(now, sample, threshold_ms);
            match vm.det.last_state() {
                IntervalState::Overloaded => self.profiles.record_interval(name, true),
                IntervalState::Normal => self.profiles.record_interval(name, false),
                IntervalState::Unknown => {}
            }
            let say = |what: String, h: &mut Vec<Happening>| {
                log::info!("{name}: {what}");
                h.push(Happening { at_ms: now, vm: name.clone(), what });
            };
            match event {
                Some(Event::TransientStarted) => {
                    say(format!("overload started (rate {:.0}/s): transient, cooperative swap", sample.known().unwrap_or(0.0)), &mut happened);
                    if !self.params.actions.coopswap.is_empty() && !vm.coopswap.busy() {
                        vm.coopswap = SlotState::Idle;
                        Self::dispatch(&self.executor, &self.targets, &self.params, vm, ActionKind::Coopswap, 1, now, &mut happened, &[]);
                    }
                }
                Some(Event::Sustained { duration_ms }) => {
                    say(
                        format!(
                            "sustained overload after {:.0} s ({} of {} intervals overloaded, threshold {} s): migrate",
                            duration_ms as f64 / 1000.0,
                            vm.det.overloaded_in_window(),
                            self.params.detector.window,
                            threshold_ms / 1000
                        ),
                        &mut happened,
                    );
                    self.profiles.record_sustained(name);
                    profiles_dirty = true;
                    if vm.migrate.busy() {
                        say("migration already in progress; not starting another".into(), &mut happened);
                    } else {
                        to_migrate.push(name.clone());
                    }
                }
                Some(Event::EpisodeEnded { duration_ms, was_sustained }) => {
                    if was_sustained {
                        say(format!("sustained overload ended after {:.0} s", duration_ms as f64 / 1000.0), &mut happened);
                    } else {
                        let new_t = self.profiles.record_transient(name, duration_ms);
                        profiles_dirty = true;
                        say(
                            format!("transient overload ended after {:.0} s; threshold now {new_t} s", duration_ms as f64 / 1000.0),
                            &mut happened,
                        );
                    }
                    self.record_episode(name, duration_ms, if was_sustained { "sustained" } else { "transient" });
                }
                Some(Event::EpisodeAbandoned) => {
                    say("overload episode abandoned: counters unknown for a whole window".into(), &mut happened);
                }
                None => {}
            }
        }
        // Start migrations for sustained VMs that need one (after all VMs were read, so reservations are current).
        for name in &to_migrate {
            self.start(name, ActionKind::Migrate, 1, now, &mut happened);
        }
        // Retries that are due.
        for name in &names {
            for kind in [ActionKind::Coopswap, ActionKind::Migrate] {
                let Some(vm) = self.vms.get_mut(name) else { continue };
                let slot = match kind {
                    ActionKind::Coopswap => &mut vm.coopswap,
                    ActionKind::Migrate => &mut vm.migrate,
                };
                if let SlotState::RetryAt { attempt, at_ms, .. } = slot.clone() {
                    if now >= at_ms {
                        let still_needed = match kind {
                            ActionKind::Coopswap => vm.det.phase() != Phase::Normal,
                            ActionKind::Migrate => vm.det.phase() == Phase::Sustained,
                        };
                        if still_needed {
                            self.start(name, kind, attempt, now, &mut happened);
                        } else {
                            *slot = SlotState::Idle;
                            log::info!("{name}: {} retry dropped: overload is over", kind.as_str());
                        }
                    }
                }
            }
        }
        // Forget discovered VMs that vanished.
        let vanish = self.params.vanish_intervals.max(1);
        let gone: Vec<String> = self
            .vms
            .iter()
            .filter(|(_, v)| {
                v.entry.discovered
                    && v.unreadable_run >= vanish
                    && !matches!(v.migrate, SlotState::Running { .. })
                    && !matches!(v.coopswap, SlotState::Running { .. })
            })
            .map(|(k, _)| k.clone())
            .collect();
        for g in gone {
            log::info!("{g}: vanished; no longer watched");
            happened.push(Happening { at_ms: now, vm: g.clone(), what: "vanished".into() });
            self.vms.remove(&g);
        }
        // Episode changes are saved at once; the interval counts at least once a minute.
        let every = (60 / self.params.interval_secs.max(1)).max(1);
        if profiles_dirty || (self.ticks + 1) % every == 0 {
            self.save_profiles();
        }
        self.ticks += 1;
        self.last_tick_micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        happened
    }

    /// Memory reserved on targets by migrations in flight.
    fn reserved(&self) -> Vec<(String, u64)> {
        self.vms
            .values()
            .filter_map(|v| match &v.migrate {
                SlotState::Running { target: Some(t), .. } => Some((t.clone(), v.entry.memory_mib)),
                _ => None,
            })
            .collect()
    }

    fn start(&mut self, name: &str, kind: ActionKind, attempt: u32, now: u64, happened: &mut Vec<Happening>) {
        let reserved = self.reserved();
        let Some(vm) = self.vms.get_mut(name) else { return };
        Self::dispatch(&self.executor, &self.targets, &self.params, vm, kind, attempt, now, happened, &reserved);
    }

    #[allow(clippy::too_many_arguments)]
    fn dispatch(
        executor: &Executor,
        targets: &Targets,
        params: &AgentParams,
        vm: &mut VmRuntime,
        kind: ActionKind,
        attempt: u32,
        now: u64,
        happened: &mut Vec<Happening>,
        reserved: &[(String, u64)],
    ) {
        let slot_busy = match kind {
            ActionKind::Coopswap => matches!(vm.coopswap, SlotState::Running { .. }),
            ActionKind::Migrate => matches!(vm.migrate, SlotState::Running { .. }),
        };
        if slot_busy {
            return; // never two of the same action for one VM at once
        }
        let (template, target) = match kind {
            ActionKind::Coopswap => (&params.actions.coopswap, None),
            ActionKind::Migrate => match targets.choose(vm.entry.memory_mib, reserved) {
                Some(a) => (&params.actions.migrate, Some(a.host)),
                None => {
                    let msg = format!("no migration target advertises {} MiB free", vm.entry.memory_mib);
                    Self::fail(params, vm, kind, attempt, now, msg, happened);
                    return;
                }
            },
        };
        let argv = match render(template, &vm.entry.name, &vm.entry.domain, target.as_deref().unwrap_or(""), vm.entry.memory_mib) {
            Ok(a) => a,
            Err(e) => {
                let msg = format!("bad {} template: {e}", kind.as_str());
                let slot = SlotState::Failed { attempts: attempt, last_error: msg.clone() };
                match kind {
                    ActionKind::Coopswap => vm.coopswap = slot,
                    ActionKind::Migrate => vm.migrate = slot,
                }
                log::error!("{}: {msg}", vm.entry.name);
                return;
            }
        };
        happened.push(Happening { at_ms: now, vm: vm.entry.name.clone(), what: format!("run {} {:?}", kind.as_str(), argv) });
        let slot = SlotState::Running { attempt, target: target.clone(), since_ms: now };
        match kind {
            ActionKind::Coopswap => vm.coopswap = slot,
            ActionKind::Migrate => vm.migrate = slot,
        }
        executor.spawn(ActionRequest { vm: vm.entry.name.clone(), kind, argv, target, attempt });
    }

    fn fail(params: &AgentParams, vm: &mut VmRuntime, kind: ActionKind, attempt: u32, now: u64, msg: String, happened: &mut Vec<Happening>) {
        let a = &params.actions;
        let slot = if attempt < a.max_attempts {
            let wait = backoff_secs(a.retry_base_secs, a.retry_max_secs, attempt);
            log::warn!("{}: {} attempt {attempt} failed: {msg}; retrying in {wait} s", vm.entry.name, kind.as_str());
            SlotState::RetryAt { attempt: attempt + 1, at_ms: now.saturating_add(wait.saturating_mul(1000)), last_error: msg.clone() }
        } else {
            log::error!("{}: {} failed after {attempt} attempts: {msg}; giving up", vm.entry.name, kind.as_str());
            SlotState::Failed { attempts: attempt, last_error: msg.clone() }
        };
        happened.push(Happening { at_ms: now, vm: vm.entry.name.clone(), what: format!("{} attempt {attempt} failed: {msg}", kind.as_str()) });
        match kind {
            ActionKind::Coopswap => vm.coopswap = slot,
            ActionKind::Migrate => vm.migrate = slot,
        }
    }

    /// Wait up to `d` for finished actions and fold them in.
    pub fn wait_actions(&mut self, d: Duration) -> Vec<Happening> {
        let mut h = Vec::new();
        let results = self.executor.wait(d);
        self.apply_results(results, &mut h);
        h
    }

    /// Fold in finished actions (call between ticks to react promptly).
    pub fn poll_actions(&mut self) -> Vec<Happening> {
        let mut h = Vec::new();
        let results = self.executor.poll();
        self.apply_results(results, &mut h);
        h
    }

    fn apply_results(&mut self, results: Vec<ActionResult>, happened: &mut Vec<Happening>) {
        let now = self.clock.now_ms();
        for r in results {
            let kind = r.request.kind;
            *self.actions_total.entry((kind, r.outcome.label())).or_insert(0) += 1;
            let name = r.request.vm.clone();
            let Some(vm) = self.vms.get_mut(&name) else {
                log::warn!("{name}: {} finished ({}) but the VM is no longer watched", kind.as_str(), r.outcome.label());
                continue;
            };
            let attempt = r.request.attempt;
            if r.outcome.ok() {
                let dry = r.outcome == Outcome::DryRun;
                happened.push(Happening {
                    at_ms: now,
                    vm: name.clone(),
                    what: format!("{} {} in {:.1} s", kind.as_str(), r.outcome.label(), r.elapsed.as_secs_f64()),
                });
                match kind {
                    ActionKind::Coopswap => vm.coopswap = SlotState::Done { dry_run: dry },
                    ActionKind::Migrate => {
                        vm.migrate = SlotState::Done { dry_run: dry };
                        if !dry {
                            // The VM's allocation changed: its old behaviour tells nothing about the new one.
                            let dur = vm.det.episode_duration_ms(now).unwrap_or(0);
                            vm.migrations += 1;
                            vm.det.reset();
                            vm.rate.reset();
                            self.profiles.reset_after_migration(&name);
                            log::info!("{name}: migrated to {}; profile reset", r.request.target.as_deref().unwrap_or("?"));
                            self.record_episode(&name, dur, "migrated");
                            self.save_profiles();
                        }
                    }
                }
            } else {
                let msg = match &r.outcome {
                    Outcome::Failed(m) | Outcome::SpawnFailed(m) => m.clone(),
                    Outcome::TimedOut => format!("timed out after {} s", self.params.actions.timeout_secs),
                    _ => String::new(),
                };
                Self::fail(&self.params, vm, kind, attempt, now, msg, happened);
            }
        }
    }

    /// Current status.
    pub fn status(&self) -> Status {
        let now = self.clock.now_ms();
        let vms = self
            .vms
            .values()
            .map(|v| {
                let prof = self.profiles.get(&v.entry.name);
                VmStatus {
                    name: v.entry.name.clone(),
                    domain: v.entry.domain.clone(),
                    source: v.entry.source.describe(),
                    phase: v.det.phase(),
                    last_interval: v.det.last_state(),
                    rate: v.last_sample.known(),
                    unknown_reason: match v.last_sample {
                        RateSample::Unknown(r) => serde_json::to_value(r).ok().and_then(|x| x.as_str().map(String::from)),
                        RateSample::Known(_) => None,
                    },
                    last_error: v.last_error.clone(),
                    overloaded_in_window: v.det.overloaded_in_window(),
                    window: self.params.detector.window,
                    episode_secs: v.det.episode_duration_ms(now).map(|d| d as f64 / 1000.0),
                    threshold_secs: self.profiles.threshold_secs(&v.entry.name),
                    transient_observations: prof.map_or(0, |p| p.observations()),
                    coopswap: v.coopswap.clone(),
                    migrate: v.migrate.clone(),
                    migrations: v.migrations,
                }
            })
            .collect();
        Status {
            generated_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            dry_run: self.executor.dry_run(),
            interval_secs: self.params.interval_secs,
            overload_rate: self.params.detector.overload_rate,
            ticks: self.ticks,
            last_tick_micros: self.last_tick_micros,
            vms,
            actions: self.actions_total.iter().map(|((k, o), c)| (k.as_str().to_string(), o.to_string(), *c)).collect(),
        }
    }
}
