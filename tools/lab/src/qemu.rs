//! The QEMU command line for each lab host, as a pure function of a [`HostSpec`].
//!
//! * vm: `-kernel BZIMAGE -initrd CPIO -append "console=ttyS0 panic=-1 …"`.
//! * nested: QEMU's multiboot loader boots Xen (`-kernel xen.elf -append "console=com1 dom0_mem=… noreboot …"`)
//!   with two modules given to `-initrd` as `"BZIMAGE ARGS,CPIO"`: the Dom0 kernel with its command line,
//!   then the initramfs. QEMU splits that option at single commas and reads `,,` as a literal comma (the
//!   usual QEMU option escaping), so commas in paths or kernel arguments are doubled.
//! * Each host gets one virtio-net NIC: user-mode networking with `restrict=on` (nothing leaves the machine)
//!   for a single host, or a `-netdev dgram` link over 127.0.0.1 between the two hosts of a pair. In a trio the
//!   middle host has a second NIC (`net2`), its own point-to-point link to the third host.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// Our kernel directly in QEMU.
    Vm,
    /// QEMU -> Xen 4.17 -> our kernel as Dom0.
    Nested,
    /// Two hosts on one virtual link (each a vm, or a nested host with --pair-kind nested).
    Pair,
    /// Three hosts in a chain, as two clouds joined at one host: host 0 —link A— host 1 —link B— host 2. Host 1
    /// has a NIC on each link; hosts 0 and 2 share no link (each host as in a pair, --pair-kind).
    Trio,
}

/// What one QEMU instance runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostKind {
    Vm,
    Nested,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Tcg,
    Kvm,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Net {
    None,
    /// QEMU user-mode networking, restricted to the guest (no traffic leaves the machine).
    User,
    /// A point-to-point link: UDP datagrams between two QEMUs on 127.0.0.1.
    Dgram { local_port: u16, remote_port: u16 },
    /// The TAP of the lab's network namespace (`--tap`, see `tapnet`), with this many queue pairs.
    Tap { queues: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    pub kind: HostKind,
    pub accel: Accel,
    pub kernel: PathBuf,
    pub xen: Option<PathBuf>,
    pub initrd: PathBuf,
    pub memory_mib: u32,
    pub smp: u32,
    /// Arguments for our Linux kernel (after the lab's own `console=… panic=-1`).
    pub kernel_args: Vec<String>,
    /// Dom0's memory under Xen (nested only).
    pub dom0_mem_mib: u32,
    /// Extra Xen command-line arguments (nested only).
    pub xen_args: Vec<String>,
    pub net: Net,
    pub mac: String,
    /// A second NIC (`eth1`), with its MAC: the middle host of a trio.
    pub net2: Option<(Net, String)>,
    /// Extra QEMU arguments, appended verbatim after everything else (e.g. a second `-drive`/`-device`).
    pub extra_args: Vec<String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum QemuError {
    #[error("the nested topology needs a Xen image (--xen)")]
    NoXen,
    #[error("kernel argument {0:?} contains a space or a quote; pass one argument per word")]
    BadArg(String),
    #[error("memory {memory} MiB is too small for dom0_mem={dom0} MiB plus Xen (need at least 256 MiB more)")]
    Dom0TooBig { memory: u32, dom0: u32 },
}

/// QEMU option escaping: a literal comma inside an option value is written `,,`.
pub fn escape_commas(s: &str) -> String {
    s.replace(',', ",,")
}

fn check_args(args: &[String]) -> Result<(), QemuError> {
    for a in args {
        if a.is_empty() || a.contains(char::is_whitespace) || a.contains('"') {
            return Err(QemuError::BadArg(a.clone()));
        }
    }
    Ok(())
}

/// The full argument vector (without the program name `qemu-system-x86_64`).
pub fn build_args(spec: &HostSpec) -> Result<Vec<String>, QemuError> {
    check_args(&spec.kernel_args)?;
    check_args(&spec.xen_args)?;
    let mut a: Vec<String> = Vec::new();
    let mut push = |s: &[&str]| a.extend(s.iter().map(|x| x.to_string()));
    match spec.accel {
        Accel::Tcg => push(&["-accel", "tcg", "-cpu", "max"]),
        Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
    }
    push(&["-nographic", "-no-reboot", "-m", &spec.memory_mib.to_string(), "-smp", &spec.smp.to_string()]);
    let kernel = spec.kernel.to_string_lossy().to_string();
    let initrd = spec.initrd.to_string_lossy().to_string();
    match spec.kind {
        HostKind::Vm => {
            let mut cmd = vec!["console=ttyS0".to_string(), "panic=-1".to_string()];
            cmd.extend(spec.kernel_args.iter().cloned());
            push(&["-kernel", &kernel, "-initrd", &initrd, "-append", &cmd.join(" ")]);
        }
        HostKind::Nested => {
            let xen = spec.xen.as_ref().ok_or(QemuError::NoXen)?.to_string_lossy().to_string();
            // The multiboot module string is "FILE ARGS": the first space ends the file name.
            if kernel.contains(char::is_whitespace) {
                return Err(QemuError::BadArg(kernel));
            }
            if spec.dom0_mem_mib.saturating_add(256) > spec.memory_mib {
                return Err(QemuError::Dom0TooBig { memory: spec.memory_mib, dom0: spec.dom0_mem_mib });
            }
            let mut xcmd = vec![
                "console=com1".to_string(),
                format!("dom0_mem={}M,max:{}M", spec.dom0_mem_mib, spec.dom0_mem_mib),
                "noreboot".to_string(),
                // Eager FPU switching. QEMU's emulated CPU says AuthenticAMD, for which Xen 4.17 defaults to lazy
                // switching (CR0.TS and #NM); under TCG that let Dom0 processes run with another context's
                // vector registers as soon as a second domain ran (busybox/xl crashes, wrong data), see
                // Documentation/lab.md, "Dom0 user-space corruption and eager FPU".
                "spec-ctrl=eager-fpu".to_string(),
            ];
            xcmd.extend(spec.xen_args.iter().cloned());
            let mut dcmd = vec![kernel, "console=hvc0".to_string(), "panic=-1".to_string()];
            dcmd.extend(spec.kernel_args.iter().cloned());
            let modules = format!("{},{}", escape_commas(&dcmd.join(" ")), escape_commas(&initrd));
            push(&["-kernel", &xen, "-append", &xcmd.join(" "), "-initrd", &modules]);
        }
    }
    push_nic(&mut a, "n0", &spec.net, &spec.mac);
    if let Some((net, mac)) = &spec.net2 {
        push_nic(&mut a, "n1", net, mac);
    }
    a.extend(spec.extra_args.iter().cloned());
    Ok(a)
}

/// The `-netdev`/`-device` pair of one NIC with netdev id `id`.
fn push_nic(a: &mut Vec<String>, id: &str, net: &Net, mac: &str) {
    let mut push = |v: &[&str]| a.extend(v.iter().map(|s| s.to_string()));
    match net {
        Net::None => push(&["-nic", "none"]),
        Net::User => push(&[
            "-netdev",
            &format!("user,id={id},restrict=on"),
            "-device",
            &format!("virtio-net-pci,netdev={id},mac={mac}"),
        ]),
        Net::Dgram { local_port, remote_port } => push(&[
            "-netdev",
            &format!(
                "dgram,id={id},local.type=inet,local.host=127.0.0.1,local.port={local_port},\
                 remote.type=inet,remote.host=127.0.0.1,remote.port={remote_port}"
            ),
            "-device",
            &format!("virtio-net-pci,netdev={id},mac={mac}"),
        ]),
        Net::Tap { queues } => {
            // vhost off: the device model stays QEMU's own, as in the other set-ups (and needs no /dev/vhost-net).
            let mq = if *queues > 1 { format!(",mq=on,vectors={}", 2 * queues + 2) } else { String::new() };
            push(&[
                "-netdev",
                &format!("tap,id={id},ifname={},script=no,downscript=no,vhost=off,queues={queues}", crate::tapnet::TAP),
                "-device",
                &format!("virtio-net-pci,netdev={id},mac={mac}{mq}"),
            ])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: HostKind) -> HostSpec {
        HostSpec {
            kind,
            accel: Accel::Tcg,
            kernel: "/k/bzImage".into(),
            xen: Some("/x/xen.elf".into()),
            initrd: "/t/initrd.img".into(),
            memory_mib: 2048,
            smp: 2,
            kernel_args: vec!["overcast.scenario=smoke".into(), "overcast.host=0".into()],
            dom0_mem_mib: 1024,
            xen_args: vec![],
            net: Net::User,
            mac: "52:54:00:99:00:01".into(),
            net2: None,
            extra_args: vec![],
        }
    }

    #[test]
    fn extra_args_are_appended_verbatim() {
        let plain = build_args(&spec(HostKind::Vm)).unwrap();
        let mut s = spec(HostKind::Vm);
        s.extra_args = vec!["-drive".into(), "file=/tmp/a b.img,if=none,id=d1,format=raw".into()];
        let a = build_args(&s).unwrap();
        assert_eq!(&a[..plain.len()], &plain[..]);
        assert_eq!(&a[plain.len()..], &s.extra_args[..]);
        let mut n = spec(HostKind::Nested);
        n.extra_args = vec!["-device".into(), "virtio-blk-pci,drive=d1".into()];
        assert_eq!(build_args(&n).unwrap().last().map(String::as_str), Some("virtio-blk-pci,drive=d1"));
    }

    fn after<'a>(args: &'a [String], flag: &str) -> &'a str {
        let i = args.iter().position(|a| a == flag).unwrap_or_else(|| panic!("{flag} missing in {args:?}"));
        &args[i + 1]
    }

    #[test]
    fn vm_command_line() {
        let a = build_args(&spec(HostKind::Vm)).unwrap();
        assert_eq!(&a[..4], ["-accel", "tcg", "-cpu", "max"]);
        assert!(a.contains(&"-nographic".to_string()) && a.contains(&"-no-reboot".to_string()));
        assert_eq!(after(&a, "-kernel"), "/k/bzImage");
        assert_eq!(after(&a, "-initrd"), "/t/initrd.img");
        assert_eq!(after(&a, "-append"), "console=ttyS0 panic=-1 overcast.scenario=smoke overcast.host=0");
        assert_eq!(after(&a, "-m"), "2048");
        assert_eq!(after(&a, "-smp"), "2");
        assert_eq!(after(&a, "-netdev"), "user,id=n0,restrict=on");
        assert_eq!(after(&a, "-device"), "virtio-net-pci,netdev=n0,mac=52:54:00:99:00:01");
    }

    #[test]
    fn nested_command_line_uses_multiboot_modules() {
        let a = build_args(&spec(HostKind::Nested)).unwrap();
        assert_eq!(after(&a, "-kernel"), "/x/xen.elf");
        assert_eq!(after(&a, "-append"), "console=com1 dom0_mem=1024M,max:1024M noreboot spec-ctrl=eager-fpu");
        assert_eq!(
            after(&a, "-initrd"),
            "/k/bzImage console=hvc0 panic=-1 overcast.scenario=smoke overcast.host=0,/t/initrd.img"
        );
    }

    #[test]
    fn commas_are_escaped_in_modules() {
        let mut s = spec(HostKind::Nested);
        s.kernel_args = vec!["overcast.note=a,b".into()];
        s.initrd = "/t/odd,name.img".into();
        let a = build_args(&s).unwrap();
        assert_eq!(after(&a, "-initrd"), "/k/bzImage console=hvc0 panic=-1 overcast.note=a,,b,/t/odd,,name.img");
    }

    #[test]
    fn nested_kernel_path_cannot_hold_a_space() {
        let mut s = spec(HostKind::Nested);
        s.kernel = "/my kernels/bzImage".into();
        assert_eq!(build_args(&s), Err(QemuError::BadArg("/my kernels/bzImage".into())));
    }

    #[test]
    fn nested_needs_xen_and_room_for_it() {
        let mut s = spec(HostKind::Nested);
        s.xen = None;
        assert_eq!(build_args(&s), Err(QemuError::NoXen));
        let mut s = spec(HostKind::Nested);
        s.dom0_mem_mib = 1900;
        assert!(matches!(build_args(&s), Err(QemuError::Dom0TooBig { .. })));
    }

    #[test]
    fn pair_link_is_loopback_dgram() {
        let mut s = spec(HostKind::Vm);
        s.net2 = Some((Net::Dgram { local_port: 4002, remote_port: 4003 }, "52:54:00:99:01:02".into()));
        let two = build_args(&s).unwrap();
        assert!(two.iter().any(|x| x.starts_with("dgram,id=n1,") && x.contains("local.port=4002") && x.contains("remote.port=4003")));
        assert!(two.contains(&"virtio-net-pci,netdev=n1,mac=52:54:00:99:01:02".to_string()));
        s.net2 = None;
        s.net = Net::Dgram { local_port: 4000, remote_port: 4001 };
        let a = build_args(&s).unwrap();
        let n = after(&a, "-netdev");
        assert!(n.starts_with("dgram,id=n0,"));
        assert!(n.contains("local.host=127.0.0.1,local.port=4000"));
        assert!(n.contains("remote.host=127.0.0.1,remote.port=4001"));
        assert!(!n.contains(' '));
    }

    #[test]
    fn kvm_and_bad_args() {
        let mut s = spec(HostKind::Vm);
        s.accel = Accel::Kvm;
        assert_eq!(&build_args(&s).unwrap()[..4], ["-accel", "kvm", "-cpu", "host"]);
        s.kernel_args = vec!["a b".into()];
        assert_eq!(build_args(&s), Err(QemuError::BadArg("a b".into())));
        s.kernel_args = vec![];
        s.net = Net::None;
        assert_eq!(after(&build_args(&s).unwrap(), "-nic"), "none");
    }
}
