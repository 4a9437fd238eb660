//! Integration tests: real counter files in a temporary directory, a fake clock, real action commands.

use overdriver::actions::{Advert, Executor, Targets};
use overdriver::agent::{Agent, AgentParams, Happening, SlotState};
use overdriver::clock::FakeClock;
use overdriver::config::{ActionsCfg, DiscoverCfg};
use overdriver::detector::{DetectorParams, Phase};
use overdriver::profiler::{ProfileStore, ProfilerParams};
use overdriver::source::CoopswapSource;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Lab {
    dir: tempfile::TempDir,
    clock: FakeClock,
    counters: std::collections::BTreeMap<String, u64>,
}

impl Lab {
    fn new() -> Lab {
        Lab { dir: tempfile::tempdir().unwrap(), clock: FakeClock::new(0), counters: Default::default() }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    /// A script that appends its arguments to actions.log, then behaves as `mode` says.
    fn script(&self, name: &str, body: &str) -> String {
        let path = self.p(name);
        fs::write(&path, format!("#!/bin/sh\necho \"$*\" >> {}\n{body}\n", self.p("actions.log").display())).unwrap();
        let mut perm = fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        fs::set_permissions(&path, perm).unwrap();
        path.display().to_string()
    }
    fn log(&self) -> Vec<String> {
        fs::read_to_string(self.p("actions.log")).unwrap_or_default().lines().map(String::from).collect()
    }
    fn device(&mut self, vm: &str) -> PathBuf {
        let d = self.p(&format!("coopswap/{vm}"));
        fs::create_dir_all(d.join("stats")).unwrap();
        self.counters.insert(vm.into(), 0);
        self.write(vm, 0, 0);
        d
    }
    fn write(&self, vm: &str, reads: u64, writes: u64) {
        let d = self.p(&format!("coopswap/{vm}/stats"));
        fs::write(d.join("reads"), format!("{reads}\n")).unwrap();
        fs::write(d.join("writes"), format!("{writes}\n")).unwrap();
    }
    /// Advance the fake clock one 10 s interval during which `vm` did `rate` paging operations per second.
    fn page(&mut self, vm: &str, rate: u64) {
        let c = self.counters.get_mut(vm).unwrap();
        *c += rate * 10;
        let v = *c;
        self.write(vm, v / 2, v - v / 2);
    }
    fn params(&self, actions: ActionsCfg) -> AgentParams {
        AgentParams {
            interval_secs: 10,
            detector: DetectorParams::default(),
            profiler: ProfilerParams { base_observations: 5, ..Default::default() },
            actions,
            max_rate: 1e7,
            vanish_intervals: 3,
            state_dir: Some(self.p("state")),
        }
    }
    fn agent(&self, actions: ActionsCfg, vms: &[(&str, &str)], discover: DiscoverCfg) -> Agent {
        let params = self.params(actions);
        let timeout = Duration::from_secs(params.actions.timeout_secs);
        let profiles = ProfileStore::load(&self.p("state/profiles.json"), params.profiler.clone()).unwrap();
        let targets = Targets {
            static_hosts: vec![
                Advert { host: "h2".into(), free_mib: 4096 },
                Advert { host: "h3".into(), free_mib: 1024 },
            ],
            file: None,
            self_host: Some("h1".into()),
        };
        let entries = vms
            .iter()
            .map(|(name, dom)| overdriver::agent::VmEntry {
                name: name.to_string(),
                domain: dom.to_string(),
                memory_mib: 1024,
                source: Box::new(CoopswapSource { dir: self.p(&format!("coopswap/{name}")) }),
                discovered: false,
            })
            .collect();
        Agent::new(params, Arc::new(self.clock.clone()), Executor::new(false, timeout), targets, entries, discover, profiles)
    }
}

fn actions(lab: &Lab, coopswap_body: &str, migrate_body: &str) -> ActionsCfg {
    let cs = lab.script("coopswap.sh", coopswap_body);
    let mg = lab.script("migrate.sh", migrate_body);
    ActionsCfg {
        coopswap: format!("{cs} coopswap {{vm}}"),
        migrate: format!("{mg} migrate {{domain}} {{target}} {{memory_mib}}"),
        timeout_secs: 2,
        retry_base_secs: 30,
        retry_max_secs: 600,
        max_attempts: 3,
    }
}

/// One tick after advancing the fake clock by an interval.
fn tick(lab: &Lab, a: &mut Agent) -> Vec<Happening> {
    lab.clock.advance_secs(10);
    a.tick()
}

/// Wait (real time) until `pred` holds for the agent's status, folding in action results.
fn settle(a: &mut Agent, pred: impl Fn(&Agent) -> bool) {
    let start = Instant::now();
    while !pred(a) {
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for actions");
        a.wait_actions(Duration::from_millis(50));
    }
}

fn vm<'a>(s: &'a overdriver::agent::Status, name: &str) -> &'a overdriver::agent::VmStatus {
    s.vms.iter().find(|v| v.name == name).unwrap()
}

#[test]
fn short_burst_is_transient_and_uses_cooperative_swap_only() {
    let mut lab = Lab::new();
    lab.device("web1");
    let mut a = lab.agent(actions(&lab, "exit 0", "exit 0"), &[("web1", "5")], DiscoverCfg::default());
    a.tick(); // baseline
    for r in [0, 0, 900, 1200, 700, 0, 0, 0, 0] {
        lab.page("web1", r);
        tick(&lab, &mut a);
    }
    settle(&mut a, |a| matches!(vm(&a.status(), "web1").coopswap, SlotState::Done { .. }));
    assert_eq!(lab.log(), ["coopswap web1"]);
    let s = a.status();
    assert_eq!(vm(&s, "web1").phase, Phase::Normal);
    assert_eq!(vm(&s, "web1").migrate, SlotState::Idle);
    let prof = a.profiles().get("web1").unwrap();
    assert_eq!(prof.observations(), 1);
    assert_eq!(prof.buckets.get(&3), Some(&1), "30 s burst lands in the 30 s bucket: {prof:?}");
    // The episode is recorded for `overdriver simulate --trace`.
    let csv = fs::read_to_string(lab.p("state/episodes.csv")).unwrap();
    assert!(csv.contains(",web1,30.0,transient"), "{csv}");
}

#[test]
fn long_burst_is_sustained_and_migrates_with_the_right_arguments() {
    let mut lab = Lab::new();
    lab.device("web1");
    let mut a = lab.agent(actions(&lab, "exit 0", "exit 0"), &[("web1", "7")], DiscoverCfg::default());
    a.tick();
    let mut sustained_at = None;
    for i in 1..=20 {
        lab.page("web1", 2000);
        let h = tick(&lab, &mut a);
        if i == 1 {
            // Real intervals are 10 s apart: let the coopswap action finish before the fake clock races on, so the
            // two scripts cannot append to the log in the other order on a busy machine.
            settle(&mut a, |a| matches!(vm(&a.status(), "web1").coopswap, SlotState::Done { .. }));
        }
        if h.iter().any(|h| h.what.starts_with("sustained overload after")) {
            sustained_at = Some(i);
            break;
        }
    }
    // 120 s threshold with 10 s intervals: the 12th overloaded interval.
    assert_eq!(sustained_at, Some(12));
    settle(&mut a, |a| matches!(vm(&a.status(), "web1").migrate, SlotState::Done { .. }));
    // h2 is the only advertised host (other than ourselves) with 1024 MiB free and the most room.
    assert_eq!(lab.log(), ["coopswap web1", "migrate 7 h2 1024"]);
    let s = a.status();
    assert_eq!(vm(&s, "web1").migrations, 1);
    assert_eq!(vm(&s, "web1").phase, Phase::Normal, "detector reset after migration");
    let p = a.profiles().get("web1").unwrap();
    assert_eq!((p.migrations, p.threshold_secs, p.observations()), (1, 120, 0));
}

#[test]
fn failing_migration_is_retried_with_backoff_then_given_up() {
    let mut lab = Lab::new();
    lab.device("db");
    let mut a = lab.agent(actions(&lab, "exit 0", "echo nope >&2; exit 1"), &[("db", "db")], DiscoverCfg::default());
    a.tick();
    for _ in 0..12 {
        lab.page("db", 5000);
        tick(&lab, &mut a);
    }
    settle(&mut a, |a| matches!(vm(&a.status(), "db").migrate, SlotState::RetryAt { .. }));
    match &vm(&a.status(), "db").migrate {
        SlotState::RetryAt { attempt, at_ms, last_error } => {
            assert_eq!(*attempt, 2);
            assert_eq!(*at_ms, 120_000 + 30_000);
            assert!(last_error.contains("nope"), "{last_error}");
        }
        s => panic!("{s:?}"),
    }
    // Not retried before the backoff expires…
    lab.page("db", 5000);
    tick(&lab, &mut a); // t = 130 s
    assert_eq!(lab.log().iter().filter(|l| l.starts_with("migrate")).count(), 1);
    lab.page("db", 5000);
    tick(&lab, &mut a); // t = 140 s
    lab.page("db", 5000);
    tick(&lab, &mut a); // t = 150 s: second attempt
    settle(&mut a, |a| matches!(vm(&a.status(), "db").migrate, SlotState::RetryAt { attempt: 3, .. }));
    // Backoff doubles: 60 s.
    for _ in 0..6 {
        lab.page("db", 5000);
        tick(&lab, &mut a);
    }
    settle(&mut a, |a| matches!(vm(&a.status(), "db").migrate, SlotState::Failed { .. }));
    assert_eq!(lab.log().iter().filter(|l| l.starts_with("migrate")).count(), 3);
    let s = a.status();
    assert!(s.actions.contains(&("migrate".into(), "failed".into(), 3)), "{:?}", s.actions);
}

#[test]
fn hanging_action_times_out_without_blocking_other_vms() {
    let mut lab = Lab::new();
    lab.device("slow");
    lab.device("fast");
    // coopswap hangs for "slow" only.
    let acts = actions(&lab, "case \"$2\" in slow) sleep 30;; esac; exit 0", "exit 0");
    let mut a = lab.agent(acts, &[("slow", "1"), ("fast", "2")], DiscoverCfg::default());
    a.tick();
    lab.page("slow", 1000);
    lab.page("fast", 0);
    let t0 = Instant::now();
    let h = tick(&lab, &mut a);
    assert!(h.iter().any(|h| h.vm == "slow" && h.what.starts_with("run coopswap")));
    // The tick returned at once, and the next tick sees the other VM's overload while "slow" still hangs.
    lab.page("slow", 1000);
    lab.page("fast", 1000);
    let h = tick(&lab, &mut a);
    assert!(t0.elapsed() < Duration::from_secs(1), "ticks must not wait for actions");
    assert!(h.iter().any(|h| h.vm == "fast" && h.what.starts_with("run coopswap")));
    settle(&mut a, |a| matches!(vm(&a.status(), "slow").coopswap, SlotState::RetryAt { .. }));
    match &vm(&a.status(), "slow").coopswap {
        SlotState::RetryAt { last_error, .. } => assert!(last_error.contains("timed out"), "{last_error}"),
        s => panic!("{s:?}"),
    }
    assert!(matches!(vm(&a.status(), "fast").coopswap, SlotState::Done { .. }));
}

#[test]
fn garbage_and_reset_counters_never_trigger_actions() {
    let mut lab = Lab::new();
    lab.device("vm");
    let mut a = lab.agent(actions(&lab, "exit 0", "exit 0"), &[("vm", "vm")], DiscoverCfg::default());
    a.tick();
    let evil: [(&str, &str); 6] = [
        ("garbage", "12"),
        ("99999999999999", "1"),  // huge jump: implausible
        ("5", "5"),               // went backwards: reset
        ("-1", "0"),              // malformed
        ("18446744073709551615", "18446744073709551615"), // sum overflows
        ("", "3"),
    ];
    for (r, w) in evil {
        fs::write(lab.p("coopswap/vm/stats/reads"), r).unwrap();
        fs::write(lab.p("coopswap/vm/stats/writes"), w).unwrap();
        let h = tick(&lab, &mut a);
        assert!(h.is_empty(), "{r}/{w}: {h:?}");
        let s = a.status();
        assert_eq!(vm(&s, "vm").phase, Phase::Normal);
    }
    assert!(vm(&a.status(), "vm").unknown_reason.is_some());
    // A vanished device is unknown too, and a configured VM stays watched.
    fs::remove_dir_all(lab.p("coopswap/vm")).unwrap();
    for _ in 0..5 {
        assert!(tick(&lab, &mut a).is_empty());
    }
    let s = a.status();
    assert!(vm(&s, "vm").last_error.as_deref().unwrap_or("").contains("not found"));
    assert!(lab.log().is_empty());
}

#[test]
fn discovered_vms_appear_and_vanish() {
    let mut lab = Lab::new();
    fs::create_dir_all(lab.p("coopswap")).unwrap();
    let discover = DiscoverCfg { coopswap_root: Some(lab.p("coopswap")), memory_mib: 1024, ..Default::default() };
    let mut a = lab.agent(actions(&lab, "exit 0", "exit 0"), &[], discover);
    assert!(a.tick().is_empty());
    lab.device("new1");
    let h = tick(&lab, &mut a);
    assert_eq!(h[0].what, "appeared");
    assert_eq!(a.vm_names(), ["new1"]);
    fs::remove_dir_all(lab.p("coopswap/new1")).unwrap();
    let mut gone = false;
    for _ in 0..3 {
        gone |= tick(&lab, &mut a).iter().any(|h| h.what == "vanished");
    }
    assert!(gone);
    assert!(a.vm_names().is_empty());
}

#[test]
fn never_two_migrations_of_one_vm_at_once() {
    let mut lab = Lab::new();
    lab.device("vm");
    let mut acts = actions(&lab, "exit 0", "sleep 2; exit 0");
    acts.timeout_secs = 10;
    let mut a = lab.agent(acts, &[("vm", "vm")], DiscoverCfg::default());
    a.tick();
    for _ in 0..12 {
        lab.page("vm", 3000);
        tick(&lab, &mut a);
    }
    assert!(matches!(vm(&a.status(), "vm").migrate, SlotState::Running { .. }));
    // While it runs (real time), the overload ends and a new sustained one starts (fake time).
    for _ in 0..3 {
        lab.page("vm", 0);
        tick(&lab, &mut a);
    }
    let mut refused = false;
    for _ in 0..12 {
        lab.page("vm", 3000);
        refused |= tick(&lab, &mut a).iter().any(|h| h.what.contains("already in progress"));
    }
    assert!(refused);
    settle(&mut a, |a| matches!(vm(&a.status(), "vm").migrate, SlotState::Done { .. }));
    assert_eq!(lab.log().iter().filter(|l| l.starts_with("migrate")).count(), 1);
}

#[test]
fn no_target_with_room_is_a_retried_failure() {
    let mut lab = Lab::new();
    lab.device("big");
    let params_actions = actions(&lab, "exit 0", "exit 0");
    let mut a = {
        let params = lab.params(params_actions);
        let entries = vec![overdriver::agent::VmEntry {
            name: "big".into(),
            domain: "big".into(),
            memory_mib: 65536,
            source: Box::new(CoopswapSource { dir: lab.p("coopswap/big") }),
            discovered: false,
        }];
        Agent::new(
            params,
            Arc::new(lab.clock.clone()),
            Executor::new(false, Duration::from_secs(2)),
            Targets { static_hosts: vec![Advert { host: "h2".into(), free_mib: 4096 }], file: None, self_host: None },
            entries,
            DiscoverCfg::default(),
            ProfileStore::new(ProfilerParams::default()),
        )
    };
    a.tick();
    let mut msgs = vec![];
    for _ in 0..12 {
        lab.page("big", 3000);
        msgs.extend(tick(&lab, &mut a));
    }
    assert!(msgs.iter().any(|h| h.what.contains("no migration target advertises 65536 MiB")), "{msgs:?}");
    assert!(matches!(vm(&a.status(), "big").migrate, SlotState::RetryAt { attempt: 2, .. }));
    assert!(!lab.log().iter().any(|l| l.starts_with("migrate")));
}

#[test]
fn profiles_adapt_and_survive_a_restart() {
    let mut lab = Lab::new();
    lab.device("web");
    {
        let mut a = lab.agent(actions(&lab, "exit 0", "exit 0"), &[("web", "web")], DiscoverCfg::default());
        a.tick();
        // Five 20 s bursts (base_observations = 5): mu 20, sigma 0 → 20, floored at 30 s.
        for _ in 0..5 {
            for r in [1000, 1000, 0, 0, 0] {
                lab.page("web", r);
                tick(&lab, &mut a);
            }
        }
        assert_eq!(a.profiles().threshold_secs("web"), 30);
        a.wait_actions(Duration::from_millis(200));
    }
    let stored: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(lab.p("state/profiles.json")).unwrap()).unwrap();
    assert_eq!(stored["profiles"]["web"]["threshold_secs"], 30);
    let mut a = lab.agent(actions(&lab, "exit 0", "exit 0"), &[("web", "web")], DiscoverCfg::default());
    assert_eq!(a.profiles().threshold_secs("web"), 30);
    // The lowered threshold is used: a long overload now migrates after 8 intervals (window), not 12.
    a.tick();
    let mut at = None;
    for i in 1..=12 {
        lab.page("web", 3000);
        if tick(&lab, &mut a).iter().any(|h| h.what.starts_with("sustained")) {
            at.get_or_insert(i);
        }
    }
    assert_eq!(at, Some(8));
}


#[test]
fn from_config_discovers_blkback_vms_and_uses_the_targets_file() {
    let lab = Lab::new();
    let root = lab.p("xen-backend");
    let vbd = root.join("vbd-7-51728/statistics");
    fs::create_dir_all(&vbd).unwrap();
    fs::create_dir_all(root.join("vbd-7-51712/statistics")).unwrap(); // root disk: ignored
    let write = |n: u64| {
        fs::write(vbd.join("rd_req"), n.to_string()).unwrap();
        fs::write(vbd.join("wr_req"), n.to_string()).unwrap();
    };
    write(0);
    fs::write(lab.p("excess"), "# host free_mib\nblanket2 2048\nblanket3 8192\nblanket1 99999\n").unwrap();
    let mg = lab.script("migrate.sh", "exit 0");
    let text = format!(
        r#"
[agent]
state_dir = "{state}"
[actions]
migrate = "{mg} migrate {{domain}} {{target}}"
[targets]
file = "{excess}"
self_host = "blanket1"
[discover]
blkback_root = "{root}"
blkback_devid = 51728
memory_mib = 4096
"#,
        state = lab.p("state").display(),
        excess = lab.p("excess").display(),
        root = root.display(),
    );
    let cfg = overdriver::config::Config::parse(&text, "test.toml").unwrap();
    let mut a = Agent::from_config(&cfg, Arc::new(lab.clock.clone()), false).unwrap();
    a.tick();
    assert_eq!(a.vm_names(), ["dom7"]);
    let mut n = 0;
    for _ in 0..12 {
        n += 10 * 1000; // 2000 requests/s in total
        write(n);
        tick(&lab, &mut a);
    }
    settle(&mut a, |a| matches!(vm(&a.status(), "dom7").migrate, SlotState::Done { .. }));
    // blanket3 is the only host (other than ourselves) with 4096 MiB free.
    assert_eq!(lab.log(), ["migrate 7 blanket3"]);
}
