//! `overdriver`: the Overdriver agent and its tools (dissertation ch. 6).

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use overdriver::agent::{Agent, Status};
use overdriver::clock::SystemClock;
use overdriver::config::Config;
use overdriver::plan::{plan, render as render_plan, PlanInput};
use overdriver::profiler::ProfileStore;
use overdriver::{metrics, sim, util};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "overdriver", version, about = "Overdriver agent: cooperative swap for transient memory overload, live migration for sustained overload")]
struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, default_value = "/etc/overdriver/overdriver.toml")]
    config: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Monitor VMs and act on overload.
    Run(RunArgs),
    /// Like `run`, but only log the actions it would take.
    DryRun(RunArgs),
    /// Validate the configuration and exit.
    CheckConfig,
    /// Show the running agent's view of each VM (from its status file).
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Print the learned overload profiles as JSON (for a control plane).
    Profiles,
    /// Capacity planning: binomial bounds on simultaneous overloads and the excess-space split (§6.2.2).
    Plan(PlanArgs),
    /// Measure the agent's cost per VM per tick on generated counter files.
    Bench {
        #[arg(long, default_value_t = 1000)]
        vms: usize,
        #[arg(long, default_value_t = 20)]
        ticks: u64,
        #[arg(long, default_value_t = 10)]
        interval: u64,
    },
    /// Replay overload traces under disk swap, cooperative swap, migration and Overdriver (§6.3).
    Simulate(sim::SimArgs),
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Stop after this many ticks (for testing).
    #[arg(long)]
    ticks: Option<u64>,
}

#[derive(Args)]
struct PlanArgs {
    /// Take the inputs from agents' profile stores (repeatable): the number of VMs, the highest per-VM overload
    /// probability and the transient fraction. Explicit flags override them.
    #[arg(long)]
    profiles: Vec<PathBuf>,
    /// Number of VMs [default: 150, or the number of profiled VMs].
    #[arg(long)]
    vms: Option<u64>,
    /// Probability that a VM is overloaded [default: 0.16, or the highest profiled].
    #[arg(long)]
    p_overload: Option<f64>,
    /// Fraction of overloads that are transient [default: 0.96, or the profiled fraction].
    #[arg(long)]
    transient_fraction: Option<f64>,
    /// Confidence for the smallest bounds.
    #[arg(long, default_value_t = 0.97)]
    confidence: f64,
    /// Memory each VM requested, MiB.
    #[arg(long, default_value_t = 1024)]
    requested_mib: u64,
    /// Memory each VM is allocated, MiB.
    #[arg(long, default_value_t = 640)]
    allocated_mib: u64,
    /// Evaluate this bound on simultaneous sustained overloads.
    #[arg(long)]
    sustained_bound: Option<u64>,
    /// Evaluate this bound on simultaneous transient overloads.
    #[arg(long)]
    transient_bound: Option<u64>,
    /// Total cloud memory (MiB) for the how-many-VMs-fit analysis (Fig. 6.3/6.4).
    #[arg(long)]
    total_mib: Option<u64>,
    /// Emit JSON.
    #[arg(long)]
    json: bool,
}

fn load_config(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

fn write_outputs(cfg: &Config, status: &Status, latest: &Arc<Mutex<String>>) {
    let text = metrics::render(status);
    if let Some(f) = &cfg.metrics.file {
        if let Err(e) = util::write_atomic(f, text.as_bytes()) {
            log::warn!("metrics file {}: {e}", f.display());
        }
    }
    if let Ok(mut l) = latest.lock() {
        *l = text;
    }
    let p = cfg.agent.state_dir.join("status.json");
    match serde_json::to_vec_pretty(status) {
        Ok(j) => {
            if let Err(e) = util::write_atomic(&p, &j) {
                log::warn!("status file {}: {e}", p.display());
            }
        }
        Err(e) => log::warn!("status: {e}"),
    }
}

fn run(cfg_path: &Path, args: RunArgs, dry: bool) -> anyhow::Result<()> {
    let cfg = load_config(cfg_path)?;
    let mut agent = Agent::from_config(&cfg, Arc::new(SystemClock::new()), dry)?;
    let latest = Arc::new(Mutex::new(String::new()));
    if let Some(l) = &cfg.metrics.listen {
        let addr = metrics::serve(l, latest.clone()).with_context(|| format!("metrics listen {l}"))?;
        log::info!("serving metrics on http://{addr}/metrics");
    }
    log::info!(
        "overdriver agent started: {} VMs configured, interval {} s, {}",
        cfg.vms.len(),
        cfg.agent.interval_secs,
        if dry || cfg.agent.dry_run { "DRY RUN" } else { "acting" }
    );
    let interval = Duration::from_secs(cfg.agent.interval_secs);
    let mut next = Instant::now();
    let mut n = 0u64;
    loop {
        agent.tick();
        n += 1;
        write_outputs(&cfg, &agent.status(), &latest);
        if args.ticks.is_some_and(|t| n >= t) {
            // Give running actions a last chance to report, bounded by the action timeout.
            let deadline = Instant::now() + Duration::from_secs(cfg.actions.timeout_secs);
            while agent.status().vms.iter().any(|v| v.migrate.label() == "running" || v.coopswap.label() == "running")
                && Instant::now() < deadline
            {
                agent.wait_actions(Duration::from_millis(100));
            }
            write_outputs(&cfg, &agent.status(), &latest);
            return Ok(());
        }
        next += interval;
        if Instant::now() > next + interval {
            // We fell more than an interval behind (suspend, overload): skip the missed ticks instead of bursting.
            log::warn!("tick overran by more than one interval; skipping missed ticks");
            next = Instant::now() + interval;
        }
        loop {
            let now = Instant::now();
            if now >= next {
                break;
            }
            if !agent.wait_actions(next - now).is_empty() {
                write_outputs(&cfg, &agent.status(), &latest);
            }
        }
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |r| format!("{r:.0}"))
}

fn status(cfg_path: &Path, json: bool) -> anyhow::Result<()> {
    let cfg = load_config(cfg_path)?;
    let p = cfg.agent.state_dir.join("status.json");
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {} (is the agent running?)", p.display()))?;
    let s: Status = serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))?;
    if json {
        println!("{text}");
        return Ok(());
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let age = now.saturating_sub(s.generated_unix);
    println!(
        "agent: {} ticks, interval {} s, overload above {} ops/s, {}, status {} s old{}",
        s.ticks,
        s.interval_secs,
        s.overload_rate,
        if s.dry_run { "dry run" } else { "acting" },
        age,
        if age > 3 * s.interval_secs { " (STALE: is the agent running?)" } else { "" }
    );
    println!(
        "{:<12} {:<9} {:>8} {:>7} {:>8} {:>9} {:<13} {:<13} NOTE",
        "VM", "PHASE", "RATE/s", "WINDOW", "EPISODE", "THRESH", "COOPSWAP", "MIGRATE"
    );
    for v in &s.vms {
        let note = v.last_error.clone().or(v.unknown_reason.clone().map(|r| format!("unknown: {r}"))).unwrap_or_default();
        println!(
            "{:<12} {:<9} {:>8} {:>7} {:>8} {:>8}s {:<13} {:<13} {}",
            v.name,
            format!("{:?}", v.phase).to_lowercase(),
            fmt_opt(v.rate),
            format!("{}/{}", v.overloaded_in_window, v.window),
            v.episode_secs.map_or("-".into(), |e| format!("{e:.0}s")),
            v.threshold_secs,
            v.coopswap.label(),
            v.migrate.label(),
            note
        );
    }
    for (k, o, c) in &s.actions {
        println!("actions: {k} {o} = {c}");
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    // The agent logs its decisions at info; the tools only warnings, unless RUST_LOG says otherwise.
    let level = if matches!(cli.cmd, Cmd::Run(_) | Cmd::DryRun(_)) { "info" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).format_timestamp_millis().init();
    let res = match cli.cmd {
        Cmd::Run(a) => run(&cli.config, a, false),
        Cmd::DryRun(a) => run(&cli.config, a, true),
        Cmd::CheckConfig => load_config(&cli.config).map(|c| {
            println!("{}: OK ({} VMs configured)", cli.config.display(), c.vms.len());
        }),
        Cmd::Status { json } => status(&cli.config, json),
        Cmd::Profiles => load_config(&cli.config).and_then(|c| {
            let store = ProfileStore::load(&c.agent.state_dir.join("profiles.json"), c.profiler_params())?;
            println!("{}", serde_json::to_string_pretty(&store)?);
            Ok(())
        }),
        Cmd::Plan(a) => (|| {
            let (mut vms, mut p_overload, mut transient_fraction) = (150, 0.16, 0.96);
            if !a.profiles.is_empty() {
                let mut all = ProfileStore::new(Default::default());
                for p in &a.profiles {
                    all.merge(&ProfileStore::load(p, Default::default())?);
                }
                let g = all.aggregate();
                eprintln!(
                    "from profiles: {} VMs, highest overload probability {}, {} transient / {} sustained overloads",
                    g.vms,
                    g.max_overload_probability.as_ref().map_or("unknown".into(), |(v, p)| format!("{p:.4} ({v})")),
                    g.transient,
                    g.sustained
                );
                vms = g.vms;
                match (g.max_overload_probability, a.p_overload) {
                    (Some((_, p)), None) => p_overload = p,
                    (None, None) => anyhow::bail!("the profiles have no intervals yet; give --p-overload"),
                    _ => {}
                }
                match (g.transient_fraction, a.transient_fraction) {
                    (Some(f), None) => transient_fraction = f,
                    (None, None) => anyhow::bail!("the profiles have no overloads yet; give --transient-fraction"),
                    _ => {}
                }
            }
            let p = plan(PlanInput {
                vms: a.vms.unwrap_or(vms),
                p_overload: a.p_overload.unwrap_or(p_overload),
                transient_fraction: a.transient_fraction.unwrap_or(transient_fraction),
                confidence: a.confidence,
                requested_mib: a.requested_mib,
                allocated_mib: a.allocated_mib,
                sustained_bound: a.sustained_bound,
                transient_bound: a.transient_bound,
                total_mib: a.total_mib,
            })?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                print!("{}", render_plan(&p));
            }
            Ok(())
        })(),
        Cmd::Simulate(a) => sim::main(&a),
        Cmd::Bench { vms, ticks, interval } => overdriver::bench::run(vms, ticks, interval).map(|r| {
            println!(
                "{} VMs, {} ticks: mean tick {:.0} us (max {:.0} us), {:.2} us per VM per tick, {:.3} % of one core at {} s ticks",
                r.vms, r.ticks, r.mean_tick_micros, r.max_tick_micros, r.micros_per_vm_tick, r.core_pct_at_interval, r.interval_secs
            );
        }),
    };
    if let Err(e) = res {
        eprintln!("overdriver: {e:#}");
        std::process::exit(2);
    }
}
