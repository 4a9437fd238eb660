//! `coopswap-client`: check a page repository and measure 4 KiB store/fetch latency (for the lab and operators).

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use coopswap_proto::wire::RequestBody;
use coopswap_repod::client::{pattern_page, Answer, Client};
use coopswap_repod::config::parse_token;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Talk to a cooperative swap page repository.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Repository address, host:port.
    #[arg(long, short)]
    server: String,
    /// Client id (from the repository's config).
    #[arg(long)]
    client_id: u64,
    /// Capability token, 32 hex digits (prefer the environment variable: command lines are visible to all users).
    #[arg(long, env = "COOPSWAP_TOKEN", hide_env_values = true)]
    token: String,
    /// Socket timeout in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// HELLO and PING: print the negotiated version and free room.
    Ping,
    /// Store pages with known patterns (pipelined), fetch and verify every byte, drop them, check they are gone.
    Check {
        /// Number of pages.
        #[arg(long, default_value_t = 256)]
        pages: u64,
        /// First page id used (use a range the client does not otherwise use).
        #[arg(long, default_value_t = 1 << 40)]
        base: u64,
    },
    /// Measure 4 KiB STORE and FETCH latency (p50/p99) and throughput.
    Bench {
        /// Distinct pages touched.
        #[arg(long, default_value_t = 1024)]
        pages: u64,
        /// Operations per phase.
        #[arg(long, default_value_t = 10_000)]
        ops: u64,
        /// Requests kept in flight (1 = pure latency).
        #[arg(long, default_value_t = 1)]
        depth: u64,
        /// First page id used.
        #[arg(long, default_value_t = 1 << 40)]
        base: u64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    let Some(cap) = parse_token(&args.token) else {
        bail!("--token must be 32 hex digits")
    };
    let addr: SocketAddr = args
        .server
        .to_socket_addrs()
        .with_context(|| format!("resolving {}", args.server))?
        .next()
        .with_context(|| format!("no address for {}", args.server))?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let mut c = Client::connect(addr, args.client_id, cap, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    match args.cmd {
        Cmd::Ping => match c.ping()? {
            Answer::Ok(room) => println!(
                "{addr}: protocol v{}, quota {} pages, room for {room} more",
                c.version, c.max_pages
            ),
            other => bail!("PING answered {other:?}"),
        },
        Cmd::Check { pages, base } => check(&mut c, pages, base)?,
        Cmd::Bench {
            pages,
            ops,
            depth,
            base,
            json,
        } => bench(&mut c, pages.max(1), ops, depth.max(1), base, json)?,
    }
    Ok(())
}

fn check(c: &mut Client, pages: u64, base: u64) -> anyhow::Result<()> {
    let seed = 0x5eed;
    for i in 0..pages {
        let p = pattern_page(seed, base + i);
        c.send(base + i, RequestBody::store(base + i, &p));
    }
    c.flush()?;
    for _ in 0..pages {
        match c.recv()? {
            (_, Answer::Ok(_)) => {}
            (tag, a) => bail!("store of page {tag}: {a:?}"),
        }
    }
    for i in 0..pages {
        c.send(base + i, RequestBody::Fetch { page: base + i });
    }
    c.flush()?;
    for _ in 0..pages {
        match c.recv()? {
            (tag, Answer::Data { page, data, .. }) if page == tag => {
                if *data != *pattern_page(seed, page) {
                    bail!("page {page}: content differs");
                }
            }
            (tag, a) => bail!("fetch of page {tag}: {a:?}"),
        }
    }
    let Answer::Ok(n) = c.drop_pages(base, u32::try_from(pages)?)? else {
        bail!("drop refused")
    };
    if n != pages {
        bail!("drop removed {n} pages, expected {pages}");
    }
    if c.fetch(base)? != Answer::NotFound {
        bail!("page still there after DROP");
    }
    println!("ok: stored, fetched and verified {pages} pages, dropped them");
    Ok(())
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Phase {
    name: &'static str,
    lat_ns: Vec<u64>,
    elapsed: Duration,
    full: u64,
}

fn run_phase(
    c: &mut Client,
    name: &'static str,
    pages: u64,
    ops: u64,
    depth: u64,
    base: u64,
) -> anyhow::Result<Phase> {
    let seed = 0xbe;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next_page = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        base + rng % pages
    };
    let mut inflight: HashMap<u64, (Instant, u64)> = HashMap::new();
    let mut lat = Vec::with_capacity(ops as usize);
    let mut sent = 0u64;
    let mut full = 0u64;
    let start = Instant::now();
    while lat.len() < ops as usize {
        while sent < ops && (inflight.len() as u64) < depth {
            let tag = c.next_tag();
            let page = if name == "store" && sent < pages {
                base + sent
            } else {
                next_page()
            };
            if name == "store" {
                let data = pattern_page(seed, page);
                c.send(tag, RequestBody::store(page, &data));
            } else {
                c.send(tag, RequestBody::Fetch { page });
            }
            inflight.insert(tag, (Instant::now(), page));
            sent += 1;
        }
        c.flush()?;
        let (tag, answer) = c.recv()?;
        let Some((t0, page)) = inflight.remove(&tag) else {
            bail!("reply with unknown tag {tag}")
        };
        lat.push(t0.elapsed().as_nanos() as u64);
        match answer {
            Answer::Ok(_) if name == "store" => {}
            Answer::Full if name == "store" => full += 1,
            Answer::Data { page: p, data, .. } if name == "fetch" && p == page => {
                if *data != *pattern_page(seed, page) {
                    bail!("page {page}: content differs");
                }
            }
            Answer::NotFound if name == "fetch" => {
                bail!("page {page} not found (was the store phase refused?)")
            }
            a => bail!("{name} of page {page}: {a:?}"),
        }
    }
    Ok(Phase {
        name,
        lat_ns: lat,
        elapsed: start.elapsed(),
        full,
    })
}

fn bench(
    c: &mut Client,
    pages: u64,
    ops: u64,
    depth: u64,
    base: u64,
    json: bool,
) -> anyhow::Result<()> {
    // store phase first writes every page once, so the fetch phase always hits
    let ops_store = ops.max(pages);
    let mut phases = vec![run_phase(c, "store", pages, ops_store, depth, base)?];
    phases.push(run_phase(c, "fetch", pages, ops, depth, base)?);
    let _ = c.drop_pages(base, u32::try_from(pages).unwrap_or(u32::MAX));
    let mut out = Vec::new();
    for p in &mut phases {
        p.lat_ns.sort_unstable();
        let n = p.lat_ns.len() as f64;
        let secs = p.elapsed.as_secs_f64().max(1e-9);
        out.push(serde_json::json!({
            "op": p.name,
            "depth": depth,
            "ops": p.lat_ns.len(),
            "p50_us": percentile(&p.lat_ns, 0.50) as f64 / 1000.0,
            "p99_us": percentile(&p.lat_ns, 0.99) as f64 / 1000.0,
            "mean_us": p.lat_ns.iter().sum::<u64>() as f64 / n.max(1.0) / 1000.0,
            "iops": n / secs,
            "mib_per_s": n * 4096.0 / secs / (1024.0 * 1024.0),
            "full": p.full,
        }));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for o in &out {
            println!(
                "{:5}  depth {:3}  ops {:7}  p50 {:8.1} us  p99 {:8.1} us  {:9.0} IOPS  {:8.1} MiB/s{}",
                o["op"].as_str().unwrap_or(""),
                depth,
                o["ops"],
                o["p50_us"].as_f64().unwrap_or(0.0),
                o["p99_us"].as_f64().unwrap_or(0.0),
                o["iops"].as_f64().unwrap_or(0.0),
                o["mib_per_s"].as_f64().unwrap_or(0.0),
                if o["full"].as_u64().unwrap_or(0) > 0 { format!("  ({} FULL)", o["full"]) } else { String::new() }
            );
        }
    }
    Ok(())
}
