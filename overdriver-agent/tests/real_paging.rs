//! Real paging, real clock: a thread that pages a file in from disk (major faults) is watched through its
//! `/proc/self/task/<tid>/stat` counter. A short burst must be classified transient (cooperative swap action only), a
//! long one sustained (the migration action runs with the right arguments). The interval is scaled down to 1 s and
//! the threshold to 6 s so the test takes about 20 s.

use overdriver::actions::{Advert, Executor, Targets};
use overdriver::agent::{Agent, AgentParams, Happening, VmEntry};
use overdriver::clock::SystemClock;
use overdriver::config::{ActionsCfg, DiscoverCfg};
use overdriver::detector::DetectorParams;
use overdriver::profiler::{ProfileStore, ProfilerParams};
use overdriver::source::ProcStatSource;
use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LEN: usize = 8 << 20;
const IDLE: u8 = 0;
const FAULT: u8 = 1;
const STOP: u8 = 2;

/// Page `file` in from disk over and over while `mode` is FAULT: map it with readahead disabled, touch every page
/// (one major fault each), unmap, and drop it from the page cache.
fn fault_loop(file: fs::File, mode: Arc<AtomicU8>, tid_tx: std::sync::mpsc::Sender<i64>) {
    // SAFETY: gettid has no preconditions.
    let _ = tid_tx.send(unsafe { libc::syscall(libc::SYS_gettid) });
    let fd = file.as_raw_fd();
    let mut sum = 0u64;
    loop {
        match mode.load(Ordering::SeqCst) {
            STOP => break,
            IDLE => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            _ => {}
        }
        // SAFETY: a fresh read-only shared mapping of our own file, touched within its length and unmapped before
        // the next iteration.
        unsafe {
            let p = libc::mmap(std::ptr::null_mut(), LEN, libc::PROT_READ, libc::MAP_SHARED, fd, 0);
            assert_ne!(p, libc::MAP_FAILED, "mmap");
            libc::madvise(p, LEN, libc::MADV_RANDOM);
            for off in (0..LEN).step_by(4096) {
                sum = sum.wrapping_add(u64::from(std::ptr::read_volatile((p as *const u8).add(off))));
            }
            libc::munmap(p, LEN);
            libc::posix_fadvise(fd, 0, LEN as libc::off_t, libc::POSIX_FADV_DONTNEED);
        }
    }
    std::hint::black_box(sum);
}

fn script(dir: &std::path::Path, name: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\necho \"$*\" >> {}\n", dir.join("actions.log").display())).unwrap();
    let mut perm = fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    fs::set_permissions(&path, perm).unwrap();
    path.display().to_string()
}

#[test]
fn short_burst_is_transient_long_burst_migrates() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // Dropping pages from the cache (and so major faults) needs a disk-backed file system; tmpfs keeps them.
    let cpath = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statfs fills the zeroed struct for a valid NUL-terminated path.
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statfs(cpath.as_ptr(), &mut sfs) }, 0);
    if sfs.f_type == libc::TMPFS_MAGIC {
        eprintln!("SKIPPED: {} is tmpfs; page-ins need a disk-backed target directory", dir.path().display());
        return;
    }
    let path = dir.path().join("pages.bin");
    {
        let mut f = fs::File::create(&path).unwrap();
        let chunk: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        for _ in 0..LEN / 4096 {
            f.write_all(&chunk).unwrap();
        }
        f.sync_all().unwrap();
    }
    let mode = Arc::new(AtomicU8::new(IDLE));
    let (tx, rx) = std::sync::mpsc::channel();
    let gen = {
        let file = fs::File::open(&path).unwrap();
        let mode = mode.clone();
        std::thread::spawn(move || fault_loop(file, mode, tx))
    };
    let tid = rx.recv().unwrap();
    let stat = format!("/proc/self/task/{tid}/stat");

    let cs = script(dir.path(), "coopswap.sh");
    let mg = script(dir.path(), "migrate.sh");
    let params = AgentParams {
        interval_secs: 1,
        detector: DetectorParams { overload_rate: 300.0, window: 12, window_overloaded: 8, quiet_intervals: 3 },
        profiler: ProfilerParams { initial_threshold_secs: 6, bucket_secs: 1, base_observations: 100, min_threshold_secs: 1 },
        actions: ActionsCfg {
            coopswap: format!("{cs} coopswap {{vm}}"),
            migrate: format!("{mg} migrate {{domain}} {{target}} {{memory_mib}}"),
            timeout_secs: 10,
            ..Default::default()
        },
        max_rate: 1e7,
        vanish_intervals: 3,
        state_dir: Some(dir.path().join("state")),
    };
    let profiles = ProfileStore::new(params.profiler.clone());
    let mut agent = Agent::new(
        params,
        Arc::new(SystemClock::new()),
        Executor::new(false, Duration::from_secs(10)),
        Targets { static_hosts: vec![Advert { host: "h2".into(), free_mib: 8192 }], file: None, self_host: None },
        vec![VmEntry {
            name: "pager".into(),
            domain: "qemu-7".into(),
            memory_mib: 1024,
            source: Box::new(ProcStatSource { path: stat.into() }),
            discovered: false,
        }],
        DiscoverCfg::default(),
        profiles,
    );

    let start = Instant::now();
    let mut happened: Vec<(f64, Happening)> = Vec::new();
    let mut rates = Vec::new();
    let mut tick_no = 0u64;
    let mut tick = |agent: &mut Agent, happened: &mut Vec<(f64, Happening)>| {
        tick_no += 1;
        let next = start + Duration::from_secs(tick_no);
        while Instant::now() < next {
            let h = agent.wait_actions(next.saturating_duration_since(Instant::now()));
            happened.extend(h.into_iter().map(|h| (start.elapsed().as_secs_f64(), h)));
        }
        let h = agent.tick();
        happened.extend(h.into_iter().map(|h| (start.elapsed().as_secs_f64(), h)));
        rates.push(agent.status().vms[0].rate);
    };
    for _ in 0..2 {
        tick(&mut agent, &mut happened);
    }
    mode.store(FAULT, Ordering::SeqCst); // short burst: 2 s
    for _ in 0..2 {
        tick(&mut agent, &mut happened);
    }
    mode.store(IDLE, Ordering::SeqCst);
    for _ in 0..6 {
        tick(&mut agent, &mut happened);
    }
    let transient_done = happened.iter().any(|(_, h)| h.what.starts_with("transient overload ended"));
    mode.store(FAULT, Ordering::SeqCst); // long burst until migration is decided (at most 20 s)
    let mut sustained = false;
    for _ in 0..20 {
        tick(&mut agent, &mut happened);
        if happened.iter().any(|(_, h)| h.what.starts_with("sustained overload after")) {
            sustained = true;
            break;
        }
    }
    mode.store(STOP, Ordering::SeqCst);
    gen.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && !happened.iter().any(|(_, h)| h.what.starts_with("migrate succeeded"))
    {
        let h = agent.wait_actions(Duration::from_millis(100));
        happened.extend(h.into_iter().map(|h| (start.elapsed().as_secs_f64(), h)));
    }
    let log: Vec<String> = fs::read_to_string(dir.path().join("actions.log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    let story = format!("rates {rates:?}\nevents {happened:#?}\nlog {log:?}");
    assert!(transient_done, "short burst must end as transient\n{story}");
    let first_end = happened.iter().find(|(_, h)| h.what.starts_with("transient overload ended")).unwrap();
    let first_sustained = happened.iter().position(|(_, h)| h.what.starts_with("sustained"));
    assert!(
        happened.iter().position(|(_, h)| h.what.starts_with("transient overload ended")) < first_sustained,
        "{story}"
    );
    assert!(first_end.1.what.contains("after 1 s") || first_end.1.what.contains("after 2 s") || first_end.1.what.contains("after 3 s"), "{story}");
    assert!(sustained, "long burst must become sustained\n{story}");
    assert_eq!(log.iter().filter(|l| *l == "coopswap pager").count(), 2, "{story}");
    assert_eq!(log.iter().filter(|l| l.starts_with("migrate")).collect::<Vec<_>>(), ["migrate qemu-7 h2 1024"], "{story}");
    // The page-in rate really came from the kernel: far above the threshold during bursts.
    assert!(rates.iter().flatten().any(|r| *r > 1000.0), "{story}");
}
