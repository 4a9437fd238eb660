//! `overcast-lab run`: from the options to the host specs, the run, the verdicts, the summary and the JSON.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::console::{boot_crash, judge, summary_lines, CheckStatus, KtapExpectation, RunFacts, Verdict};
use crate::qemu::{Accel, HostKind, HostSpec, Net, Topology};
use crate::rootfs;
use crate::runner::{run_host, HostResult, HostRun};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub topology: Topology,
    pub pair_kind: HostKind,
    pub kernel: PathBuf,
    pub xen: PathBuf,
    pub overlays: Vec<PathBuf>,
    pub scenario: String,
    pub timeout: u64,
    pub memory: Option<u32>,
    pub smp: Option<u32>,
    pub dom0_mem: Option<u32>,
    pub append: Vec<String>,
    pub xen_append: Vec<String>,
    /// Extra QEMU arguments for every host, appended verbatim.
    pub qemu_args: Vec<String>,
    pub accel: Accel,
    pub kvm_hang_secs: u64,
    pub expect: Vec<KtapExpectation>,
    pub json: Option<PathBuf>,
    pub log_dir: PathBuf,
    pub quiet: bool,
    pub cache: PathBuf,
    /// Do not count KTAP printed before OVERCAST-BEGIN (the kernel's built-in suites).
    pub skip_boot_ktap: bool,
    /// vm/nested: the NIC on a TAP with this many queue pairs in a private namespace (`tapnet`); 0: user-mode.
    pub tap_queues: u32,
}

/// The default Xen image: $OVERCAST_CACHE/xen/xen.elf (what scripts/setup installs).
pub fn default_xen() -> PathBuf {
    let base = std::env::var_os("OVERCAST_CACHE").map_or_else(|| PathBuf::from("/var/cache/overcast"), PathBuf::from);
    base.join("xen/xen.elf")
}

/// Logs go to $OVERCAST_LAB_LOGS, else target/lab-logs of the workspace this binary was built from.
pub fn default_log_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("OVERCAST_LAB_LOGS") {
        return PathBuf::from(d);
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("lab-logs");
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().and_then(Path::parent).unwrap_or(manifest).join("target/lab-logs")
}

/// UDP ports on 127.0.0.1 the links of a topology need: two per point-to-point link.
pub fn ports_needed(t: Topology) -> usize {
    match t {
        Topology::Vm | Topology::Nested => 0,
        Topology::Pair => 2,
        Topology::Trio => 4,
    }
}

/// The QEMU instances of a topology (pure: `ports` are the UDP ports of its links, [`ports_needed`] of them:
/// link A between hosts 0 and 1 uses ports 0 and 1, a trio's link B between hosts 1 and 2 ports 2 and 3).
pub fn host_specs(o: &RunOptions, initrd: &Path, ports: &[u16]) -> Vec<HostSpec> {
    let kinds: Vec<HostKind> = match o.topology {
        Topology::Vm => vec![HostKind::Vm],
        Topology::Nested => vec![HostKind::Nested],
        Topology::Pair => vec![o.pair_kind, o.pair_kind],
        Topology::Trio => vec![o.pair_kind, o.pair_kind, o.pair_kind],
    };
    let port = |k: usize| ports.get(k).copied().unwrap_or(0);
    let link = |a: usize, b: usize| Net::Dgram { local_port: port(a), remote_port: port(b) };
    let n = kinds.len();
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            let memory = o.memory.unwrap_or(if kind == HostKind::Nested { 2048 } else { 1024 });
            let smp = o.smp.unwrap_or(if n > 1 { 1 } else { 2 });
            // Link A is 10.99.0.0/24 (host 0 .1, host 1 .2), link B 10.99.1.0/24 (host 1 .2, host 2 .3).
            let single = if o.tap_queues > 0 { Net::Tap { queues: o.tap_queues } } else { Net::User };
            let (net, ip, gw, net2) = match (n, i) {
                (1, _) => (single, "10.0.2.15/24".to_string(), Some("10.0.2.2"), None),
                (_, 0) => (link(0, 1), "10.99.0.1/24".to_string(), None, None),
                (2, _) => (link(1, 0), "10.99.0.2/24".to_string(), None, None),
                (_, 1) => (link(1, 0), "10.99.0.2/24".to_string(), None, Some((link(2, 3), "10.99.1.2/24"))),
                _ => (link(3, 2), "10.99.1.3/24".to_string(), None, None),
            };
            let mut kernel_args = vec![
                format!("overcast.scenario={}", o.scenario),
                format!("overcast.topology={}", topology_name(o.topology)),
                format!("overcast.host={i}"),
                format!("overcast.ip={ip}"),
            ];
            if let Some(gw) = gw {
                kernel_args.push(format!("overcast.gw={gw}"));
            }
            if let Some((_, ip2)) = &net2 {
                kernel_args.push(format!("overcast.ip2={ip2}"));
            }
            if matches!(net, Net::Tap { .. }) {
                kernel_args.push("overcast.net=tap".to_string());
            }
            kernel_args.extend(o.append.iter().cloned());
            HostSpec {
                kind,
                accel: o.accel,
                kernel: o.kernel.clone(),
                xen: Some(o.xen.clone()),
                initrd: initrd.to_path_buf(),
                memory_mib: memory,
                smp,
                kernel_args,
                dom0_mem_mib: o.dom0_mem.unwrap_or(memory / 2),
                xen_args: o.xen_append.clone(),
                net,
                mac: format!("52:54:00:99:00:{:02x}", i + 1),
                net2: net2.map(|(net, _)| (net, format!("52:54:00:99:01:{:02x}", i + 1))),
                extra_args: o.qemu_args.clone(),
            }
        })
        .collect()
}

pub fn topology_name(t: Topology) -> &'static str {
    match t {
        Topology::Vm => "vm",
        Topology::Nested => "nested",
        Topology::Pair => "pair",
        Topology::Trio => "trio",
    }
}

#[derive(Debug, Serialize)]
pub struct HostReport {
    pub host: u8,
    pub kind: HostKind,
    pub accel: Accel,
    pub log: PathBuf,
    pub passed: bool,
    pub boot_to_begin_secs: Option<f64>,
    pub boot_to_end_secs: Option<f64>,
    pub notes: Vec<String>,
    pub verdict: Verdict,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub passed: u32,
    pub failed: u32,
    pub skipped: u32,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub topology: Topology,
    pub passed: bool,
    /// Items: each KUnit case, each OVERCAST-CHECK, and one "scenario" item per host (END seen, rc=0).
    pub totals: Totals,
    pub hosts: Vec<HostReport>,
}

/// Adds up one host's items; the host's own "scenario" item fails on anything not covered by a case or check.
pub fn totals(v: &Verdict) -> Totals {
    let mut t = Totals { passed: v.kunit.pass, failed: v.kunit.fail + v.kunit.missing, skipped: v.kunit.skip };
    for c in &v.checks {
        match c.status {
            CheckStatus::Pass => t.passed += 1,
            CheckStatus::Fail => t.failed += 1,
            CheckStatus::Skip => t.skipped += 1,
        }
    }
    if v.end_rc == Some(0) && (v.passed || t.failed > 0) {
        t.passed += 1;
    } else {
        t.failed += 1;
    }
    t
}

/// `n` distinct free UDP ports on 127.0.0.1 (all sockets are held until every port is known, so the kernel
/// cannot hand out the same port twice; QEMU binds them a moment later).
fn free_udp_ports(n: usize) -> Result<Vec<u16>> {
    let socks = (0..n)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").context("binding a UDP port on 127.0.0.1"))
        .collect::<Result<Vec<_>>>()?;
    socks.iter().map(|s| Ok(s.local_addr()?.port())).collect()
}

fn check_inputs(o: &RunOptions) -> Result<()> {
    if !o.kernel.is_file() {
        bail!("kernel {} not found (build it with `make kernel`; `make -s kernel-path` prints its path)", o.kernel.display());
    }
    let multi = matches!(o.topology, Topology::Pair | Topology::Trio);
    let nested = o.topology == Topology::Nested || (multi && o.pair_kind == HostKind::Nested);
    if nested && !o.xen.is_file() {
        bail!("Xen image {} not found (scripts/setup installs it; or pass --xen)", o.xen.display());
    }
    if o.scenario.is_empty() || o.scenario.contains(['/', ' ', ',']) {
        bail!("bad scenario name {:?}", o.scenario);
    }
    let builtin = o.scenario == "lab-selftest";
    let found = o.overlays.iter().any(|d| d.join(format!("overcast/tests/{}.sh", o.scenario)).is_file());
    if !builtin && !found {
        bail!(
            "scenario {} not found: no overcast/tests/{}.sh in the overlays ({})",
            o.scenario,
            o.scenario,
            o.overlays.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

/// Initrds of runs that were killed (they are removed when a run ends) and are older than an hour.
fn remove_stale_initrds(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let old = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|a| a.as_secs() > 3600);
        if name.starts_with('.') && name.ends_with(".initrd") && old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Where the console of a first boot that crashed is kept: `x.log` -> `x.boot-crash.log`.
fn kept_log(log: &Path) -> PathBuf {
    log.with_extension("boot-crash.log")
}

/// Removes the kept first consoles of an earlier run of the same topology and scenario.
fn remove_kept_logs(dir: &Path, stem: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        // `<stem>.boot-crash.log` (one host) or `<stem>-h<i>.boot-crash.log`.
        let ours = name.strip_prefix(stem).and_then(|rest| rest.strip_suffix(".boot-crash.log"));
        if ours.is_some_and(|host| host.is_empty() || host.starts_with("-h")) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The whole `run` command. Returns the report; the caller maps `passed` to the exit status.
pub fn run(o: &RunOptions) -> Result<Report> {
    check_inputs(o)?;
    let rootfs = rootfs::ensure_raw_rootfs(&o.cache, true)?;
    let overlay = rootfs::overlay_cpio(&o.overlays)?;
    std::fs::create_dir_all(&o.log_dir).with_context(|| format!("creating {}", o.log_dir.display()))?;
    remove_stale_initrds(&o.log_dir);
    let stem = format!("{}-{}", topology_name(o.topology), o.scenario);
    let initrd = o.log_dir.join(format!(".{stem}.{}.initrd", std::process::id()));
    {
        let mut f = std::fs::File::create(&initrd).with_context(|| format!("creating {}", initrd.display()))?;
        let base = std::fs::read(&rootfs).with_context(|| format!("reading {}", rootfs.display()))?;
        f.write_all(&base)?;
        f.write_all(&overlay)?;
    }
    let tap = match (o.tap_queues, o.topology) {
        (0, _) => None,
        (q, Topology::Vm | Topology::Nested) => Some(crate::tapnet::TapNet::new(q)?),
        _ => bail!("--tap is for the single-host topologies (vm, nested)"),
    };
    // A kernel that crashes while booting, before the init begins the scenario and so before any Overcast module is
    // loaded, says nothing about our code; under TCG it is the emulator's rare cross-CPU code-patching race (an int3
    // oops in a static-key site, Documentation/lab.md). The hosts boot again once; the first console is kept beside
    // the log and the summary names the crash. A second crash fails the run as any crash does.
    let mut boot_crash_note: Option<String> = None;
    remove_kept_logs(&o.log_dir, &stem);
    let (runs, results) = loop {
        let ports = free_udp_ports(ports_needed(o.topology))?;
        let specs = host_specs(o, &initrd, &ports);
        let n = specs.len();
        let boot_crashed = Arc::new(AtomicBool::new(false));
        let runs: Vec<HostRun> = specs
            .into_iter()
            .enumerate()
            .map(|(i, spec)| HostRun {
                index: i as u8,
                spec,
                scenario: o.scenario.clone(),
                timeout: Duration::from_secs(o.timeout),
                log_path: o.log_dir.join(if n > 1 { format!("{stem}-h{i}.log") } else { format!("{stem}.log") }),
                live_prefix: (!o.quiet).then(|| if n > 1 { format!("[h{i}] ") } else { String::new() }),
                kvm_hang: Duration::from_secs(o.kvm_hang_secs),
                poweroff_grace: Duration::from_secs(10),
                netns: tap.as_ref().map(|t| t.namespace().to_string()),
                boot_crashed: boot_crashed.clone(),
            })
            .collect();
        let results: Vec<Result<HostResult>> = std::thread::scope(|s| {
            let handles: Vec<_> = runs.iter().map(|r| s.spawn(move || run_host(r))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("runner thread panicked")))).collect()
        });
        let crash = results.iter().zip(&runs).find_map(|(r, run)| {
            let line = boot_crash(&r.as_ref().ok()?.lines)?;
            Some((run.index, line.trim().to_string(), kept_log(&run.log_path)))
        });
        match crash {
            Some((host, line, kept)) if boot_crash_note.is_none() => {
                for run in &runs {
                    let _ = std::fs::rename(&run.log_path, kept_log(&run.log_path));
                }
                let note = format!(
                    "host {host}'s kernel crashed while booting, before the scenario began ({line}); \
                     the hosts were booted again; first console: {}",
                    kept.display()
                );
                eprintln!("overcast-lab: {note}");
                boot_crash_note = Some(note);
            }
            _ => break (runs, results),
        }
    };
    let n = runs.len();
    let _ = std::fs::remove_file(&initrd);
    let mut hosts = Vec::new();
    for (r, run) in results.into_iter().zip(runs.iter()) {
        let mut r = r?;
        if let Some(note) = &boot_crash_note {
            r.notes.insert(0, note.clone());
        }
        let facts = RunFacts { skip_boot_ktap: o.skip_boot_ktap, ..r.facts.clone() };
        let verdict = judge(&o.scenario, &r.lines, &facts, &o.expect);
        hosts.push(HostReport {
            host: r.index,
            kind: run.spec.kind,
            accel: r.accel,
            log: run.log_path.clone(),
            passed: verdict.passed,
            boot_to_begin_secs: r.boot_to_begin,
            boot_to_end_secs: r.boot_to_end,
            notes: r.notes.clone(),
            verdict,
        });
        print_host(&hosts[hosts.len() - 1], &r, n > 1);
    }
    let mut t = Totals::default();
    for h in &hosts {
        let x = totals(&h.verdict);
        t.passed += x.passed;
        t.failed += x.failed;
        t.skipped += x.skipped;
    }
    let report = Report {
        scenario: o.scenario.clone(),
        topology: o.topology,
        passed: hosts.iter().all(|h| h.passed),
        totals: t,
        hosts,
    };
    println!(
        "overcast-lab: RESULT {} {} {}: {} passed, {} failed, {} skipped",
        topology_name(o.topology),
        o.scenario,
        if report.passed { "PASS" } else { "FAIL" },
        t.passed,
        t.failed,
        t.skipped
    );
    if let Some(j) = &o.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(j, text + "\n").with_context(|| format!("writing {}", j.display()))?;
    }
    Ok(report)
}

fn print_host(h: &HostReport, r: &HostResult, multi: bool) {
    let p = if multi { format!("[h{}] ", h.host) } else { String::new() };
    println!("{p}---- overcast-lab summary ({} on {:?}, log {}) ----", h.verdict.scenario, h.accel, h.log.display());
    for n in &h.notes {
        println!("{p}note: {n}");
    }
    for l in summary_lines(&h.verdict) {
        println!("{p}{l}");
    }
    if let (Some(b), Some(e)) = (h.boot_to_begin_secs, h.boot_to_end_secs) {
        println!("{p}time: boot to OVERCAST-BEGIN {b:.1} s, boot to OVERCAST-END {e:.1} s");
    }
    let k = h.verdict.kunit;
    println!("{p}kunit: {} pass, {} fail, {} skip, {} missing", k.pass, k.fail, k.skip, k.missing);
    if h.passed {
        println!("{p}host {}: PASS", h.host);
    } else {
        for why in &h.verdict.reasons {
            println!("{p}FAIL reason: {why}");
        }
        println!("{p}---- last 40 console lines ----");
        let from = r.lines.len().saturating_sub(40);
        for l in &r.lines[from..] {
            println!("{p}| {l}");
        }
        println!("{p}host {}: FAIL", h.host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(t: Topology) -> RunOptions {
        RunOptions {
            topology: t,
            pair_kind: HostKind::Vm,
            kernel: "/k".into(),
            xen: "/x".into(),
            overlays: vec![],
            scenario: "smoke".into(),
            timeout: 60,
            memory: None,
            smp: None,
            dom0_mem: None,
            append: vec!["quiet".into()],
            xen_append: vec![],
            qemu_args: vec![],
            accel: Accel::Tcg,
            kvm_hang_secs: 20,
            expect: vec![],
            json: None,
            log_dir: "/tmp".into(),
            quiet: true,
            cache: "/tmp".into(),
            skip_boot_ktap: false,
            tap_queues: 0,
        }
    }

    #[test]
    fn tap_replaces_user_net_on_a_single_host() {
        let o = RunOptions { tap_queues: 2, ..opts(Topology::Vm) };
        let s = host_specs(&o, Path::new("/i"), &[]);
        assert_eq!(s[0].net, Net::Tap { queues: 2 });
        assert!(s[0].kernel_args.contains(&"overcast.net=tap".to_string()));
        assert!(s[0].kernel_args.contains(&"overcast.gw=10.0.2.2".to_string()));
        let a = crate::qemu::build_args(&s[0]).unwrap();
        assert!(a.contains(&"tap,id=n0,ifname=ovctap0,script=no,downscript=no,vhost=off,queues=2".to_string()));
        assert!(a.contains(&"virtio-net-pci,netdev=n0,mac=52:54:00:99:00:01,mq=on,vectors=6".to_string()));
        let plain = host_specs(&opts(Topology::Vm), Path::new("/i"), &[]);
        assert_eq!(plain[0].net, Net::User);
        assert!(!plain[0].kernel_args.iter().any(|a| a.starts_with("overcast.net")));
    }

    #[test]
    fn pair_hosts_are_cross_linked_with_one_vcpu() {
        let s = host_specs(&opts(Topology::Pair), Path::new("/i"), &[5000, 5001]);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].net, Net::Dgram { local_port: 5000, remote_port: 5001 });
        assert_eq!(s[1].net, Net::Dgram { local_port: 5001, remote_port: 5000 });
        assert!(s.iter().all(|h| h.smp == 1 && h.memory_mib == 1024));
        assert!(s[0].kernel_args.contains(&"overcast.ip=10.99.0.1/24".to_string()));
        assert!(s[1].kernel_args.contains(&"overcast.host=1".to_string()));
        assert!(s[1].kernel_args.contains(&"overcast.ip=10.99.0.2/24".to_string()));
        assert_ne!(s[0].mac, s[1].mac);
        assert_eq!(s[0].kernel_args.last().map(String::as_str), Some("quiet"));
        assert!(s.iter().all(|h| h.net2.is_none()));
    }

    #[test]
    fn trio_is_a_chain_through_host_1() {
        let s = host_specs(&opts(Topology::Trio), Path::new("/i"), &[5000, 5001, 5002, 5003]);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].net, Net::Dgram { local_port: 5000, remote_port: 5001 });
        assert_eq!(s[1].net, Net::Dgram { local_port: 5001, remote_port: 5000 });
        assert_eq!(s[1].net2.as_ref().map(|n| &n.0), Some(&Net::Dgram { local_port: 5002, remote_port: 5003 }));
        assert_eq!(s[2].net, Net::Dgram { local_port: 5003, remote_port: 5002 });
        assert!(s[0].net2.is_none() && s[2].net2.is_none());
        assert!(s[1].kernel_args.contains(&"overcast.ip2=10.99.1.2/24".to_string()));
        assert!(s[2].kernel_args.contains(&"overcast.ip=10.99.1.3/24".to_string()));
        assert!(s[2].kernel_args.contains(&"overcast.topology=trio".to_string()));
        let macs: std::collections::BTreeSet<&str> =
            s.iter().map(|h| h.mac.as_str()).chain(s[1].net2.iter().map(|n| n.1.as_str())).collect();
        assert_eq!(macs.len(), 4);
        assert!(s.iter().all(|h| h.smp == 1));
        assert_eq!(ports_needed(Topology::Trio), 4);
    }

    #[test]
    fn qemu_args_reach_every_host() {
        let mut o = opts(Topology::Pair);
        o.qemu_args = vec!["-device".into(), "virtio-blk-pci,drive=d1".into()];
        let s = host_specs(&o, Path::new("/i"), &[1, 2]);
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|h| h.extra_args == o.qemu_args));
        assert!(host_specs(&opts(Topology::Vm), Path::new("/i"), &[])[0].extra_args.is_empty());
    }

    #[test]
    fn nested_defaults() {
        let s = host_specs(&opts(Topology::Nested), Path::new("/i"), &[]);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].kind, s[0].memory_mib, s[0].dom0_mem_mib, s[0].smp), (HostKind::Nested, 2048, 1024, 2));
        assert_eq!(s[0].net, Net::User);
        assert!(s[0].kernel_args.contains(&"overcast.topology=nested".to_string()));
    }

    #[test]
    fn totals_count_a_crash_as_a_failure() {
        let lines: Vec<String> = "OVERCAST-BEGIN smoke\nOVERCAST-CHECK PASS a\n".lines().map(str::to_string).collect();
        let v = judge("smoke", &lines, &RunFacts { timed_out: Some(5), ..RunFacts::default() }, &[]);
        assert_eq!(totals(&v), Totals { passed: 1, failed: 1, skipped: 0 });
        let lines: Vec<String> =
            "OVERCAST-BEGIN smoke\nOVERCAST-CHECK FAIL a x\nOVERCAST-END smoke rc=0\n".lines().map(str::to_string).collect();
        let v = judge("smoke", &lines, &RunFacts::default(), &[]);
        assert_eq!(totals(&v), Totals { passed: 1, failed: 1, skipped: 0 });
        let lines: Vec<String> = "OVERCAST-BEGIN smoke\nOVERCAST-END smoke rc=0\n".lines().map(str::to_string).collect();
        let v = judge("smoke", &lines, &RunFacts::default(), &["s".parse().unwrap()]);
        assert_eq!(totals(&v), Totals { passed: 0, failed: 1, skipped: 0 }, "an unmet expectation fails the scenario item");
    }

    #[test]
    fn udp_ports_differ() {
        for _ in 0..20 {
            let p = free_udp_ports(4).unwrap();
            let set: std::collections::BTreeSet<u16> = p.iter().copied().collect();
            assert_eq!(set.len(), 4);
        }
    }

    #[test]
    fn missing_scenario_is_named() {
        let mut o = opts(Topology::Vm);
        o.kernel = std::env::current_exe().unwrap();
        let e = check_inputs(&o).unwrap_err().to_string();
        assert!(e.contains("scenario smoke not found"), "{e}");
        o.scenario = "lab-selftest".into();
        assert!(check_inputs(&o).is_ok());
        o.kernel = "/nonexistent/bzImage".into();
        assert!(check_inputs(&o).unwrap_err().to_string().contains("make kernel"));
    }
}
