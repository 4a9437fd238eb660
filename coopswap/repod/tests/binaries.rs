//! End-to-end: the real `coopswap-repod` binary as a child process, checked with the real `coopswap-client`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const REPOD: &str = env!("CARGO_BIN_EXE_coopswap-repod");
const CLIENT: &str = env!("CARGO_BIN_EXE_coopswap-client");

#[test]
fn check_flag_validates_the_example_config() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/repod.example.toml");
    let out = Command::new(REPOD)
        .args(["--config", example, "--check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("262144 pages, 2 client(s)"));
    let out = Command::new(REPOD)
        .args(["--config", "/nonexistent.toml", "--check"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn daemon_and_client_end_to_end() {
    let dir = std::env::temp_dir().join(format!("coopswap-repod-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("repod.toml");
    std::fs::write(
        &cfg,
        r#"
listen = "127.0.0.1:0"
capacity_pages = 512
memlock = "try"
[[client]]
id = 7
token = "00112233445566778899aabbccddeeff"
"#,
    )
    .unwrap();
    let mut child = Command::new(REPOD)
        .args(["--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // the daemon logs "listening on ADDR"
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("daemon exited").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split([',', ' ']).next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {}); // keep draining the log
    let run = |args: &[&str], token: &str| {
        Command::new(CLIENT)
            .args(["--server", &addr, "--client-id", "7"])
            .args(args)
            .env("COOPSWAP_TOKEN", token)
            .output()
            .unwrap()
    };
    let good = "00112233445566778899aabbccddeeff";
    let out = run(&["check", "--pages", "300"], good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified 300 pages"));
    let out = run(
        &[
            "bench", "--pages", "64", "--ops", "500", "--depth", "4", "--json",
        ],
        good,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["op"], "store");
    assert_eq!(v[1]["op"], "fetch");
    assert_eq!(v[1]["ops"], 500);
    assert!(v[1]["p50_us"].as_f64().unwrap() > 0.0);
    let out = run(&["ping"], "ffffffffffffffffffffffffffffffff");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // SIGHUP re-reads the clients: swap the token of client 7
    let newer = "ffffffffffffffffffffffffffffffff";
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).unwrap().replace(good, newer),
    )
    .unwrap();
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGHUP) },
        0
    );
    let mut reloaded = false;
    for _ in 0..100 {
        if run(&["ping"], newer).status.success() {
            reloaded = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(reloaded, "new token not accepted after SIGHUP");
    assert!(
        !run(&["ping"], good).status.success(),
        "old token still accepted"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "daemon must survive SIGHUP"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

const MOVE: &str = env!("CARGO_BIN_EXE_coopswap-move");

/// A stand-in for a device's configfs directory: plain files where the kernel has attributes. `map_export` and
/// `map_import` only record the path written to them (the kernel's part is tested in the lab).
fn fake_device(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    for a in ["map_export", "map_import"] {
        std::fs::write(dir.join(a), "").unwrap();
    }
    std::fs::write(dir.join("power"), "1\n").unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `coopswap-move receive` into `dst` on `port`, writing the map to `got` and running `then` after an import.
fn start_receive(dst: &std::path::Path, port: u16, got: &std::path::Path, then: &str) -> std::process::Child {
    Command::new(MOVE)
        .args(["receive", "--device", dst.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
        .args(["--map-file", got.to_str().unwrap(), "--timeout", "30", "--then", then])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `coopswap-move send --power-off` of `src` (its exported map: `sent`) to `port`.
fn run_send(src: &std::path::Path, port: u16, sent: &std::path::Path) -> std::process::Output {
    Command::new(MOVE)
        .args(["send", "--device", src.to_str().unwrap(), "--to", &format!("127.0.0.1:{port}")])
        .args(["--map-file", sent.to_str().unwrap(), "--timeout", "30", "--power-off"])
        .output()
        .unwrap()
}

/// A scratch directory with a source and a destination device, and the source's exported map holding `map`.
fn move_setup(tag: &str, map: &[u8]) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let base = std::env::temp_dir().join(format!("coopswap-move-{tag}-{}", std::process::id()));
    let (src, dst) = (base.join("src"), base.join("dst"));
    fake_device(&src);
    fake_device(&dst);
    std::fs::write(base.join("sent.map"), map).unwrap();
    (base, src, dst)
}

#[test]
fn coopswap_move_sends_a_map_imports_it_powers_the_source_off_and_runs_then() {
    // What the kernel would have exported.
    let map: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let (base, src, dst) = move_setup("ok", &map);
    let (sent, got, then) = (base.join("sent.map"), base.join("got.map"), base.join("then.out"));
    let port = free_port();
    let recv = start_receive(&dst, port, &got, &format!("echo unpaused > {}", then.display()));
    let out = run_send(&src, port, &sent);
    let rout = recv.wait_with_output().unwrap();
    let (so, se) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "send: {so}{se}\nreceive: {}", String::from_utf8_lossy(&rout.stderr));
    assert!(rout.status.success(), "{}", String::from_utf8_lossy(&rout.stderr));
    assert!(so.contains("imported into"), "{so}");
    // The source exported to its map file and is off; the destination imported the same bytes and ran --then.
    assert_eq!(std::fs::read_to_string(src.join("map_export")).unwrap(), format!("{}\n", sent.display()));
    assert_eq!(std::fs::read_to_string(src.join("power")).unwrap(), "0\n");
    assert_eq!(std::fs::read(&got).unwrap(), map);
    assert_eq!(std::fs::read_to_string(dst.join("map_import")).unwrap(), format!("{}\n", got.display()));
    assert_eq!(std::fs::read_to_string(&then).unwrap(), "unpaused\n");
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn coopswap_move_leaves_the_source_on_when_the_destination_refuses() {
    let (base, src, dst) = move_setup("refused", b"map");
    // An import the "kernel" refuses: a directory in map_import's place (writing it fails, for root too).
    let imp = dst.join("map_import");
    std::fs::remove_file(&imp).unwrap();
    std::fs::create_dir(&imp).unwrap();
    let then = base.join("then.out");
    let port = free_port();
    let recv = start_receive(&dst, port, &base.join("got.map"), &format!("touch {}", then.display()));
    let out = run_send(&src, port, &base.join("sent.map"));
    let rout = recv.wait_with_output().unwrap();
    let se = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(se.contains("refused the map") && se.contains("import refused") && se.contains("keeps its map"), "{se}");
    assert!(!rout.status.success());
    assert_eq!(std::fs::read_to_string(src.join("power")).unwrap(), "1\n", "the source must stay on");
    assert!(!then.exists(), "--then must not run after a failed import");
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn coopswap_move_send_says_what_is_wrong_with_its_arguments() {
    let out = Command::new(MOVE).args(["send", "--device", "/nonexistent", "--to", "127.0.0.1:1"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a coopswap device directory"));
    let base = std::env::temp_dir().join(format!("coopswap-move-args-{}", std::process::id()));
    fake_device(&base);
    let out = Command::new(MOVE)
        .args(["send", "--device", base.to_str().unwrap(), "--to", "127.0.0.1:1", "--map-file", "rel.map"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("absolute path"));
    std::fs::remove_dir_all(&base).unwrap();
}
