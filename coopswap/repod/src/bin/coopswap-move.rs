//! `coopswap-move`: moves a cooperative-swap device's page map from one Dom0 to another, the step of a VM's migration
//! that takes its swap state along (dissertation §6.2.4; Documentation/coopswap.md, "Moving a device's page map").
//!
//! On the destination, before the VM arrives (its device fresh and on, no repository added):
//!     coopswap-move receive --device 0 --listen 0.0.0.0:9500 [--then 'xl unpause vm1']
//! On the source, once the VM has left (xl migrate returned, or xl save / xl destroy):
//!     coopswap-move send --device 0 --to 10.0.0.2:9500 --power-off
//!
//! The source exports the map (waiting up to --wait-closed seconds for the VM's backend to let go of the device),
//! sends it (frame format in coopswap_repod::mapmove), and waits for the destination's answer; the destination
//! imports it into its device and answers. Only when the import worked does the source power its device off (its
//! pages stay at the repositories, which the destination's device now reads); any failure leaves the source device
//! as it was and exits non-zero with what went wrong, so the operator can fix the cause and send again.

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use coopswap_repod::mapmove::{recv_frame, recv_reply, send_frame, send_reply, Reply};
use std::io::{BufReader, ErrorKind};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

const CONFIGFS: &str = "/sys/kernel/config/coopswap";

#[derive(Parser)]
#[command(name = "coopswap-move", about = "Move a coopswap device's page map to another host's device")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Export this host's device map and send it to a `coopswap-move receive`.
    Send {
        /// The device: its number N (/sys/kernel/config/coopswap/N) or its configfs directory.
        #[arg(long)]
        device: String,
        /// The receiver's address, HOST:PORT.
        #[arg(long)]
        to: String,
        /// Where the kernel writes the exported map (an absolute path).
        #[arg(long)]
        map_file: Option<PathBuf>,
        /// Seconds to wait for the device to be closed (the VM's backend letting go) before the export.
        #[arg(long, default_value_t = 30)]
        wait_closed: u64,
        /// Seconds to wait for the receiver: to accept the connection, then to import and answer.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Power this device off once the destination imported the map.
        #[arg(long)]
        power_off: bool,
    },
    /// Wait for one map from a `coopswap-move send` and import it into this host's device.
    Receive {
        /// The device: its number N or its configfs directory. It must be on and fresh (nothing written yet).
        #[arg(long)]
        device: String,
        /// Address to listen on, ADDR:PORT.
        #[arg(long)]
        listen: String,
        /// Where the received map is written before the import (an absolute path).
        #[arg(long)]
        map_file: Option<PathBuf>,
        /// Seconds to wait for the sender.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
        /// A shell command to run once the map is imported (say, `xl unpause vm1`); its exit status is ours.
        #[arg(long)]
        then: Option<String>,
    },
}

/// The configfs directory of `device`, and a short name for files and messages.
fn device_dir(device: &str) -> Result<(PathBuf, String)> {
    let dir = if device.chars().all(|c| c.is_ascii_digit()) && !device.is_empty() {
        Path::new(CONFIGFS).join(device)
    } else {
        PathBuf::from(device)
    };
    if !dir.join("map_export").exists() || !dir.join("map_import").exists() {
        bail!(
            "{}: not a coopswap device directory (no map_export/map_import); create the device first (mkdir, size_mib, store, power) and load coopswap.ko",
            dir.display()
        );
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dev".into());
    Ok((dir, name))
}

fn absolute(p: PathBuf) -> Result<PathBuf> {
    if !p.is_absolute() {
        bail!("{}: the map file must be an absolute path (the kernel opens it)", p.display());
    }
    Ok(p)
}

/// Writes `value` to the configfs attribute `dir/attr`.
fn write_attr(dir: &Path, attr: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(dir.join(attr), format!("{value}\n"))
}

fn resolve(addr: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("{addr}: not an address (HOST:PORT)"))?
        .next()
        .ok_or_else(|| anyhow!("{addr}: resolves to no address"))
}

fn send(
    device: &str,
    to: &str,
    map_file: Option<PathBuf>,
    wait_closed: u64,
    timeout: u64,
    power_off: bool,
) -> Result<()> {
    let (dir, name) = device_dir(device)?;
    let map_file = absolute(map_file.unwrap_or_else(|| PathBuf::from(format!("/tmp/coopswap-move-{name}.map"))))?;
    let peer = resolve(to)?;
    let path = map_file.to_str().ok_or_else(|| anyhow!("{}: not UTF-8", map_file.display()))?;
    // The export: refused with EBUSY while anything has the device open (the VM's backend may take a moment).
    let until = Instant::now() + Duration::from_secs(wait_closed);
    loop {
        match write_attr(&dir, "map_export", path) {
            Ok(()) => break,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(200))
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => bail!(
                "{}: map export refused, the device is still open after {wait_closed} s: stop, save or migrate the VM that uses it first ({e})",
                dir.display()
            ),
            Err(e) => bail!("{}: map export to {path} failed: {e} (dmesg says why)", dir.display()),
        }
    }
    let map = std::fs::read(&map_file).with_context(|| format!("{path}: cannot read the exported map"))?;
    println!("coopswap-move: {}: map exported to {path} ({} bytes)", dir.display(), map.len());
    // The receiver may not listen yet: connection attempts until the timeout.
    let until = Instant::now() + Duration::from_secs(timeout);
    let mut conn = loop {
        match TcpStream::connect_timeout(&peer, Duration::from_secs(5)) {
            Ok(c) => break c,
            Err(e) if Instant::now() < until => {
                log_retry(&e, peer);
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => bail!("{peer}: cannot connect within {timeout} s ({e}); is `coopswap-move receive` running there? This device keeps its map"),
        }
    };
    conn.set_read_timeout(Some(Duration::from_secs(timeout)))?;
    conn.set_write_timeout(Some(Duration::from_secs(timeout)))?;
    send_frame(&mut conn, &map).with_context(|| format!("{peer}: sending the map failed; this device keeps its map"))?;
    let reply = recv_reply(&mut BufReader::new(&conn))
        .with_context(|| format!("{peer}: no answer to the map; this device keeps its map"))?;
    match reply {
        Reply::Ok(what) => println!("coopswap-move: {peer}: {what}"),
        Reply::Err(why) => bail!(
            "{peer} refused the map: {why}. This device keeps its map and stays as it was: fix the cause there and send again"
        ),
    }
    if power_off {
        write_attr(&dir, "power", "0").with_context(|| {
            format!("{}: the map was imported there, but powering this device off failed", dir.display())
        })?;
        println!("coopswap-move: {}: powered off (its pages stay at the repositories)", dir.display());
    }
    Ok(())
}

fn log_retry(e: &std::io::Error, peer: SocketAddr) {
    if !matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::TimedOut) {
        eprintln!("coopswap-move: {peer}: {e}; trying again");
    }
}

fn receive(device: &str, listen: &str, map_file: Option<PathBuf>, timeout: u64, then: Option<String>) -> Result<ExitCode> {
    let (dir, name) = device_dir(device)?;
    let map_file = absolute(map_file.unwrap_or_else(|| PathBuf::from(format!("/tmp/coopswap-move-{name}.received.map"))))?;
    let path = map_file.to_str().ok_or_else(|| anyhow!("{}: not UTF-8", map_file.display()))?.to_string();
    let addr = resolve(listen)?;
    let listener = TcpListener::bind(addr).with_context(|| format!("{addr}: cannot listen"))?;
    println!("coopswap-move: waiting on {} for the map of {}", listener.local_addr()?, dir.display());
    listener.set_nonblocking(true)?;
    let until = Instant::now() + Duration::from_secs(timeout);
    let (conn, peer) = loop {
        match listener.accept() {
            Ok(c) => break c,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => bail!("no map arrived within {timeout} s; nothing changed"),
            Err(e) => return Err(e).context("accept"),
        }
    };
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    conn.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut conn = conn;
    let outcome = recv_frame(&mut conn)
        .map_err(|e| format!("receiving the map failed: {e}"))
        .and_then(|map| {
            std::fs::write(&map_file, &map).map_err(|e| format!("{path}: cannot write the map: {e}"))?;
            write_attr(&dir, "map_import", &path).map_err(|e| {
                let hint = match e.raw_os_error() {
                    Some(libc::EBUSY) => " (the device is not fresh: something was written to it, or a map was imported already)",
                    Some(libc::EINVAL) => " (not a map of a device this size, or damaged)",
                    _ => "",
                };
                format!("{}: import refused: {e}{hint}; dmesg has the kernel's line", dir.display())
            })?;
            Ok(map.len())
        });
    let reply = match &outcome {
        Ok(n) => Reply::Ok(format!("imported into {} of {} ({n} bytes)", dir.display(), hostname())),
        Err(why) => Reply::Err(why.clone()),
    };
    // The answer goes back even when the import failed: the source must know to keep its device.
    if let Err(e) = send_reply(&mut conn, &reply) {
        eprintln!("coopswap-move: {peer}: could not answer ({e}); the source will time out and keep its device");
    }
    match outcome {
        Ok(n) => println!("coopswap-move: map from {peer} imported into {} ({n} bytes)", dir.display()),
        Err(why) => bail!("map from {peer} not imported: {why}"),
    }
    let Some(cmd) = then else { return Ok(ExitCode::SUCCESS) };
    let status = Command::new("sh").arg("-c").arg(&cmd).status().with_context(|| format!("cannot run `{cmd}`"))?;
    if status.success() {
        println!("coopswap-move: ran `{cmd}`");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("coopswap-move: the map is imported, but `{cmd}` failed ({status})");
        Ok(ExitCode::from(u8::try_from(status.code().unwrap_or(1)).unwrap_or(1).max(1)))
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "the destination".into())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Send { device, to, map_file, wait_closed, timeout, power_off } => {
            send(&device, &to, map_file, wait_closed, timeout, power_off).map(|()| ExitCode::SUCCESS)
        }
        Cmd::Receive { device, listen, map_file, timeout, then } => receive(&device, &listen, map_file, timeout, then),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("coopswap-move: {e:#}");
            ExitCode::from(1)
        }
    }
}
