//! Mitigation actions (§6.2, §6.2.4): command templates run as child processes, each watched by its own thread
//! with a timeout, so a failing or hanging command never blocks the monitoring of other VMs; and migration targets
//! chosen from excess-space advertisements.

use serde::Serialize;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

/// Which mitigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Coopswap,
    Migrate,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Coopswap => "coopswap",
            ActionKind::Migrate => "migrate",
        }
    }
}

/// How an action ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
pub enum Outcome {
    Succeeded,
    DryRun,
    Failed(String),
    TimedOut,
    SpawnFailed(String),
}

impl Outcome {
    pub fn ok(&self) -> bool {
        matches!(self, Outcome::Succeeded | Outcome::DryRun)
    }
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::DryRun => "dry_run",
            Outcome::Failed(_) => "failed",
            Outcome::TimedOut => "timed_out",
            Outcome::SpawnFailed(_) => "spawn_failed",
        }
    }
}

/// A request to run an action.
#[derive(Debug, Clone)]
pub struct ActionRequest {
    pub vm: String,
    pub kind: ActionKind,
    pub argv: Vec<String>,
    pub target: Option<String>,
    pub attempt: u32,
}

/// The result, delivered asynchronously.
#[derive(Debug, Clone)]
pub struct ActionResult {
    pub request: ActionRequest,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

/// Substitute placeholders into a template, word by word (no shell is involved, so values cannot inject words).
pub fn render(template: &str, vm: &str, domain: &str, target: &str, memory_mib: u64) -> Result<Vec<String>, String> {
    let words = crate::util::split_words(template)?;
    Ok(words
        .into_iter()
        .map(|w| {
            w.replace("{vm}", vm)
                .replace("{domain}", domain)
                .replace("{target}", target)
                .replace("{memory_mib}", &memory_mib.to_string())
        })
        .collect())
}

/// Runs actions in the background.
pub struct Executor {
    dry_run: bool,
    timeout: Duration,
    tx: Sender<ActionResult>,
    rx: Receiver<ActionResult>,
}

const OUTPUT_CAP: usize = 2048;

fn read_capped(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            if buf.len() < OUTPUT_CAP {
                buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
            }
        }
        buf.truncate(OUTPUT_CAP);
        String::from_utf8_lossy(&buf).trim().to_string()
    })
}

fn run_with_timeout(argv: &[String], timeout: Duration) -> Outcome {
    let Some((prog, args)) = argv.split_first() else {
        return Outcome::SpawnFailed("empty command".into());
    };
    let mut cmd = Command::new(prog);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::SpawnFailed(format!("{prog}: {e}")),
    };
    let out = child.stdout.take().map(read_capped);
    let err = child.stderr.take().map(read_capped);
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if start.elapsed() >= timeout => {
                // Kill the whole process group so that grandchildren holding our pipes die too.
                let pgid = child.id() as libc::pid_t;
                // SAFETY: kill(2) with a negative pid signals the process group we created for this child.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Outcome::Failed(format!("wait: {e}")),
        }
    };
    let collect = |h: Option<std::thread::JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    let (o, e) = (collect(out), collect(err));
    match status {
        None => Outcome::TimedOut,
        Some(st) if st.success() => Outcome::Succeeded,
        Some(st) => {
            let mut msg = format!("{st}");
            for s in [e, o] {
                if !s.is_empty() {
                    msg.push_str(": ");
                    msg.push_str(&s);
                    break;
                }
            }
            Outcome::Failed(msg)
        }
    }
}

impl Executor {
    pub fn new(dry_run: bool, timeout: Duration) -> Self {
        let (tx, rx) = channel();
        Executor { dry_run, timeout, tx, rx }
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// Start an action; returns immediately.
    pub fn spawn(&self, req: ActionRequest) {
        let tx = self.tx.clone();
        if self.dry_run {
            log::info!(
                "dry-run: would run {} for {} (attempt {}): {:?}",
                req.kind.as_str(),
                req.vm,
                req.attempt,
                req.argv
            );
            let _ = tx.send(ActionResult { request: req, outcome: Outcome::DryRun, elapsed: Duration::ZERO });
            return;
        }
        let timeout = self.timeout;
        log::info!("running {} for {} (attempt {}): {:?}", req.kind.as_str(), req.vm, req.attempt, req.argv);
        let spawned = std::thread::Builder::new().name(format!("action-{}", req.vm)).spawn({
            let req = req.clone();
            let tx = tx.clone();
            move || {
                let start = Instant::now();
                let outcome = run_with_timeout(&req.argv, timeout);
                let _ = tx.send(ActionResult { request: req, outcome, elapsed: start.elapsed() });
            }
        });
        if let Err(e) = spawned {
            let _ = tx.send(ActionResult {
                request: req,
                outcome: Outcome::SpawnFailed(format!("thread: {e}")),
                elapsed: Duration::ZERO,
            });
        }
    }

    /// Results that arrived since the last call (non-blocking).
    pub fn poll(&self) -> Vec<ActionResult> {
        self.rx.try_iter().collect()
    }

    /// Wait up to `d` for at least one result (used by tests and the run loop's sleep).
    pub fn wait(&self, d: Duration) -> Vec<ActionResult> {
        match self.rx.recv_timeout(d) {
            Ok(first) => {
                let mut v = vec![first];
                v.extend(self.rx.try_iter());
                v
            }
            Err(_) => vec![],
        }
    }
}

/// Exponential backoff: base * 2^(attempt-1), capped.
pub fn backoff_secs(base: u64, max: u64, attempt: u32) -> u64 {
    let shift = attempt.saturating_sub(1).min(32);
    base.saturating_mul(1u64 << shift).min(max)
}

/// A host advertising free memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Advert {
    pub host: String,
    pub free_mib: u64,
}

/// Parse an excess-space file: `host free_mib` or `host=free_mib` per line, `#` comments. Bad lines are reported
/// and skipped.
pub fn parse_adverts(text: &str) -> (Vec<Advert>, Vec<String>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.split('#').next().unwrap_or("").trim();
        if l.is_empty() {
            continue;
        }
        let l = l.replacen('=', " ", 1);
        let mut it = l.split_whitespace();
        match (it.next(), it.next().map(str::parse::<u64>), it.next()) {
            (Some(h), Some(Ok(m)), None) => ok.push(Advert { host: h.to_string(), free_mib: m }),
            _ => bad.push(format!("line {}: expected `host free_mib`: {line}", i + 1)),
        }
    }
    (ok, bad)
}

/// Chooses migration targets from static and file-based advertisements.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub static_hosts: Vec<Advert>,
    pub file: Option<PathBuf>,
    pub self_host: Option<String>,
}

impl Targets {
    /// Current advertisements (file entries override static ones for the same host).
    pub fn adverts(&self) -> Vec<Advert> {
        let mut all = self.static_hosts.clone();
        if let Some(f) = &self.file {
            match std::fs::read_to_string(f) {
                Ok(t) => {
                    let (ok, bad) = parse_adverts(&t);
                    for b in bad {
                        log::warn!("excess-space file {}: {b}", f.display());
                    }
                    for a in ok {
                        all.retain(|x| x.host != a.host);
                        all.push(a);
                    }
                }
                Err(e) => log::warn!("excess-space file {}: {e}", f.display()),
            }
        }
        all
    }

    /// The host with the most free memory that fits `need_mib`, after subtracting `reserved` (host, MiB) for
    /// migrations already in flight. Ties go to the lexically first host, so the choice is deterministic.
    pub fn choose(&self, need_mib: u64, reserved: &[(String, u64)]) -> Option<Advert> {
        let mut best: Option<Advert> = None;
        for a in self.adverts() {
            if self.self_host.as_deref() == Some(a.host.as_str()) {
                continue;
            }
            let used: u64 = reserved.iter().filter(|(h, _)| *h == a.host).map(|(_, m)| *m).sum();
            let free = a.free_mib.saturating_sub(used);
            if free < need_mib {
                continue;
            }
            let better = match &best {
                None => true,
                Some(b) => free > b.free_mib || (free == b.free_mib && a.host < b.host),
            };
            if better {
                best = Some(Advert { host: a.host, free_mib: free });
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(argv: &[&str]) -> ActionRequest {
        ActionRequest {
            vm: "vm".into(),
            kind: ActionKind::Migrate,
            argv: argv.iter().map(|s| s.to_string()).collect(),
            target: None,
            attempt: 1,
        }
    }

    #[test]
    fn render_substitutes_per_word() {
        let v = render("xl migrate {domain} {target}", "web", "7", "h2", 1024).unwrap();
        assert_eq!(v, ["xl", "migrate", "7", "h2"]);
        // A value with spaces stays one word.
        let v = render("echo '{vm} x' {memory_mib}", "a b", "d", "t", 5).unwrap();
        assert_eq!(v, ["echo", "a b x", "5"]);
    }

    #[test]
    fn commands_succeed_fail_and_time_out() {
        assert_eq!(run_with_timeout(&["true".into()], Duration::from_secs(5)), Outcome::Succeeded);
        let f = run_with_timeout(&["sh".into(), "-c".into(), "echo boom >&2; exit 3".into()], Duration::from_secs(5));
        assert!(matches!(&f, Outcome::Failed(m) if m.contains("boom") && m.contains('3')), "{f:?}");
        let start = Instant::now();
        // The grandchild (sleep) holds the pipes; killing the group must still end promptly.
        let t = run_with_timeout(&["sh".into(), "-c".into(), "sleep 30; true".into()], Duration::from_millis(300));
        assert_eq!(t, Outcome::TimedOut);
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(matches!(
            run_with_timeout(&["/nonexistent/cmd".into()], Duration::from_secs(1)),
            Outcome::SpawnFailed(_)
        ));
    }

    #[test]
    fn executor_runs_in_background_and_dry_run_runs_nothing() {
        let d = tempfile::tempdir().unwrap();
        let marker = d.path().join("ran");
        let ex = Executor::new(true, Duration::from_secs(5));
        ex.spawn(req(&["touch", marker.to_str().unwrap()]));
        let r = ex.wait(Duration::from_secs(5));
        assert_eq!(r[0].outcome, Outcome::DryRun);
        assert!(!marker.exists());

        let ex = Executor::new(false, Duration::from_millis(500));
        let start = Instant::now();
        ex.spawn(req(&["sleep", "10"]));
        ex.spawn(req(&["touch", marker.to_str().unwrap()]));
        assert!(start.elapsed() < Duration::from_millis(200), "spawn must not block");
        let mut got = vec![];
        while got.len() < 2 && start.elapsed() < Duration::from_secs(10) {
            got.extend(ex.wait(Duration::from_millis(100)));
        }
        assert!(marker.exists());
        let outcomes: Vec<_> = got.iter().map(|r| r.outcome.clone()).collect();
        assert!(outcomes.contains(&Outcome::Succeeded) && outcomes.contains(&Outcome::TimedOut), "{outcomes:?}");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_secs(30, 600, 1), 30);
        assert_eq!(backoff_secs(30, 600, 2), 60);
        assert_eq!(backoff_secs(30, 600, 5), 480);
        assert_eq!(backoff_secs(30, 600, 6), 600);
        assert_eq!(backoff_secs(30, 600, 400), 600);
    }

    #[test]
    fn adverts_parse_and_targets_choose() {
        let (ok, bad) = parse_adverts("# excess\nh2 4096\nh3=8192\nbroken\nh4 lots\n");
        assert_eq!(ok, vec![Advert { host: "h2".into(), free_mib: 4096 }, Advert { host: "h3".into(), free_mib: 8192 }]);
        assert_eq!(bad.len(), 2);
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("excess");
        std::fs::write(&f, "h2 4096\nh3 8192\nh1 99999\n").unwrap();
        let t = Targets {
            static_hosts: vec![Advert { host: "h5".into(), free_mib: 2048 }],
            file: Some(f.clone()),
            self_host: Some("h1".into()),
        };
        assert_eq!(t.choose(1024, &[]).unwrap().host, "h3");
        // A migration already heading to h3 reserves its memory.
        assert_eq!(t.choose(4096, &[("h3".into(), 6000)]).unwrap().host, "h2");
        assert!(t.choose(9000, &[]).is_none());
        std::fs::remove_file(&f).unwrap();
        assert_eq!(t.choose(1024, &[]).unwrap().host, "h5");
    }
}
