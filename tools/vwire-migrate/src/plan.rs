//! The migration sequence of §5.2.4 as data: what is checked before anything changes (`preflight`), the steps and
//! their undo actions (`Plan`), and the executor that runs them against three hosts' /proc/vw and rolls back
//! (`execute`). Nothing here does I/O itself: the hosts are reached through the [`Hosts`] trait, so that the
//! refusals and the rollback paths are unit-tested with a scripted fake.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use vwire_core::addr::{parse_addr, Family};
use vwire_core::id::{parse_id, ConnectorId};
use vwire_core::mtu::DEFAULT_PORT;

/// The three places the sequence touches. Two of them may be the same machine (e.g. the sister on the
/// destination): each is still addressed through its own role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Where the moving guest's endpoint is now.
    Source,
    /// Where the guest goes: the new endpoint is created here.
    Dest,
    /// Where the other end of the connector is: it is repointed.
    Sister,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Source => "source",
            Role::Dest => "destination",
            Role::Sister => "sister",
        })
    }
}

/// One line of `/proc/vw/list`: `<N> <kind> <local> <remote> <mode>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    pub id: ConnectorId,
    pub kind: String,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub mode: String,
}

/// Parses `/proc/vw/list`. A line that does not parse is an error: the tool must not act on a listing it does not
/// understand (a newer module, a garbled transport).
pub fn parse_list(text: &str) -> Result<Vec<ListEntry>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let bad = |what: &str| format!("/proc/vw/list line {}: {what}: '{line}'", i + 1);
        if f.len() != 5 {
            return Err(bad("expected '<N> <kind> <local> <remote> <mode>'"));
        }
        let id = parse_id(f[0]).map_err(|e| bad(e.message()))?;
        let local = parse_addr(f[2], DEFAULT_PORT).map_err(|e| bad(e.message()))?;
        let remote = parse_addr(f[3], DEFAULT_PORT).map_err(|e| bad(e.message()))?;
        out.push(ListEntry {
            id,
            kind: f[1].to_string(),
            local,
            remote,
            mode: f[4].to_string(),
        });
    }
    Ok(out)
}

/// The `key: value` lines of one entry's block in `cat /proc/vw/<N>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusBlock {
    pub fields: Vec<(String, String)>,
}

impl StatusBlock {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn counter(&self, key: &str) -> Option<u64> {
        self.get(key)?.parse().ok()
    }

    pub fn local(&self) -> Option<SocketAddr> {
        parse_addr(self.get("local")?, DEFAULT_PORT).ok()
    }
}

/// Parses `cat /proc/vw/<N>`: one block per local entry of N, blocks separated by an empty line.
pub fn parse_status(text: &str) -> Vec<StatusBlock> {
    let mut blocks = Vec::new();
    let mut cur = StatusBlock::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.fields.is_empty() {
                blocks.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(": ") {
            cur.fields.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if !cur.fields.is_empty() {
        blocks.push(cur);
    }
    blocks
}

/// The block of the entry whose receive address is `local`.
pub fn block_for(blocks: &[StatusBlock], local: SocketAddr) -> Option<&StatusBlock> {
    blocks.iter().find(|b| b.local() == Some(local))
}

/// A network interface or bridge name as `ip link` accepts it (no shell metacharacters: it is put in a command).
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// What the operator asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoveSpec {
    pub id: ConnectorId,
    /// The receive address of the endpoint that moves, on the source host.
    pub from: SocketAddr,
    /// The receive address of the new endpoint, on the destination host.
    pub to: SocketAddr,
    /// The sister's receive address; when `None`, the source entry's remote address is taken.
    pub sister: Option<SocketAddr>,
    /// A bridge on the destination to enslave the new endpoint's interface to (the guest's back-end is on it).
    pub bridge: Option<String>,
    /// A local shell command run after the destination endpoint exists and before the sister is repointed: the
    /// hypervisor's stop-and-copy of the guest, in the order of §5.2.4.
    pub switch: Option<String>,
}

/// Why the tool refused before changing anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One change to one host's /proc/vw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write `line` to `/proc/vw/<file>` on `role`.
    Write { role: Role, file: String, line: String },
    /// Enslave the destination entry of `id` with receive address `local` to `bridge` and bring it up (its
    /// interface name is read from `/proc/vw/<id>` after the create).
    Attach {
        role: Role,
        id: ConnectorId,
        local: SocketAddr,
        bridge: String,
    },
    /// Run a shell command on the machine the tool runs on.
    Run { cmd: String },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Write { role, file, line } => write!(f, "{role}: echo \"{line}\" > /proc/vw/{file}"),
            Action::Attach {
                role,
                id,
                local,
                bridge,
            } => {
                write!(f, "{role}: ip link set <ifname of {id} {local}> master {bridge} up")
            }
            Action::Run { cmd } => write!(f, "local: {cmd}"),
        }
    }
}

/// A step: what it does, and what undoes it if a later step fails (`None`: nothing to undo, or not undone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub name: &'static str,
    pub action: Action,
    pub undo: Option<Action>,
    /// A failure of this step is reported but rolls nothing back: the move has already happened (the sister sends
    /// to the destination), so undoing would cut the guest off.
    pub past_point_of_no_return: bool,
}

/// The checked plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub spec: MoveSpec,
    pub sister: SocketAddr,
    pub steps: Vec<Step>,
}

/// Checks the three hosts' listings and builds the steps. Refuses (changing nothing) unless: the source has an
/// endpoint (N, from); the sister has an entry (N, sister) that sends to `from`; the destination has no entry
/// (N, to); `to` is of the sister's address family and is not `from` itself.
pub fn preflight(
    spec: &MoveSpec,
    source: &[ListEntry],
    dest: &[ListEntry],
    sister: &[ListEntry],
) -> Result<Plan, Refusal> {
    let id = spec.id;
    let r = |s: String| Err(Refusal(s));
    let Some(src) = source.iter().find(|e| e.id == id && e.local == spec.from) else {
        return r(format!(
            "the source host has no entry {id} receiving on {} (see its /proc/vw/list)",
            spec.from
        ));
    };
    if src.kind != "endpoint" {
        return r(format!(
            "entry {id} {} on the source is a {}, not an endpoint; only endpoints move",
            spec.from, src.kind
        ));
    }
    let sister_addr = spec.sister.unwrap_or(src.remote);
    if src.remote != sister_addr {
        return r(format!(
            "entry {id} {} on the source sends to {}, not to the given sister {sister_addr}",
            spec.from, src.remote
        ));
    }
    let Some(sis) = sister.iter().find(|e| e.id == id && e.local == sister_addr) else {
        return r(format!("the sister host has no entry {id} receiving on {sister_addr}"));
    };
    if sis.remote != spec.from {
        return r(format!(
            "the sister entry {id} {sister_addr} sends to {}, not to the source {} (another move in progress?)",
            sis.remote, spec.from
        ));
    }
    if spec.to == spec.from {
        return r(format!(
            "the destination address {} is the source address: nothing to move",
            spec.to
        ));
    }
    if spec.to == sister_addr {
        return r(format!(
            "the destination address {} is the sister's own address",
            spec.to
        ));
    }
    if Family::of(&spec.to) != Family::of(&sister_addr) {
        return r(format!(
            "the destination address {} and the sister {sister_addr} are of different address families",
            spec.to
        ));
    }
    if dest.iter().any(|e| e.id == id && e.local == spec.to) {
        return r(format!(
            "the destination host already has an entry {id} receiving on {}",
            spec.to
        ));
    }
    if let Some(b) = &spec.bridge {
        if !valid_ifname(b) {
            return r(format!("'{b}' is not an interface name"));
        }
    }
    let destroy_new = Action::Write {
        role: Role::Dest,
        file: "destroy".into(),
        line: format!("{id} {}", spec.to),
    };
    let mut steps = vec![Step {
        name: "create",
        action: Action::Write {
            role: Role::Dest,
            file: "create".into(),
            line: format!("{id} {} {sister_addr}", spec.to),
        },
        undo: Some(destroy_new.clone()),
        past_point_of_no_return: false,
    }];
    if let Some(bridge) = &spec.bridge {
        steps.push(Step {
            name: "attach",
            action: Action::Attach {
                role: Role::Dest,
                id,
                local: spec.to,
                bridge: bridge.clone(),
            },
            // Destroying the entry (the create's undo) removes its interface from the bridge.
            undo: None,
            past_point_of_no_return: false,
        });
    }
    if let Some(cmd) = &spec.switch {
        steps.push(Step {
            name: "switch",
            action: Action::Run { cmd: cmd.clone() },
            undo: None,
            past_point_of_no_return: false,
        });
    }
    steps.push(Step {
        name: "repoint",
        action: Action::Write {
            role: Role::Sister,
            file: id.to_string(),
            line: format!("{sister_addr} {}", spec.to),
        },
        undo: Some(Action::Write {
            role: Role::Sister,
            file: id.to_string(),
            line: format!("{sister_addr} {}", spec.from),
        }),
        past_point_of_no_return: false,
    });
    steps.push(Step {
        name: "destroy",
        action: Action::Write {
            role: Role::Source,
            file: "destroy".into(),
            line: format!("{id} {}", spec.from),
        },
        undo: None,
        past_point_of_no_return: true,
    });
    Ok(Plan {
        spec: spec.clone(),
        sister: sister_addr,
        steps,
    })
}

/// Access to the three hosts' /proc/vw (and `ip link` on the destination).
pub trait Hosts {
    /// The text of `/proc/vw/<file>` on `role`.
    fn read(&mut self, role: Role, file: &str) -> Result<String, String>;
    /// Writes one line to `/proc/vw/<file>` on `role`; the error carries the errno text.
    fn write(&mut self, role: Role, file: &str, line: &str) -> Result<(), String>;
    /// `ip link set <ifname> master <bridge> up` on `role`.
    fn attach(&mut self, role: Role, ifname: &str, bridge: &str) -> Result<(), String>;
    /// Runs a local shell command (the `switch` step).
    fn run(&mut self, cmd: &str) -> Result<(), String>;
}

/// Runs one action.
pub fn run_action<H: Hosts>(h: &mut H, a: &Action) -> Result<(), String> {
    match a {
        Action::Write { role, file, line } => h.write(*role, file, line),
        Action::Attach {
            role,
            id,
            local,
            bridge,
        } => {
            let text = h.read(*role, &id.to_string())?;
            let blocks = parse_status(&text);
            let Some(b) = block_for(&blocks, *local) else {
                return Err(format!("/proc/vw/{id} has no entry receiving on {local}"));
            };
            let ifname = b.get("ifname").unwrap_or("-");
            if !valid_ifname(ifname) {
                return Err(format!("entry {id} {local} has no usable interface name ('{ifname}')"));
            }
            h.attach(*role, ifname, bridge)
        }
        Action::Run { cmd } => h.run(cmd),
    }
}

/// What happened to one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepResult {
    pub name: &'static str,
    pub action: String,
    pub elapsed: Duration,
    pub error: Option<String>,
}

/// The outcome of `execute`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every step succeeded.
    Moved,
    /// Step `failed` failed before the point of no return; the listed undo actions ran (`undo_errors` are those
    /// that failed in turn: state the operator must clean up by hand).
    RolledBack {
        failed: &'static str,
        undone: Vec<String>,
        undo_errors: Vec<String>,
    },
    /// The guest's connector now goes to the destination, but a later step (destroying the source) failed; the
    /// stale source entry must be removed by hand with the given action.
    MovedWithLeftover { failed: &'static str, manual: String },
}

/// Runs the plan's steps in order, timing each; on a failure before the point of no return, runs the undo actions
/// of the steps already done, newest first.
pub fn execute<H: Hosts>(h: &mut H, plan: &Plan) -> (Vec<StepResult>, Outcome) {
    let mut results = Vec::new();
    let mut done: Vec<&Step> = Vec::new();
    for step in &plan.steps {
        let t = Instant::now();
        let r = run_action(h, &step.action);
        results.push(StepResult {
            name: step.name,
            action: step.action.to_string(),
            elapsed: t.elapsed(),
            error: r.as_ref().err().cloned(),
        });
        if r.is_ok() {
            done.push(step);
            continue;
        }
        if step.past_point_of_no_return {
            return (
                results,
                Outcome::MovedWithLeftover {
                    failed: step.name,
                    manual: step.action.to_string(),
                },
            );
        }
        let mut undone = Vec::new();
        let mut undo_errors = Vec::new();
        for d in done.iter().rev() {
            if let Some(u) = &d.undo {
                match run_action(h, u) {
                    Ok(()) => undone.push(u.to_string()),
                    Err(e) => undo_errors.push(format!("{u}: {e}")),
                }
            }
        }
        return (
            results,
            Outcome::RolledBack {
                failed: step.name,
                undone,
                undo_errors,
            },
        );
    }
    (results, Outcome::Moved)
}

/// A host argument: `local`, `tcp:ADDR:PORT` (a `vwire-migrate serve` there) or a name for the remote command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostSpec {
    Local,
    Tcp(String),
    Remote(String),
}

pub fn parse_host(s: &str) -> Result<HostSpec, String> {
    if s == "local" {
        return Ok(HostSpec::Local);
    }
    if let Some(a) = s.strip_prefix("tcp:") {
        if a.rsplit_once(':')
            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        {
            return Err(format!("'{s}': expected tcp:HOST:PORT"));
        }
        return Ok(HostSpec::Tcp(a.to_string()));
    }
    if s.is_empty()
        || s.bytes()
            .any(|b| !(b.is_ascii_alphanumeric() || b"-_.@:[]".contains(&b)))
    {
        return Err(format!("'{s}' is not a host name"));
    }
    Ok(HostSpec::Remote(s.to_string()))
}

/// The argv that runs shell command line `script` on `host` through `template` (`ssh {host}` by default): the
/// template's whitespace-separated words, `{host}` replaced, then `script` as one last argument, which the
/// template's command must run as a shell command line (as ssh does). An empty template runs `sh -c script`.
pub fn remote_argv(template: &str, host: &str, script: &str) -> Vec<String> {
    let mut v: Vec<String> = template.split_whitespace().map(|w| w.replace("{host}", host)).collect();
    if v.is_empty() {
        v = vec!["sh".into(), "-c".into()];
    }
    v.push(script.to_string());
    v
}

/// Single-quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A `/proc/vw/<file>` name the tool (and `serve`) accepts: the fixed files and connector ids.
pub fn valid_proc_file(f: &str) -> bool {
    matches!(f, "create" | "destroy" | "list" | "manager") || parse_id(f).is_ok()
}

/// Parses `N` for the command line.
pub fn parse_connector(s: &str) -> Result<ConnectorId, String> {
    parse_id(s).map_err(|e| e.message().to_string())
}

/// Parses an address for the command line (the /proc/vw syntax; the port defaults to 4789).
pub fn parse_endpoint(s: &str) -> Result<SocketAddr, String> {
    parse_addr(s, DEFAULT_PORT).map_err(|e| format!("'{s}': {}", e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn a(s: &str) -> SocketAddr {
        parse_endpoint(s).unwrap()
    }

    fn list(text: &str) -> Vec<ListEntry> {
        parse_list(text).unwrap()
    }

    fn spec() -> MoveSpec {
        MoveSpec {
            id: parse_connector("7").unwrap(),
            from: a("10.99.0.1:4789"),
            to: a("10.99.0.2:4790"),
            sister: None,
            bridge: Some("br1".into()),
            switch: None,
        }
    }

    const SRC: &str = "7 endpoint 10.99.0.1:4789 10.99.0.2:4789 encapsulating\n";
    const SIS: &str = "7 endpoint 10.99.0.2:4789 10.99.0.1:4789 encapsulating\n";

    #[test]
    fn list_parses_and_rejects_garbage() {
        let l = list(
            "7 endpoint 10.99.0.1:4789 10.99.0.2:4789 encapsulating\n11 relay [fd99::1]:6101 [fd99::2]:6002 relay\n",
        );
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].local, a("[fd99::1]:6101"));
        assert_eq!(l[1].kind, "relay");
        assert!(parse_list("").unwrap().is_empty());
        assert!(parse_list("7 endpoint 10.99.0.1:4789\n").is_err());
        assert!(parse_list("x endpoint 10.99.0.1:4789 10.99.0.2:4789 encapsulating\n").is_err());
        assert!(parse_list("7 endpoint 10.99.0.1:4789 10.999.0.2:4789 encapsulating\n").is_err());
    }

    #[test]
    fn status_blocks() {
        let t = "id: 7\nlocal: 10.99.0.2:4789\nrx_frames: 3\nifname: vw7\n\nid: 7\nlocal: 10.99.0.2:4790\nrx_frames: 9\nifname: vw7-1\n";
        let b = parse_status(t);
        assert_eq!(b.len(), 2);
        let x = block_for(&b, a("10.99.0.2:4790")).unwrap();
        assert_eq!(x.get("ifname"), Some("vw7-1"));
        assert_eq!(x.counter("rx_frames"), Some(9));
        assert!(block_for(&b, a("10.99.0.2:4791")).is_none());
    }

    #[test]
    fn plan_is_the_papers_sequence() {
        let p = preflight(&spec(), &list(SRC), &list(SIS), &list(SIS)).unwrap();
        assert_eq!(p.sister, a("10.99.0.2:4789"));
        let names: Vec<_> = p.steps.iter().map(|s| s.name).collect();
        assert_eq!(names, ["create", "attach", "repoint", "destroy"]);
        assert_eq!(
            p.steps[0].action,
            Action::Write {
                role: Role::Dest,
                file: "create".into(),
                line: "7 10.99.0.2:4790 10.99.0.2:4789".into()
            }
        );
        assert_eq!(
            p.steps[2].action,
            Action::Write {
                role: Role::Sister,
                file: "7".into(),
                line: "10.99.0.2:4789 10.99.0.2:4790".into()
            }
        );
        assert_eq!(
            p.steps[3].action,
            Action::Write {
                role: Role::Source,
                file: "destroy".into(),
                line: "7 10.99.0.1:4789".into()
            }
        );
        let mut s = spec();
        s.bridge = None;
        let p = preflight(&s, &list(SRC), &[], &list(SIS)).unwrap();
        assert_eq!(p.steps.len(), 3);
    }

    #[test]
    fn ipv6_lines_use_brackets() {
        let s = MoveSpec {
            id: parse_connector("6").unwrap(),
            from: a("[fd99::1]:4789"),
            to: a("[fd99::3]"),
            sister: None,
            bridge: None,
            switch: None,
        };
        let src = list("6 endpoint [fd99::1]:4789 [fd99::2]:4789 encapsulating\n");
        let sis = list("6 endpoint [fd99::2]:4789 [fd99::1]:4789 encapsulating\n");
        let p = preflight(&s, &src, &[], &sis).unwrap();
        assert_eq!(
            p.steps[0].action,
            Action::Write {
                role: Role::Dest,
                file: "create".into(),
                line: "6 [fd99::3]:4789 [fd99::2]:4789".into()
            }
        );
    }

    #[test]
    fn refusals() {
        let s = spec();
        let bad = |s: &MoveSpec, src: &str, dst: &str, sis: &str| {
            preflight(s, &list(src), &list(dst), &list(sis)).unwrap_err().0
        };
        assert!(bad(&s, "", "", SIS).contains("no entry 7"));
        assert!(bad(&s, "7 relay 10.99.0.1:4789 10.99.0.2:4789 relay\n", "", SIS).contains("not an endpoint"));
        assert!(bad(&s, SRC, "", "").contains("sister host has no entry"));
        assert!(bad(&s, SRC, "", "7 endpoint 10.99.0.2:4789 10.99.0.3:4789 encapsulating\n").contains("another move"));
        assert!(bad(&s, SRC, "7 endpoint 10.99.0.2:4790 10.99.0.9:1 encapsulating\n", SIS).contains("already has"));
        let mut t = s.clone();
        t.sister = Some(a("10.99.0.5"));
        assert!(bad(&t, SRC, "", SIS).contains("not to the given sister"));
        let mut t = s.clone();
        t.to = t.from;
        assert!(bad(&t, SRC, "", SIS).contains("nothing to move"));
        let mut t = s.clone();
        t.to = a("10.99.0.2:4789");
        assert!(bad(&t, SRC, "", SIS).contains("sister's own"));
        let mut t = s.clone();
        t.to = a("[fd99::2]");
        assert!(bad(&t, SRC, "", SIS).contains("families"));
        let mut t = s.clone();
        t.bridge = Some("br0; reboot".into());
        assert!(bad(&t, SRC, "", SIS).contains("not an interface name"));
        // Another entry of N elsewhere on the destination is fine (it becomes vw7-1).
        assert!(preflight(&s, &list(SRC), &list(SIS), &list(SIS)).is_ok());
    }

    /// A fake of three hosts that records every write and fails chosen ones.
    #[derive(Default)]
    struct Fake {
        log: Vec<String>,
        fail_write: HashMap<String, String>,
        fail_attach: bool,
        status: String,
    }

    impl Hosts for Fake {
        fn read(&mut self, role: Role, file: &str) -> Result<String, String> {
            self.log.push(format!("read {role} {file}"));
            Ok(self.status.clone())
        }
        fn write(&mut self, role: Role, file: &str, line: &str) -> Result<(), String> {
            let k = format!("{role} {file} {line}");
            self.log.push(format!("write {k}"));
            match self.fail_write.get(&k) {
                Some(e) => Err(e.clone()),
                None => Ok(()),
            }
        }
        fn run(&mut self, cmd: &str) -> Result<(), String> {
            self.log.push(format!("run {cmd}"));
            if cmd == "false" {
                Err("exit status: 1".into())
            } else {
                Ok(())
            }
        }
        fn attach(&mut self, role: Role, ifname: &str, bridge: &str) -> Result<(), String> {
            self.log.push(format!("attach {role} {ifname} {bridge}"));
            if self.fail_attach {
                Err("RTNETLINK answers: No such device".into())
            } else {
                Ok(())
            }
        }
    }

    fn plan() -> Plan {
        preflight(&spec(), &list(SRC), &list(SIS), &list(SIS)).unwrap()
    }

    /// A rollback before the repoint must never have written to the sister or the source.
    fn assert_sister_and_source_untouched(f: &Fake) {
        assert!(!f.log.iter().any(|l| l.starts_with("write sister") || l.starts_with("write source")));
    }

    fn fake() -> Fake {
        Fake {
            status: "id: 7\nlocal: 10.99.0.2:4789\nifname: vw7\n\nid: 7\nlocal: 10.99.0.2:4790\nifname: vw7-1\n".into(),
            ..Fake::default()
        }
    }

    #[test]
    fn all_steps_in_order() {
        let mut f = fake();
        let (r, o) = execute(&mut f, &plan());
        assert_eq!(o, Outcome::Moved);
        assert_eq!(r.len(), 4);
        assert!(r.iter().all(|s| s.error.is_none()));
        assert_eq!(
            f.log,
            [
                "write destination create 7 10.99.0.2:4790 10.99.0.2:4789",
                "read destination 7",
                "attach destination vw7-1 br1",
                "write sister 7 10.99.0.2:4789 10.99.0.2:4790",
                "write source destroy 7 10.99.0.1:4789",
            ]
        );
    }

    #[test]
    fn create_fails_nothing_else_changes() {
        let mut f = fake();
        f.fail_write.insert(
            "destination create 7 10.99.0.2:4790 10.99.0.2:4789".into(),
            "Address already in use".into(),
        );
        let (r, o) = execute(&mut f, &plan());
        assert_eq!(
            o,
            Outcome::RolledBack {
                failed: "create",
                undone: vec![],
                undo_errors: vec![]
            }
        );
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].error.as_deref(), Some("Address already in use"));
        assert_eq!(f.log.len(), 1);
    }

    #[test]
    fn attach_fails_destroys_what_was_created() {
        let mut f = fake();
        f.fail_attach = true;
        let (_, o) = execute(&mut f, &plan());
        assert!(matches!(o, Outcome::RolledBack { failed: "attach", ref undo_errors, .. } if undo_errors.is_empty()));
        assert_eq!(f.log.last().unwrap(), "write destination destroy 7 10.99.0.2:4790");
        assert_sister_and_source_untouched(&f);
    }

    #[test]
    fn attach_without_interface_fails() {
        let mut f = fake();
        f.status = "id: 7\nlocal: 10.99.0.2:4789\nifname: vw7\n".into();
        let (r, o) = execute(&mut f, &plan());
        assert!(matches!(o, Outcome::RolledBack { failed: "attach", .. }));
        assert!(r[1]
            .error
            .as_ref()
            .unwrap()
            .contains("no entry receiving on 10.99.0.2:4790"));
    }

    #[test]
    fn repoint_fails_destroys_what_was_created() {
        let mut f = fake();
        f.fail_write.insert(
            "sister 7 10.99.0.2:4789 10.99.0.2:4790".into(),
            "No such file or directory".into(),
        );
        let (_, o) = execute(&mut f, &plan());
        assert_eq!(
            o,
            Outcome::RolledBack {
                failed: "repoint",
                undone: vec!["destination: echo \"7 10.99.0.2:4790\" > /proc/vw/destroy".into()],
                undo_errors: vec![]
            }
        );
        assert!(!f.log.iter().any(|l| l.starts_with("write source")));
    }

    #[test]
    fn failed_undo_is_reported() {
        let mut f = fake();
        f.fail_write.insert(
            "sister 7 10.99.0.2:4789 10.99.0.2:4790".into(),
            "Connection refused".into(),
        );
        f.fail_write.insert(
            "destination destroy 7 10.99.0.2:4790".into(),
            "Connection refused".into(),
        );
        let (_, o) = execute(&mut f, &plan());
        match o {
            Outcome::RolledBack {
                failed: "repoint",
                undone,
                undo_errors,
            } => {
                assert!(undone.is_empty());
                assert_eq!(undo_errors.len(), 1);
                assert!(undo_errors[0].contains("/proc/vw/destroy"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn switch_runs_between_attach_and_repoint() {
        let mut s = spec();
        s.switch = Some("xl migrate --stop-and-copy g".into());
        let p = preflight(&s, &list(SRC), &list(SIS), &list(SIS)).unwrap();
        let names: Vec<_> = p.steps.iter().map(|s| s.name).collect();
        assert_eq!(names, ["create", "attach", "switch", "repoint", "destroy"]);
        let mut f = fake();
        assert_eq!(execute(&mut f, &p).1, Outcome::Moved);
        assert_eq!(f.log[3], "run xl migrate --stop-and-copy g");
    }

    #[test]
    fn switch_fails_destroys_what_was_created() {
        let mut s = spec();
        s.switch = Some("false".into());
        let p = preflight(&s, &list(SRC), &list(SIS), &list(SIS)).unwrap();
        let mut f = fake();
        let (_, o) = execute(&mut f, &p);
        assert!(matches!(o, Outcome::RolledBack { failed: "switch", ref undone, .. } if undone.len() == 1));
        assert_eq!(f.log.last().unwrap(), "write destination destroy 7 10.99.0.2:4790");
        assert_sister_and_source_untouched(&f);
    }

    #[test]
    fn destroy_fails_after_the_move_is_not_undone() {
        let mut f = fake();
        f.fail_write
            .insert("source destroy 7 10.99.0.1:4789".into(), "Connection timed out".into());
        let (r, o) = execute(&mut f, &plan());
        assert_eq!(
            o,
            Outcome::MovedWithLeftover {
                failed: "destroy",
                manual: "source: echo \"7 10.99.0.1:4789\" > /proc/vw/destroy".into()
            }
        );
        assert_eq!(r.len(), 4);
        // No undo ran: the sister still points at the destination.
        assert_eq!(f.log.last().unwrap(), "write source destroy 7 10.99.0.1:4789");
    }

    #[test]
    fn hosts_and_commands() {
        assert_eq!(parse_host("local"), Ok(HostSpec::Local));
        assert_eq!(
            parse_host("tcp:10.99.0.1:7070"),
            Ok(HostSpec::Tcp("10.99.0.1:7070".into()))
        );
        assert!(parse_host("tcp:10.99.0.1").is_err());
        assert_eq!(parse_host("root@hostb"), Ok(HostSpec::Remote("root@hostb".into())));
        assert!(parse_host("a b").is_err());
        assert!(parse_host("a;b").is_err());
        assert_eq!(
            remote_argv("ssh {host}", "hb", "cat /proc/vw/list"),
            ["ssh", "hb", "cat /proc/vw/list"]
        );
        assert_eq!(remote_argv("", "hb", "x"), ["sh", "-c", "x"]);
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert!(valid_proc_file("create") && valid_proc_file("7") && valid_proc_file("list"));
        assert!(!valid_proc_file("../etc") && !valid_proc_file("0") && !valid_proc_file("7/x"));
        assert!(
            valid_ifname("vw7-1") && !valid_ifname("") && !valid_ifname("a b") && !valid_ifname("0123456789abcdef")
        );
    }
}
