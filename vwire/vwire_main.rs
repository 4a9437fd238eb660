// SPDX-License-Identifier: GPL-2.0

//! VirtualWire endpoint manager (dissertation Ch. 5): /proc/vw (Figure 5.9), one network interface per endpoint,
//! connectors as L2-in-UDP tunnels.
//!
//! - `echo "<N> <AdrA> <AdrB>" > /proc/vw/create` — endpoint N receives on AdrA and sends to AdrB;
//! - `cat /proc/vw/<N>` — its configuration and counters; `echo "<AdrC>" > /proc/vw/<N>` — repoint;
//! - `echo "<N>" > /proc/vw/destroy`; `cat /proc/vw/list` — every entry; `cat /proc/vw/manager` — module-wide state.
//!
//! Parsing, the endpoint table, the collapse decision, the per-frame decisions and the status text are vwire/core
//! (shared with the host tests). Files: `manager.rs` (table, kernel objects, control operations, locking),
//! `device.rs` (transmit path of `vw<N>`), `socket.rs` (receive path of the UDP sockets), `proc.rs` (/proc/vw).
//! See Documentation/vwire.md.

use kernel::prelude::*;
use kernel::sync::Arc;

// Each module uses a subset of the shared layer, whose items are `pub` for the modules that use them.
#[allow(dead_code, unreachable_pub)]
#[path = "../rust/overcast/mod.rs"]
mod overcast;

// VirtualWire's pure logic, compiled from vwire/core (one implementation with the host tests).
// They sit at the crate root because their files refer to each other as `super::<file>`.
#[allow(dead_code, unreachable_pub)]
#[path = "core/src/addr.rs"]
mod addr;
#[allow(dead_code, unreachable_pub)]
#[path = "core/src/cmd.rs"]
mod cmd;
#[allow(dead_code, unreachable_pub)]
#[path = "core/src/counters.rs"]
mod counters;
#[allow(dead_code, unreachable_pub)]
#[path = "core/src/datapath.rs"]
mod datapath;
#[allow(dead_code, unreachable_pub)]
#[path = "core/src/errno.rs"]
mod errno;
#[allow(dead_code, unreachable_pub)]
#[path = "core/src/header.rs"]
mod header;
#[allow(dead_code, unreachable_pub)]
#[path = "core/src/id.rs"]
mod id;
#[allow(dead_code, unreachable_pub)]
#[path = "core/src/index.rs"]
mod index;
#[allow(dead_code, unreachable_pub)]
#[path = "core/src/mtu.rs"]
mod mtu;
#[allow(dead_code, unreachable_pub)]
#[path = "core/src/selftest.rs"]
mod selftest;
#[allow(dead_code, unreachable_pub)]
#[path = "core/src/status.rs"]
mod status;
#[allow(dead_code, unreachable_pub)]
#[path = "core/src/table.rs"]
mod table;
mod core_logic {
    #[allow(unused_imports)]
    pub(crate) use super::{addr, cmd, counters, datapath, errno, header, id, index, mtu, selftest, status, table};
}

mod config;
mod device;
mod manager;
mod proc;
mod socket;

use manager::{Manager, VwLink, CAPACITY};
use overcast::net::Link;
use overcast::procfs::{ProcDir, ProcFile};
use proc::{CreateHandler, DestroyHandler, ListHandler, ManagerHandler};

module! {
    type: VWire,
    name: "vwire",
    authors: ["Overcast developers"],
    description: "VirtualWire endpoint manager: /proc/vw, vw<N> interfaces, L2-in-UDP connectors",
    license: "GPL",
}

/// The /proc/vw control files (Figure 5.9).
struct ProcFiles {
    // Held for their `Drop`, which removes the files.
    _create: ProcFile<CreateHandler>,
    _destroy: ProcFile<DestroyHandler>,
    _list: ProcFile<ListHandler>,
    _manager: ProcFile<ManagerHandler>,
}

impl ProcFiles {
    /// Creates /proc/vw and the manager over it, with its control files.
    fn new() -> Result<(Arc<Manager>, Self)> {
        let dir = ProcDir::new(c"vw", None).inspect_err(|_| {
            pr_err!("cannot create /proc/vw (is another VirtualWire module loaded?)\n");
        })?;
        let mgr = Manager::new(dir.clone())?;
        let files = ProcFiles {
            _create: ProcFile::new(&dir, c"create", 0o644, Arc::new(CreateHandler(mgr.clone()), GFP_KERNEL)?)?,
            _destroy: ProcFile::new(&dir, c"destroy", 0o644, Arc::new(DestroyHandler(mgr.clone()), GFP_KERNEL)?)?,
            _list: ProcFile::new(&dir, c"list", 0o444, Arc::new(ListHandler(mgr.clone()), GFP_KERNEL)?)?,
            _manager: ProcFile::new(&dir, c"manager", 0o644, Arc::new(ManagerHandler(mgr.clone()), GFP_KERNEL)?)?,
        };
        Ok((mgr, files))
    }
}

#[pin_data(PinnedDrop)]
struct VWire {
    mgr: Arc<Manager>,
    /// `ip link add … type vwire` (rtnetlink), over the same manager; /proc/vw's interfaces are of this kind too.
    link: Arc<Link<VwLink>>,
    _proc: ProcFiles,
    /// /sys/kernel/config/vwire/: the module-wide knobs (config.rs).
    #[pin]
    _knobs: kernel::configfs::Subsystem<config::Knobs>,
}

impl kernel::InPlaceModule for VWire {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let made = ProcFiles::new();
        let made_mgr = made.as_ref().map(|(mgr, _)| mgr.clone()).map_err(|e| *e);
        // Fields are initialised in this order (a later one refers to `mgr`, the field); an error drops those
        // already made.
        try_pin_init!(Self {
            mgr: made_mgr?,
            link: Arc::new(VwLink(mgr.clone()), GFP_KERNEL)
                .map_err(Error::from)
                .and_then(|h| Link::register(c"vwire", h))
                .and_then(|l| Arc::new(l, GFP_KERNEL).map_err(Error::from))
                .inspect_err(|e| pr_err!("cannot register the vwire interface kind ({:?})\n", e))?,
            _knobs <- config::subsystem(mgr.clone()),
            _proc: {
                let files = made?.1;
                // Last, after everything that can fail: the manager's reference to the kind is released only by
                // its teardown (PinnedDrop), which a failed init does not run.
                mgr.set_link(link.clone());
                pr_info!(
                    "endpoint manager ready: /proc/vw, /sys/kernel/config/vwire, ip link type vwire, {} entries\n",
                    CAPACITY
                );
                files
            },
        })
    }
}

#[pinned_drop]
impl PinnedDrop for VWire {
    fn drop(self: Pin<&mut Self>) {
        // Interfaces, sockets and per-connector files go here; the control files and the configfs subsystem after
        // (field drop order). A knob written after this acts on an empty table.
        self.mgr.teardown();
        pr_info!("unloaded\n");
    }
}

#[kunit_tests(overcast_vwire_core)]
mod tests {
    use super::core_logic::{cmd, header, mtu, status, table};

    fn table() -> Result<table::Table<super::manager::Slots>, kernel::error::Error> {
        let mut v = kernel::alloc::KVec::with_capacity(8, kernel::alloc::flags::GFP_KERNEL)?;
        for _ in 0..8 {
            v.push(table::EMPTY_SLOT, kernel::alloc::flags::GFP_KERNEL)?;
        }
        Ok(table::Table::new(super::manager::Slots(v)))
    }

    #[test]
    fn parses_figure_5_9_create() {
        let c = cmd::parse_create(b"7 10.0.0.1:4789 10.0.0.2:4789\n", 4789);
        assert!(c.is_ok());
        assert_eq!(cmd::parse_create(b"7 10.0.0.1", 4789).map(|_| ()).map_err(|e| e.errno()), Err(22));
        assert_eq!(cmd::parse_create(b"\xff\xfe", 4789).map(|_| ()).map_err(|e| e.errno()), Err(22));
    }

    #[test]
    fn table_create_repoint_destroy() -> Result<(), kernel::error::Error> {
        let mut t = table()?;
        let c = cmd::parse_create(b"7 10.0.0.1 10.0.0.2", 4789).map_err(|_| kernel::error::code::EINVAL)?;
        assert!(t.create(&c, 1500).is_ok());
        assert_eq!(t.create(&c, 1500).map_err(|e| e.errno()), Err(17));
        let r = cmd::parse_repoint(b"10.0.0.3:5000", 4789).map_err(|_| kernel::error::code::EINVAL)?;
        assert!(t.repoint(c.id, None, r.remote).is_ok());
        let mut buf = [0u8; 512];
        assert!(status::render_status(&mut buf, &t, c.id).is_ok());
        assert!(t.destroy(c.id, None).is_ok());
        assert_eq!(t.destroy(c.id, None).map(|_| ()).map_err(|e| e.errno()), Err(2));
        Ok(())
    }

    /// The core's own self-test (parser, header, MTU, table), run inside the kernel.
    #[test]
    fn core_selftest() {
        assert_eq!(super::core_logic::selftest::run(), Ok(()));
    }

    #[test]
    fn header_and_mtu() {
        let _ = header::HEADER_LEN;
        assert_eq!(mtu::endpoint_mtu(1500, super::core_logic::addr::Family::V4).map(|m| m < 1500), Some(true));
    }
}
