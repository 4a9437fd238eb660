//! Pure helpers of `ovc-netbench`: argument parsing and latency statistics, tested on the host.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Summary of a set of request/response round-trip times.
#[derive(Debug, Clone, PartialEq)]
pub struct RttStats {
    /// Number of samples.
    pub n: usize,
    /// Smallest sample, microseconds.
    pub min_us: f64,
    /// Mean, microseconds.
    pub avg_us: f64,
    /// Median (nearest rank), microseconds.
    pub p50_us: f64,
    /// 99th percentile (nearest rank), microseconds.
    pub p99_us: f64,
    /// Largest sample, microseconds.
    pub max_us: f64,
}

/// Nearest-rank percentile `p` (0 < p ≤ 100) of `sorted`, which must be sorted ascending and non-empty.
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    // rank = ceil(p/100 * n), 1-based, clamped to 1..=n.
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

impl RttStats {
    /// Statistics of `samples`; `None` when there are none.
    pub fn from_samples(samples: &[Duration]) -> Option<RttStats> {
        if samples.is_empty() {
            return None;
        }
        let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        us.sort_by(f64::total_cmp);
        let sum: f64 = us.iter().sum();
        Some(RttStats {
            n: us.len(),
            min_us: us[0],
            avg_us: sum / us.len() as f64,
            p50_us: nearest_rank(&us, 50.0),
            p99_us: nearest_rank(&us, 99.0),
            max_us: us[us.len() - 1],
        })
    }
}

impl fmt::Display for RttStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n={} min_us={:.1} avg_us={:.1} p50_us={:.1} p99_us={:.1} max_us={:.1}",
            self.n, self.min_us, self.avg_us, self.p50_us, self.p99_us, self.max_us
        )
    }
}

/// Command-line options: `--key value` pairs and positional arguments, in order.
#[derive(Debug, Default, PartialEq)]
pub struct Args {
    /// `--key value` options (the last one wins).
    pub opts: BTreeMap<String, String>,
    /// Everything that is not an option or its value.
    pub positional: Vec<String>,
}

/// An error in the command line, with a message for the operator.
#[derive(Debug, PartialEq)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

impl Args {
    /// Splits `args` into `--key value` options and positional arguments; every option takes a value.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Args, ArgError> {
        let mut out = Args::default();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            if let Some(key) = a.strip_prefix("--") {
                if key.is_empty() {
                    return Err(ArgError("'--' is not an option".into()));
                }
                let v = it.next().ok_or_else(|| ArgError(format!("--{key} needs a value")))?;
                out.opts.insert(key.to_string(), v);
            } else {
                out.positional.push(a);
            }
        }
        Ok(out)
    }

    /// Option `key` parsed as `T`, or `default` when absent.
    pub fn get<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, ArgError> {
        match self.opts.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| ArgError(format!("--{key}: cannot parse '{v}'"))),
        }
    }

    /// Fails naming the first option that is not in `known`.
    pub fn only(&self, known: &[&str]) -> Result<(), ArgError> {
        match self.opts.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(ArgError(format!("unknown option --{k} (known: {})", known.join(", ")))),
            None => Ok(()),
        }
    }
}

/// The aggregate `cpu` line of /proc/stat without its label (user nice system idle iowait irq softirq steal ...).
pub fn cpu_line(proc_stat: &str) -> Option<&str> {
    proc_stat.lines().find_map(|l| l.strip_prefix("cpu ")).map(str::trim)
}

/// Counter `name` of protocol `proto` ("Udp", "Ip", ...) in /proc/net/snmp's header-line/value-line pairs.
pub fn snmp_counter(snmp: &str, proto: &str, name: &str) -> Option<u64> {
    let prefix = format!("{proto}:");
    let mut lines = snmp.lines().filter(|l| l.starts_with(&prefix));
    while let (Some(head), Some(vals)) = (lines.next(), lines.next()) {
        if let Some(i) = head.split_whitespace().position(|w| w == name) {
            return vals.split_whitespace().nth(i).and_then(|v| v.parse().ok());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&x| Duration::from_micros(x)).collect()
    }

    #[test]
    fn stats_of_nothing_is_none() {
        assert_eq!(RttStats::from_samples(&[]), None);
    }

    #[test]
    fn stats_nearest_rank() {
        let s = RttStats::from_samples(&us(&(1..=100).rev().collect::<Vec<_>>())).unwrap();
        assert_eq!((s.n, s.min_us, s.p50_us, s.p99_us, s.max_us), (100, 1.0, 50.0, 99.0, 100.0));
        assert!((s.avg_us - 50.5).abs() < 1e-9);
        let one = RttStats::from_samples(&us(&[7])).unwrap();
        assert_eq!((one.p50_us, one.p99_us), (7.0, 7.0));
        let two = RttStats::from_samples(&us(&[10, 30])).unwrap();
        assert_eq!((two.p50_us, two.p99_us), (10.0, 30.0));
    }

    #[test]
    fn stats_text_is_key_value() {
        let s = RttStats::from_samples(&us(&[100, 200])).unwrap();
        assert_eq!(s.to_string(), "n=2 min_us=100.0 avg_us=150.0 p50_us=100.0 p99_us=200.0 max_us=200.0");
    }

    #[test]
    fn args_split() {
        let a = Args::parse(["--port", "9", "10.0.0.1", "--size", "1400", "10.0.0.2"].map(String::from)).unwrap();
        assert_eq!(a.positional, vec!["10.0.0.1", "10.0.0.2"]);
        assert_eq!(a.get("port", 0u16), Ok(9));
        assert_eq!(a.get("secs", 5u32), Ok(5));
        assert!(a.only(&["port", "size"]).is_ok());
        assert!(a.only(&["port"]).is_err());
        assert!(a.get::<u16>("size", 0).is_err() || a.get::<u16>("size", 0) == Ok(1400));
        assert!(Args::parse(["--port"].map(String::from)).is_err());
        assert!(Args::parse(["--", "x"].map(String::from)).is_err());
        let bad = Args::parse(["--port", "x"].map(String::from)).unwrap();
        assert!(bad.get("port", 0u16).is_err());
    }

    #[test]
    fn snmp_counter_found() {
        let s = "Ip: Forwarding DefaultTTL\nIp: 1 64\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors\nUdp: 10 2 3 4 5\n";
        assert_eq!(snmp_counter(s, "Udp", "RcvbufErrors"), Some(5));
        assert_eq!(snmp_counter(s, "Udp", "InDatagrams"), Some(10));
        assert_eq!(snmp_counter(s, "Ip", "DefaultTTL"), Some(64));
        assert_eq!(snmp_counter(s, "Udp", "Nope"), None);
        assert_eq!(snmp_counter(s, "Tcp", "InSegs"), None);
    }

    #[test]
    fn cpu_line_found() {
        let s = "cpu  10 0 5 100 1 0 2 0 0 0\ncpu0 10 0 5 100 1 0 2 0 0 0\nintr 1\n";
        assert_eq!(cpu_line(s), Some("10 0 5 100 1 0 2 0 0 0"));
        assert_eq!(cpu_line("intr 1\n"), None);
    }
}
