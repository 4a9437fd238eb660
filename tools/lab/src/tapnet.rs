//! `--tap QUEUES`: a single host's NIC on a TAP device instead of QEMU's user-mode networking, so that the guest's
//! virtio-net device is what a provider's usually is — checksum and segmentation offloads (QEMU offers them only
//! when its back end takes virtio-net headers, as a TAP does) and, with QUEUES > 1, several queue pairs.
//!
//! The TAP lives in a network namespace of its own, `ovc-lab-<pid>`, made for the run and deleted after it, so
//! nothing touches the machine's own networking: the namespace's end of the TAP has 10.0.2.2/24 (the address
//! QEMU's user-mode gateway has, so scenarios talk to the same peer either way) and runs iperf3 servers on ports
//! 5201–5203. QEMU runs inside the namespace (`ip netns exec`). Needs root (CAP_NET_ADMIN) and /dev/net/tun.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The TAP's name inside the namespace.
pub const TAP: &str = "ovctap0";
/// The namespace end's address (QEMU's user-mode gateway has the same).
pub const PEER_ADDR: &str = "10.0.2.2/24";
/// iperf3 servers the namespace runs.
pub const IPERF_PORTS: [u16; 3] = [5201, 5202, 5203];

/// The namespace and what runs in it; torn down on drop.
pub struct TapNet {
    ns: String,
    pidfiles: Vec<PathBuf>,
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The `ip tuntap add` arguments for a TAP with `queues` queues (multi_queue only when several: QEMU opens a
/// single-queue TAP without IFF_MULTI_QUEUE, and the kernel refuses a mismatch).
pub fn tuntap_args(ns: &str, queues: u32) -> Vec<String> {
    let mut v: Vec<String> = ["-n", ns, "tuntap", "add", "dev", TAP, "mode", "tap"].iter().map(|s| s.to_string()).collect();
    if queues > 1 {
        v.push("multi_queue".into());
    }
    v
}

impl TapNet {
    /// Makes the namespace, the TAP with its address, and the iperf3 servers.
    pub fn new(queues: u32) -> Result<Self> {
        if queues == 0 {
            bail!("--tap needs at least one queue");
        }
        let ns = format!("ovc-lab-{}", std::process::id());
        let _ = ip(&["netns", "del", &ns]);
        ip(&["netns", "add", &ns]).context("making the lab's network namespace (--tap needs root)")?;
        let mut t = TapNet { ns, pidfiles: Vec::new() };
        let args = tuntap_args(&t.ns, queues);
        ip(&args.iter().map(String::as_str).collect::<Vec<_>>()).context("making the TAP (needs /dev/net/tun)")?;
        ip(&["-n", &t.ns, "link", "set", "lo", "up"])?;
        ip(&["-n", &t.ns, "addr", "add", PEER_ADDR, "dev", TAP])?;
        ip(&["-n", &t.ns, "link", "set", TAP, "up"])?;
        for port in IPERF_PORTS {
            let pidfile = std::env::temp_dir().join(format!("{}-iperf3-{port}.pid", t.ns));
            let p = port.to_string();
            let pf = pidfile.to_string_lossy().to_string();
            ip(&["netns", "exec", &t.ns, "iperf3", "-s", "-D", "-p", &p, "--pidfile", &pf])
                .context("starting iperf3 servers in the lab's namespace (scripts/setup installs iperf3)")?;
            t.pidfiles.push(pidfile);
        }
        Ok(t)
    }

    /// The namespace QEMU must run in.
    pub fn namespace(&self) -> &str {
        &self.ns
    }
}

impl Drop for TapNet {
    fn drop(&mut self) {
        for pf in &self.pidfiles {
            if let Ok(pid) = std::fs::read_to_string(pf) {
                let _ = Command::new("kill").arg(pid.trim().trim_end_matches('\0')).status();
            }
            let _ = std::fs::remove_file(pf);
        }
        let _ = ip(&["netns", "del", &self.ns]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_queue_only_with_several_queues() {
        assert!(!tuntap_args("ns", 1).contains(&"multi_queue".to_string()));
        assert_eq!(tuntap_args("ns", 2).last().map(String::as_str), Some("multi_queue"));
        assert_eq!(tuntap_args("x", 1)[..2], ["-n".to_string(), "x".to_string()]);
    }
}
