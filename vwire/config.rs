// SPDX-License-Identifier: GPL-2.0

//! The operator's module-wide knobs under /sys, as a configfs subsystem (/sys/kernel/config/vwire/):
//!
//! ```text
//! cat endpoints                 # every connector id with an entry on this host, one per line
//! cat capacity                  # entries the manager holds (endpoints and relays)
//! echo 0 > collapse             # co-located collapse off (1, y, on: on); cat shows 0 or 1
//! echo 4800 > default_port      # UDP port of addresses written without one (1-65535)
//! echo 1 > reset_counters       # zero every counter (each entry's and the manager's)
//! ```
//!
//! The same operations as /proc/vw/manager (one implementation, in `manager.rs`). A malformed write fails with
//! `EINVAL`, logs one line and changes nothing. Documentation/vwire.md, "Module-wide knobs".

use crate::manager::Manager;
use crate::{cmd, status};
use kernel::configfs::{self, AttributeOperations};
use kernel::configfs_attrs;
use kernel::fmt::Write as _;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::sync::Arc;

/// The subsystem's data: the manager the knobs act on.
#[pin_data]
pub(crate) struct Knobs {
    mgr: Arc<Manager>,
}

/// The configfs subsystem `vwire` over `mgr`.
pub(crate) fn subsystem(mgr: Arc<Manager>) -> impl PinInit<configfs::Subsystem<Knobs>, Error> {
    let item_type = configfs_attrs! {
        container: configfs::Subsystem<Knobs>,
        data: Knobs,
        attributes: [
            endpoints: 0,
            capacity: 1,
            collapse: 2,
            default_port: 3,
            reset_counters: 4,
        ],
    };
    configfs::Subsystem::new(c"vwire", item_type, try_pin_init!(Knobs { mgr }))
}

fn page_writer(page: &mut [u8; PAGE_SIZE]) -> kernel::str::Formatter<'_> {
    kernel::str::Formatter::new(page)
}

#[vtable]
impl AttributeOperations<0> for Knobs {
    type Data = Knobs;

    fn show(this: &Knobs, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = page_writer(page);
        let d = this.mgr.data.lock();
        // At most 256 ids of at most 11 bytes: always fits the page.
        status::write_ids(&mut w, &d.table).map_err(|_| EOVERFLOW)?;
        drop(d);
        Ok(w.bytes_written())
    }
}

#[vtable]
impl AttributeOperations<1> for Knobs {
    type Data = Knobs;

    fn show(this: &Knobs, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = page_writer(page);
        let cap = this.mgr.data.lock().table.capacity();
        writeln!(w, "{cap}")?;
        Ok(w.bytes_written())
    }
}

#[vtable]
impl AttributeOperations<2> for Knobs {
    type Data = Knobs;

    fn show(this: &Knobs, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = page_writer(page);
        writeln!(w, "{}", u8::from(this.mgr.collapse_enabled()))?;
        Ok(w.bytes_written())
    }

    fn store(this: &Knobs, page: &[u8]) -> Result {
        let on = cmd::parse_switch(page).ok_or_else(|| {
            pr_err!("collapse: expected 1 or 0 (y/n, on/off); nothing changed\n");
            EINVAL
        })?;
        this.mgr.set_collapse(on);
        Ok(())
    }
}

#[vtable]
impl AttributeOperations<3> for Knobs {
    type Data = Knobs;

    fn show(this: &Knobs, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = page_writer(page);
        writeln!(w, "{}", this.mgr.default_port())?;
        Ok(w.bytes_written())
    }

    fn store(this: &Knobs, page: &[u8]) -> Result {
        this.mgr.set_default_port(page)
    }
}

#[vtable]
impl AttributeOperations<4> for Knobs {
    type Data = Knobs;

    /// Nothing to show: reads give 0 (configfs attributes are readable).
    fn show(_this: &Knobs, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let mut w = page_writer(page);
        w.write_str("0\n")?;
        Ok(w.bytes_written())
    }

    fn store(this: &Knobs, page: &[u8]) -> Result {
        // Only "1" (with echo's newline) resets: a stray write of anything else must not wipe the counters.
        match page {
            b"1" | b"1\n" => {
                this.mgr.reset_counters();
                Ok(())
            }
            _ => {
                pr_err!("reset_counters: write 1 to zero every counter; nothing changed\n");
                Err(EINVAL)
            }
        }
    }
}
