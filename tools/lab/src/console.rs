//! The console protocol between the lab's /init and this runner, and the verdict on one host's console.
//!
//! /init prints `OVERCAST-BEGIN <scenario>`, runs the scenario script, then `OVERCAST-END <scenario> rc=<n>`.
//! Scripts report checks as `OVERCAST-CHECK PASS <name>`, `OVERCAST-CHECK FAIL <name> <reason>` or
//! `OVERCAST-CHECK SKIP <name> <reason>`. Markers are recognised anywhere in a line (a printk timestamp or a
//! `guest| ` prefix may precede them). KUnit results come as KTAP, parsed by [`crate::ktap`].

use serde::Serialize;

use crate::ktap::{self, KtapLog};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    Begin { scenario: String },
    End { scenario: String, rc: i32 },
    Check(Check),
    /// `OVERCAST-LINK NIC on|off`: the scenario asks the runner to set the link state of the host's NIC `NIC`
    /// (the QEMU netdev id, `n0` or `n1`) as a provider's cable or switch port would change it.
    Link { nic: String, up: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Fail,
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Check {
    pub status: CheckStatus,
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// Recognises a marker in one console line.
pub fn parse_marker(line: &str) -> Option<Marker> {
    let at = line.find("OVERCAST-")?;
    let text = line[at..].trim_end_matches(['\r', '\n']).trim_end();
    let mut words = text.split_whitespace();
    match words.next()? {
        "OVERCAST-BEGIN" => Some(Marker::Begin { scenario: words.next()?.to_string() }),
        "OVERCAST-END" => {
            let scenario = words.next()?.to_string();
            let rc = words.next()?.strip_prefix("rc=")?.parse().ok()?;
            Some(Marker::End { scenario, rc })
        }
        "OVERCAST-CHECK" => {
            let status = match words.next()? {
                "PASS" => CheckStatus::Pass,
                "FAIL" => CheckStatus::Fail,
                "SKIP" => CheckStatus::Skip,
                _ => return None,
            };
            let name = words.next()?.to_string();
            let reason = words.collect::<Vec<_>>().join(" ");
            Some(Marker::Check(Check { status, name, reason }))
        }
        "OVERCAST-LINK" => {
            let nic = words.next()?;
            if nic.is_empty() || !nic.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
                return None;
            }
            let up = match words.next()? {
                "on" => true,
                "off" => false,
                _ => return None,
            };
            words.next().is_none().then(|| Marker::Link { nic: nic.to_string(), up })
        }
        _ => None,
    }
}

/// What the runner knows about how the emulator ended, besides the console.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFacts {
    /// The timeout fired before the END marker.
    pub timed_out: Option<u64>,
    /// QEMU's exit status when it ended by itself before END (e.g. a kernel panic with -no-reboot).
    pub early_exit: Option<String>,
    /// Judge option: ignore KTAP printed before OVERCAST-BEGIN (the kernel's built-in suites at boot).
    pub skip_boot_ktap: bool,
}

/// `--expect-ktap SUITE[:N]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KtapExpectation {
    pub suite: String,
    pub min_cases: usize,
}

impl std::str::FromStr for KtapExpectation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (suite, n) = match s.split_once(':') {
            Some((a, b)) => (a, b.parse::<usize>().map_err(|_| format!("bad case count in {s:?} (want SUITE[:N])"))?),
            None => (s, 1),
        };
        if suite.is_empty() || suite.contains(char::is_whitespace) {
            return Err(format!("bad suite name in {s:?} (want SUITE[:N])"));
        }
        Ok(KtapExpectation { suite: suite.to_string(), min_cases: n })
    }
}

/// The verdict on one host's console.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub passed: bool,
    pub scenario: String,
    pub begin_seen: bool,
    pub end_rc: Option<i32>,
    pub checks: Vec<Check>,
    pub ktap: KtapLog,
    pub kunit: ktap::Counts,
    /// Why it failed (empty when passed).
    pub reasons: Vec<String>,
}

/// A console line that reports a kernel crash.
pub fn is_crash_line(l: &str) -> bool {
    l.contains("Kernel panic - not syncing")
        || l.contains("BUG: kernel")
        || l.contains("Oops:")
        || l.contains("Panic on CPU")
        || l.contains("rust_panic")
}

fn panic_line(lines: &[String]) -> Option<&String> {
    lines.iter().find(|l| is_crash_line(l))
}

/// The crash line when the kernel crashed while booting: an oops or panic on the console before any
/// `OVERCAST-BEGIN`. Until that marker the init has run no scenario and loaded no Overcast module, so such a crash is
/// the emulated machine's or the kernel's own, not a verdict on our code (the lab boots again once, see `lab::run`).
pub fn boot_crash(lines: &[String]) -> Option<&String> {
    for l in lines {
        if matches!(parse_marker(l), Some(Marker::Begin { .. })) {
            return None;
        }
        if is_crash_line(l) {
            return Some(l);
        }
    }
    None
}

/// Judges a console transcript. Fails on: a missing BEGIN/END marker (crash or timeout), a non-zero rc,
/// any FAIL check, any failed, unfinished or missing KUnit case, an unmet `--expect-ktap`.
pub fn judge(scenario: &str, lines: &[String], facts: &RunFacts, expect: &[KtapExpectation]) -> Verdict {
    let mut begin_seen = false;
    let mut end_rc = None;
    let mut checks: Vec<Check> = Vec::new();
    let mut parser = ktap::Parser::new();
    for l in lines {
        if begin_seen || !facts.skip_boot_ktap {
            parser.feed(l);
        }
        match parse_marker(l) {
            Some(Marker::Begin { scenario: s }) if s == scenario => begin_seen = true,
            Some(Marker::End { scenario: s, rc }) if s == scenario => end_rc = Some(rc),
            // The same line may reach the console twice (printk and dmesg); count it once.
            Some(Marker::Check(c)) if !checks.contains(&c) => checks.push(c),
            _ => {}
        }
    }
    let ktap = parser.finish();
    let mut reasons = Vec::new();
    if end_rc.is_none() {
        let why = if let Some(t) = facts.timed_out {
            format!("timeout: no OVERCAST-END {scenario} within {t} s")
        } else if let Some(e) = &facts.early_exit {
            format!("QEMU ended ({e}) before OVERCAST-END {scenario}")
        } else {
            format!("no OVERCAST-END {scenario} marker on the console")
        };
        reasons.push(why);
        if !begin_seen {
            reasons.push(format!("the scenario never started (no OVERCAST-BEGIN {scenario}): boot failed?"));
        }
        if let Some(p) = panic_line(lines) {
            reasons.push(format!("console shows: {}", p.trim()));
        }
    }
    if let Some(rc) = end_rc {
        if rc != 0 {
            reasons.push(format!("scenario {scenario} exited with rc={rc}"));
        }
    }
    for c in &checks {
        if c.status == CheckStatus::Fail {
            reasons.push(format!("check failed: {} {}", c.name, c.reason).trim_end().to_string());
        }
    }
    reasons.extend(ktap.problems());
    for e in expect {
        match ktap.suite_cases(&e.suite) {
            None => reasons.push(format!("expected KUnit suite {} did not run", e.suite)),
            Some(n) if n < e.min_cases => {
                reasons.push(format!("KUnit suite {} ran {n} case(s), expected at least {}", e.suite, e.min_cases))
            }
            Some(_) => {}
        }
    }
    let kunit = ktap.counts();
    Verdict { passed: reasons.is_empty(), scenario: scenario.to_string(), begin_seen, end_rc, checks, ktap, kunit, reasons }
}

/// One summary line per check and per KUnit case: `PASS|FAIL|SKIP|MISS <kind> <name> [reason]`.
pub fn summary_lines(v: &Verdict) -> Vec<String> {
    let mut out = Vec::new();
    for (path, t) in v.ktap.unique_cases() {
        let s = match t.status {
            ktap::Status::Pass => "PASS",
            ktap::Status::Fail => "FAIL",
            ktap::Status::Skip => "SKIP",
            ktap::Status::Incomplete => "MISS",
        };
        let d = t.directive.as_deref().map(|d| format!(" # {d}")).unwrap_or_default();
        out.push(format!("{s} kunit {path}{d}"));
    }
    for c in &v.checks {
        let s = match c.status {
            CheckStatus::Pass => "PASS",
            CheckStatus::Fail => "FAIL",
            CheckStatus::Skip => "SKIP",
        };
        out.push(format!("{s} check {} {}", c.name, c.reason).trim_end().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
    }

    #[test]
    fn markers() {
        assert_eq!(parse_marker("OVERCAST-BEGIN smoke"), Some(Marker::Begin { scenario: "smoke".into() }));
        assert_eq!(parse_marker("OVERCAST-END smoke rc=3\r"), Some(Marker::End { scenario: "smoke".into(), rc: 3 }));
        assert_eq!(parse_marker("[ 3.1] OVERCAST-LINK n0 off\r"), Some(Marker::Link { nic: "n0".into(), up: false }));
        assert_eq!(parse_marker("OVERCAST-LINK n1 on"), Some(Marker::Link { nic: "n1".into(), up: true }));
        for bad in ["OVERCAST-LINK n0", "OVERCAST-LINK n0 down", "OVERCAST-LINK n0;quit off", "OVERCAST-LINK n0 on x"] {
            assert_eq!(parse_marker(bad), None, "{bad}");
        }
        assert_eq!(
            parse_marker("[  1.2] OVERCAST-CHECK FAIL ping no reply from 10.99.0.2"),
            Some(Marker::Check(Check {
                status: CheckStatus::Fail,
                name: "ping".into(),
                reason: "no reply from 10.99.0.2".into()
            }))
        );
        assert_eq!(
            parse_marker("guest| OVERCAST-CHECK PASS guest-up"),
            Some(Marker::Check(Check { status: CheckStatus::Pass, name: "guest-up".into(), reason: String::new() }))
        );
        assert_eq!(parse_marker("OVERCAST-END smoke"), None);
        assert_eq!(parse_marker("OVERCAST-END smoke rc=x"), None);
        assert_eq!(parse_marker("OVERCAST-CHECK MAYBE x"), None);
        assert_eq!(parse_marker("nothing here"), None);
    }

    const GOOD: &str = "\
Linux version 7.3.4
OVERCAST-BEGIN smoke
KTAP version 1
1..1
    KTAP version 1
    # Subtest: vwire
    1..2
    ok 1 a
    ok 2 b
ok 1 vwire
OVERCAST-CHECK PASS insmod-vwire
OVERCAST-CHECK PASS insmod-vwire
OVERCAST-END smoke rc=0
";

    #[test]
    fn clean_run_passes() {
        let v = judge("smoke", &lines(GOOD), &RunFacts::default(), &["vwire:2".parse().unwrap()]);
        assert!(v.passed, "{:?}", v.reasons);
        assert_eq!(v.checks.len(), 1, "duplicate check lines count once");
        assert_eq!(v.kunit.pass, 2);
        assert_eq!(
            summary_lines(&v),
            vec!["PASS kunit vwire/a", "PASS kunit vwire/b", "PASS check insmod-vwire"]
        );
    }

    #[test]
    fn expectation_not_met() {
        let v = judge("smoke", &lines(GOOD), &RunFacts::default(), &["vwire:3".parse().unwrap(), "coopswap".parse().unwrap()]);
        assert!(!v.passed);
        assert_eq!(
            v.reasons,
            vec![
                "KUnit suite vwire ran 2 case(s), expected at least 3".to_string(),
                "expected KUnit suite coopswap did not run".to_string()
            ]
        );
    }

    #[test]
    fn nonzero_rc_and_failed_check_fail() {
        let text = GOOD.replace("rc=0", "rc=1").replace("PASS insmod-vwire", "FAIL insmod-vwire EEXIST");
        let v = judge("smoke", &lines(&text), &RunFacts::default(), &[]);
        assert!(!v.passed);
        assert!(v.reasons.contains(&"scenario smoke exited with rc=1".to_string()));
        assert!(v.reasons.contains(&"check failed: insmod-vwire EEXIST".to_string()));
    }

    #[test]
    fn timeout_and_panic_are_explained() {
        let text = "OVERCAST-BEGIN smoke\n[ 3.0] Kernel panic - not syncing: Attempted to kill init!\n";
        let v = judge("smoke", &lines(text), &RunFacts { timed_out: Some(60), ..RunFacts::default() }, &[]);
        assert!(!v.passed);
        assert_eq!(v.reasons[0], "timeout: no OVERCAST-END smoke within 60 s");
        assert!(v.reasons[1].contains("Kernel panic"));
        let v = judge("smoke", &[], &RunFacts { early_exit: Some("exit status 1".into()), ..RunFacts::default() }, &[]);
        assert_eq!(v.reasons[0], "QEMU ended (exit status 1) before OVERCAST-END smoke");
        assert!(v.reasons[1].contains("never started"));
    }

    #[test]
    fn only_a_crash_before_the_scenario_is_a_boot_crash() {
        let boot = "[ 3.8] Oops: int3: 0000 [#1] SMP NOPTI\n[ 3.9] Kernel panic - not syncing: Fatal exception\n";
        assert_eq!(boot_crash(&lines(boot)).map(String::as_str), Some("[ 3.8] Oops: int3: 0000 [#1] SMP NOPTI"));
        let during = "OVERCAST-BEGIN smoke\n[ 9.0] BUG: kernel NULL pointer dereference\n";
        assert_eq!(boot_crash(&lines(during)), None);
        assert_eq!(boot_crash(&lines(GOOD)), None);
        assert_eq!(boot_crash(&[]), None);
    }

    #[test]
    fn boot_ktap_can_be_ignored() {
        let boot = "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: builtin\n    1..1\n    not ok 1 x\nnot ok 1 builtin\n";
        let text = format!("{boot}{GOOD}");
        let v = judge("smoke", &lines(&text), &RunFacts::default(), &[]);
        assert!(!v.passed);
        assert_eq!(v.kunit.fail, 1);
        let facts = RunFacts { skip_boot_ktap: true, ..RunFacts::default() };
        let v = judge("smoke", &lines(&text), &facts, &["vwire:2".parse().unwrap()]);
        assert!(v.passed, "{:?}", v.reasons);
        assert_eq!((v.kunit.pass, v.kunit.fail), (2, 0));
    }

    #[test]
    fn end_marker_of_another_scenario_does_not_count() {
        let v = judge("smoke", &lines("OVERCAST-BEGIN smoke\nOVERCAST-END other rc=0\n"), &RunFacts::default(), &[]);
        assert!(!v.passed);
    }

    #[test]
    fn kunit_failure_fails_the_run() {
        let text = GOOD.replace("    ok 2 b", "    not ok 2 b").replace("ok 1 vwire", "not ok 1 vwire");
        let v = judge("smoke", &lines(&text), &RunFacts::default(), &[]);
        assert_eq!(v.reasons, vec!["KUnit case failed: vwire/b".to_string()]);
    }

    #[test]
    fn expectation_syntax() {
        assert_eq!("s:4".parse::<KtapExpectation>().unwrap(), KtapExpectation { suite: "s".into(), min_cases: 4 });
        assert_eq!("s".parse::<KtapExpectation>().unwrap().min_cases, 1);
        assert!("s:x".parse::<KtapExpectation>().is_err());
        assert!(":3".parse::<KtapExpectation>().is_err());
    }

    proptest! {
        #[test]
        fn check_names_roundtrip(name in "[a-z0-9_.-]{1,20}", reason in "[a-z ]{0,30}") {
            let line = format!("OVERCAST-CHECK FAIL {name} {reason}");
            match parse_marker(&line) {
                Some(Marker::Check(c)) => {
                    prop_assert_eq!(c.name, name);
                    prop_assert_eq!(c.reason, reason.split_whitespace().collect::<Vec<_>>().join(" "));
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }

        #[test]
        fn marker_parser_never_panics(s in "[ -~]{0,60}") {
            let _ = parse_marker(&s);
            let _ = parse_marker(&format!("OVERCAST-{s}"));
        }
    }
}
