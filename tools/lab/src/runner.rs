//! Runs QEMU for one lab host: tees the serial console to a log file (and, unless quiet, to our stdout),
//! watches for the markers, enforces the timeout, and for `--accel kvm` falls back to TCG when the guest
//! does not reach `OVERCAST-BEGIN` quickly (KVM on some hosts hangs right after the BIOS).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::console::{is_crash_line, parse_marker, Marker, RunFacts};
use crate::qemu::{build_args, Accel, HostSpec};

pub const QEMU: &str = "qemu-system-x86_64";

pub struct HostRun {
    pub index: u8,
    pub spec: HostSpec,
    pub scenario: String,
    pub timeout: Duration,
    pub log_path: PathBuf,
    /// Echo the console live, each line prefixed with this (None = quiet).
    pub live_prefix: Option<String>,
    /// With KVM: how long to wait for OVERCAST-BEGIN before falling back to TCG.
    pub kvm_hang: Duration,
    /// After OVERCAST-END, how long QEMU may take to power off before it is killed.
    pub poweroff_grace: Duration,
    /// Run QEMU in this network namespace (`--tap`).
    pub netns: Option<String>,
    /// Shared by the hosts of one run: set by a host whose kernel crashed before `OVERCAST-BEGIN`; the other hosts
    /// then stop at once instead of waiting out the timeout for a peer that will never come (`lab::run` boots
    /// them all again once).
    pub boot_crashed: Arc<AtomicBool>,
}

/// How long a host that crashed while booting keeps running so that the console gets the whole oops.
const CRASH_TRACE_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct HostResult {
    pub index: u8,
    pub lines: Vec<String>,
    pub facts: RunFacts,
    pub accel: Accel,
    pub argv: Vec<String>,
    pub boot_to_begin: Option<f64>,
    pub boot_to_end: Option<f64>,
    pub notes: Vec<String>,
}

enum Msg {
    Out(String),
    Err(String),
    Eof,
}

fn spawn_reader<R: std::io::Read + Send + 'static>(r: R, tx: mpsc::Sender<Msg>, is_err: bool) {
    std::thread::spawn(move || {
        let mut br = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match br.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let s = strip_terminal_controls(&String::from_utf8_lossy(&buf));
                    let m = if is_err { Msg::Err(s) } else { Msg::Out(s) };
                    if tx.send(m).is_err() {
                        return;
                    }
                }
            }
        }
        if !is_err {
            let _ = tx.send(Msg::Eof);
        }
    });
}

/// Drops carriage returns and terminal escape sequences (SeaBIOS clears the screen; echoed live, that would
/// clear the operator's terminal) and the trailing newline.
pub fn strip_terminal_controls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.peek() {
                // CSI: ESC [ parameters... final byte in '@'..='~'
                Some('[') => {
                    chars.next();
                    for d in chars.by_ref() {
                        if ('@'..='~').contains(&d) {
                            break;
                        }
                    }
                }
                // Two-character sequences such as ESC c (reset).
                Some(_) => {
                    chars.next();
                }
                None => {}
            },
            '\r' | '\n' => {}
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// Where QEMU's human monitor of host `index` listens (a Unix socket; the runner is its only client).
fn monitor_path(index: u8) -> PathBuf {
    std::env::temp_dir().join(format!("overcast-lab-{}-{index}.mon", std::process::id()))
}

/// Reads from the monitor until its prompt `(qemu) ` (or the timeout).
fn read_prompt(s: &mut UnixStream) -> Result<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !String::from_utf8_lossy(&got).contains("(qemu) ") {
        let n = s.read(&mut buf).context("reading QEMU's monitor")?;
        if n == 0 {
            anyhow::bail!("QEMU's monitor closed the connection");
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&got).into_owned())
}

/// Runs `set_link NIC on|off` in QEMU's monitor and returns what the monitor printed for it.
fn set_link(path: &Path, nic: &str, up: bool) -> Result<String> {
    let mut s = UnixStream::connect(path).with_context(|| format!("connecting to QEMU's monitor {}", path.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    read_prompt(&mut s)?;
    writeln!(s, "set_link {nic} {}", if up { "on" } else { "off" })?;
    let out = read_prompt(&mut s)?;
    Ok(out.lines().skip(1).filter(|l| !l.starts_with("(qemu)")).collect::<Vec<_>>().join(" "))
}

/// Removes the monitor's socket file however the attempt ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

enum Attempt {
    Done(HostResult),
    /// KVM did not get to the scenario: retry under TCG.
    Fallback(String),
}

fn attempt(run: &HostRun, spec: &HostSpec, log: &mut File) -> Result<Attempt> {
    let mut argv = build_args(spec)?;
    let monitor = monitor_path(run.index);
    let _ = std::fs::remove_file(&monitor);
    let _remove_monitor = RemoveOnDrop(monitor.clone());
    argv.extend(["-monitor".to_string(), format!("unix:{},server=on,wait=off", monitor.display())]);
    let mut cmd = match &run.netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, QEMU]);
            writeln!(log, "### ip netns exec {ns} {QEMU} {}", argv.join(" "))?;
            c
        }
        None => {
            writeln!(log, "### {QEMU} {}", argv.join(" "))?;
            Command::new(QEMU)
        }
    };
    let mut child = cmd
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {QEMU} (install QEMU 10: scripts/setup)"))?;
    let (tx, rx) = mpsc::channel();
    if let Some(o) = child.stdout.take() {
        spawn_reader(o, tx.clone(), false);
    }
    if let Some(e) = child.stderr.take() {
        spawn_reader(e, tx, true);
    }
    let start = Instant::now();
    let deadline = start + run.timeout;
    let kvm_deadline = (spec.accel == Accel::Kvm).then(|| start + run.kvm_hang);
    let mut lines = Vec::new();
    let mut facts = RunFacts::default();
    let (mut begin, mut end) = (None, None);
    let mut stop_at: Option<Instant> = None;
    let mut notes = Vec::new();
    let mut crashed_here = false;
    loop {
        let now = Instant::now();
        let mut limit = stop_at.unwrap_or(deadline).min(deadline);
        if begin.is_none() {
            if let Some(k) = kvm_deadline {
                limit = limit.min(k);
            }
        }
        if !crashed_here && end.is_none() && run.boot_crashed.load(Ordering::Relaxed) {
            notes.push("stopped: another host's kernel crashed while booting".to_string());
            facts.early_exit = Some("stopped by the lab: another host crashed while booting".to_string());
            kill(&mut child);
            break;
        }
        if now >= limit {
            if end.is_some() {
                notes.push(format!("QEMU did not power off within {} s of OVERCAST-END; killed", run.poweroff_grace.as_secs()));
            } else if begin.is_none() && kvm_deadline.is_some_and(|k| now >= k) {
                kill(&mut child);
                return Ok(Attempt::Fallback(format!(
                    "KVM: no OVERCAST-BEGIN within {} s, falling back to TCG",
                    run.kvm_hang.as_secs()
                )));
            } else if crashed_here {
                facts.early_exit = Some("stopped by the lab: the kernel crashed while booting".to_string());
            } else {
                facts.timed_out = Some(run.timeout.as_secs());
            }
            kill(&mut child);
            break;
        }
        // Wake at least once a second to see whether another host crashed while booting.
        match rx.recv_timeout((limit - now).min(Duration::from_secs(1))) {
            Ok(Msg::Out(l)) => {
                writeln!(log, "{l}")?;
                if let Some(p) = &run.live_prefix {
                    println!("{p}{l}");
                }
                match parse_marker(&l) {
                    Some(Marker::Begin { scenario }) if scenario == run.scenario => {
                        begin = Some(start.elapsed().as_secs_f64())
                    }
                    Some(Marker::End { scenario, .. }) if scenario == run.scenario => {
                        end = Some(start.elapsed().as_secs_f64());
                        stop_at = Some(Instant::now() + run.poweroff_grace);
                    }
                    Some(Marker::Link { nic, up }) => {
                        let state = if up { "on" } else { "off" };
                        match set_link(&monitor, &nic, up) {
                            Ok(out) if out.trim().is_empty() => writeln!(log, "### monitor: set_link {nic} {state}: done")?,
                            Ok(out) => writeln!(log, "### monitor: set_link {nic} {state}: {}", out.trim())?,
                            Err(e) => writeln!(log, "### monitor: set_link {nic} {state} failed: {e:#}")?,
                        }
                    }
                    _ => {}
                }
                // A kernel that crashed before the scenario began will not reach it (under Xen, Dom0's panic
                // leaves the machine halted until the timeout): keep the oops, then stop this host and the others.
                if begin.is_none() && !crashed_here && is_crash_line(&l) {
                    crashed_here = true;
                    stop_at = Some(Instant::now() + CRASH_TRACE_GRACE);
                    run.boot_crashed.store(true, Ordering::Relaxed);
                }
                // Xen halts rather than powering the machine off when Dom0 powers off.
                if end.is_some() && l.contains("Hardware Dom0 halted") {
                    stop_at = Some(Instant::now() + Duration::from_millis(200));
                }
                lines.push(l);
            }
            Ok(Msg::Err(l)) => {
                writeln!(log, "qemu-stderr: {l}")?;
                if let Some(p) = &run.live_prefix {
                    eprintln!("{p}qemu: {l}");
                }
                lines.push(format!("qemu-stderr: {l}"));
            }
            Ok(Msg::Eof) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait()?;
                if end.is_none() {
                    if spec.accel == Accel::Kvm && begin.is_none() {
                        return Ok(Attempt::Fallback(format!("KVM: QEMU ended ({status}) before the scenario, falling back to TCG")));
                    }
                    facts.early_exit = Some(status.to_string());
                }
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    log.flush()?;
    Ok(Attempt::Done(HostResult {
        index: run.index,
        lines,
        facts,
        accel: spec.accel,
        argv,
        boot_to_begin: begin,
        boot_to_end: end,
        notes,
    }))
}

/// Runs one host to completion (END marker and power-off, timeout, or crash).
pub fn run_host(run: &HostRun) -> Result<HostResult> {
    if let Some(dir) = run.log_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut log = File::create(&run.log_path).with_context(|| format!("creating {}", run.log_path.display()))?;
    let mut spec = run.spec.clone();
    let mut notes = Vec::new();
    loop {
        match attempt(run, &spec, &mut log)? {
            Attempt::Done(mut r) => {
                notes.append(&mut r.notes);
                r.notes = notes;
                return Ok(r);
            }
            Attempt::Fallback(why) => {
                writeln!(log, "### {why}")?;
                eprintln!("overcast-lab: host {}: {why}", run.index);
                notes.push(why);
                spec.accel = Accel::Tcg;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::strip_terminal_controls;

    #[test]
    fn terminal_controls_are_removed() {
        assert_eq!(strip_terminal_controls("\u{1b}c\u{1b}[?7l\u{1b}[2J\u{1b}[0mSeaBIOS (version 1.16)\r\n"), "SeaBIOS (version 1.16)");
        assert_eq!(strip_terminal_controls("    ok 1 a\r\n"), "    ok 1 a");
        assert_eq!(strip_terminal_controls("tab\there\u{7}"), "tab\there");
        assert_eq!(strip_terminal_controls("cut \u{1b}["), "cut ");
    }
}
