//! Pluggable paging-counter sources (§6.2: the agent "monitors the memory overload behavior of the local guest VMs
//! by measuring paging rate").
//!
//! Every source returns one cumulative count of paging operations; [`crate::rate::RateTracker`] turns successive
//! counts into rates. Files are parsed strictly: a counter file must hold one unsigned decimal number (surrounding
//! whitespace allowed); anything else is [`SourceError::Malformed`], and the VM's interval becomes unknown.

use crate::rate::CounterReading;
use std::path::{Path, PathBuf};

/// Why a source could not produce a reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The counter file or directory does not exist (the VM or device vanished).
    #[error("{0}: not found")]
    NotFound(String),
    #[error("{path}: {msg}")]
    Io { path: String, msg: String },
    #[error("{path}: malformed counter: {msg}")]
    Malformed { path: String, msg: String },
}

/// A per-VM cumulative paging counter.
pub trait Source: Send + Sync {
    fn read(&self) -> Result<CounterReading, SourceError>;
    /// Human-readable description (for logs and status).
    fn describe(&self) -> String;
}

fn read_file(path: &Path) -> Result<String, SourceError> {
    std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            SourceError::NotFound(path.display().to_string())
        } else {
            SourceError::Io { path: path.display().to_string(), msg: e.to_string() }
        }
    })
}

/// Parse a file holding a single unsigned decimal counter.
pub fn parse_decimal(path: &Path, text: &str) -> Result<u64, SourceError> {
    let t = text.trim();
    let malformed = |msg: &str| SourceError::Malformed { path: path.display().to_string(), msg: msg.to_string() };
    if t.is_empty() {
        return Err(malformed("empty"));
    }
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("not an unsigned decimal number"));
    }
    t.parse::<u64>().map_err(|_| malformed("out of range"))
}

fn read_decimal(path: &Path) -> Result<u64, SourceError> {
    parse_decimal(path, &read_file(path)?)
}

fn sum_files(dir: &Path, names: &[&str], basis: u32) -> Result<CounterReading, SourceError> {
    if !dir.is_dir() {
        return Err(SourceError::NotFound(dir.display().to_string()));
    }
    let mut total = 0u64;
    for n in names {
        let p = dir.join(n);
        let v = read_decimal(&p)?;
        total = total
            .checked_add(v)
            .ok_or_else(|| SourceError::Malformed { path: p.display().to_string(), msg: "sum overflows".into() })?;
    }
    Ok(CounterReading { value: total, basis })
}

/// A coopswap device: `<dir>/stats/reads` + `<dir>/stats/writes` (e.g. `/sys/kernel/coopswap/<dev>`), or, where
/// `stats` is not a directory, `<dir>/reads` + `<dir>/writes`: the layout of coopswap.ko's configfs directory
/// `/sys/kernel/config/coopswap/<N>` (configfs cannot make a `stats/` subdirectory; there `stats` is a file).
#[derive(Debug, Clone)]
pub struct CoopswapSource {
    pub dir: PathBuf,
}

/// The directory holding a coopswap device's `reads` and `writes` counters, if `dir` is a device.
fn coopswap_counter_dir(dir: &Path) -> Option<PathBuf> {
    let stats = dir.join("stats");
    if stats.is_dir() {
        Some(stats)
    } else if dir.join("reads").is_file() {
        Some(dir.to_path_buf())
    } else {
        None
    }
}

impl Source for CoopswapSource {
    fn read(&self) -> Result<CounterReading, SourceError> {
        match coopswap_counter_dir(&self.dir) {
            Some(d) => sum_files(&d, &["reads", "writes"], 1),
            None => Err(SourceError::NotFound(self.dir.join("stats").display().to_string())),
        }
    }
    fn describe(&self) -> String {
        format!("coopswap:{}", self.dir.display())
    }
}

/// A Xen block back-end device: `<dir>/statistics/rd_req` + `wr_req`
/// (e.g. `/sys/bus/xen-backend/devices/vbd-<domid>-<devid>`). Requests, not pages: a request may carry several
/// pages, so the rate is a lower bound on the page rate.
#[derive(Debug, Clone)]
pub struct BlkbackSource {
    pub dir: PathBuf,
}

impl Source for BlkbackSource {
    fn read(&self) -> Result<CounterReading, SourceError> {
        sum_files(&self.dir.join("statistics"), &["rd_req", "wr_req"], 2)
    }
    fn describe(&self) -> String {
        format!("blkback:{}", self.dir.display())
    }
}

/// Parse `key value` lines (memory.stat, /proc/vmstat) and return the values of `keys` that are present.
fn parse_kv(path: &Path, text: &str, keys: &[&str]) -> Result<Vec<Option<u64>>, SourceError> {
    let mut out = vec![None; keys.len()];
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(k), Some(v)) = (it.next(), it.next()) else { continue };
        if let Some(i) = keys.iter().position(|x| *x == k) {
            let v = parse_decimal(path, v)
                .map_err(|_| SourceError::Malformed { path: path.display().to_string(), msg: format!("bad value for {k}") })?;
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(v);
            }
        }
    }
    Ok(out)
}

/// A cgroup v2 `memory.stat`: `pswpin + pswpout` where the kernel reports them per cgroup, otherwise `pgmajfault`.
#[derive(Debug, Clone)]
pub struct CgroupSource {
    pub path: PathBuf,
}

impl Source for CgroupSource {
    fn read(&self) -> Result<CounterReading, SourceError> {
        let text = read_file(&self.path)?;
        let v = parse_kv(&self.path, &text, &["pswpin", "pswpout", "pgmajfault"])?;
        match (v.first().copied().flatten(), v.get(1).copied().flatten(), v.get(2).copied().flatten()) {
            (Some(i), Some(o), _) => Ok(CounterReading { value: i.saturating_add(o), basis: 3 }),
            (_, _, Some(m)) => Ok(CounterReading { value: m, basis: 4 }),
            _ => Err(SourceError::Malformed {
                path: self.path.display().to_string(),
                msg: "neither pswpin/pswpout nor pgmajfault present".into(),
            }),
        }
    }
    fn describe(&self) -> String {
        format!("cgroup:{}", self.path.display())
    }
}

/// Host-wide `/proc/vmstat`: `pswpin + pswpout` (for a plain Linux host treated as one VM).
#[derive(Debug, Clone)]
pub struct VmstatSource {
    pub path: PathBuf,
}

impl Source for VmstatSource {
    fn read(&self) -> Result<CounterReading, SourceError> {
        let text = read_file(&self.path)?;
        let v = parse_kv(&self.path, &text, &["pswpin", "pswpout"])?;
        match (v.first().copied().flatten(), v.get(1).copied().flatten()) {
            (Some(i), Some(o)) => Ok(CounterReading { value: i.saturating_add(o), basis: 5 }),
            _ => Err(SourceError::Malformed { path: self.path.display().to_string(), msg: "pswpin/pswpout missing".into() }),
        }
    }
    fn describe(&self) -> String {
        format!("vmstat:{}", self.path.display())
    }
}

/// Major page faults of one process or thread: field 12 (`majflt`) of `/proc/<pid>/stat` or
/// `/proc/<pid>/task/<tid>/stat`. On a KVM host the VM is its QEMU process, whose major faults are the VM's paging
/// as the host sees it; the tests also use it to measure real paging of a thread.
#[derive(Debug, Clone)]
pub struct ProcStatSource {
    pub path: PathBuf,
}

/// Parse `majflt` out of a `/proc/.../stat` line (the command name may contain spaces and parentheses).
pub fn parse_proc_stat_majflt(path: &Path, text: &str) -> Result<u64, SourceError> {
    let malformed = |msg: &str| SourceError::Malformed { path: path.display().to_string(), msg: msg.to_string() };
    let rest = text.rfind(')').and_then(|i| text.get(i + 1..)).ok_or_else(|| malformed("no command name"))?;
    // Fields after the command: state(3) ppid(4) pgrp(5) session(6) tty_nr(7) tpgid(8) flags(9) minflt(10)
    // cminflt(11) majflt(12).
    let f = rest.split_whitespace().nth(9).ok_or_else(|| malformed("too few fields"))?;
    parse_decimal(path, f)
}

impl Source for ProcStatSource {
    fn read(&self) -> Result<CounterReading, SourceError> {
        let text = read_file(&self.path)?;
        Ok(CounterReading { value: parse_proc_stat_majflt(&self.path, &text)?, basis: 6 })
    }
    fn describe(&self) -> String {
        format!("procstat:{}", self.path.display())
    }
}

/// A VM found by scanning a directory.
pub struct Discovered {
    pub name: String,
    pub domain: String,
    pub source: Box<dyn Source>,
}

/// Every subdirectory of `root` that has a `stats/` directory (or, as in coopswap.ko's configfs, a `reads` file) is
/// a coopswap device; the VM is named after it.
pub fn discover_coopswap(root: &Path) -> Vec<Discovered> {
    let Ok(rd) = std::fs::read_dir(root) else { return vec![] };
    let mut out: Vec<Discovered> = rd
        .flatten()
        .filter(|e| coopswap_counter_dir(&e.path()).is_some())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            Some(Discovered { domain: name.clone(), name, source: Box::new(CoopswapSource { dir: e.path() }) })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Every `vbd-<domid>-<devid>` under `root` (with `devid` matching, if given) is a VM's swap disk; the VM is named
/// `dom<domid>` and its domain is `<domid>`.
pub fn discover_blkback(root: &Path, devid: Option<u32>) -> Vec<Discovered> {
    let Ok(rd) = std::fs::read_dir(root) else { return vec![] };
    let mut out: Vec<Discovered> = rd
        .flatten()
        .filter_map(|e| {
            let fname = e.file_name().to_str()?.to_string();
            let rest = fname.strip_prefix("vbd-")?;
            let (dom, dev) = rest.split_once('-')?;
            let dom: u32 = dom.parse().ok()?;
            let dev: u32 = dev.parse().ok()?;
            if devid.is_some_and(|d| d != dev) {
                return None;
            }
            Some(Discovered {
                name: format!("dom{dom}"),
                domain: dom.to_string(),
                source: Box::new(BlkbackSource { dir: e.path() }),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::fs;

    #[test]
    fn coopswap_sums_reads_and_writes() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("cs0/stats")).unwrap();
        fs::write(d.path().join("cs0/stats/reads"), "10\n").unwrap();
        fs::write(d.path().join("cs0/stats/writes"), " 32 ").unwrap();
        let s = CoopswapSource { dir: d.path().join("cs0") };
        assert_eq!(s.read().unwrap().value, 42);
        fs::write(d.path().join("cs0/stats/writes"), "-3").unwrap();
        assert!(matches!(s.read(), Err(SourceError::Malformed { .. })));
        fs::write(d.path().join("cs0/stats/writes"), "").unwrap();
        assert!(matches!(s.read(), Err(SourceError::Malformed { .. })));
        fs::remove_dir_all(d.path().join("cs0")).unwrap();
        assert!(matches!(s.read(), Err(SourceError::NotFound(_))));
    }

    #[test]
    fn coopswap_reads_the_configfs_layout() {
        // coopswap.ko: /sys/kernel/config/coopswap/<N>/{reads,writes}, and `stats` is a file of `name value` lines.
        let d = tempfile::tempdir().unwrap();
        let dev = d.path().join("0");
        fs::create_dir_all(&dev).unwrap();
        fs::write(dev.join("stats"), "reads 7\nwrites 9\nremote_reads 0\n").unwrap();
        fs::write(dev.join("reads"), "7\n").unwrap();
        fs::write(dev.join("writes"), "9\n").unwrap();
        let s = CoopswapSource { dir: dev.clone() };
        assert_eq!(s.read().unwrap(), CounterReading { value: 16, basis: 1 });
        fs::write(dev.join("writes"), "x").unwrap();
        assert!(matches!(s.read(), Err(SourceError::Malformed { .. })));
        fs::remove_file(dev.join("writes")).unwrap();
        assert!(matches!(s.read(), Err(SourceError::NotFound(_))));
        fs::remove_file(dev.join("reads")).unwrap();
        assert!(matches!(s.read(), Err(SourceError::NotFound(_))));
        // Discovery: a configfs device directory counts, a directory without counters does not.
        fs::write(dev.join("reads"), "1\n").unwrap();
        fs::create_dir_all(d.path().join("empty")).unwrap();
        fs::write(d.path().join("features"), "size_mib\n").unwrap();
        let names: Vec<_> = discover_coopswap(d.path()).into_iter().map(|x| x.name).collect();
        assert_eq!(names, ["0"]);
    }

    #[test]
    fn blkback_sums_requests() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("vbd-7-51728");
        fs::create_dir_all(dir.join("statistics")).unwrap();
        fs::write(dir.join("statistics/rd_req"), "5\n").unwrap();
        fs::write(dir.join("statistics/wr_req"), "6\n").unwrap();
        assert_eq!(BlkbackSource { dir: dir.clone() }.read().unwrap().value, 11);
        let found = discover_blkback(d.path(), Some(51728));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "dom7");
        assert_eq!(found[0].domain, "7");
        assert!(discover_blkback(d.path(), Some(51712)).is_empty());
    }

    #[test]
    fn cgroup_prefers_swap_counters_and_falls_back_to_majfault() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("memory.stat");
        fs::write(&p, "anon 123\npgmajfault 9\npswpin 4\npswpout 6\n").unwrap();
        let s = CgroupSource { path: p.clone() };
        assert_eq!(s.read().unwrap(), CounterReading { value: 10, basis: 3 });
        fs::write(&p, "anon 123\npgmajfault 9\n").unwrap();
        assert_eq!(s.read().unwrap(), CounterReading { value: 9, basis: 4 });
        fs::write(&p, "anon 123\n").unwrap();
        assert!(matches!(s.read(), Err(SourceError::Malformed { .. })));
        fs::write(&p, "pgmajfault lots\n").unwrap();
        assert!(matches!(s.read(), Err(SourceError::Malformed { .. })));
    }

    #[test]
    fn vmstat_reads_swap_counters() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("vmstat");
        fs::write(&p, "nr_free_pages 1\npswpin 100\npswpout 250\n").unwrap();
        assert_eq!(VmstatSource { path: p.clone() }.read().unwrap().value, 350);
        fs::write(&p, "nr_free_pages 1\n").unwrap();
        assert!(VmstatSource { path: p }.read().is_err());
    }

    #[test]
    fn real_proc_vmstat_parses_if_present() {
        let p = Path::new("/proc/vmstat");
        if p.exists() {
            let r = VmstatSource { path: p.into() }.read();
            assert!(r.is_ok(), "{r:?}");
        }
    }

    #[test]
    fn discover_coopswap_lists_devices_with_stats() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("b/stats")).unwrap();
        fs::create_dir_all(d.path().join("a/stats")).unwrap();
        fs::create_dir_all(d.path().join("junk")).unwrap();
        let names: Vec<_> = discover_coopswap(d.path()).into_iter().map(|x| x.name).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(discover_coopswap(&d.path().join("missing")).is_empty());
    }

    #[test]
    fn proc_stat_majflt() {
        let p = Path::new("stat");
        let line = "1234 (qemu (vm) x) S 1 1234 1234 0 -1 4194560 500 0 77 0 10 5 0 0 20 0 4 0 100 1000 300";
        assert_eq!(parse_proc_stat_majflt(p, line), Ok(77));
        assert!(parse_proc_stat_majflt(p, "1234 (x) S 1 2").is_err());
        assert!(parse_proc_stat_majflt(p, "garbage").is_err());
        let me = ProcStatSource { path: "/proc/self/stat".into() };
        assert!(me.read().is_ok());
    }

    proptest! {
        #[test]
        fn parse_decimal_accepts_exactly_u64_decimals(s in "\\PC{0,24}") {
            let r = parse_decimal(Path::new("x"), &s);
            let t = s.trim();
            match t.parse::<u64>() {
                Ok(v) if t.bytes().all(|b| b.is_ascii_digit()) => prop_assert_eq!(r, Ok(v)),
                _ => prop_assert!(r.is_err()),
            }
        }

        #[test]
        fn parse_decimal_roundtrip(v in any::<u64>(), pre in "[ \t\n]{0,3}", post in "[ \t\n]{0,3}") {
            prop_assert_eq!(parse_decimal(Path::new("x"), &format!("{pre}{v}{post}")), Ok(v));
        }
    }
}
