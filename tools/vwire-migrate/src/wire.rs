//! The protocol of `vwire-migrate serve`, the small helper that gives the tool another host's /proc/vw without ssh
//! (the lab has no ssh). One TCP connection per request: the client sends one line, the server answers `ok` and the
//! body, or `err <message>`, and closes. Only three requests exist, and each is checked before anything is done:
//!
//! ```text
//! read <file>            -> the text of /proc/vw/<file>
//! write <file> <line>    -> writes <line> to /proc/vw/<file>
//! attach <ifname> <br>   -> ip link set <ifname> master <br> up
//! ```
//! `<file>` is `create`, `destroy`, `list`, `manager` or a connector id; `<line>` is printable ASCII (at most 256
//! bytes, the module's own limit); names are interface names. It is not a remote shell, but it has no
//! authentication either: anyone who reaches the port can create and destroy endpoints, so bind it to a management
//! address only reachable by the operator (the lab binds the host's link address).

use crate::plan::{valid_ifname, valid_proc_file};

/// Longest request line the server reads.
pub const MAX_REQUEST: usize = 512;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Read { file: String },
    Write { file: String, line: String },
    Attach { ifname: String, bridge: String },
}

impl Request {
    /// The request as one line (without the newline).
    pub fn encode(&self) -> String {
        match self {
            Request::Read { file } => format!("read {file}"),
            Request::Write { file, line } => format!("write {file} {line}"),
            Request::Attach { ifname, bridge } => format!("attach {ifname} {bridge}"),
        }
    }
}

fn valid_line(l: &str) -> bool {
    !l.is_empty() && l.len() <= 256 && l.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Parses and checks one request line.
pub fn parse_request(line: &str) -> Result<Request, String> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    match verb {
        "read" if valid_proc_file(rest) => Ok(Request::Read { file: rest.to_string() }),
        "write" => {
            let (file, l) = rest.split_once(' ').ok_or("write needs a file and a line")?;
            if !valid_proc_file(file) {
                return Err(format!("'{file}' is not a /proc/vw file"));
            }
            if !valid_line(l) {
                return Err("the line must be 1-256 printable ASCII characters".into());
            }
            Ok(Request::Write {
                file: file.to_string(),
                line: l.to_string(),
            })
        }
        "attach" => {
            let (i, b) = rest.split_once(' ').ok_or("attach needs an interface and a bridge")?;
            if !valid_ifname(i) || !valid_ifname(b) {
                return Err("attach needs two interface names".into());
            }
            Ok(Request::Attach {
                ifname: i.to_string(),
                bridge: b.to_string(),
            })
        }
        "read" => Err(format!("'{rest}' is not a /proc/vw file")),
        _ => Err(format!("unknown request '{verb}' (read, write, attach)")),
    }
}

/// Splits a server's answer into the body or the error message.
pub fn parse_answer(text: &str) -> Result<String, String> {
    if let Some(body) = text.strip_prefix("ok\n") {
        Ok(body.to_string())
    } else if let Some(msg) = text.strip_prefix("err ") {
        Err(msg.trim_end().to_string())
    } else {
        Err(format!(
            "malformed answer from the serve helper: '{}'",
            text.chars().take(80).collect::<String>()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for r in [
            Request::Read { file: "list".into() },
            Request::Read { file: "7".into() },
            Request::Write {
                file: "create".into(),
                line: "7 10.99.0.1:4791 10.99.0.2:4789".into(),
            },
            Request::Write {
                file: "7".into(),
                line: "[fd99::2]:4789 [fd99::3]:4789".into(),
            },
            Request::Attach {
                ifname: "vw7-1".into(),
                bridge: "br0".into(),
            },
        ] {
            assert_eq!(parse_request(&format!("{}\n", r.encode())), Ok(r));
        }
    }

    #[test]
    fn requests_refused() {
        for bad in [
            "read /etc/shadow",
            "read ../../etc/passwd",
            "read",
            "write 7",
            "write ../x 1",
            "write create \u{1b}[2J",
            "write create a\tb",
            "attach vw7",
            "attach vw7 br0;reboot",
            "exec sh",
            "",
        ] {
            assert!(parse_request(bad).is_err(), "{bad}");
        }
        assert!(parse_request(&format!("write create {}", "1".repeat(257))).is_err());
    }

    #[test]
    fn answers() {
        assert_eq!(parse_answer("ok\nabc\n"), Ok("abc\n".into()));
        assert_eq!(parse_answer("ok\n"), Ok(String::new()));
        assert_eq!(
            parse_answer("err File exists (os error 17)\n"),
            Err("File exists (os error 17)".into())
        );
        assert!(parse_answer("").is_err());
    }
}
