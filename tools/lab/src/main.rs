use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use overcast_lab::console::{self, KtapExpectation, RunFacts};
use overcast_lab::lab::{self, RunOptions};
use overcast_lab::qemu::{Accel, HostKind, Topology};
use overcast_lab::rootfs;

/// The Overcast lab: root filesystem builder and scenario runner (see Documentation/lab.md).
#[derive(Parser)]
#[command(name = "overcast-lab", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build (or reuse from the cache) the lab's gzip'd cpio root filesystem and copy it to --out.
    Rootfs {
        #[arg(long)]
        out: PathBuf,
        /// Cache directory [default: $OVERCAST_CACHE/lab, i.e. /var/cache/overcast/lab].
        #[arg(long)]
        cache: Option<PathBuf>,
    },
    /// Boot a topology, run a scenario, and judge its console. Exit 0 only if everything passed.
    Run(Box<RunArgs>),
    /// Judge a saved console log as `run` would (for debugging the parser or a past run).
    Judge {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        skip_boot_ktap: bool,
        #[arg(long, value_name = "SUITE[:N]")]
        expect_ktap: Vec<KtapExpectation>,
        log: PathBuf,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    #[arg(long, value_enum)]
    topology: Topology,
    /// Our Linux kernel (bzImage).
    #[arg(long)]
    kernel: PathBuf,
    /// The Xen hypervisor ELF [default: $OVERCAST_CACHE/xen/xen.elf].
    #[arg(long)]
    xen: Option<PathBuf>,
    /// Directories copied over the rootfs for this run (e.g. holding overcast/modules/*.ko and
    /// overcast/tests/*.sh). Repeatable.
    #[arg(long, num_args = 1..)]
    overlay: Vec<PathBuf>,
    /// Runs overcast/tests/NAME.sh (or the built-in lab-selftest).
    #[arg(long)]
    scenario: String,
    /// Seconds until the run is failed (per host).
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Guest RAM in MiB [default: 1024 for vm hosts, 2048 for nested hosts].
    #[arg(long)]
    memory: Option<u32>,
    /// vCPUs per QEMU [default: 2, or 1 per host in pair and trio].
    #[arg(long)]
    smp: Option<u32>,
    /// Dom0 memory in MiB for nested hosts [default: half of --memory].
    #[arg(long)]
    dom0_mem: Option<u32>,
    /// Extra kernel arguments (space separated; repeatable).
    #[arg(long)]
    append: Vec<String>,
    /// Extra Xen arguments (space separated; repeatable).
    #[arg(long)]
    xen_append: Vec<String>,
    /// One extra QEMU argument, appended verbatim to each QEMU command line (repeatable; not split on spaces),
    /// e.g. `--qemu-arg=-drive --qemu-arg=file=/tmp/d.img,if=none,id=d1,format=raw`.
    #[arg(long, allow_hyphen_values = true)]
    qemu_arg: Vec<String>,
    /// What each host of a pair or trio is.
    #[arg(long, value_enum, default_value_t = HostKind::Vm)]
    pair_kind: HostKind,
    /// tcg, or kvm (falls back to tcg if the scenario has not begun within --kvm-hang-secs).
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    accel: Accel,
    #[arg(long, default_value_t = 20)]
    kvm_hang_secs: u64,
    /// Fail unless KUnit suite SUITE ran with at least N cases (default 1). Repeatable.
    #[arg(long, value_name = "SUITE[:N]")]
    expect_ktap: Vec<KtapExpectation>,
    /// Write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Where console logs go [default: $OVERCAST_LAB_LOGS, else target/lab-logs].
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Do not echo the console live (it is still logged).
    #[arg(long)]
    quiet: bool,
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Ignore KTAP printed before OVERCAST-BEGIN (the kernel's built-in KUnit suites at boot), e.g. so that a
    /// series of runs counts them once.
    #[arg(long)]
    skip_boot_ktap: bool,
    /// vm and nested: put the NIC on a TAP with QUEUES queue pairs in a network namespace of the run's own
    /// (10.0.2.2/24 and iperf3 servers on 5201-5203 at the other end) instead of user-mode networking: QEMU then
    /// offers the offloads and, with QUEUES > 1, multi-queue. Needs root and /dev/net/tun.
    #[arg(long, value_name = "QUEUES", default_value_t = 0)]
    tap: u32,
}

fn words(v: &[String]) -> Vec<String> {
    v.iter()
        .flat_map(|s| s.split_whitespace().map(str::to_string))
        .collect()
}

fn main() -> ExitCode {
    match real_main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("overcast-lab: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> Result<bool> {
    match Cli::parse().cmd {
        Cmd::Rootfs { out, cache } => {
            let p = rootfs::ensure_rootfs(&cache.unwrap_or_else(rootfs::cache_dir), true)?;
            if p != out {
                if let Some(d) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(d)?;
                }
                let tmp = out.with_extension("tmp");
                std::fs::copy(&p, &tmp).with_context(|| format!("copying to {}", tmp.display()))?;
                std::fs::rename(&tmp, &out)?;
            }
            println!("{}", out.display());
            Ok(true)
        }
        Cmd::Run(a) => {
            let RunArgs {
                topology,
                kernel,
                xen,
                overlay,
                scenario,
                timeout,
                memory,
                smp,
                dom0_mem,
                append,
                xen_append,
                qemu_arg,
                pair_kind,
                accel,
                kvm_hang_secs,
                expect_ktap,
                json,
                log_dir,
                quiet,
                cache,
                skip_boot_ktap,
                tap,
            } = *a;
            let o = RunOptions {
                topology,
                pair_kind,
                kernel,
                xen: xen.unwrap_or_else(lab::default_xen),
                overlays: overlay,
                scenario,
                timeout,
                memory,
                smp,
                dom0_mem,
                append: words(&append),
                xen_append: words(&xen_append),
                qemu_args: qemu_arg,
                accel,
                kvm_hang_secs,
                expect: expect_ktap,
                json,
                log_dir: log_dir.unwrap_or_else(lab::default_log_dir),
                quiet,
                cache: cache.unwrap_or_else(rootfs::cache_dir),
                skip_boot_ktap,
                tap_queues: tap,
            };
            Ok(lab::run(&o)?.passed)
        }
        Cmd::Judge {
            scenario,
            skip_boot_ktap,
            expect_ktap,
            log,
        } => {
            let text = std::fs::read_to_string(&log)
                .with_context(|| format!("reading {}", log.display()))?;
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            let facts = RunFacts {
                skip_boot_ktap,
                ..RunFacts::default()
            };
            let v = console::judge(&scenario, &lines, &facts, &expect_ktap);
            for l in console::summary_lines(&v) {
                println!("{l}");
            }
            for r in &v.reasons {
                println!("FAIL reason: {r}");
            }
            println!("{}", if v.passed { "PASS" } else { "FAIL" });
            Ok(v.passed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_arg_takes_hyphenated_values_verbatim() {
        let cli = Cli::try_parse_from([
            "overcast-lab", "run", "--topology", "vm", "--kernel", "/k", "--scenario", "s",
            "--qemu-arg", "-drive", "--qemu-arg", "file=/t/a b.img,if=none,id=d1", "--qemu-arg=-device",
        ])
        .unwrap();
        let Cmd::Run(a) = cli.cmd else { panic!("not a run") };
        assert_eq!(a.qemu_arg, ["-drive", "file=/t/a b.img,if=none,id=d1", "-device"]);
    }
}
