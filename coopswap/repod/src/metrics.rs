//! Server counters and their Prometheus text rendering (served over HTTP on `metrics_listen`).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Monotonic counters and gauges. All relaxed atomics: they are statistics, not synchronisation.
#[derive(Default, Debug)]
pub struct Counters {
    /// Pages stored (OK replies to STORE).
    pub stores: AtomicU64,
    /// FETCH hits.
    pub fetches: AtomicU64,
    /// FETCH misses.
    pub fetch_misses: AtomicU64,
    /// DROP requests.
    pub drops: AtomicU64,
    /// Pages removed by DROP.
    pub dropped_pages: AtomicU64,
    /// PING requests.
    pub pings: AtomicU64,
    /// DENIED replies (wrong token, unknown client).
    pub denied: AtomicU64,
    /// FULL replies.
    pub full: AtomicU64,
    /// ERROR replies to well-formed requests (e.g. request before HELLO).
    pub errors: AtomicU64,
    /// Connections closed because of malformed, truncated or garbage input.
    pub malformed: AtomicU64,
    /// Connections refused because `max_connections` was reached.
    pub refused_connections: AtomicU64,
    /// Connections closed because no HELLO came in time.
    pub hello_timeouts: AtomicU64,
    /// Bytes received.
    pub bytes_in: AtomicU64,
    /// Bytes sent.
    pub bytes_out: AtomicU64,
    /// Connections accepted, ever.
    pub connections: AtomicU64,
    /// Connections open now.
    pub clients_connected: AtomicU64,
    /// Successful HELLOs.
    pub hellos: AtomicU64,
}

/// A snapshot of gauges that live in the store.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreGauges {
    /// Capacity in pages.
    pub capacity_pages: u64,
    /// Pages in use.
    pub used_pages: u64,
    /// Whether the memory is mlocked.
    pub locked: bool,
}

impl Counters {
    /// Add one to `c`.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    /// Render in the Prometheus text exposition format.
    pub fn render(&self, g: StoreGauges) -> String {
        let mut s = String::new();
        let counters: [(&str, &AtomicU64, &str); 15] = [
            ("stores_total", &self.stores, "Pages stored"),
            (
                "fetches_total",
                &self.fetches,
                "FETCH requests answered with the page",
            ),
            (
                "fetch_misses_total",
                &self.fetch_misses,
                "FETCH requests answered NOT_FOUND",
            ),
            ("drops_total", &self.drops, "DROP requests"),
            (
                "dropped_pages_total",
                &self.dropped_pages,
                "Pages removed by DROP",
            ),
            ("pings_total", &self.pings, "PING requests"),
            (
                "denied_total",
                &self.denied,
                "Requests refused with DENIED (wrong capability or unknown client)",
            ),
            ("full_total", &self.full, "STORE requests refused with FULL"),
            (
                "errors_total",
                &self.errors,
                "Well-formed requests answered with ERROR",
            ),
            (
                "malformed_total",
                &self.malformed,
                "Connections closed for malformed input",
            ),
            (
                "refused_connections_total",
                &self.refused_connections,
                "Connections refused at max_connections",
            ),
            (
                "hello_timeouts_total",
                &self.hello_timeouts,
                "Connections closed without HELLO in time",
            ),
            ("bytes_received_total", &self.bytes_in, "Bytes received"),
            ("bytes_sent_total", &self.bytes_out, "Bytes sent"),
            (
                "connections_total",
                &self.connections,
                "Connections accepted",
            ),
        ];
        for (name, v, help) in counters {
            let _ = writeln!(s, "# HELP coopswap_repod_{name} {help}");
            let _ = writeln!(s, "# TYPE coopswap_repod_{name} counter");
            let _ = writeln!(s, "coopswap_repod_{name} {}", v.load(Relaxed));
        }
        let gauges = [
            (
                "clients_connected",
                self.clients_connected.load(Relaxed),
                "Open connections",
            ),
            (
                "capacity_pages",
                g.capacity_pages,
                "Capacity in 4 KiB pages",
            ),
            ("used_pages", g.used_pages, "Pages held"),
            (
                "memory_locked",
                u64::from(g.locked),
                "1 if the page memory is mlocked",
            ),
        ];
        for (name, v, help) in gauges {
            let _ = writeln!(s, "# HELP coopswap_repod_{name} {help}");
            let _ = writeln!(s, "# TYPE coopswap_repod_{name} gauge");
            let _ = writeln!(s, "coopswap_repod_{name} {v}");
        }
        s
    }
}

/// Serve `render()` to every HTTP request on `listener`, one short connection at a time, until the process exits
/// or `stop()` returns true.
pub fn serve(
    listener: TcpListener,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    stop: Arc<dyn Fn() -> bool + Send + Sync>,
) {
    for conn in listener.incoming() {
        if stop() {
            break;
        }
        let Ok(mut conn) = conn else { continue };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
        // Read the request head (whatever it is); the answer is always the metrics.
        let mut head = [0u8; 2048];
        let _ = conn.read(&mut head);
        let body = render();
        let reply = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            body.len(),
            body
        );
        let _ = conn.write_all(reply.as_bytes());
    }
}
