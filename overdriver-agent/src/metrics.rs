//! Prometheus text-format metrics, written to a file and/or served on a loopback port.

use crate::agent::Status;
use crate::detector::{IntervalState, Phase};
use std::fmt::Write;
use std::io::{Read, Write as IoWrite};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Render a status as Prometheus exposition text.
pub fn render(s: &Status) -> String {
    let mut o = String::new();
    let head = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    head(&mut o, "overdriver_vms", "gauge", "VMs watched.");
    let _ = writeln!(o, "overdriver_vms {}", s.vms.len());
    head(&mut o, "overdriver_ticks_total", "counter", "Monitoring intervals processed.");
    let _ = writeln!(o, "overdriver_ticks_total {}", s.ticks);
    head(&mut o, "overdriver_tick_seconds", "gauge", "Wall time of the last tick.");
    let _ = writeln!(o, "overdriver_tick_seconds {:.6}", s.last_tick_micros as f64 / 1e6);
    head(&mut o, "overdriver_dry_run", "gauge", "1 when actions are only logged.");
    let _ = writeln!(o, "overdriver_dry_run {}", u8::from(s.dry_run));
    head(&mut o, "overdriver_vm_paging_rate", "gauge", "Paging operations per second in the last interval (absent when unknown).");
    for v in &s.vms {
        if let Some(r) = v.rate {
            let _ = writeln!(o, "overdriver_vm_paging_rate{{vm=\"{}\"}} {r:.3}", esc(&v.name));
        }
    }
    head(&mut o, "overdriver_vm_unknown", "gauge", "1 when the last interval's rate is unknown.");
    for v in &s.vms {
        let _ = writeln!(o, "overdriver_vm_unknown{{vm=\"{}\"}} {}", esc(&v.name), u8::from(v.last_interval == IntervalState::Unknown));
    }
    head(&mut o, "overdriver_vm_phase", "gauge", "1 for the VM's current overload phase.");
    for v in &s.vms {
        for (p, l) in [(Phase::Normal, "normal"), (Phase::Transient, "transient"), (Phase::Sustained, "sustained")] {
            let _ = writeln!(o, "overdriver_vm_phase{{vm=\"{}\",phase=\"{l}\"}} {}", esc(&v.name), u8::from(v.phase == p));
        }
    }
    head(&mut o, "overdriver_vm_overloaded_in_window", "gauge", "Overloaded intervals in the sliding window.");
    for v in &s.vms {
        let _ = writeln!(o, "overdriver_vm_overloaded_in_window{{vm=\"{}\"}} {}", esc(&v.name), v.overloaded_in_window);
    }
    head(&mut o, "overdriver_vm_threshold_seconds", "gauge", "Migration threshold in force.");
    for v in &s.vms {
        let _ = writeln!(o, "overdriver_vm_threshold_seconds{{vm=\"{}\"}} {}", esc(&v.name), v.threshold_secs);
    }
    head(&mut o, "overdriver_vm_migrations_total", "counter", "Completed migrations since the agent started.");
    for v in &s.vms {
        let _ = writeln!(o, "overdriver_vm_migrations_total{{vm=\"{}\"}} {}", esc(&v.name), v.migrations);
    }
    head(&mut o, "overdriver_actions_total", "counter", "Finished actions by kind and outcome.");
    for (k, out, c) in &s.actions {
        let _ = writeln!(o, "overdriver_actions_total{{kind=\"{}\",outcome=\"{}\"}} {c}", esc(k), esc(out));
    }
    o
}

/// Serve the latest metrics text over HTTP on a loopback address, in a background thread.
pub fn serve(listen: &str, latest: Arc<Mutex<String>>) -> std::io::Result<std::net::SocketAddr> {
    let l = TcpListener::bind(listen)?;
    let addr = l.local_addr()?;
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        for conn in l.incoming().flatten() {
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let _ = conn.set_write_timeout(Some(std::time::Duration::from_secs(2)));
            let mut conn = conn;
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let body = latest.lock().map(|s| s.clone()).unwrap_or_default();
            let _ = write!(
                conn,
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    })?;
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{SlotState, VmStatus};

    fn status() -> Status {
        Status {
            generated_unix: 0,
            dry_run: false,
            interval_secs: 10,
            overload_rate: 200.0,
            ticks: 7,
            last_tick_micros: 1500,
            vms: vec![VmStatus {
                name: "we\"b".into(),
                domain: "7".into(),
                source: "x".into(),
                phase: Phase::Sustained,
                last_interval: IntervalState::Overloaded,
                rate: Some(812.5),
                unknown_reason: None,
                last_error: None,
                overloaded_in_window: 9,
                window: 12,
                episode_secs: Some(130.0),
                threshold_secs: 90,
                transient_observations: 3,
                coopswap: SlotState::Idle,
                migrate: SlotState::Idle,
                migrations: 1,
            }],
            actions: vec![("migrate".into(), "failed".into(), 2)],
        }
    }

    #[test]
    fn renders_prometheus_text_with_escaped_labels() {
        let t = render(&status());
        for line in [
            "overdriver_ticks_total 7",
            "overdriver_tick_seconds 0.001500",
            "overdriver_vm_paging_rate{vm=\"we\\\"b\"} 812.500",
            "overdriver_vm_phase{vm=\"we\\\"b\",phase=\"sustained\"} 1",
            "overdriver_vm_phase{vm=\"we\\\"b\",phase=\"normal\"} 0",
            "overdriver_vm_threshold_seconds{vm=\"we\\\"b\"} 90",
            "overdriver_actions_total{kind=\"migrate\",outcome=\"failed\"} 2",
        ] {
            assert!(t.lines().any(|l| l == line), "missing {line}\n{t}");
        }
        // Every sample line is `name{labels} value` or `name value` with a numeric value.
        for l in t.lines().filter(|l| !l.starts_with('#')) {
            let v = l.rsplit(' ').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "{l}");
        }
    }

    #[test]
    fn serves_latest_text_over_http_on_loopback() {
        let latest = Arc::new(Mutex::new("overdriver_vms 3\n".to_string()));
        let addr = serve("127.0.0.1:0", latest.clone()).unwrap();
        let get = || {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
            let mut s = String::new();
            c.read_to_string(&mut s).unwrap();
            s
        };
        let r = get();
        assert!(r.starts_with("HTTP/1.0 200 OK") && r.ends_with("overdriver_vms 3\n"), "{r}");
        *latest.lock().unwrap() = "overdriver_vms 4\n".into();
        assert!(get().ends_with("overdriver_vms 4\n"));
    }
}
