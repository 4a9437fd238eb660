//! `ovc-netbench`: the lab's network benchmark helpers (scripts/bench-vwire, tools/lab/scenarios/bench-vwire.sh).
//!
//! ```text
//! ovc-netbench blast --port P [--size 1400] [--secs 5] [--mbps 0] ADDR...   UDP datagrams round-robin to ADDR:P
//! ovc-netbench sink --port P --ctl-port C [--ifaces vw,vx]
//!                                              count UDP datagrams on 0.0.0.0:P; TCP C answers with the counts
//!                                              (and rx packets/bytes summed over interfaces vw<digits>...)
//! ovc-netbench query ADDR:PORT                 print a sink's answer (counts and the sink host's /proc/stat cpu)
//! ovc-netbench rr-server --port P [--bind A]   TCP echo server for `rr`
//! ovc-netbench rr --peer ADDR:PORT [--count 1000] [--size 1] [--secs 0]
//!                                              TCP request/response round trips (TCP_NODELAY): min/avg/p50/p99/max
//! ```
//! Every result is one line of `key=value` words, for scripts.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ovc_netbench::{cpu_line, snmp_counter, ArgError, Args, RttStats};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let Some(cmd) = argv.next() else {
        eprintln!("usage: ovc-netbench blast|sink|query|rr-server|rr ... (see the source's header)");
        return ExitCode::from(2);
    };
    let r = Args::parse(argv).map_err(Into::into).and_then(|a| match cmd.as_str() {
        "blast" => blast(&a),
        "sink" => sink(&a),
        "query" => query(&a),
        "rr-server" => rr_server(&a),
        "rr" => rr(&a),
        other => Err(ArgError(format!("unknown command '{other}'")).into()),
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ovc-netbench {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn blast(a: &Args) -> Res<()> {
    a.only(&["port", "size", "secs", "mbps"])?;
    let port: u16 = a.get("port", 9)?;
    let size: usize = a.get("size", 1400)?;
    let secs: f64 = a.get("secs", 5.0)?;
    let mbps: f64 = a.get("mbps", 0.0)?;
    if a.positional.is_empty() {
        return Err(ArgError("blast needs at least one destination address".into()).into());
    }
    let dests = a
        .positional
        .iter()
        .map(|s| s.parse::<Ipv4Addr>().map(|ip| SocketAddr::from((ip, port))))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ArgError(format!("bad destination address: {e}")))?;
    // One connected socket per destination: the socket keeps its route, so a datagram costs the same whether the
    // blaster walks one destination or 256 (an unconnected `send_to` looks the route up for every datagram, and with
    // many destinations that lookup, not the tunnel, limited the sender).
    let socks = dests
        .iter()
        .map(|d| {
            let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
            s.connect(d)?;
            Ok(s)
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let buf = vec![0x5au8; size];
    let (mut sent, mut errors, mut bytes) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let end = Duration::from_secs_f64(secs);
    let ns_per_datagram = if mbps > 0.0 { (size as f64 * 8.0) / (mbps * 1e6) * 1e9 } else { 0.0 };
    'outer: loop {
        for sock in &socks {
            match sock.send(&buf) {
                Ok(n) => {
                    sent += 1;
                    bytes += n as u64;
                }
                // ENOBUFS/EAGAIN from a full queue, ECONNREFUSED from an earlier ICMP: count and go on.
                Err(_) => errors += 1,
            }
            if (sent + errors) % 16 == 0 {
                let el = start.elapsed();
                if el >= end {
                    break 'outer;
                }
                if ns_per_datagram > 0.0 {
                    let due = Duration::from_nanos((ns_per_datagram * sent as f64) as u64);
                    if due > el {
                        thread::sleep(due - el);
                    }
                }
            }
        }
    }
    let el = start.elapsed().as_secs_f64();
    println!(
        "blast dests={} size={size} sent={sent} bytes={bytes} errors={errors} secs={el:.3} mbps={:.1}",
        dests.len(),
        bytes as f64 * 8.0 / el / 1e6
    );
    Ok(())
}

fn proc_stat_cpu() -> String {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| cpu_line(&s).map(|l| l.split_whitespace().collect::<Vec<_>>().join(",")))
        .unwrap_or_else(|| "-".into())
}

/// Received packets and bytes summed over this host's interfaces whose names start with `prefix` and go on with a
/// digit (e.g. `vw` counts vw1000..vw1255, not vwh).
fn iface_rx(prefix: &str) -> (u64, u64) {
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse::<u64>().ok());
    let mut sum = (0, 0);
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else { return sum };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.strip_prefix(prefix).is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit())) {
            continue;
        }
        let st = e.path().join("statistics");
        sum.0 += read(st.join("rx_packets")).unwrap_or(0);
        sum.1 += read(st.join("rx_bytes")).unwrap_or(0);
    }
    sum
}

/// UDP receive errors of this host (/proc/net/snmp): datagrams dropped for a full socket buffer, and all errors.
fn udp_errors() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    (snmp_counter(&s, "Udp", "RcvbufErrors").unwrap_or(0), snmp_counter(&s, "Udp", "InErrors").unwrap_or(0))
}

fn sink(a: &Args) -> Res<()> {
    a.only(&["port", "ctl-port", "ifaces"])?;
    let port: u16 = a.get("port", 9)?;
    let ifaces: Vec<String> =
        a.opts.get("ifaces").map(|s| s.split(',').filter(|p| !p.is_empty()).map(String::from).collect()).unwrap_or_default();
    let ctl: u16 = a.get("ctl-port", 6001)?;
    let udp = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, ctl))?;
    let datagrams = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    {
        let (datagrams, bytes) = (datagrams.clone(), bytes.clone());
        thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                if let Ok(n) = udp.recv(&mut buf) {
                    datagrams.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        });
    }
    eprintln!("ovc-netbench sink: UDP port {port}, control TCP port {ctl}");
    for c in listener.incoming() {
        let Ok(mut c) = c else { continue };
        let (rcvbuf, inerr) = udp_errors();
        let mut line = format!(
            "rx_datagrams={} rx_bytes={} udp_rcvbuf_errors={rcvbuf} udp_in_errors={inerr}",
            datagrams.load(Ordering::Relaxed),
            bytes.load(Ordering::Relaxed),
        );
        for p in &ifaces {
            let (pk, by) = iface_rx(p);
            line.push_str(&format!(" rx_packets_{p}={pk} rx_bytes_{p}={by}"));
        }
        line.push_str(&format!(" cpu={}\n", proc_stat_cpu()));
        let _ = c.write_all(line.as_bytes());
    }
    Ok(())
}

fn query(a: &Args) -> Res<()> {
    a.only(&[])?;
    let [peer] = a.positional.as_slice() else {
        return Err(ArgError("query needs one ADDR:PORT".into()).into());
    };
    let peer: SocketAddr = peer.parse().map_err(|e| ArgError(format!("bad address '{peer}': {e}")))?;
    let mut c = TcpStream::connect_timeout(&peer, Duration::from_secs(10))?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut s = String::new();
    c.read_to_string(&mut s)?;
    print!("{s}");
    Ok(())
}

fn rr_server(a: &Args) -> Res<()> {
    a.only(&["port", "bind"])?;
    let port: u16 = a.get("port", 6100)?;
    let bind: Ipv4Addr = a.get("bind", Ipv4Addr::UNSPECIFIED)?;
    let listener = TcpListener::bind((bind, port))?;
    for c in listener.incoming() {
        let Ok(mut c) = c else { continue };
        thread::spawn(move || {
            let _ = c.set_nodelay(true);
            let mut buf = vec![0u8; 65536];
            loop {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if c.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
    Ok(())
}

fn rr(a: &Args) -> Res<()> {
    a.only(&["peer", "count", "size", "secs"])?;
    let peer: SocketAddr = a
        .opts
        .get("peer")
        .ok_or_else(|| ArgError("rr needs --peer ADDR:PORT".into()))?
        .parse()
        .map_err(|e| ArgError(format!("--peer: {e}")))?;
    let count: usize = a.get("count", 1000)?;
    let size: usize = a.get("size", 1)?;
    let secs: f64 = a.get("secs", 0.0)?;
    if size == 0 || count == 0 {
        return Err(ArgError("--size and --count must be at least 1".into()).into());
    }
    let mut c = TcpStream::connect_timeout(&peer, Duration::from_secs(10))?;
    c.set_nodelay(true)?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    let req = vec![0x42u8; size];
    let mut resp = vec![0u8; size];
    let mut samples = Vec::with_capacity(count);
    let start = Instant::now();
    // One untimed transaction first: the connection's first round trip may still carry ARP or slow start.
    c.write_all(&req)?;
    c.read_exact(&mut resp)?;
    while samples.len() < count && (secs <= 0.0 || start.elapsed().as_secs_f64() < secs) {
        let t = Instant::now();
        c.write_all(&req)?;
        c.read_exact(&mut resp)?;
        samples.push(t.elapsed());
    }
    let s = RttStats::from_samples(&samples).ok_or_else(|| ArgError("no transaction completed".into()))?;
    println!("rr {s}");
    Ok(())
}
