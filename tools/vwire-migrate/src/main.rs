//! `vwire-migrate`: the VirtualWire migration sequence of §5.2.4 for one connector, plus the small helpers it needs.
//!
//! ```text
//! vwire-migrate move --id N --source HOST --source-addr ADR --dest HOST --dest-addr ADR --sister HOST
//!                    [--sister-addr ADR] [--bridge BR] [--remote-cmd 'ssh {host}'] [--ip-cmd ip]
//!                    [--probe 'CMD'] [--switch 'CMD'] [--dry-run]
//! vwire-migrate serve --listen ADDR:PORT [--ip-cmd ip]     answer read/write/attach requests for this host's /proc/vw
//! vwire-migrate probe --to ADDR:PORT [--interval-ms 10]    sequence-numbered UDP flow to an echo; one line per echo
//! vwire-migrate echo --listen ADDR:PORT                     UDP echo (runs in the moving guest)
//! ```
//! HOST is `local`, `tcp:ADDR:PORT` (a `vwire-migrate serve` on that host) or a name put into --remote-cmd.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
use vwire_core::id::ConnectorId;
use vwire_migrate::gap::{self, analyze, decode_probe, encode_probe, parse_probe_line, ProbeLine, Reply};
use vwire_migrate::plan::{
    execute, parse_connector, parse_endpoint, parse_host, parse_list, preflight, remote_argv, shell_quote, HostSpec,
    Hosts, MoveSpec, Outcome, Role,
};
use vwire_migrate::wire::{self, parse_answer, parse_request, Request};

/// Exit statuses of `move`.
const EXIT_REFUSED: u8 = 1;
const EXIT_ROLLED_BACK: u8 = 2;
const EXIT_LEFTOVER: u8 = 3;
const EXIT_ROLLBACK_FAILED: u8 = 4;

#[derive(Parser)]
#[command(
    name = "vwire-migrate",
    version,
    about = "Move a VirtualWire endpoint between hosts (dissertation §5.2.4)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create endpoint N on the destination, repoint the sister at it, destroy N on the source.
    Move(Box<MoveArgs>),
    /// Serve this host's /proc/vw (read, write, attach only) to `move --source tcp:ADDR:PORT` etc.
    Serve {
        /// Address and port to listen on (a management address: there is no authentication).
        #[arg(long)]
        listen: SocketAddr,
        /// The iproute2 `ip` used for attach.
        #[arg(long, default_value = "ip")]
        ip_cmd: String,
    },
    /// Send sequence-numbered UDP datagrams to an echo and print `r SEQ SENT_US RECV_US` per echo received, then
    /// `s SENT` when stdin closes (or after --max-secs).
    Probe {
        /// The echo's address (in the moving guest).
        #[arg(long)]
        to: SocketAddr,
        #[arg(long, default_value_t = 10)]
        interval_ms: u64,
        /// Stop by itself after this long even if stdin stays open.
        #[arg(long, default_value_t = 600)]
        max_secs: u64,
        /// After sending stops, keep receiving late echoes this long.
        #[arg(long, default_value_t = 1000)]
        linger_ms: u64,
    },
    /// Echo every UDP datagram back to its sender.
    Echo {
        #[arg(long)]
        listen: SocketAddr,
    },
}

#[derive(Args)]
struct MoveArgs {
    /// Connector id N.
    #[arg(long, value_parser = parse_connector)]
    id: ConnectorId,
    /// The host the guest leaves: `local`, `tcp:ADDR:PORT`, or a name for --remote-cmd.
    #[arg(long, value_parser = parse_host)]
    source: HostSpec,
    /// The moving endpoint's receive address on the source (AdrA there).
    #[arg(long, value_parser = parse_endpoint)]
    source_addr: SocketAddr,
    /// The host the guest goes to.
    #[arg(long, value_parser = parse_host)]
    dest: HostSpec,
    /// The new endpoint's receive address on the destination.
    #[arg(long, value_parser = parse_endpoint)]
    dest_addr: SocketAddr,
    /// The host of the other end of the connector.
    #[arg(long, value_parser = parse_host)]
    sister: HostSpec,
    /// The sister's receive address (default: where the source endpoint sends).
    #[arg(long, value_parser = parse_endpoint)]
    sister_addr: Option<SocketAddr>,
    /// Enslave the new endpoint's interface to this bridge on the destination (where the guest's back-end is).
    #[arg(long)]
    bridge: Option<String>,
    /// How a named host is reached: `{host}` is replaced, the shell command line is appended as one argument.
    /// Empty: run locally with `sh -c`.
    #[arg(long, default_value = "ssh {host}")]
    remote_cmd: String,
    /// The iproute2 `ip` on the hosts (for --bridge).
    #[arg(long, default_value = "ip")]
    ip_cmd: String,
    /// A shell command whose stdout is a `vwire-migrate probe` (e.g. `ip netns exec g vwire-migrate probe --to
    /// 192.168.8.1:7000`): started before the move, stopped after it by closing its stdin; the gap it saw is
    /// reported.
    #[arg(long)]
    probe: Option<String>,
    /// Wait at most this long for the probe's first echo before the move (no echo: refuse).
    #[arg(long, default_value_t = 5000)]
    probe_warmup_ms: u64,
    /// Keep the probe running this long after the last step.
    #[arg(long, default_value_t = 3000)]
    probe_settle_ms: u64,
    /// Echoes with a longer round trip are counted as late (out of window).
    #[arg(long, default_value_t = 1000)]
    probe_window_ms: u64,
    /// A local shell command run after the destination endpoint exists (and is attached) and before the sister is
    /// repointed — the hypervisor's stop-and-copy of the guest, in the order of §5.2.4 — timed as step `switch`. If
    /// it fails, the new endpoint is destroyed again and nothing else changes.
    #[arg(long)]
    switch: Option<String>,
    /// Check and print the steps; change nothing.
    #[arg(long)]
    dry_run: bool,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Move(a) => ExitCode::from(run_move(&a)),
        Cmd::Serve { listen, ip_cmd } => report("serve", serve(listen, &ip_cmd)),
        Cmd::Probe {
            to,
            interval_ms,
            max_secs,
            linger_ms,
        } => report("probe", probe(to, interval_ms, max_secs, linger_ms)),
        Cmd::Echo { listen } => report("echo", echo(listen)),
    }
}

fn report(what: &str, r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vwire-migrate {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

// --- transports ---------------------------------------------------------------------------------------------------

/// How one host's /proc/vw is reached.
struct Conn {
    spec: HostSpec,
    template: String,
    ip_cmd: String,
}

fn local_read(file: &str) -> Result<String, String> {
    std::fs::read_to_string(format!("/proc/vw/{file}")).map_err(|e| format!("/proc/vw/{file}: {e}"))
}

fn local_write(file: &str, line: &str) -> Result<(), String> {
    let path = format!("/proc/vw/{file}");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| format!("{path}: {e}"))?;
    // One write(2) of the whole line: the module parses each write as one command.
    f.write_all(format!("{line}\n").as_bytes()).map_err(|e| e.to_string())
}

fn run_checked(argv: &[String]) -> Result<String, String> {
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run '{}': {e}", argv[0]))?;
    if out.status.success() {
        return String::from_utf8(out.stdout).map_err(|_| "output is not UTF-8".to_string());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let err = err.trim();
    Err(if err.is_empty() {
        format!("'{}' failed ({})", argv.join(" "), out.status)
    } else {
        err.to_string()
    })
}

fn local_attach(ip: &str, ifname: &str, bridge: &str) -> Result<(), String> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    run_checked(&s(&[ip, "link", "set", ifname, "master", bridge]))?;
    run_checked(&s(&[ip, "link", "set", ifname, "up"]))?;
    Ok(())
}

fn tcp_request(addr: &str, req: &Request) -> Result<String, String> {
    let target = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(5))
        .map_err(|e| format!("serve helper at {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("{}\n", req.encode()).as_bytes())
        .map_err(|e| format!("serve helper at {addr}: {e}"))?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .map_err(|e| format!("serve helper at {addr}: {e}"))?;
    parse_answer(&text).map_err(|e| format!("{addr}: {e}"))
}

impl Conn {
    fn remote(&self, host: &str, script: &str) -> Result<String, String> {
        run_checked(&remote_argv(&self.template, host, script)).map_err(|e| format!("{host}: {e}"))
    }

    fn read(&self, file: &str) -> Result<String, String> {
        match &self.spec {
            HostSpec::Local => local_read(file),
            HostSpec::Tcp(a) => tcp_request(a, &Request::Read { file: file.into() }),
            HostSpec::Remote(h) => self.remote(h, &format!("cat /proc/vw/{file}")),
        }
    }

    fn write(&self, file: &str, line: &str) -> Result<(), String> {
        match &self.spec {
            HostSpec::Local => local_write(file, line),
            HostSpec::Tcp(a) => tcp_request(
                a,
                &Request::Write {
                    file: file.into(),
                    line: line.into(),
                },
            )
            .map(|_| ()),
            HostSpec::Remote(h) => self
                .remote(h, &format!("printf '%s\\n' {} > /proc/vw/{file}", shell_quote(line)))
                .map(|_| ()),
        }
    }

    fn attach(&self, ifname: &str, bridge: &str) -> Result<(), String> {
        match &self.spec {
            HostSpec::Local => local_attach(&self.ip_cmd, ifname, bridge),
            HostSpec::Tcp(a) => tcp_request(
                a,
                &Request::Attach {
                    ifname: ifname.into(),
                    bridge: bridge.into(),
                },
            )
            .map(|_| ()),
            HostSpec::Remote(h) => {
                let ip = shell_quote(&self.ip_cmd);
                self.remote(
                    h,
                    &format!("{ip} link set {ifname} master {bridge} && {ip} link set {ifname} up"),
                )
                .map(|_| ())
            }
        }
    }
}

struct Three {
    source: Conn,
    dest: Conn,
    sister: Conn,
}

impl Three {
    fn conn(&self, r: Role) -> &Conn {
        match r {
            Role::Source => &self.source,
            Role::Dest => &self.dest,
            Role::Sister => &self.sister,
        }
    }
}

impl Hosts for Three {
    fn read(&mut self, role: Role, file: &str) -> Result<String, String> {
        self.conn(role).read(file)
    }
    fn write(&mut self, role: Role, file: &str, line: &str) -> Result<(), String> {
        self.conn(role).write(file, line)
    }
    fn attach(&mut self, role: Role, ifname: &str, bridge: &str) -> Result<(), String> {
        self.conn(role).attach(ifname, bridge)
    }
    fn run(&mut self, cmd: &str) -> Result<(), String> {
        run_checked(&["sh".to_string(), "-c".to_string(), cmd.to_string()]).map(|_| ())
    }
}

fn host_name(h: &HostSpec) -> String {
    match h {
        HostSpec::Local => "local".into(),
        HostSpec::Tcp(a) => format!("tcp:{a}"),
        HostSpec::Remote(n) => n.clone(),
    }
}

// --- move ---------------------------------------------------------------------------------------------------------

/// The running probe: its process and the lines it printed so far.
struct ProbeRun {
    child: Child,
    lines: mpsc::Receiver<ProbeLine>,
    replies: Vec<Reply>,
    sent: Option<u64>,
}

impl ProbeRun {
    fn start(cmd: &str) -> Result<ProbeRun, String> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the probe: {e}"))?;
        let out = child.stdout.take().ok_or("the probe has no stdout")?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(p) = parse_probe_line(&line) {
                    if tx.send(p).is_err() {
                        break;
                    }
                }
            }
        });
        Ok(ProbeRun {
            child,
            lines: rx,
            replies: Vec::new(),
            sent: None,
        })
    }

    fn take(&mut self, p: ProbeLine) {
        match p {
            ProbeLine::Reply(r) => self.replies.push(r),
            ProbeLine::Sent(n) => self.sent = Some(n),
        }
    }

    /// Waits up to `max` for the first echo.
    fn wait_first(&mut self, max: Duration) -> bool {
        let deadline = Instant::now() + max;
        while self.replies.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(p) => self.take(p),
                Err(_) => return false,
            }
        }
        true
    }

    /// Closes the probe's stdin (it stops sending, collects late echoes, prints `s SENT` and exits) and collects
    /// everything it printed; kills it if it does not finish.
    fn finish(mut self, max: Duration) -> (Vec<Reply>, Option<u64>) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + max;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(p) => self.take(p),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    eprintln!(
                        "vwire-migrate: the probe did not stop in {} ms; killing it",
                        max.as_millis()
                    );
                    let _ = self.child.kill();
                    break;
                }
            }
        }
        let _ = self.child.wait();
        (self.replies, self.sent)
    }
}

fn run_move(a: &MoveArgs) -> u8 {
    let conn = |spec: &HostSpec| Conn {
        spec: spec.clone(),
        template: a.remote_cmd.clone(),
        ip_cmd: a.ip_cmd.clone(),
    };
    let mut hosts = Three {
        source: conn(&a.source),
        dest: conn(&a.dest),
        sister: conn(&a.sister),
    };
    let spec = MoveSpec {
        id: a.id,
        from: a.source_addr,
        to: a.dest_addr,
        sister: a.sister_addr,
        bridge: a.bridge.clone(),
        switch: a.switch.clone(),
    };
    // 1. Read the three listings and check everything before changing anything.
    let mut lists = Vec::new();
    for role in [Role::Source, Role::Dest, Role::Sister] {
        match hosts.read(role, "list").and_then(|t| parse_list(&t)) {
            Ok(l) => lists.push(l),
            Err(e) => {
                eprintln!("vwire-migrate: refused: cannot read /proc/vw/list on the {role} host (is vwire.ko loaded?): {e}; nothing was changed");
                return EXIT_REFUSED;
            }
        }
    }
    let plan = match preflight(&spec, &lists[0], &lists[1], &lists[2]) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("vwire-migrate: refused: {e}; nothing was changed");
            return EXIT_REFUSED;
        }
    };
    println!(
        "vwire-migrate: connector {} from {} ({}) to {} ({}), sister {} ({})",
        spec.id,
        spec.from,
        host_name(&a.source),
        spec.to,
        host_name(&a.dest),
        plan.sister,
        host_name(&a.sister)
    );
    for s in &plan.steps {
        println!("plan: {:<8} {}", s.name, s.action);
    }
    if a.dry_run {
        println!("vwire-migrate: dry run, nothing was changed");
        return 0;
    }
    // 2. The probe flow, if any, must be running before the move.
    let mut probe = match &a.probe {
        None => None,
        Some(cmd) => {
            let mut p = match ProbeRun::start(cmd) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("vwire-migrate: refused: {e}; nothing was changed");
                    return EXIT_REFUSED;
                }
            };
            if !p.wait_first(Duration::from_millis(a.probe_warmup_ms)) {
                let _ = p.finish(Duration::from_secs(5));
                eprintln!(
                    "vwire-migrate: refused: the probe got no echo in {} ms before the move (is the echo running in the \
                     guest, is the connector up?); nothing was changed",
                    a.probe_warmup_ms
                );
                return EXIT_REFUSED;
            }
            // A short baseline of the undisturbed flow.
            thread::sleep(Duration::from_millis(500));
            Some(p)
        }
    };
    // 3. The steps.
    let t0 = now_us();
    let start = Instant::now();
    let (results, outcome) = execute(&mut hosts, &plan);
    let total = start.elapsed();
    let t1 = now_us();
    for r in &results {
        let ms = r.elapsed.as_secs_f64() * 1000.0;
        match &r.error {
            None => println!("step: {:<8} {:>9.1} ms  ok      {}", r.name, ms, r.action),
            Some(e) => println!("step: {:<8} {:>9.1} ms  FAILED  {}: {e}", r.name, ms, r.action),
        }
    }
    println!("steps: total {:.1} ms", total.as_secs_f64() * 1000.0);
    let code = match &outcome {
        Outcome::Moved => {
            println!(
                "vwire-migrate: moved: connector {} now runs between {} and {}",
                spec.id, plan.sister, spec.to
            );
            0
        }
        Outcome::RolledBack {
            failed,
            undone,
            undo_errors,
        } => {
            for u in undone {
                println!("undone: {u}");
            }
            for u in undo_errors {
                eprintln!("vwire-migrate: UNDO FAILED: {u} — clean this up by hand");
            }
            if undo_errors.is_empty() {
                eprintln!("vwire-migrate: step {failed} failed; rolled back, the connector is as it was");
                EXIT_ROLLED_BACK
            } else {
                eprintln!("vwire-migrate: step {failed} failed and the rollback was incomplete (see above)");
                EXIT_ROLLBACK_FAILED
            }
        }
        Outcome::MovedWithLeftover { failed, manual } => {
            eprintln!(
                "vwire-migrate: moved, but step {failed} failed: the old entry is still on the source; remove it with: {manual}"
            );
            EXIT_LEFTOVER
        }
    };
    // 4. The gap the flow saw.
    if let Some(p) = probe.take() {
        thread::sleep(Duration::from_millis(a.probe_settle_ms));
        let end = now_us();
        let (replies, sent) = p.finish(Duration::from_secs(10));
        match sent {
            None => eprintln!("vwire-migrate: the probe did not report how many datagrams it sent; no gap computed"),
            Some(sent) => {
                let g = analyze(sent, &replies, a.probe_window_ms * 1000, end, t1);
                println!("gap: {g}");
                if g.outage_ms > 0.0 {
                    // When each step ended, relative to the first step's start, to place the outage.
                    let mut at = 0.0;
                    let mut repointed = None;
                    let ends: Vec<String> = results
                        .iter()
                        .map(|r| {
                            at += r.elapsed.as_secs_f64() * 1000.0;
                            if r.name == "repoint" {
                                repointed = Some(at);
                            }
                            format!("{} {at:+.1}", r.name)
                        })
                        .collect();
                    let from = (g.outage_from_us as i64 - t0 as i64) as f64 / 1000.0;
                    let to = from + g.outage_ms;
                    println!(
                        "gap: the outage ran from {from:+.1} ms to {to:+.1} ms (send times, from the first step); steps ended at ms: {}",
                        ends.join(", ")
                    );
                    if let Some(r) = repointed {
                        println!("gap: the first datagram through after the outage was sent {:+.1} ms after the repoint ended", to - r);
                    }
                }
                if g.longest_silence_ms > 0.0 {
                    let rel = (g.silence_from_us as i64 - t0 as i64) as f64 / 1000.0;
                    println!(
                        "gap: the receiver's longest silence (which also counts stalls of the probe's own host) began {rel:+.1} ms from the first step; the steps took {:.1} ms",
                        (t1 - t0) as f64 / 1000.0
                    );
                }
            }
        }
    }
    // 5. After a move, read back what the hosts say.
    if matches!(outcome, Outcome::Moved | Outcome::MovedWithLeftover { .. }) {
        let sis = hosts.read(Role::Sister, "list").and_then(|t| parse_list(&t));
        let src = hosts.read(Role::Source, "list").and_then(|t| parse_list(&t));
        match (sis, src) {
            (Ok(sis), Ok(src)) => {
                let repointed = sis
                    .iter()
                    .any(|e| e.id == spec.id && e.local == plan.sister && e.remote == spec.to);
                let gone = !src.iter().any(|e| e.id == spec.id && e.local == spec.from);
                println!(
                    "verify: sister sends to the destination: {}; source entry gone: {}",
                    if repointed { "yes" } else { "NO" },
                    if gone { "yes" } else { "NO" }
                );
                if code == 0 && !(repointed && gone) {
                    return EXIT_LEFTOVER;
                }
            }
            (Err(e), _) | (_, Err(e)) => eprintln!("vwire-migrate: could not read back the listings: {e}"),
        }
    }
    code
}

// --- serve --------------------------------------------------------------------------------------------------------

fn serve(listen: SocketAddr, ip_cmd: &str) -> Result<(), String> {
    let l = TcpListener::bind(listen).map_err(|e| format!("listen on {listen}: {e}"))?;
    eprintln!(
        "vwire-migrate serve: answering /proc/vw requests on {listen} (no authentication: management network only)"
    );
    for c in l.incoming() {
        let Ok(mut c) = c else { continue };
        let peer = c.peer_addr().map(|p| p.to_string()).unwrap_or_else(|_| "?".into());
        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
        let mut line = String::new();
        let r = BufReader::new(&mut c)
            .take(wire::MAX_REQUEST as u64)
            .read_line(&mut line);
        let answer = match r.map_err(|e| e.to_string()).and_then(|_| parse_request(&line)) {
            Err(e) => Err(e),
            Ok(Request::Read { file }) => local_read(&file),
            Ok(Request::Write { file, line }) => local_write(&file, &line).map(|_| String::new()),
            Ok(Request::Attach { ifname, bridge }) => local_attach(ip_cmd, &ifname, &bridge).map(|_| String::new()),
        };
        let req = line.trim_end();
        let text = match answer {
            Ok(body) => {
                eprintln!("vwire-migrate serve: {peer}: {req}: ok");
                format!("ok\n{body}")
            }
            Err(e) => {
                eprintln!("vwire-migrate serve: {peer}: {req}: {e}");
                format!("err {}\n", e.replace('\n', " "))
            }
        };
        let _ = c.write_all(text.as_bytes());
    }
    Ok(())
}

// --- probe and echo -----------------------------------------------------------------------------------------------

fn probe(to: SocketAddr, interval_ms: u64, max_secs: u64, linger_ms: u64) -> Result<(), String> {
    let bind: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
        .parse()
        .map_err(|_| "bind address")?;
    let sock = UdpSocket::bind(bind).map_err(|e| format!("bind: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let sending = Arc::new(AtomicBool::new(true));
    // stdin closing (the tool is done) stops the flow.
    {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 64];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
            stop.store(true, Ordering::SeqCst);
        });
    }
    let tx = sock.try_clone().map_err(|e| e.to_string())?;
    {
        let (stop, sent, sending) = (stop.clone(), sent.clone(), sending.clone());
        thread::spawn(move || {
            let start = Instant::now();
            let interval = Duration::from_millis(interval_ms.max(1));
            let mut seq = 0u64;
            let mut due = Duration::ZERO;
            while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(max_secs) {
                // Errors (no route, ICMP unreachable reported on a later send) are part of what is measured.
                let _ = tx.send_to(&encode_probe(seq, now_us()), to);
                seq += 1;
                sent.store(seq, Ordering::SeqCst);
                // The next datagram is due one interval after this one; if the host did not run us for longer
                // than that, carry on from now rather than send the missed ones in a burst.
                due += interval;
                let now = start.elapsed();
                match due.checked_sub(now) {
                    Some(d) => thread::sleep(d),
                    None => due = now,
                }
            }
            sending.store(false, Ordering::SeqCst);
        });
    }
    let out = std::io::stdout();
    let mut buf = [0u8; 64];
    let mut linger_until: Option<Instant> = None;
    loop {
        if linger_until.is_none() && !sending.load(Ordering::SeqCst) {
            linger_until = Some(Instant::now() + Duration::from_millis(linger_ms));
        }
        if linger_until.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            if from != to {
                continue;
            }
            if let Some((seq, sent_us)) = decode_probe(&buf[..n]) {
                let mut o = out.lock();
                let _ = writeln!(o, "r {seq} {sent_us} {}", now_us());
                let _ = o.flush();
            }
        }
    }
    let mut o = out.lock();
    let _ = writeln!(o, "s {}", sent.load(Ordering::SeqCst));
    let _ = o.flush();
    Ok(())
}

fn echo(listen: SocketAddr) -> Result<(), String> {
    let sock = UdpSocket::bind(listen).map_err(|e| format!("bind {listen}: {e}"))?;
    let mut buf = [0u8; 2048];
    loop {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            if n == gap::PROBE_LEN {
                let _ = sock.send_to(&buf[..n], from);
            }
        }
    }
}
