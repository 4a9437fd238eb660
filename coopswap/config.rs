// SPDX-License-Identifier: GPL-2.0

//! The configfs interface, /sys/kernel/config/coopswap/ (the rnull pattern):
//!
//! ```text
//! mkdir /sys/kernel/config/coopswap/0          # device 0, later /dev/coopswap0
//! echo 256 > .../0/size_mib                    # size (while off)
//! echo /dev/vdb > .../0/store                  # local write-through store: block device or file (while off)
//! echo 1 > .../0/power                         # create /dev/coopswap0
//! echo "add 10.0.0.2:7400 1 <32 hex digits>" > .../0/repos   # a page repository (while on)
//! cat .../0/state .../0/repos .../0/stats; cat .../0/reads .../0/writes
//! echo /tmp/map > .../0/map_export                  # page map to a file (device on, not open)
//! echo /tmp/map > .../0/map_import                  # page map from a file into a fresh device of the same size
//! echo "drain 0" > .../0/repos                    # move repository 0's pages elsewhere, then take it out
//! echo "reconnect 0" > .../0/repos                # a repository out of service back in (same address, token)
//! echo "remove 0" > .../0/repos; echo 0 > .../0/power; rmdir .../0
//! ```
//!
//! Malformed writes fail with EINVAL (EBUSY when the device state forbids them) and change nothing.

use super::core_logic::slots::Layout;
use super::device::{parse_addr, parse_token, reconnect_repo, DevIo, Device, DrainCount, Stats};
use super::overcast::fmt::Show;
use super::overcast::blk::{pin_module_forever, Memalloc, SeqFile};
use super::repo::Repo;
use kernel::configfs::{self, AttributeOperations};
use kernel::configfs_attrs;
use kernel::fmt::Write as _;
use kernel::new_mutex;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::str::{kstrtobool_bytes, CString};
use kernel::sync::atomic::Relaxed;
use kernel::sync::{Arc, Mutex};

/// Largest device, in MiB (the page map of 16 GiB is 128 MiB of records... kept well below that).
const MAX_SIZE_MIB: u64 = 65536;
/// Highest device number (the directory name).
const MAX_INDEX: u32 = 255;
/// Pages a drain moves per hold of the device's state lock.
const DRAIN_STEP: usize = 32;

pub(crate) fn subsystem() -> impl PinInit<configfs::Subsystem<Config>, Error> {
    let item_type = configfs_attrs! {
        container: configfs::Subsystem<Config>,
        data: Config,
        child: DeviceConfig,
        attributes: [
            features: 0,
        ],
    };
    configfs::Subsystem::new(c"coopswap", item_type, try_pin_init!(Config {}))
}

#[pin_data]
pub(crate) struct Config {}

#[vtable]
impl AttributeOperations<0> for Config {
    type Data = Config;

    fn show(_this: &Config, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = kernel::str::Formatter::new(page);
        w.write_str("power,size_mib,store,repos,state,stats,reads,writes,map_export,map_import,local_hold,")?;
        w.write_str("auto_reconnect,store_layout\n")?;
        Ok(w.bytes_written())
    }
}

#[vtable]
impl configfs::GroupOperations for Config {
    type Child = DeviceConfig;

    fn make_group(&self, name: &CStr) -> Result<impl PinInit<configfs::Group<DeviceConfig>, Error>> {
        let index = name
            .to_str()
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|i| *i <= MAX_INDEX)
            .ok_or_else(|| {
                pr_err!("a device directory is named by its number 0..=255 (mkdir .../coopswap/0 makes /dev/coopswap0)\n");
                EINVAL
            })?;
        let item_type = configfs_attrs! {
            container: configfs::Group<DeviceConfig>,
            data: DeviceConfig,
            attributes: [
                power: 0,
                size_mib: 1,
                store: 2,
                repos: 3,
                state: 4,
                stats: 5,
                reads: 6,
                writes: 7,
                map_export: 8,
                map_import: 9,
                local_hold: 10,
                auto_reconnect: 11,
                store_layout: 12,
            ],
        };
        let disk_name = CString::try_from_fmt(fmt!("coopswap{}", index))?;
        let stats = Arc::new(Stats::new(), GFP_KERNEL)?;
        Ok(configfs::Group::new(
            name.try_into()?,
            item_type,
            try_pin_init!(DeviceConfig {
                data <- new_mutex!(DevCfg {
                    disk_name,
                    size_mib: 0,
                    store: None,
                    device: None,
                    auto_reconnect: false,
                    layout: Layout::Fixed,
                }),
                stats,
            }),
        ))
    }
}

#[pin_data]
pub(crate) struct DeviceConfig {
    #[pin]
    data: Mutex<DevCfg>,
    stats: Arc<Stats>,
}

struct DevCfg {
    disk_name: CString,
    size_mib: u64,
    store: Option<CString>,
    device: Option<Device>,
    /// `auto_reconnect`, kept across power cycles.
    auto_reconnect: bool,
    /// `store_layout`, set while off.
    layout: Layout,
}

impl Drop for DevCfg {
    fn drop(&mut self) {
        if let Some(dev) = self.device.take() {
            if dev.openers() > 0 {
                // The configuration directory was removed while the disk is open (e.g. active swap). Removing the disk
                // now would fail the swap I/O; keep it serving and keep the module loaded instead.
                pr_err!(
                    "/dev/{} is still open (active swap?) and stays in service; the module stays loaded until reboot. Run swapoff and 'echo 0 > power' before rmdir\n",
                    self.disk_name.to_str().unwrap_or("?")
                );
                pin_module_forever();
                core::mem::forget(dev);
            }
        }
    }
}

fn input(page: &[u8]) -> Result<&str> {
    core::str::from_utf8(page).map(str::trim).map_err(|_| EINVAL)
}

/// A boolean knob's value (`0`/`1`, `y`/`n`, `on`/`off`); `EINVAL` with a log line naming `attr` otherwise.
fn bool_input(page: &[u8], attr: &str) -> Result<bool> {
    kstrtobool_bytes(page.trim_ascii()).inspect_err(|_| pr_err!("{} takes 0 or 1\n", attr))
}

/// An absolute path without whitespace, as the store and the page-map files take it.
fn path_input(page: &[u8], attr: &str) -> Result<CString> {
    let path = input(page)?;
    if !path.starts_with('/') || path.len() > 255 || path.contains(char::is_whitespace) {
        pr_err!("{} takes an absolute path\n", attr);
        return Err(EINVAL);
    }
    CString::try_from_fmt(fmt!("{}", path))
}

#[vtable]
impl AttributeOperations<0> for DeviceConfig {
    type Data = DeviceConfig;

    fn show(this: &DeviceConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = kernel::str::Formatter::new(page);
        w.write_str(if this.data.lock().device.is_some() { "1\n" } else { "0\n" })?;
        Ok(w.bytes_written())
    }

    fn store(this: &DeviceConfig, page: &[u8]) -> Result {
        let on = kstrtobool_bytes(page).inspect_err(|_| pr_err!("power takes 0 or 1\n"))?;
        let mut cfg = this.data.lock();
        let name = CString::try_from(&*cfg.disk_name)?;
        match (on, cfg.device.is_some()) {
            (true, false) => {
                let Some(path) = cfg.store.as_ref() else {
                    pr_err!("{}: set store (the local write-through store) before power\n", name.to_str()?);
                    return Err(EINVAL);
                };
                if cfg.size_mib == 0 {
                    pr_err!("{}: set size_mib before power\n", name.to_str()?);
                    return Err(EINVAL);
                }
                let stats = this.stats.clone();
                let dev = Device::new(&name, cfg.size_mib * 256, path, stats, cfg.auto_reconnect, cfg.layout)?;
                cfg.device = Some(dev);
                pr_info!("/dev/{} is up ({} MiB)\n", name.to_str()?, cfg.size_mib);
                Ok(())
            }
            (false, true) => {
                let openers = cfg.device.as_ref().map_or(0, |d| d.openers());
                if openers > 0 {
                    pr_err!("/dev/{} is open ({} openers, active swap?): swapoff first\n", name.to_str()?, openers);
                    return Err(EBUSY);
                }
                drop(cfg.device.take());
                pr_info!("/dev/{} removed\n", name.to_str()?);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[vtable]
impl AttributeOperations<1> for DeviceConfig {
    type Data = DeviceConfig;

    fn show(this: &DeviceConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = kernel::str::Formatter::new(page);
        w.write_fmt(fmt!("{}\n", this.data.lock().size_mib))?;
        Ok(w.bytes_written())
    }

    fn store(this: &DeviceConfig, page: &[u8]) -> Result {
        let v: u64 = input(page)?.parse().map_err(|_| EINVAL)?;
        if v == 0 || v > MAX_SIZE_MIB {
            pr_err!("size_mib must be 1..={}\n", MAX_SIZE_MIB);
            return Err(EINVAL);
        }
        let mut cfg = this.data.lock();
        if cfg.device.is_some() {
            return Err(EBUSY);
        }
        cfg.size_mib = v;
        Ok(())
    }
}

#[vtable]
impl AttributeOperations<2> for DeviceConfig {
    type Data = DeviceConfig;

    fn show(this: &DeviceConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = kernel::str::Formatter::new(page);
        if let Some(p) = this.data.lock().store.as_ref() {
            w.write_fmt(fmt!("{}\n", p.to_str()?))?;
        }
        Ok(w.bytes_written())
    }

    fn store(this: &DeviceConfig, page: &[u8]) -> Result {
        let path = input(page)?;
        if !path.starts_with('/') || path.len() > 255 || path.contains(char::is_whitespace) {
            pr_err!("store takes an absolute path (a block device or a file)\n");
            return Err(EINVAL);
        }
        let path = CString::try_from_fmt(fmt!("{}", path))?;
        let mut cfg = this.data.lock();
        if cfg.device.is_some() {
            return Err(EBUSY);
        }
        cfg.store = Some(path);
        Ok(())
    }
}

/// The INDEX of `drain INDEX` / `reconnect INDEX`, with nothing after it.
fn index_arg<'a>(words: &mut impl Iterator<Item = &'a str>) -> Option<u16> {
    let idx = words.next()?.parse().ok()?;
    words.next().is_none().then_some(idx)
}

impl DeviceConfig {
    /// The switched-on device's I/O side and disk name, taken without keeping the configfs lock: `cat repos` and
    /// `cat state` keep working (and show progress) while a long operation (drain, reconnect) runs.
    fn io_side(&self) -> Result<(Arc<DevIo>, CString)> {
        let cfg = self.data.lock();
        let dev = cfg.device.as_ref().ok_or(ENOENT)?;
        Ok((dev.io.clone(), CString::try_from_fmt(fmt!("{}", cfg.disk_name.to_str()?))?))
    }
}

#[vtable]
impl AttributeOperations<3> for DeviceConfig {
    type Data = DeviceConfig;

    fn show(this: &DeviceConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = kernel::str::Formatter::new(page);
        let cfg = this.data.lock();
        let Some(dev) = cfg.device.as_ref() else { return Ok(0) };
        let st = dev.io.state.lock();
        for (i, r) in st.repos.iter().enumerate() {

            let state = match r.down_reason {
                None if st.draining(i as u16) => "up,draining",
                None => "up",
                Some(_) => "down",
            };
            let full = st.infos.get(i).is_some_and(|x| x.flags.0 & super::core_logic::placement::RepoFlags::FULL != 0);
            w.write_fmt(fmt!(
                "{} {} client {} {}{} pages {} stores {} fetches {} full {} failed {}{}{}\n",
                i, Show(&r.addr), r.client_id, state, if full { ",full" } else { "" },
                st.pages_on(i as u16), r.counters.stores, r.counters.fetches, r.counters.full, r.counters.failed,
                if r.down_reason.is_some() { " reason: " } else { "" }, r.down_reason.unwrap_or("")
            ))?;
        }
        Ok(w.bytes_written())
    }

    fn store(this: &DeviceConfig, page: &[u8]) -> Result {
        let line = input(page)?;
        let mut words = line.split_whitespace();
        let usage = || {
            pr_err!("repos takes 'add A.B.C.D:PORT|[IPV6]:PORT CLIENT_ID TOKEN(32 hex)', 'drain INDEX', 'reconnect INDEX' or 'remove INDEX'\n");
            EINVAL
        };
        match words.next() {
            Some("add") => {
                let addr = words.next().ok_or_else(usage).and_then(|s| parse_addr(s).map_err(|_| usage()))?;
                let client: u64 = words.next().and_then(|s| s.parse().ok()).ok_or_else(usage)?;
                let cap = words.next().ok_or_else(usage).and_then(|s| parse_token(s).map_err(|_| usage()))?;
                if words.next().is_some() {
                    return Err(usage());
                }
                let cfg = this.data.lock();
                let Some(dev) = cfg.device.as_ref() else {
                    pr_err!("{}: power the device on before adding repositories\n", cfg.disk_name.to_str()?);
                    return Err(EBUSY);
                };
                let repo = Repo::connect(addr, client, cap).inspect_err(|e| {
                    let why = if *e == EACCES {
                        "client id or token refused"
                    } else {
                        "cannot connect or no HELLO answer; is coopswap-repod running there?"
                    };
                    let errno = e.to_errno();
                    pr_err!("repository {} not added: {} (errno {})\n", Show(&addr), why, errno);
                })?;
                let max = repo.max_pages;
                let idx = dev.io.state.lock().add_repo(repo, addr.id())?;
                pr_info!("repository {} added ({} pages allowed)\n", idx, max);
                Ok(())
            }
            Some("drain") => {
                let idx = index_arg(&mut words).ok_or_else(usage)?;
                let (io, name) = this.io_side()?;
                let name = name.to_str()?;
                {
                    let _noio = Memalloc::enter(false);
                    let mut st = io.state.lock();
                    if usize::from(idx) >= st.repos.len() {
                        return Err(ENOENT);
                    }
                    st.drain_begin(idx)?;
                    pr_info!("{}: draining repository {}: {} pages to move\n", name, idx, st.pages_on(idx));
                }
                let mut count = DrainCount::default();
                // In steps of DRAIN_STEP pages, each under the state lock for a few round trips: the device's I/O
                // goes on between the steps (new pages already avoid the draining repository).
                let res = loop {
                    let _noio = Memalloc::enter(false);
                    let mut st = io.state.lock();
                    let step = st.drain_step(idx, DRAIN_STEP, &mut count);
                    if step.is_err() || !st.draining(idx) {
                        break step.and(Err(ECONNRESET));
                    }
                    if st.pages_on(idx) == 0 {
                        st.drain_end(idx);
                        break Ok(());
                    }
                };
                match res {
                    Ok(()) => pr_info!(
                        "{}: repository {} drained and out of service: {} pages moved to other repositories, {} kept in the local store only (no other repository had room), {} unreadable\n",
                        name, idx, count.moved, count.local_only, count.lost
                    ),
                    Err(e) => pr_err!(
                        "{}: draining repository {} stopped (errno {}) after moving {} pages ({} local only): see the messages above; pages left there are read from the local store if it goes\n",
                        name, idx, e.to_errno(), count.moved, count.local_only
                    ),
                }
                res
            }
            Some("reconnect") => {
                let idx = index_arg(&mut words).ok_or_else(usage)?;
                let (io, name) = this.io_side()?;
                let name = name.to_str()?;
                let (max, stale) = reconnect_repo(&io, idx)?;
                let addr = io.state.lock().repos.get(usize::from(idx)).map(|r| r.addr).ok_or(ENOENT)?;
                pr_info!(
                    "{}: repository {} ({}) back in service ({} pages allowed; {} old pages dropped there)\n",
                    name, idx, Show(&addr), max, stale
                );
                Ok(())
            }
            Some("remove") => {
                let idx: u16 = words.next().and_then(|s| s.parse().ok()).ok_or_else(usage)?;
                if words.next().is_some() {
                    return Err(usage());
                }
                let cfg = this.data.lock();
                let dev = cfg.device.as_ref().ok_or(ENOENT)?;
                let mut st = dev.io.state.lock();
                if usize::from(idx) >= st.repos.len() {
                    return Err(ENOENT);
                }
                st.remove_repo(idx);
                Ok(())
            }
            _ => Err(usage()),
        }
    }
}

#[vtable]
impl AttributeOperations<4> for DeviceConfig {
    type Data = DeviceConfig;

    fn show(this: &DeviceConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = kernel::str::Formatter::new(page);
        let cfg = this.data.lock();
        w.write_fmt(fmt!("disk {}\n", cfg.disk_name.to_str()?))?;
        w.write_fmt(fmt!("power {}\n", if cfg.device.is_some() { "on" } else { "off" }))?;
        w.write_fmt(fmt!("size_mib {}\n", cfg.size_mib))?;
        if let Some(dev) = cfg.device.as_ref() {
            w.write_fmt(fmt!("openers {}\n", dev.openers()))?;
            let st = dev.io.state.lock();
            let up = st.repos.iter().filter(|r| r.down_reason.is_none()).count();
            w.write_fmt(fmt!("repos {} up {}\n", st.repos.len(), up))?;
            w.write_fmt(fmt!("local_queue {}\n", st.local_queue()))?;
        }
        Ok(w.bytes_written())
    }
}

macro_rules! counter_attr {
    ($id:literal, $field:ident) => {
        #[vtable]
        impl AttributeOperations<$id> for DeviceConfig {
            type Data = DeviceConfig;

            fn show(this: &DeviceConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
                let mut w = kernel::str::Formatter::new(page);
                w.write_fmt(fmt!("{}\n", this.stats.$field.load(Relaxed)))?;
                Ok(w.bytes_written())
            }
        }
    };
}
counter_attr!(6, reads);
counter_attr!(7, writes);

#[vtable]
impl AttributeOperations<5> for DeviceConfig {
    type Data = DeviceConfig;

    fn show(this: &DeviceConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = kernel::str::Formatter::new(page);
        let s = &this.stats;
        w.write_fmt(fmt!(
            "reads {}\nwrites {}\nremote_reads {}\nlocal_reads {}\nzero_reads {}\nremote_stores {}\nstore_full {}\nstore_failed {}\nfetch_fallbacks {}\nlocal_write_errors {}\ndiscards {}\nio_errors {}\nlocal_behind {}\nlocal_waits {}\nlocal_ios {}\nlocal_write_retries {}\n",
            s.reads.load(Relaxed), s.writes.load(Relaxed), s.remote_reads.load(Relaxed), s.local_reads.load(Relaxed),
            s.zero_reads.load(Relaxed), s.remote_stores.load(Relaxed), s.store_full.load(Relaxed),
            s.store_failed.load(Relaxed), s.fetch_fallbacks.load(Relaxed), s.local_write_errors.load(Relaxed),
            s.discards.load(Relaxed), s.io_errors.load(Relaxed), s.local_behind.load(Relaxed),
            s.local_waits.load(Relaxed), s.local_ios.load(Relaxed), s.local_write_retries.load(Relaxed)
        ))?;
        Ok(w.bytes_written())
    }
}

/// Checks that a page map can be exported now: the device is on and nobody has it open (no I/O can be in flight, as
/// in the stop-and-copy phase of a migration).
fn quiesced(cfg: &DevCfg) -> Result<&Device> {
    let name = cfg.disk_name.to_str()?;
    let Some(dev) = cfg.device.as_ref() else {
        pr_err!("{}: map_export needs the device on (power 1)\n", name);
        return Err(EBUSY);
    };
    let openers = dev.openers();
    if openers > 0 {
        pr_err!(
            "{}: map_export needs a quiesced device, it has {} openers: destroy or save the guest, or swapoff, first\n",
            name, openers
        );
        return Err(EBUSY);
    }
    Ok(dev)
}

#[vtable]
impl AttributeOperations<8> for DeviceConfig {
    type Data = DeviceConfig;

    fn show(_this: &DeviceConfig, _page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        Ok(0)
    }

    /// `echo PATH > map_export`: writes the page map to the file PATH (created or truncated).
    fn store(this: &DeviceConfig, page: &[u8]) -> Result {
        let path = path_input(page, "map_export")?;
        let cfg = this.data.lock();
        let dev = quiesced(&cfg)?;
        let name = cfg.disk_name.to_str()?;
        let mut f = SeqFile::create(&path).inspect_err(|e| {
            pr_err!("{}: cannot create {} (errno {})\n", name, path.to_str().unwrap_or("?"), e.to_errno());
        })?;
        let mut st = dev.io.state.lock();
        let (records, repos) = st.export_map(&mut f).inspect_err(|e| {
            pr_err!("{}: page map export to {} failed (errno {})\n", name, path.to_str().unwrap_or("?"), e.to_errno());
        })?;
        pr_info!(
            "{}: page map exported to {}: {} pages, {} repositories, {} bytes\n",
            name, path.to_str()?, records, repos, f.pos()
        );
        Ok(())
    }
}

#[vtable]
impl AttributeOperations<9> for DeviceConfig {
    type Data = DeviceConfig;

    fn show(_this: &DeviceConfig, _page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        Ok(0)
    }

    /// `echo PATH > map_import`: takes the page map in PATH (exported here or on another host) into this fresh device.
    /// The device may be open — by the back-end of a guest arriving in a live migration, created on this host before
    /// the guest stopped on the other and paused until the map is here — since a fresh device has nothing an opener
    /// could have written or read other than zeroes: the import runs under the I/O state lock (a request arriving
    /// meanwhile waits and then sees the map), and cached pages of the disk are dropped afterwards.
    fn store(this: &DeviceConfig, page: &[u8]) -> Result {
        let path = path_input(page, "map_import")?;
        let cfg = this.data.lock();
        let name = cfg.disk_name.to_str()?;
        let Some(dev) = cfg.device.as_ref() else {
            pr_err!("{}: map_import needs the device on (power 1)\n", name);
            return Err(EBUSY);
        };
        let mut f = SeqFile::open_read(&path).inspect_err(|e| {
            pr_err!("{}: cannot open {} (errno {})\n", name, path.to_str().unwrap_or("?"), e.to_errno());
        })?;
        let sum = dev.io.state.lock().import_map(&mut f)?;
        let openers = dev.openers();
        if openers > 0 {
            dev.drop_cache();
            pr_info!(
                "{}: imported with {} openers (a back-end waiting for its guest): their cached pages dropped\n",
                name, openers
            );
        }
        pr_info!(
            "{}: page map imported from {}: {} pages, {} repositories ({} out of service), {} pages on a repository, {} local copies verified, {} local copies not matching (dropped), {} pages with no readable copy\n",
            name, path.to_str()?, sum.pages, sum.repos, sum.repos_down, sum.remote, sum.local_ok, sum.local_bad,
            sum.unreadable
        );
        Ok(())
    }
}

#[vtable]
impl AttributeOperations<10> for DeviceConfig {
    type Data = DeviceConfig;

    fn show(this: &DeviceConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = kernel::str::Formatter::new(page);
        let held = this.data.lock().device.as_ref().is_some_and(|d| d.local.held());
        w.write_fmt(fmt!("{}\n", u8::from(held)))?;
        Ok(w.bytes_written())
    }

    /// `echo 1 > local_hold` holds the local writers (a test and diagnosis knob: local copies stay behind, so what
    /// happens when a repository fails before they are written can be shown); `echo 0` releases it.
    fn store(this: &DeviceConfig, page: &[u8]) -> Result {
        let on = bool_input(page, "local_hold")?;
        // Not under the configuration lock: a worker waiting for held writers must not keep the release out.
        let local = {
            let cfg = this.data.lock();
            let Some(dev) = cfg.device.as_ref() else {
                pr_err!("{}: local_hold needs the device on (echo 1 > power)\n", cfg.disk_name.to_str()?);
                return Err(ENODEV);
            };
            dev.local.clone()
        };
        local.set_held(on);
        Ok(())
    }
}

#[vtable]
impl AttributeOperations<11> for DeviceConfig {
    type Data = DeviceConfig;

    fn show(this: &DeviceConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = kernel::str::Formatter::new(page);
        w.write_fmt(fmt!("{}\n", u8::from(this.data.lock().auto_reconnect)))?;
        Ok(w.bytes_written())
    }

    /// `echo 1 > auto_reconnect`: a repository that failed (not one the administrator removed or drained, nor one
    /// that refused the token) is reconnected automatically, on a timer, after 1 s and then waits doubling to 64 s
    /// (whether or not the device does I/O); `echo 0` stops that. Kept across power cycles.
    fn store(this: &DeviceConfig, page: &[u8]) -> Result {
        let on = bool_input(page, "auto_reconnect")?;
        let mut cfg = this.data.lock();
        cfg.auto_reconnect = on;
        if let Some(dev) = cfg.device.as_ref() {
            let mut st = dev.io.state.lock();
            st.auto_reconnect = on;
            // Repositories that failed while it was off: their waits count from their failure.
            DevIo::arm_retry(&dev.io, &mut st);
        }
        Ok(())
    }
}

#[vtable]
impl AttributeOperations<12> for DeviceConfig {
    type Data = DeviceConfig;

    fn show(this: &DeviceConfig, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = kernel::str::Formatter::new(page);
        w.write_fmt(fmt!("{}\n", this.data.lock().layout.name()))?;
        Ok(w.bytes_written())
    }

    /// `echo log > store_layout` (only while off): each local copy goes to the next free store slot, so random
    /// writes reach the store as runs (for a disk that charges per I/O); `fixed` (the default): page p in slot p,
    /// rewrites in place (for a memory-backed store such as zram, or a thin file, which would otherwise keep the
    /// stale copies).
    fn store(this: &DeviceConfig, page: &[u8]) -> Result {
        let layout = input(page).ok().and_then(Layout::parse).ok_or_else(|| {
            pr_err!("store_layout takes fixed (page p in store slot p) or log (the next free slot)\n");
            EINVAL
        })?;
        let mut cfg = this.data.lock();
        if cfg.device.is_some() {
            pr_err!("{}: store_layout can only change while the device is off\n", cfg.disk_name.to_str().unwrap_or("?"));
            return Err(EBUSY);
        }
        cfg.layout = layout;
        Ok(())
    }
}
