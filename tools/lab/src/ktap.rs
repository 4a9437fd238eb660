//! A KTAP parser for KUnit output as it reaches the lab's serial console (Documentation/dev-tools/ktap.rst).
//!
//! Input is the console, line by line: KTAP lines may carry a printk timestamp (`[    1.234567] `) when they
//! come from `dmesg`, and are mixed with unrelated output. A KTAP *document* starts with `KTAP version N`
//! (or `TAP version N`) at indentation 0; nested subtests are indented by four spaces per level and announced
//! by their own version line and/or `# Subtest: name`. Result lines (`ok N name`, `not ok N name`, optional
//! `# SKIP reason`) close the subtest one level deeper. Plans are `1..N`.
//!
//! The parser never fails: what it cannot place it ignores, and what is cut short (a crash in the middle of a
//! suite, a plan with fewer results than announced) is recorded so that [`KtapLog::problems`] reports it.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
    /// The test started (its subtest header was printed) but its result line never came.
    Incomplete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KtapTest {
    pub number: u32,
    pub name: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directive: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subtests: Vec<KtapTest>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KtapDoc {
    pub plan: Option<u32>,
    pub tests: Vec<KtapTest>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KtapLog {
    pub docs: Vec<KtapDoc>,
}

/// Leaf-case totals over a log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub pass: u32,
    pub fail: u32,
    pub skip: u32,
    /// Started but never finished, or announced by a plan but never printed.
    pub missing: u32,
}

/// Removes printk decorations: `[    1.234567] ` and `[    T1] ` (PRINTK_CALLER) groups, then one space.
pub fn strip_printk_prefix(line: &str) -> &str {
    let mut rest = line;
    let mut stripped = false;
    while let Some(after) = rest.strip_prefix('[') {
        let Some(close) = after.find(']') else { break };
        let inner = &after[..close];
        if inner.is_empty() || !inner.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '.' || c == 'T' || c == 'C') {
            break;
        }
        rest = &after[close + 1..];
        stripped = true;
    }
    if stripped {
        rest.strip_prefix(' ').unwrap_or(rest)
    } else {
        line
    }
}

#[derive(Debug)]
struct Frame {
    level: usize,
    name: Option<String>,
    plan: Option<u32>,
    results: Vec<KtapTest>,
}

impl Frame {
    fn new(level: usize) -> Self {
        Frame { level, name: None, plan: None, results: Vec::new() }
    }
}

#[derive(Debug, Default)]
pub struct Parser {
    stack: Vec<Frame>,
    log: KtapLog,
}

enum Line<'a> {
    Version,
    Subtest(&'a str),
    Plan(u32),
    Result { ok: bool, number: u32, name: &'a str, directive: Option<&'a str> },
    Other,
}

fn classify(content: &str) -> Line<'_> {
    if content.starts_with("KTAP version ") || content.starts_with("TAP version ") {
        return Line::Version;
    }
    if let Some(name) = content.strip_prefix("# Subtest:") {
        return Line::Subtest(name.trim());
    }
    if let Some(n) = content.strip_prefix("1..") {
        if let Ok(n) = n.trim_end().parse::<u32>() {
            return Line::Plan(n);
        }
        return Line::Other;
    }
    let (ok, rest) = if let Some(r) = content.strip_prefix("ok ") {
        (true, r)
    } else if let Some(r) = content.strip_prefix("not ok ") {
        (false, r)
    } else {
        return Line::Other;
    };
    let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let Ok(number) = rest[..digits].parse::<u32>() else { return Line::Other };
    let mut desc = rest[digits..].trim_start();
    desc = desc.strip_prefix("- ").unwrap_or(desc);
    let (name, directive) = match desc.find(" # ").map(|i| (&desc[..i], &desc[i + 3..])) {
        Some((n, d)) => (n, Some(d.trim())),
        None => match desc.strip_prefix("# ") {
            Some(d) => ("", Some(d.trim())),
            None => (desc, None),
        },
    };
    Line::Result { ok, number, name: name.trim(), directive }
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Closes the innermost frame; `result` is its result line, or `None` if it never came.
    fn close_top(&mut self, result: Option<(bool, u32, String, Option<String>)>) {
        let Some(frame) = self.stack.pop() else { return };
        if frame.level == 0 && self.stack.is_empty() && result.is_none() {
            self.log.docs.push(KtapDoc { plan: frame.plan, tests: frame.results });
            return;
        }
        let (status, number, name, directive) = match result {
            Some((ok, number, name, directive)) => {
                let skip = directive.as_deref().is_some_and(|d| {
                    let d = d.to_ascii_uppercase();
                    d.starts_with("SKIP") || d.starts_with("TODO")
                });
                let status = if skip {
                    Status::Skip
                } else if ok {
                    Status::Pass
                } else {
                    Status::Fail
                };
                let name = if name.is_empty() { frame.name.clone().unwrap_or_default() } else { name };
                (status, number, name, directive)
            }
            None => {
                let parent_next = self.stack.last().map_or(1, |p| p.results.len() as u32 + 1);
                (Status::Incomplete, parent_next, frame.name.clone().unwrap_or_else(|| "<unnamed>".into()), None)
            }
        };
        let test = KtapTest { number, name, status, directive, plan: frame.plan, subtests: frame.results };
        match self.stack.last_mut() {
            Some(parent) => parent.results.push(test),
            // A nested frame with no document around it (output started mid-document).
            None => self.log.docs.push(KtapDoc { plan: None, tests: vec![test] }),
        }
    }

    /// Ensures the innermost frame is at `level`, closing deeper unfinished frames and opening implicit ones.
    fn frame_at(&mut self, level: usize) {
        while self.stack.last().is_some_and(|f| f.level > level) {
            self.close_top(None);
        }
        if self.stack.last().is_none_or(|f| f.level < level) {
            self.stack.push(Frame::new(level));
        }
    }

    pub fn feed(&mut self, raw: &str) {
        let line = strip_printk_prefix(raw.trim_end_matches(['\r', '\n']));
        let spaces = line.len() - line.trim_start_matches(' ').len();
        if spaces % 4 != 0 {
            return;
        }
        let level = spaces / 4;
        let content = line[spaces..].trim_end();
        match classify(content) {
            Line::Version => {
                if level == 0 {
                    self.finish_open();
                    self.stack.push(Frame::new(0));
                    return;
                }
                if self.stack.is_empty() {
                    self.stack.push(Frame::new(level - 1));
                }
                // A frame already open at this level never got its result line.
                while self.stack.last().is_some_and(|f| f.level >= level) {
                    self.close_top(None);
                }
                self.stack.push(Frame::new(level));
            }
            Line::Subtest(name) => {
                if self.stack.is_empty() {
                    return;
                }
                let reuse = self
                    .stack
                    .last()
                    .is_some_and(|f| f.level == level && f.name.is_none() && f.results.is_empty() && level > 0);
                if !reuse {
                    while self.stack.last().is_some_and(|f| f.level >= level) {
                        self.close_top(None);
                    }
                    self.stack.push(Frame::new(level));
                }
                if let Some(f) = self.stack.last_mut() {
                    f.name = Some(name.to_string());
                }
            }
            Line::Plan(n) => {
                if self.stack.is_empty() {
                    return;
                }
                self.frame_at(level);
                if let Some(f) = self.stack.last_mut() {
                    f.plan = Some(n);
                }
            }
            Line::Result { ok, number, name, directive } => {
                if self.stack.is_empty() {
                    return;
                }
                while self.stack.last().is_some_and(|f| f.level > level + 1) {
                    self.close_top(None);
                }
                let result = (ok, number, name.to_string(), directive.map(str::to_string));
                if self.stack.last().is_some_and(|f| f.level == level + 1) {
                    self.close_top(Some(result));
                    return;
                }
                self.frame_at(level);
                self.stack.push(Frame::new(level + 1));
                self.close_top(Some(result));
            }
            Line::Other => {}
        }
    }

    fn finish_open(&mut self) {
        while !self.stack.is_empty() {
            self.close_top(None);
        }
    }

    pub fn finish(mut self) -> KtapLog {
        self.finish_open();
        self.log
    }
}

/// Parses a whole console transcript.
pub fn parse(text: &str) -> KtapLog {
    let mut p = Parser::new();
    for line in text.lines() {
        p.feed(line);
    }
    p.finish()
}

fn plan_problem(path: &str, plan: Option<u32>, tests: &[KtapTest]) -> Option<(String, u32)> {
    let n = plan?;
    let missing: Vec<u32> = (1..=n).filter(|i| !tests.iter().any(|t| t.number == *i)).collect();
    if missing.is_empty() {
        return None;
    }
    let list: Vec<String> = missing.iter().take(10).map(u32::to_string).collect();
    Some((
        format!("{path}: plan 1..{n} but test(s) {} never reported", list.join(",")),
        missing.len() as u32,
    ))
}

fn walk<'a>(path: &str, t: &'a KtapTest, f: &mut impl FnMut(&str, &'a KtapTest)) {
    let p = if path.is_empty() { t.name.clone() } else { format!("{path}/{}", t.name) };
    f(&p, t);
    for s in &t.subtests {
        walk(&p, s, f);
    }
}

impl KtapLog {
    /// Every (path, test) pair, depth first; a path is `suite/case[/param]`.
    pub fn all(&self) -> Vec<(String, &KtapTest)> {
        let mut v = Vec::new();
        for d in &self.docs {
            for t in &d.tests {
                walk("", t, &mut |p, t| v.push((p.to_string(), t)));
            }
        }
        v
    }

    /// Leaf cases (tests without subtests) with their paths.
    pub fn cases(&self) -> Vec<(String, &KtapTest)> {
        self.all().into_iter().filter(|(_, t)| t.subtests.is_empty()).collect()
    }

    /// Leaf cases with duplicates merged: the same KTAP can reach the console more than once (printk, a
    /// `dmesg`, the debugfs results file, a module loaded twice), so each case path counts once, with the
    /// worst status any occurrence had (fail, then unfinished, then pass, then skip).
    pub fn unique_cases(&self) -> Vec<(String, &KtapTest)> {
        fn rank(s: Status) -> u8 {
            match s {
                Status::Skip => 0,
                Status::Pass => 1,
                Status::Incomplete => 2,
                Status::Fail => 3,
            }
        }
        let mut out: Vec<(String, &KtapTest)> = Vec::new();
        for (p, t) in self.cases() {
            match out.iter_mut().find(|(q, _)| *q == p) {
                Some(slot) if rank(t.status) > rank(slot.1.status) => slot.1 = t,
                Some(_) => {}
                None => out.push((p, t)),
            }
        }
        out
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for (_, t) in self.unique_cases() {
            match t.status {
                Status::Pass => c.pass += 1,
                Status::Fail => c.fail += 1,
                Status::Skip => c.skip += 1,
                Status::Incomplete => c.missing += 1,
            }
        }
        for (_, n) in self.plan_problems() {
            c.missing += n;
        }
        c
    }

    fn plan_problems(&self) -> Vec<(String, u32)> {
        let mut v = Vec::new();
        for (i, d) in self.docs.iter().enumerate() {
            v.extend(plan_problem(&format!("KTAP document {}", i + 1), d.plan, &d.tests));
        }
        for (p, t) in self.all() {
            if t.status != Status::Incomplete {
                v.extend(plan_problem(&p, t.plan, &t.subtests));
            }
        }
        v
    }

    /// Why this log is not a clean pass: failed cases, unfinished tests, plans with missing tests,
    /// and a parent reported `ok` while one of its cases failed. Empty means all good.
    pub fn problems(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (p, t) in self.all() {
            match t.status {
                Status::Fail if t.subtests.is_empty() => v.push(format!("KUnit case failed: {p}")),
                Status::Fail => {
                    if !t.subtests.iter().any(|s| matches!(s.status, Status::Fail | Status::Incomplete)) {
                        v.push(format!("KUnit suite failed: {p}"));
                    }
                }
                Status::Incomplete => v.push(format!("KUnit test never finished (crash or hang?): {p}")),
                Status::Pass | Status::Skip => {
                    if t.subtests.iter().any(|s| s.status == Status::Fail) {
                        v.push(format!("KUnit {p} reported ok but has failed cases"));
                    }
                }
            }
        }
        v.extend(self.plan_problems().into_iter().map(|(m, _)| m));
        let mut seen = std::collections::HashSet::new();
        v.retain(|m| seen.insert(m.clone()));
        v
    }

    /// Number of results of the largest occurrence of a test (suite) called `name` that has subtests,
    /// or `None` if no such suite appeared.
    pub fn suite_cases(&self, name: &str) -> Option<usize> {
        self.all()
            .into_iter()
            .filter(|(_, t)| t.name == name && (!t.subtests.is_empty() || t.plan.is_some()))
            .map(|(_, t)| t.subtests.len())
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MODULE_LOAD: &str = "\
KTAP version 1
1..1
    KTAP version 1
    # Subtest: vwire_core
    # speed: normal
    1..3
    ok 1 parses_header
    ok 2 rejects_short # SKIP needs a NIC
    not ok 3 encodes_vni
        # encodes_vni: ASSERTION FAILED at vwire/core.rs:10
# vwire_core: pass:1 fail:1 skip:1 total:3
# Totals: pass:1 fail:1 skip:1 total:3
not ok 1 vwire_core
";

    #[test]
    fn module_load_output() {
        let log = parse(MODULE_LOAD);
        assert_eq!(log.docs.len(), 1);
        let d = &log.docs[0];
        assert_eq!(d.plan, Some(1));
        let suite = &d.tests[0];
        assert_eq!(suite.name, "vwire_core");
        assert_eq!(suite.status, Status::Fail);
        assert_eq!(suite.plan, Some(3));
        let st: Vec<_> = suite.subtests.iter().map(|t| (t.number, t.name.as_str(), t.status)).collect();
        assert_eq!(
            st,
            vec![(1, "parses_header", Status::Pass), (2, "rejects_short", Status::Skip), (3, "encodes_vni", Status::Fail)]
        );
        assert_eq!(suite.subtests[1].directive.as_deref(), Some("SKIP needs a NIC"));
        assert_eq!(log.counts(), Counts { pass: 1, fail: 1, skip: 1, missing: 0 });
        assert_eq!(log.problems(), vec!["KUnit case failed: vwire_core/encodes_vni".to_string()]);
        assert_eq!(log.suite_cases("vwire_core"), Some(3));
        assert_eq!(log.suite_cases("other"), None);
    }

    #[test]
    fn dmesg_timestamps_and_noise_are_handled() {
        let text = "\
[    1.000000] random: crng init done
[    2.100000] KTAP version 1
[    2.100001] 1..1
[    2.100002]     KTAP version 1
[    2.100003]     # Subtest: rust_doctests
[    2.100004]     1..2
[    2.100005]     ok 1 rust_doctest_a
some shell output
[    2.100006]     ok 2 rust_doctest_b
[    2.100007] ok 1 rust_doctests
";
        let log = parse(text);
        assert_eq!(log.counts(), Counts { pass: 2, fail: 0, skip: 0, missing: 0 });
        assert!(log.problems().is_empty(), "{:?}", log.problems());
    }

    #[test]
    fn printk_caller_prefix() {
        assert_eq!(strip_printk_prefix("[    3.1][    T1]     ok 1 a"), "    ok 1 a");
        assert_eq!(strip_printk_prefix("[ info ] x"), "[ info ] x");
        assert_eq!(strip_printk_prefix("plain"), "plain");
    }

    #[test]
    fn missing_tests_against_plan_fail() {
        let text = "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: s\n    1..3\n    ok 1 a\n    ok 2 b\nok 1 s\n";
        let log = parse(text);
        let p = log.problems();
        assert_eq!(p, vec!["s: plan 1..3 but test(s) 3 never reported".to_string()]);
        assert_eq!(log.counts().missing, 1);
    }

    #[test]
    fn crash_mid_suite_is_incomplete() {
        let text = "KTAP version 1\n1..2\n    KTAP version 1\n    # Subtest: s\n    1..2\n    ok 1 a\n";
        let log = parse(text);
        let p = log.problems();
        assert!(p.iter().any(|m| m.contains("never finished") && m.contains('s')), "{p:?}");
        assert!(p.iter().any(|m| m.contains("KTAP document 1: plan 1..2")), "{p:?}");
        assert_eq!(log.docs[0].tests[0].subtests.len(), 1);
    }

    #[test]
    fn two_modules_make_two_documents() {
        let one = "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: a\n    1..1\n    ok 1 x\nok 1 a\n";
        let two = one.replace("a\n", "b\n");
        let log = parse(&format!("{one}{two}"));
        assert_eq!(log.docs.len(), 2);
        assert_eq!(log.suite_cases("a"), Some(1));
        assert_eq!(log.suite_cases("b"), Some(1));
        assert_eq!(log.counts().pass, 2);
    }

    #[test]
    fn parameterised_cases_nest_three_levels() {
        let text = "\
KTAP version 1
1..1
    KTAP version 1
    # Subtest: suite
    1..2
        KTAP version 1
        # Subtest: param_test
        ok 1 value 1
        not ok 2 value 2
    not ok 1 param_test
    ok 2 plain
not ok 1 suite
";
        let log = parse(text);
        let cases: Vec<String> = log.cases().into_iter().map(|(p, _)| p).collect();
        assert_eq!(cases, vec!["suite/param_test/value 1", "suite/param_test/value 2", "suite/plain"]);
        assert_eq!(log.counts(), Counts { pass: 2, fail: 1, skip: 0, missing: 0 });
        assert_eq!(log.problems(), vec!["KUnit case failed: suite/param_test/value 2".to_string()]);
    }

    #[test]
    fn ok_parent_with_failed_child_is_flagged() {
        let text = "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: s\n    1..1\n    not ok 1 x\nok 1 s\n";
        let p = parse(text).problems();
        assert!(p.iter().any(|m| m.contains("reported ok but has failed cases")), "{p:?}");
    }

    #[test]
    fn repeated_output_counts_once_with_the_worst_status() {
        let pass = "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: s\n    1..2\n    ok 1 a\n    ok 2 b\nok 1 s\n";
        let log = parse(&format!("{pass}[  1.0] {}", pass.replace('\n', "\n[  1.0] ")));
        assert_eq!(log.docs.len(), 2);
        assert_eq!(log.counts(), Counts { pass: 2, fail: 0, skip: 0, missing: 0 });
        let fail = pass.replace("    ok 2 b", "    not ok 2 b").replace("ok 1 s", "not ok 1 s");
        let log = parse(&format!("{pass}{fail}{pass}"));
        assert_eq!(log.counts(), Counts { pass: 1, fail: 1, skip: 0, missing: 0 });
        assert_eq!(log.problems(), vec!["KUnit case failed: s/b".to_string()]);
    }

    #[test]
    fn result_lines_outside_a_document_are_ignored() {
        let log = parse("ok 1 something a script printed\nnot ok 2 other\n1..4\n");
        assert!(log.docs.is_empty());
        assert!(log.problems().is_empty());
    }

    #[test]
    fn old_tap_header_and_dash_descriptions() {
        let log = parse("TAP version 14\n1..2\nok 1 - first\nnot ok 2 - second # TODO later\n");
        let t = &log.docs[0].tests;
        assert_eq!(t[0].name, "first");
        assert_eq!(t[1].status, Status::Skip);
        assert!(log.problems().is_empty());
    }

    #[test]
    fn whole_suite_skipped() {
        let log = parse("KTAP version 1\n1..1\nok 1 s # SKIP no hardware\n");
        assert_eq!(log.counts(), Counts { pass: 0, fail: 0, skip: 1, missing: 0 });
        assert!(log.problems().is_empty());
    }

    proptest! {
        #[test]
        fn never_panics(lines in proptest::collection::vec("( {0,9})(KTAP version 1|# Subtest: [a-z]{1,4}|1\\.\\.[0-9]{1,2}|(not )?ok [0-9]{1,2} [a-z]{0,4}( # SKIP)?|[ -~]{0,20})", 0..40)) {
            let log = parse(&lines.join("\n"));
            let _ = log.problems();
            let _ = log.counts();
        }

        #[test]
        fn generated_suites_count_exactly(results in proptest::collection::vec(0u8..3, 1..20)) {
            let mut text = format!("KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: s\n    1..{}\n", results.len());
            for (i, r) in results.iter().enumerate() {
                let line = match r { 0 => format!("    ok {} c{i}\n", i + 1), 1 => format!("    not ok {} c{i}\n", i + 1), _ => format!("    ok {} c{i} # SKIP x\n", i + 1) };
                text.push_str(&line);
            }
            let failed = results.iter().filter(|r| **r == 1).count();
            text.push_str(if failed > 0 { "not ok 1 s\n" } else { "ok 1 s\n" });
            let log = parse(&text);
            let c = log.counts();
            prop_assert_eq!(c.pass as usize, results.iter().filter(|r| **r == 0).count());
            prop_assert_eq!(c.fail as usize, failed);
            prop_assert_eq!(c.skip as usize, results.iter().filter(|r| **r == 2).count());
            prop_assert_eq!(c.missing, 0);
            prop_assert_eq!(log.problems().len(), failed);
            prop_assert_eq!(log.suite_cases("s"), Some(results.len()));
        }

        #[test]
        fn truncation_is_never_a_clean_pass(n in 2usize..10, cut in 1usize..9) {
            prop_assume!(cut < n);
            let mut text = format!("KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: s\n    1..{n}\n");
            for i in 0..cut {
                text.push_str(&format!("    ok {} c{i}\n", i + 1));
            }
            prop_assert!(!parse(&text).problems().is_empty());
        }
    }
}
