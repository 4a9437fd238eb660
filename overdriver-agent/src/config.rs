//! TOML configuration. Unknown keys, wrong types and nonsensical values are refused with the line and the field
//! named, so a typo can never silently fall back to a default.

use crate::detector::DetectorParams;
use crate::profiler::ProfilerParams;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AgentCfg {
    /// Monitoring interval, seconds (paper: 10).
    pub interval_secs: u64,
    /// Where profiles, status and recorded episodes are kept.
    pub state_dir: PathBuf,
    /// Log actions instead of running them.
    pub dry_run: bool,
    /// Rates above this are treated as garbage counters.
    pub max_rate: f64,
    /// Discovered VMs unreadable for this many intervals are forgotten.
    pub vanish_intervals: u64,
}

impl Default for AgentCfg {
    fn default() -> Self {
        AgentCfg {
            interval_secs: 10,
            state_dir: PathBuf::from("/var/lib/overdriver"),
            dry_run: false,
            max_rate: crate::rate::DEFAULT_MAX_RATE,
            vanish_intervals: 3,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorCfg {
    pub overload_rate: f64,
    pub window: usize,
    pub window_overloaded: usize,
    pub sustained_secs: u64,
    pub quiet_intervals: usize,
}

impl Default for DetectorCfg {
    fn default() -> Self {
        let d = DetectorParams::default();
        DetectorCfg {
            overload_rate: d.overload_rate,
            window: d.window,
            window_overloaded: d.window_overloaded,
            sustained_secs: 120,
            quiet_intervals: d.quiet_intervals,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProfilerCfg {
    pub base_observations: u64,
    pub min_threshold_secs: u64,
}

impl Default for ProfilerCfg {
    fn default() -> Self {
        let p = ProfilerParams::default();
        ProfilerCfg { base_observations: p.base_observations, min_threshold_secs: p.min_threshold_secs }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ActionsCfg {
    /// Run at the start of an overload to make sure the VM swaps to cooperative swap; empty = nothing to run.
    pub coopswap: String,
    /// Run on sustained overload.
    pub migrate: String,
    pub timeout_secs: u64,
    pub retry_base_secs: u64,
    pub retry_max_secs: u64,
    pub max_attempts: u32,
}

impl Default for ActionsCfg {
    fn default() -> Self {
        ActionsCfg {
            coopswap: String::new(),
            migrate: "xl migrate {domain} {target}".into(),
            timeout_secs: 900,
            retry_base_secs: 30,
            retry_max_secs: 600,
            max_attempts: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostCfg {
    pub host: String,
    pub free_mib: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TargetsCfg {
    /// Static excess-space advertisements.
    pub hosts: Vec<HostCfg>,
    /// A file of `host free_mib` lines, re-read before every migration.
    pub file: Option<PathBuf>,
    /// This host's name, never chosen as a target.
    pub self_host: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsCfg {
    /// Prometheus text file written after every tick.
    pub file: Option<PathBuf>,
    /// Loopback address:port to serve the metrics on.
    pub listen: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoverCfg {
    /// Scan this directory for coopswap devices (one per VM).
    pub coopswap_root: Option<PathBuf>,
    /// Scan this directory for `vbd-<domid>-<devid>` back-end devices.
    pub blkback_root: Option<PathBuf>,
    /// Only this device id (the VMs' swap disk), e.g. 51728 for xvdb.
    pub blkback_devid: Option<u32>,
    /// Memory size assumed for discovered VMs (MiB), used to pick a migration target.
    pub memory_mib: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum SourceCfg {
    Coopswap { dir: PathBuf },
    Blkback { dir: PathBuf },
    Cgroup { path: PathBuf },
    Vmstat { path: Option<PathBuf> },
    Procstat { path: PathBuf },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VmCfg {
    pub name: String,
    /// Name or id given to the action commands as `{domain}`; defaults to `name`.
    pub domain: Option<String>,
    /// The VM's requested memory (MiB): the space a migration target must have.
    pub memory_mib: u64,
    pub source: SourceCfg,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub agent: AgentCfg,
    pub detector: DetectorCfg,
    pub profiler: ProfilerCfg,
    pub actions: ActionsCfg,
    pub targets: TargetsCfg,
    pub metrics: MetricsCfg,
    pub discover: DiscoverCfg,
    #[serde(rename = "vm")]
    pub vms: Vec<VmCfg>,
}

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config {path}: line {line}, column {column}: {message}\n  {line}| {text}")]
    Parse { path: String, line: usize, column: usize, message: String, text: String },
    #[error("config {path}: {where_}field `{field}`: {message}")]
    Invalid { path: String, where_: String, field: String, message: String },
}

/// Placeholders an action template may use.
pub const PLACEHOLDERS: &[&str] = &["{vm}", "{domain}", "{target}", "{memory_mib}"];

/// 1-based line containing byte offset `off`.
fn line_col(text: &str, off: usize) -> (usize, usize, String) {
    let off = off.min(text.len());
    let before = text.get(..off).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = off - start + 1;
    let text_line = text.lines().nth(line - 1).unwrap_or("").to_string();
    (line, col, text_line)
}

/// Find the line of `key` inside table `[section]` (or `[[section]]` number `index`), for semantic errors.
fn find_key_line(text: &str, section: &str, index: Option<usize>, key: &str) -> Option<usize> {
    let mut in_section = section.is_empty();
    let mut seen = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.starts_with('[') {
            let name = l.trim_matches(|c| c == '[' || c == ']').trim();
            let base = name.split('.').next().unwrap_or("");
            if base == section || name == section {
                if l.starts_with("[[") && base == section && name == section {
                    seen += 1;
                    in_section = index.is_none_or(|x| x + 1 == seen);
                } else if name == section {
                    in_section = index.is_none();
                }
            } else {
                in_section = false;
            }
            continue;
        }
        if in_section {
            if let Some(rest) = l.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    return Some(i + 1);
                }
            }
        }
    }
    None
}

fn check_template(t: &str) -> Result<(), String> {
    let words = crate::util::split_words(t)?;
    for w in &words {
        let mut rest = w.clone();
        for p in PLACEHOLDERS {
            rest = rest.replace(p, "");
        }
        if let Some(i) = rest.find('{') {
            return Err(format!("unknown placeholder in `{w}` near `{}`; allowed: {}", &rest[i..], PLACEHOLDERS.join(" ")));
        }
    }
    Ok(())
}

impl Config {
    /// Parse and validate configuration text; `path` is used in messages only.
    pub fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, column, t) = e.span().map_or((0, 0, String::new()), |s| line_col(text, s.start));
            ConfigError::Parse { path: path.into(), line, column, message: e.message().trim().to_string(), text: t }
        })?;
        cfg.validate(text, path)?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Config::parse(&text, &path.display().to_string())
    }

    fn validate(&self, text: &str, path: &str) -> Result<(), ConfigError> {
        let err = |section: &str, index: Option<usize>, field: &str, message: String| {
            let where_ = match find_key_line(text, section, index, field) {
                Some(l) => format!("line {l}, "),
                None => String::new(),
            };
            let full = match index {
                Some(i) => format!("{section}[{i}].{field}"),
                None if section.is_empty() => field.to_string(),
                None => format!("{section}.{field}"),
            };
            ConfigError::Invalid { path: path.into(), where_, field: full, message }
        };
        let a = &self.agent;
        if a.interval_secs == 0 {
            return Err(err("agent", None, "interval_secs", "must be at least 1".into()));
        }
        if !(a.max_rate.is_finite() && a.max_rate > 0.0) {
            return Err(err("agent", None, "max_rate", "must be a positive number".into()));
        }
        let d = &self.detector;
        if !(d.overload_rate.is_finite() && d.overload_rate >= 0.0) {
            return Err(err("detector", None, "overload_rate", "must be a non-negative number".into()));
        }
        if d.window == 0 || d.window > 10_000 {
            return Err(err("detector", None, "window", "must be between 1 and 10000 intervals".into()));
        }
        if d.window_overloaded == 0 || d.window_overloaded > d.window {
            return Err(err(
                "detector",
                None,
                "window_overloaded",
                format!("must be between 1 and window ({})", d.window),
            ));
        }
        if d.quiet_intervals == 0 {
            return Err(err("detector", None, "quiet_intervals", "must be at least 1".into()));
        }
        if d.sustained_secs == 0 {
            return Err(err("detector", None, "sustained_secs", "must be at least 1".into()));
        }
        if self.profiler.min_threshold_secs > d.sustained_secs {
            return Err(err(
                "profiler",
                None,
                "min_threshold_secs",
                format!("must not exceed detector.sustained_secs ({})", d.sustained_secs),
            ));
        }
        let ac = &self.actions;
        if let Err(m) = check_template(&ac.coopswap) {
            return Err(err("actions", None, "coopswap", m));
        }
        if let Err(m) = check_template(&ac.migrate) {
            return Err(err("actions", None, "migrate", m));
        }
        if crate::util::split_words(&ac.migrate).map(|w| w.is_empty()).unwrap_or(true) {
            return Err(err("actions", None, "migrate", "must not be empty".into()));
        }
        if ac.timeout_secs == 0 {
            return Err(err("actions", None, "timeout_secs", "must be at least 1".into()));
        }
        if ac.max_attempts == 0 {
            return Err(err("actions", None, "max_attempts", "must be at least 1".into()));
        }
        if ac.retry_max_secs < ac.retry_base_secs {
            return Err(err("actions", None, "retry_max_secs", "must be at least retry_base_secs".into()));
        }
        if let Some(l) = &self.metrics.listen {
            match l.parse::<std::net::SocketAddr>() {
                Ok(a) if a.ip().is_loopback() => {}
                Ok(_) => return Err(err("metrics", None, "listen", "must be a loopback address".into())),
                Err(e) => return Err(err("metrics", None, "listen", format!("not an address:port: {e}"))),
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, vm) in self.vms.iter().enumerate() {
            if vm.name.is_empty() || vm.name.chars().any(|c| c.is_whitespace() || c == '"' || c == '\\') {
                return Err(err("vm", Some(i), "name", "must be non-empty without spaces, quotes or backslashes".into()));
            }
            if !names.insert(vm.name.clone()) {
                return Err(err("vm", Some(i), "name", format!("duplicate VM name `{}`", vm.name)));
            }
            if vm.memory_mib == 0 {
                return Err(err("vm", Some(i), "memory_mib", "must be at least 1".into()));
            }
        }
        if (self.discover.coopswap_root.is_some() || self.discover.blkback_root.is_some())
            && self.discover.memory_mib == 0
        {
            return Err(err("discover", None, "memory_mib", "must be set (MiB) when discovery is enabled".into()));
        }
        Ok(())
    }

    pub fn detector_params(&self) -> DetectorParams {
        DetectorParams {
            overload_rate: self.detector.overload_rate,
            window: self.detector.window,
            window_overloaded: self.detector.window_overloaded,
            quiet_intervals: self.detector.quiet_intervals,
        }
    }

    pub fn profiler_params(&self) -> ProfilerParams {
        ProfilerParams {
            initial_threshold_secs: self.detector.sustained_secs,
            bucket_secs: self.agent.interval_secs,
            base_observations: self.profiler.base_observations,
            min_threshold_secs: self.profiler.min_threshold_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse(t, "test.toml")
    }

    #[test]
    fn empty_config_gives_paper_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.agent.interval_secs, 10);
        assert_eq!(c.detector.overload_rate, 200.0);
        assert_eq!((c.detector.window_overloaded, c.detector.window), (8, 12));
        assert_eq!(c.detector.sustained_secs, 120);
        assert_eq!(c.actions.migrate, "xl migrate {domain} {target}");
    }

    #[test]
    fn full_config_parses() {
        let c = parse(
            r#"
[agent]
interval_secs = 5
state_dir = "/tmp/od"
dry_run = true
[detector]
overload_rate = 150.5
[actions]
coopswap = "coopswapctl attach {vm}"
migrate = "virsh migrate --live {domain} qemu+ssh://{target}/system"
[targets]
hosts = [{ host = "h2", free_mib = 4096 }]
self_host = "h1"
[metrics]
listen = "127.0.0.1:9465"
[[vm]]
name = "web1"
memory_mib = 1024
source = { kind = "coopswap", dir = "/sys/kernel/coopswap/cs0" }
[[vm]]
name = "db"
domain = "7"
memory_mib = 2048
source = { kind = "blkback", dir = "/sys/bus/xen-backend/devices/vbd-7-51728" }
[[vm]]
name = "host"
memory_mib = 1
source = { kind = "vmstat" }
"#,
        )
        .unwrap();
        assert_eq!(c.vms.len(), 3);
        assert_eq!(c.vms[1].source, SourceCfg::Blkback { dir: "/sys/bus/xen-backend/devices/vbd-7-51728".into() });
        assert_eq!(c.vms[2].source, SourceCfg::Vmstat { path: None });
        assert_eq!(c.targets.hosts[0].free_mib, 4096);
    }

    #[test]
    fn type_error_names_line_and_field() {
        let e = parse("[agent]\ninterval_secs = 10\n\n[detector]\nwindow = \"twelve\"\n").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("line 5"), "{s}");
        assert!(s.contains("window"), "{s}");
    }

    #[test]
    fn unknown_field_is_refused_with_line() {
        let e = parse("[detector]\noverload_rate = 200\nwindw = 12\n").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("line 3") && s.contains("windw"), "{s}");
    }

    #[test]
    fn unknown_source_kind_is_refused() {
        let e = parse("[[vm]]\nname = \"a\"\nmemory_mib = 1\nsource = { kind = \"nfs\", dir = \"/x\" }\n").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("line 4") && s.contains("nfs"), "{s}");
    }

    #[test]
    fn semantic_errors_name_line_and_field() {
        let e = parse("[detector]\nwindow = 12\nwindow_overloaded = 13\n").unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("detector.window_overloaded"), "{e}");
        let e = parse("[actions]\nmigrate = \"xl migrate {domian} {target}\"\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("actions.migrate") && e.contains("{domian}"), "{e}");
        let e = parse("[metrics]\nlisten = \"0.0.0.0:9000\"\n").unwrap_err().to_string();
        assert!(e.contains("loopback"), "{e}");
        let e = parse(
            "[[vm]]\nname = \"a\"\nmemory_mib = 1\nsource = { kind = \"vmstat\" }\n[[vm]]\nname = \"a\"\nmemory_mib = 1\nsource = { kind = \"vmstat\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 6") && e.contains("vm[1].name") && e.contains("duplicate"), "{e}");
        let e = parse("[agent]\ninterval_secs = 0\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("agent.interval_secs"), "{e}");
    }

    #[test]
    fn example_config_is_valid() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("overdriver.example.toml");
        let c = Config::load(&p).unwrap();
        assert!(!c.vms.is_empty());
    }
}
