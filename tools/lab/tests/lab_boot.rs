//! Boots the real lab (needs a kernel from `make kernel`, QEMU and the Xen image from scripts/setup).
//! Each test says SKIP and returns when no bzImage exists yet; set OVERCAST_KERNEL to choose one.
//! The QEMU runs are serialised (the machine has 2 cores).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

fn kernel() -> Option<PathBuf> {
    if let Some(k) = std::env::var_os("OVERCAST_KERNEL") {
        return Some(PathBuf::from(k)).filter(|p| p.is_file());
    }
    let base = std::env::var_os("OVERCAST_CACHE").map_or_else(|| PathBuf::from("/var/cache/overcast"), PathBuf::from);
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(base.join("kernel"))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("arch/x86/boot/bzImage"))
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

fn xen() -> PathBuf {
    let base = std::env::var_os("OVERCAST_CACHE").map_or_else(|| PathBuf::from("/var/cache/overcast"), PathBuf::from);
    base.join("xen/xen.elf")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("overcast-lab-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_script(overlay: &Path, name: &str, body: &str) {
    let dir = overlay.join("overcast/tests");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.sh")), body).unwrap();
}

fn lab(args: &[&str], json: &Path) -> (bool, serde_json::Value, String) {
    // Console logs next to the JSON, not in target/lab-logs where `make test` keeps the scenarios' logs.
    let logs = json.parent().unwrap().join("logs");
    let out = Command::new(env!("CARGO_BIN_EXE_overcast-lab"))
        .args(args)
        .args(["--quiet", "--json"])
        .arg(json)
        .arg("--log-dir")
        .arg(&logs)
        .output()
        .expect("running overcast-lab");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let v = std::fs::read_to_string(json).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(serde_json::Value::Null);
    (out.status.success(), v, stdout)
}

const PROTOCOL: &str = r#"
echo "OVERCAST-CHECK PASS env-topology-$OVERCAST_TOPOLOGY"
[ "$OVERCAST_HOST" = 0 ] && echo "OVERCAST-CHECK PASS env-host" || echo "OVERCAST-CHECK FAIL env-host got $OVERCAST_HOST"
cat <<'K'
KTAP version 1
1..1
    KTAP version 1
    # Subtest: fake_suite
    1..2
    ok 1 one
    ok 2 two # SKIP not here
ok 1 fake_suite
K
exit 0
"#;

#[test]
fn vm_protocol_pass_and_failure_detection() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(k) = kernel() else {
        eprintln!("SKIP: no bzImage yet (run `make kernel` or set OVERCAST_KERNEL)");
        return;
    };
    let d = tmpdir("vm");
    let ov = d.join("overlay");
    write_script(&ov, "proto", PROTOCOL);
    write_script(&ov, "broken", "echo 'OVERCAST-CHECK FAIL deliberate because'\nexit 3\n");
    let k = k.to_string_lossy().to_string();
    let ovs = ov.to_string_lossy().to_string();
    let (ok, v, out) = lab(
        &["run", "--topology", "vm", "--kernel", &k, "--overlay", &ovs, "--scenario", "proto", "--timeout", "120",
          "--expect-ktap", "fake_suite:2"],
        &d.join("a.json"),
    );
    assert!(ok, "{out}");
    // Passed items: every KUnit case that passed (the kernel's built-in suites at boot, and fake_suite/one),
    // the two checks, and the scenario item.
    let kunit = &v["hosts"][0]["verdict"]["kunit"];
    assert_eq!(v["totals"]["passed"].as_u64(), kunit["pass"].as_u64().map(|p| p + 3), "{out}");
    assert!(v["totals"]["skipped"].as_u64() >= Some(1), "{out}");
    assert_eq!(v["totals"]["failed"], 0, "{out}");
    assert!(out.contains("PASS kunit fake_suite/one") && out.contains("SKIP kunit fake_suite/two # SKIP not here"), "{out}");
    assert!(v["hosts"][0]["boot_to_end_secs"].as_f64().unwrap() > 0.0);

    let (ok, v, out) = lab(
        &["run", "--topology", "vm", "--kernel", &k, "--overlay", &ovs, "--scenario", "broken", "--timeout", "120"],
        &d.join("b.json"),
    );
    assert!(!ok, "{out}");
    let reasons = v["hosts"][0]["verdict"]["reasons"].to_string();
    assert!(reasons.contains("rc=3") && reasons.contains("deliberate"), "{reasons}");
    assert!(out.contains("last 40 console lines"), "{out}");

    // A scenario that hangs is cut off by the timeout with a reason.
    write_script(&ov, "hang", "sleep 600\n");
    let (ok, v, _) = lab(
        &["run", "--topology", "vm", "--kernel", &k, "--overlay", &ovs, "--scenario", "hang", "--timeout", "25"],
        &d.join("c.json"),
    );
    assert!(!ok);
    assert!(v["hosts"][0]["verdict"]["reasons"][0].as_str().unwrap().starts_with("timeout"), "{v}");

    // A kernel that crashes before the scenario begins (here: no init to run) is booted once more; the second
    // crash fails the run like any crash, the first console is kept beside the log and the summary names it.
    let (ok, v, out) = lab(
        &["run", "--topology", "vm", "--kernel", &k, "--overlay", &ovs, "--scenario", "proto", "--timeout", "120",
          "--append", "rdinit=/nonexistent init=/nonexistent"],
        &d.join("d.json"),
    );
    assert!(!ok, "{out}");
    let note = v["hosts"][0]["notes"][0].as_str().unwrap_or("");
    assert!(note.contains("crashed while booting, before the scenario began") && note.contains("Kernel panic"), "{v}");
    assert!(out.contains("the hosts were booted again"), "{out}");
    let reasons = v["hosts"][0]["verdict"]["reasons"].to_string();
    assert!(reasons.contains("never started") && reasons.contains("Kernel panic"), "{reasons}");
    let kept = std::fs::read_to_string(d.join("logs/vm-proto.boot-crash.log")).unwrap_or_default();
    let second = std::fs::read_to_string(d.join("logs/vm-proto.log")).unwrap_or_default();
    assert!(kept.contains("Kernel panic") && second.contains("Kernel panic"), "{out}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn nested_selftest_boots_a_pv_guest() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(k) = kernel() else {
        eprintln!("SKIP: no bzImage yet (run `make kernel` or set OVERCAST_KERNEL)");
        return;
    };
    if !xen().is_file() {
        eprintln!("SKIP: no Xen image at {} (scripts/setup)", xen().display());
        return;
    }
    let d = tmpdir("nested");
    let ov = d.join("overlay");
    std::fs::create_dir_all(ov.join("overcast/guest")).unwrap();
    std::fs::copy(&k, ov.join("overcast/guest/bzImage")).unwrap();
    let (ok, v, out) = lab(
        &["run", "--topology", "nested", "--kernel", &k.to_string_lossy(), "--overlay", &ov.to_string_lossy(),
          "--scenario", "lab-selftest", "--timeout", "400"],
        &d.join("n.json"),
    );
    assert!(ok, "{out}");
    let checks = v["hosts"][0]["verdict"]["checks"].to_string();
    assert!(checks.contains("pv-guest-boots") && checks.contains("xl-list"), "{checks}");
    assert!(checks.contains("guest-boot-crash-retried"), "{checks}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn pair_hosts_ping_each_other() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(k) = kernel() else {
        eprintln!("SKIP: no bzImage yet (run `make kernel` or set OVERCAST_KERNEL)");
        return;
    };
    let d = tmpdir("pair");
    let (ok, v, out) = lab(
        &["run", "--topology", "pair", "--kernel", &k.to_string_lossy(), "--scenario", "lab-selftest", "--timeout", "200"],
        &d.join("p.json"),
    );
    assert!(ok, "{out}");
    for h in 0..2 {
        let checks = v["hosts"][h]["verdict"]["checks"].to_string();
        assert!(checks.contains("ping-peer"), "{checks}");
    }
    let _ = std::fs::remove_dir_all(&d);
}
