//! `coopswap-repod --config repod.toml`: run a page repository.

use clap::Parser;
use coopswap_repod::config::Config;
use coopswap_repod::server::Server;
use std::path::PathBuf;

/// Cooperative swap page repository server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Configuration file (TOML); see repod.example.toml.
    #[arg(long, short)]
    config: PathBuf,
    /// Only validate the configuration and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let cfg = Config::load(&args.config)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.config.display()))?;
    warn_if_world_readable(&args.config);
    if args.check {
        println!(
            "{}: ok ({} pages, {} client(s), listen {})",
            args.config.display(),
            cfg.capacity_pages,
            cfg.clients.len(),
            cfg.listen
        );
        return Ok(());
    }
    let server = Server::bind(cfg)?;
    server.spawn()?.wait();
    Ok(())
}

/// Tokens are secrets: complain if others can read the file.
fn warn_if_world_readable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o004 != 0 {
            log::warn!(
                "{} is world-readable but holds capability tokens; chmod 600 it",
                path.display()
            );
        }
    }
}
