// SPDX-License-Identifier: GPL-2.0

//! VirtualWire endpoint manager (dissertation Ch. 5): the /proc/vw control plane of Figure 5.9.
//!
//! - `echo "<N> <AdrA> <AdrB>" > /proc/vw/create` — endpoint N receives on AdrA and sends to AdrB;
//! - `cat /proc/vw/<N>` — its configuration and counters; `echo "<AdrC>" > /proc/vw/<N>` — repoint;
//! - `echo "<N>" > /proc/vw/destroy`; `cat /proc/vw/list` — every entry; `cat /proc/vw/manager` — module-wide state.
//!
//! Parsing, the endpoint table, the collapse decision and the status text are vwire/core (shared with the host
//! tests). This version keeps the control plane only: no frame is sent or received yet (Documentation/vwire.md).

use core::fmt::Write;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

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

use id::ConnectorId;
use overcast::fmt::Show;
use overcast::procfs::{ProcDir, ProcFile, ProcHandler, ProcText};

/// Endpoints and relays one manager holds.
const CAPACITY: usize = 256;
/// UDP port used when an address gives none (the IANA VXLAN port, so a kernel VXLAN device interoperates).
const DEFAULT_PORT: u16 = 4789;
/// Path MTU assumed towards a peer until path-MTU tracking exists (§5.1.2: 1500 on the paper's clouds).
const DEFAULT_PATH_MTU: u32 = 1500;

module! {
    type: VWire,
    name: "vwire",
    authors: ["Overcast developers"],
    description: "VirtualWire endpoint manager: /proc/vw control plane (no data plane yet)",
    license: "GPL",
}

/// The table's slots, in a vmalloc-able vector (the table itself never allocates).
struct Slots(KVec<table::Slot>);

impl table::Storage for Slots {
    fn slots(&self) -> &[table::Slot] {
        &self.0
    }
    fn slots_mut(&mut self) -> &mut [table::Slot] {
        &mut self.0
    }
}

/// A /proc/vw/<N> file and the connector it shows.
struct EndpointFile {
    id: u32,
    _file: ProcFile<EndpointHandler>,
}

struct State {
    table: table::Table<Slots>,
    files: KVec<EndpointFile>,
}

#[pin_data]
struct Manager {
    #[pin]
    state: Mutex<State>,
    dir: ProcDir,
}

/// Maps an errno from vwire/core to a kernel error.
fn errno(e: i32) -> Error {
    Error::from_errno(-e)
}

/// Text of a write, for log lines: printable ASCII only, newline trimmed.
struct Shown<'a>(&'a [u8]);

impl kernel::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for &b in self.0.iter().take(96) {
            if b == b'\n' {
                continue;
            }
            f.write_char(if (0x20..0x7f).contains(&b) { b as char } else { '?' })?;
        }
        Ok(())
    }
}

impl Manager {
    fn create(self: &Arc<Self>, input: &[u8]) -> Result {
        let c = cmd::parse_create(input, DEFAULT_PORT).map_err(|e| {
            pr_err!("vwire: create \"{}\": {}; expected {}\n", Shown(input), Show(&e), cmd::CREATE_USAGE);
            errno(e.errno())
        })?;
        let id = c.id.get();
        let mut name = [0u8; 16];
        let name = endpoint_file_name(&mut name, id)?;
        let mut st = self.state.lock();
        // Reserve room first, so that nothing can fail after the table changed but the file creation, which is
        // rolled back. A file is never dropped under the lock: its removal waits for readers that take the lock.
        st.files.reserve(1, GFP_KERNEL)?;
        st.table.create(&c, DEFAULT_PATH_MTU).map_err(|e| {
            pr_err!("vwire: create \"{}\": {}\n", Shown(input), Show(&e));
            errno(e.errno())
        })?;
        if !st.files.iter().any(|f| f.id == id) {
            let file = Arc::new(EndpointHandler { id: c.id, mgr: self.clone() }, GFP_KERNEL)
                .map_err(Error::from)
                .and_then(|h| ProcFile::new(&self.dir, name, 0o644, h));
            match file {
                // Cannot fail: room was reserved above.
                Ok(f) => st.files.push(EndpointFile { id, _file: f }, GFP_KERNEL)?,
                Err(e) => {
                    let _ = st.table.destroy(c.id, Some(&c.local));
                    pr_err!("vwire: create {}: cannot make /proc/vw/{} ({:?}); nothing was created\n", id, id, e);
                    return Err(e);
                }
            }
        }
        pr_info!("vwire: created connector {} {} -> {}\n", id, Show(&c.local), Show(&c.remote));
        Ok(())
    }

    fn destroy(&self, input: &[u8]) -> Result {
        let d = cmd::parse_destroy(input, DEFAULT_PORT).map_err(|e| {
            pr_err!("vwire: destroy \"{}\": {}; expected {}\n", Shown(input), Show(&e), cmd::DESTROY_USAGE);
            errno(e.errno())
        })?;
        let removed = {
            let mut st = self.state.lock();
            st.table.destroy(d.id, d.local.as_ref()).map_err(|e| {
                pr_err!("vwire: destroy \"{}\": {}\n", Shown(input), Show(&e));
                errno(e.errno())
            })?;
            let id = d.id.get();
            if st.table.entries_of(d.id).next().is_none() {
                st.files.iter().position(|f| f.id == id).and_then(|i| st.files.remove(i).ok())
            } else {
                None
            }
        };
        // Dropped outside the lock: removing the file waits for its readers, which take the lock.
        drop(removed);
        pr_info!("vwire: destroyed connector {}\n", d.id.get());
        Ok(())
    }

    /// Removes every /proc/vw/<N> file (module unload); breaks the handler -> manager references.
    fn teardown(&self) {
        let files = {
            let mut st = self.state.lock();
            core::mem::replace(&mut st.files, KVec::new())
        };
        drop(files);
    }
}

fn endpoint_file_name(buf: &mut [u8; 16], id: u32) -> Result<&CStr> {
    let mut w = status::BufWriter::new(&mut buf[..15]);
    write!(w, "{}", id).map_err(|_| EINVAL)?;
    let len = w.len();
    CStr::from_bytes_with_nul(buf.get(..=len).ok_or(EINVAL)?).map_err(|_| EINVAL)
}

struct EndpointHandler {
    id: ConnectorId,
    mgr: Arc<Manager>,
}

impl ProcHandler for EndpointHandler {
    fn show(&self, out: &mut ProcText<'_>) -> Result {
        let st = self.mgr.state.lock();
        match status::write_status(out, &st.table, self.id) {
            Ok(0) => Err(ENOENT),
            Ok(_) => Ok(()),
            Err(_) => Err(EOVERFLOW),
        }
    }

    fn write(&self, input: &[u8]) -> Result {
        let r = cmd::parse_repoint(input, DEFAULT_PORT).map_err(|e| {
            pr_err!("vwire: repoint {} \"{}\": {}; expected {}\n", self.id.get(), Shown(input), Show(&e), cmd::REPOINT_USAGE);
            errno(e.errno())
        })?;
        let mut st = self.mgr.state.lock();
        st.table.repoint(self.id, r.local.as_ref(), r.remote).map_err(|e| {
            pr_err!("vwire: repoint {} \"{}\": {}\n", self.id.get(), Shown(input), Show(&e));
            errno(e.errno())
        })?;
        pr_info!("vwire: connector {} now sends to {}\n", self.id.get(), Show(&r.remote));
        Ok(())
    }
}

struct CreateHandler(Arc<Manager>);

impl ProcHandler for CreateHandler {
    fn show(&self, out: &mut ProcText<'_>) -> Result {
        writeln!(out, "usage: echo \"{}\" > /proc/vw/create", cmd::CREATE_USAGE).map_err(|_| EOVERFLOW)
    }
    fn write(&self, input: &[u8]) -> Result {
        self.0.create(input)
    }
}

struct DestroyHandler(Arc<Manager>);

impl ProcHandler for DestroyHandler {
    fn show(&self, out: &mut ProcText<'_>) -> Result {
        writeln!(out, "usage: echo \"{}\" > /proc/vw/destroy", cmd::DESTROY_USAGE).map_err(|_| EOVERFLOW)
    }
    fn write(&self, input: &[u8]) -> Result {
        self.0.destroy(input)
    }
}

struct ListHandler(Arc<Manager>);

impl ProcHandler for ListHandler {
    fn show(&self, out: &mut ProcText<'_>) -> Result {
        let st = self.0.state.lock();
        status::write_list(out, &st.table).map_err(|_| EOVERFLOW)
    }
}

struct ManagerHandler(Arc<Manager>);

impl ProcHandler for ManagerHandler {
    fn show(&self, out: &mut ProcText<'_>) -> Result {
        let st = self.0.state.lock();
        status::write_manager(out, &st.table).map_err(|_| EOVERFLOW)
    }

    /// `collapse on|off`, `reset-counters`.
    fn write(&self, input: &[u8]) -> Result {
        let text = core::str::from_utf8(input).map_err(|_| EINVAL)?.trim();
        let mut st = self.0.state.lock();
        match text {
            "collapse on" => st.table.set_collapse(true),
            "collapse off" => st.table.set_collapse(false),
            "reset-counters" => st.table.reset_counters(),
            _ => {
                pr_err!("vwire: manager \"{}\": unknown control; expected 'collapse on|off' or 'reset-counters'\n", Shown(input));
                return Err(EINVAL);
            }
        }
        Ok(())
    }
}

struct VWire {
    mgr: Arc<Manager>,
    // Held for their `Drop`, which removes the control files.
    _create: ProcFile<CreateHandler>,
    _destroy: ProcFile<DestroyHandler>,
    _list: ProcFile<ListHandler>,
    _manager: ProcFile<ManagerHandler>,
}

impl kernel::Module for VWire {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mut slots = KVec::with_capacity(CAPACITY, GFP_KERNEL)?;
        for _ in 0..CAPACITY {
            slots.push(table::EMPTY_SLOT, GFP_KERNEL)?;
        }
        let dir = ProcDir::new(c"vw", None).inspect_err(|_| {
            pr_err!("vwire: cannot create /proc/vw (is another VirtualWire module loaded?)\n");
        })?;
        let state = State { table: table::Table::new(Slots(slots)), files: KVec::new() };
        let mgr_dir = dir.clone();
        let mgr = Arc::pin_init(
            pin_init!(Manager { state <- kernel::new_mutex!(state), dir: mgr_dir }),
            GFP_KERNEL,
        )?;
        let _create = ProcFile::new(&dir, c"create", 0o644, Arc::new(CreateHandler(mgr.clone()), GFP_KERNEL)?)?;
        let _destroy = ProcFile::new(&dir, c"destroy", 0o644, Arc::new(DestroyHandler(mgr.clone()), GFP_KERNEL)?)?;
        let _list = ProcFile::new(&dir, c"list", 0o444, Arc::new(ListHandler(mgr.clone()), GFP_KERNEL)?)?;
        let _manager = ProcFile::new(&dir, c"manager", 0o644, Arc::new(ManagerHandler(mgr.clone()), GFP_KERNEL)?)?;
        pr_info!("vwire: endpoint manager ready: /proc/vw (control plane only, {} entries)\n", CAPACITY);
        Ok(VWire { mgr, _create, _destroy, _list, _manager })
    }
}

impl Drop for VWire {
    fn drop(&mut self) {
        // The control files go first (field drop order after this), the per-connector files here.
        self.mgr.teardown();
        pr_info!("vwire: unloaded\n");
    }
}

#[kunit_tests(overcast_vwire_core)]
mod tests {
    use super::core_logic::{cmd, header, mtu, status, table};

    fn table() -> Result<table::Table<super::Slots>, kernel::error::Error> {
        let mut v = kernel::alloc::KVec::with_capacity(8, kernel::alloc::flags::GFP_KERNEL)?;
        for _ in 0..8 {
            v.push(table::EMPTY_SLOT, kernel::alloc::flags::GFP_KERNEL)?;
        }
        Ok(table::Table::new(super::Slots(v)))
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
