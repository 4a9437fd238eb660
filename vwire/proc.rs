// SPDX-License-Identifier: GPL-2.0

//! The /proc/vw files of Figure 5.9 (create, destroy, one file per connector id) and the manager's own (list,
//! manager). Reads render vwire/core's status text under the data lock; writes go to the manager.

use core::fmt::Write;
use kernel::prelude::*;
use kernel::sync::Arc;

use crate::id::ConnectorId;
use crate::manager::Manager;
use crate::overcast::procfs::{ProcHandler, ProcText};
use crate::{cmd, status};

/// `/proc/vw/<N>`: status of connector N; a write repoints it.
pub(crate) struct EndpointHandler {
    pub(crate) id: ConnectorId,
    pub(crate) mgr: Arc<Manager>,
}

impl ProcHandler for EndpointHandler {
    fn show(&self, out: &mut ProcText<'_>) -> Result {
        let d = self.mgr.data.lock();
        match status::write_status(out, &d.table, self.id) {
            Ok(0) => Err(ENOENT),
            Ok(_) => Ok(()),
            Err(_) => Err(EOVERFLOW),
        }
    }

    fn write(&self, input: &[u8]) -> Result {
        self.mgr.repoint(self.id, input)
    }
}

/// `/proc/vw/create`.
pub(crate) struct CreateHandler(pub(crate) Arc<Manager>);

impl ProcHandler for CreateHandler {
    fn show(&self, out: &mut ProcText<'_>) -> Result {
        writeln!(out, "usage: echo \"{}\" > /proc/vw/create", cmd::CREATE_USAGE).map_err(|_| EOVERFLOW)
    }
    fn write(&self, input: &[u8]) -> Result {
        self.0.create(input)
    }
}

/// `/proc/vw/destroy`.
pub(crate) struct DestroyHandler(pub(crate) Arc<Manager>);

impl ProcHandler for DestroyHandler {
    fn show(&self, out: &mut ProcText<'_>) -> Result {
        writeln!(out, "usage: echo \"{}\" > /proc/vw/destroy", cmd::DESTROY_USAGE).map_err(|_| EOVERFLOW)
    }
    fn write(&self, input: &[u8]) -> Result {
        self.0.destroy(input)
    }
}

/// `/proc/vw/list`: one line per entry.
pub(crate) struct ListHandler(pub(crate) Arc<Manager>);

impl ProcHandler for ListHandler {
    fn show(&self, out: &mut ProcText<'_>) -> Result {
        let d = self.0.data.lock();
        status::write_list(out, &d.table).map_err(|_| EOVERFLOW)
    }
}

/// `/proc/vw/manager`: module-wide state; `collapse on|off`, `reset-counters`.
pub(crate) struct ManagerHandler(pub(crate) Arc<Manager>);

impl ProcHandler for ManagerHandler {
    fn show(&self, out: &mut ProcText<'_>) -> Result {
        let d = self.0.data.lock();
        status::write_manager(out, &d.table, d.default_port).map_err(|_| EOVERFLOW)
    }

    fn write(&self, input: &[u8]) -> Result {
        self.0.control(input)
    }
}
