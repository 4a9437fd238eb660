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
