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
    // Block SIGHUP before any thread exists, so every thread inherits the mask and only `sigwait` below sees it.
    let hup = block_sighup();
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
    let handle = server.spawn()?;
    let shared = handle.shared().clone();
    let path = args.config.clone();
    std::thread::Builder::new()
        .name("sighup".into())
        .spawn(move || loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: `hup` is an initialised signal set and `sig` a valid out-pointer.
            let rc = unsafe { libc::sigwait(&hup, &mut sig) };
            if rc != 0 || sig != libc::SIGHUP {
                continue;
            }
            match Config::load(&path) {
                Ok(cfg) => {
                    let r = shared.reload(&cfg);
                    log::info!(
                        "reloaded {}: clients added {:?}, removed {:?} ({} pages freed), changed {:?}",
                        path.display(),
                        r.added,
                        r.removed,
                        r.freed_pages,
                        r.changed
                    );
                    if !r.need_restart.is_empty() {
                        log::warn!("these settings changed but need a restart: {:?}", r.need_restart);
                    }
                }
                Err(e) => log::error!("reload of {} refused, keeping the old clients: {e}", path.display()),
            }
        })?;
    handle.wait();
    Ok(())
}

/// Block SIGHUP in this (and every later) thread; returns the set for `sigwait`.
fn block_sighup() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; the libc calls get valid pointers to it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
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
