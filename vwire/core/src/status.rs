//! Renderers for `cat /proc/vw/<N>`, the listing of all entries, and the manager summary, into caller buffers.
//!
//! `cat /proc/vw/<N>` prints one block per entry of connector N (usually one; two when both ends are on this host),
//! blocks sorted by local address and separated by one empty line.  Every line is `key: value`; keys never
//! change meaning and new keys are only ever appended at the end of a block.  Values are decimal numbers, words,
//! addresses in the /proc/vw input syntax (always with port), or `-` for "not applicable":
//!
//! ```text
//! id: 7
//! kind: endpoint              endpoint | relay
//! family: ipv4                ipv4 | ipv6
//! local: 10.0.0.1:4789        receive address (AdrA)
//! remote: 10.0.0.2:4789       send address (AdrB / last AdrC)
//! mode: encapsulating         encapsulating | collapsed | relay
//! peer: -                     collapsed: local address of the peer endpoint; else -
//! vxlan_vni: 7                VNI of an interoperating kernel VXLAN device; - above 16777215
//! path_mtu: 1500              relay: -
//! mtu: 1450                   relay: -
//! rx_frames: 0
//! rx_bytes: 0
//! tx_frames: 0
//! tx_bytes: 0
//! drops: 0                    sum of the drop_* lines
//! drop_runt: 0                ... one line per per-endpoint drop reason
//! ```

use core::fmt::{self, Write};
use core::net::SocketAddr;

use super::counters::{Counters, DropReason};
use super::id::ConnectorId;
use super::table::{Entry, Mode, Storage, Table};

/// A `fmt::Write` into a fixed byte buffer.  A write that does not fit fails as a whole and leaves the buffer
/// contents written so far untouched.
pub struct BufWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> BufWriter<'a> {
    /// Writes into `buf` from its start.
    pub fn new(buf: &'a mut [u8]) -> BufWriter<'a> {
        BufWriter { buf, len: 0 }
    }

    /// Bytes written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes written.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

impl Write for BufWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Why rendering into a buffer failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenderError {
    /// No entry with that id (the kernel returns ENOENT).
    NotFound,
    /// The buffer is too small; retry with a larger one.
    BufferTooSmall,
}

struct Opt<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for Opt<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// Writes the status block of the entry in slot `idx` (nothing if the slot is empty).
pub fn write_entry<W: Write, S: Storage>(w: &mut W, table: &Table<S>, idx: usize) -> fmt::Result {
    let Some(e) = table.get(idx) else {
        return Ok(());
    };
    let peer = match e.mode() {
        Mode::Collapsed { peer } => table.get(peer).map(Entry::local),
        _ => None,
    };
    let relay = e.kind() == super::table::Kind::Relay;
    writeln!(w, "id: {}", e.id())?;
    writeln!(w, "kind: {}", e.kind().name())?;
    writeln!(w, "family: {}", e.family().name())?;
    writeln!(w, "local: {}", e.local())?;
    writeln!(w, "remote: {}", e.remote())?;
    writeln!(w, "mode: {}", e.mode().name())?;
    writeln!(w, "peer: {}", Opt(peer))?;
    writeln!(w, "vxlan_vni: {}", Opt(e.id().vxlan_vni()))?;
    writeln!(w, "path_mtu: {}", Opt((!relay).then_some(e.path_mtu())))?;
    writeln!(w, "mtu: {}", Opt((!relay).then_some(e.mtu())))?;
    write_counters(w, &e.counters, false)?;
    let ifname = e.ifname();
    writeln!(w, "ifname: {}", if ifname.is_none() { "-" } else { ifname.as_str() })
}

fn write_counters<W: Write>(w: &mut W, c: &Counters, manager: bool) -> fmt::Result {
    writeln!(w, "rx_frames: {}", c.rx_frames)?;
    writeln!(w, "rx_bytes: {}", c.rx_bytes)?;
    writeln!(w, "tx_frames: {}", c.tx_frames)?;
    writeln!(w, "tx_bytes: {}", c.tx_bytes)?;
    writeln!(w, "drops: {}", c.total_drops())?;
    for r in DropReason::ALL {
        if manager || !r.manager_only() {
            writeln!(w, "drop_{}: {}", r.name(), c.drops(r))?;
        }
    }
    Ok(())
}

/// The slot of the entry following `after` in (id, local address) order, restricted to `only` if given.
fn next_sorted<S: Storage>(
    table: &Table<S>,
    only: Option<ConnectorId>,
    after: Option<(ConnectorId, SocketAddr)>,
) -> Option<(usize, (ConnectorId, SocketAddr))> {
    table
        .iter()
        .filter(|(_, e)| match only {
            Some(id) => e.id() == id,
            None => true,
        })
        .map(|(i, e)| (i, (e.id(), e.local())))
        .filter(|(_, key)| match after {
            Some(a) => *key > a,
            None => true,
        })
        .min_by_key(|(_, key)| *key)
}

/// Writes the `cat /proc/vw/<N>` text; returns the number of entries written (0: the caller reports ENOENT).
pub fn write_status<W: Write, S: Storage>(
    w: &mut W,
    table: &Table<S>,
    id: ConnectorId,
) -> Result<usize, fmt::Error> {
    let mut after = None;
    let mut n = 0usize;
    while let Some((idx, key)) = next_sorted(table, Some(id), after) {
        if n > 0 {
            w.write_str("\n")?;
        }
        write_entry(w, table, idx)?;
        n = n.saturating_add(1);
        after = Some(key);
    }
    Ok(n)
}

/// Renders `cat /proc/vw/<N>` into `buf`; returns the length.
pub fn render_status<S: Storage>(
    buf: &mut [u8],
    table: &Table<S>,
    id: ConnectorId,
) -> Result<usize, RenderError> {
    let mut w = BufWriter::new(buf);
    match write_status(&mut w, table, id) {
        Ok(0) => Err(RenderError::NotFound),
        Ok(_) => Ok(w.len()),
        Err(fmt::Error) => Err(RenderError::BufferTooSmall),
    }
}

/// Writes one line per entry, sorted by id then local address: `<N> <kind> <local> <remote> <mode>`.
pub fn write_list<W: Write, S: Storage>(w: &mut W, table: &Table<S>) -> fmt::Result {
    let mut after = None;
    while let Some((idx, key)) = next_sorted(table, None, after) {
        if let Some(e) = table.get(idx) {
            writeln!(
                w,
                "{} {} {} {} {}",
                e.id(),
                e.kind().name(),
                e.local(),
                e.remote(),
                e.mode().name()
            )?;
        }
        after = Some(key);
    }
    Ok(())
}

/// Renders the listing into `buf`; returns the length (0 when the table is empty).
pub fn render_list<S: Storage>(buf: &mut [u8], table: &Table<S>) -> Result<usize, RenderError> {
    let mut w = BufWriter::new(buf);
    write_list(&mut w, table).map_err(|_| RenderError::BufferTooSmall)?;
    Ok(w.len())
}

/// Writes every connector id that has an entry, once, in ascending order, one per line (an id with two local
/// entries, e.g. both ends of a collapsed connector, is listed once). At most 11 bytes a line: 256 entries fit a
/// page.
pub fn write_ids<W: Write, S: Storage>(w: &mut W, table: &Table<S>) -> fmt::Result {
    let mut after = None;
    let mut last = None;
    while let Some((idx, key)) = next_sorted(table, None, after) {
        if let Some(e) = table.get(idx) {
            if last != Some(e.id()) {
                writeln!(w, "{}", e.id())?;
                last = Some(e.id());
            }
        }
        after = Some(key);
    }
    Ok(())
}

/// Writes the manager summary: `entries`, `capacity`, `collapse: on|off`, `default port`, then the manager-wide
/// counters.
pub fn write_manager<W: Write, S: Storage>(w: &mut W, table: &Table<S>, default_port: u16) -> fmt::Result {
    writeln!(w, "entries: {}", table.len())?;
    writeln!(w, "capacity: {}", table.capacity())?;
    writeln!(
        w,
        "collapse: {}",
        if table.collapse_enabled() {
            "on"
        } else {
            "off"
        }
    )?;
    writeln!(w, "default port: {default_port}")?;
    write_counters(w, &table.manager, true)
}

#[cfg(test)]
mod tests {
    use super::super::cmd::parse_create;
    use super::super::counters::DropReason;
    use super::super::table::{IfName, Slot, EMPTY_SLOT};
    use super::*;

    fn cid(n: u32) -> ConnectorId {
        ConnectorId::new(n).unwrap()
    }

    fn table_with(cmds: &[&[u8]]) -> Table<[Slot; 8]> {
        let mut t = Table::new([EMPTY_SLOT; 8]);
        for c in cmds {
            t.create(&parse_create(c, 4789).unwrap(), 1500).unwrap();
        }
        t
    }

    /// Renders into `buf` and returns the text.
    fn render<'b>(
        buf: &'b mut [u8],
        t: &Table<[Slot; 8]>,
        id: u32,
    ) -> Result<&'b str, RenderError> {
        let n = render_status(buf, t, cid(id))?;
        Ok(core::str::from_utf8(&buf[..n]).unwrap())
    }

    #[test]
    fn single_endpoint_exact_text() {
        let mut t = table_with(&[b"7 10.0.0.1 10.0.0.2:5000"]);
        let i = t.find(cid(7), &"10.0.0.1:4789".parse().unwrap()).unwrap();
        let c = t.counters_mut(i).unwrap();
        c.rx(60);
        c.tx(1000);
        c.tx(500);
        c.drop_frame(DropReason::TooBig);
        let want = "id: 7\nkind: endpoint\nfamily: ipv4\nlocal: 10.0.0.1:4789\nremote: 10.0.0.2:5000\n\
                    mode: encapsulating\npeer: -\nvxlan_vni: 7\npath_mtu: 1500\nmtu: 1450\n\
                    rx_frames: 1\nrx_bytes: 60\ntx_frames: 2\ntx_bytes: 1500\ndrops: 1\n\
                    drop_runt: 0\ndrop_too_big: 1\ndrop_no_route: 0\ndrop_no_memory: 0\ndrop_tx_error: 0\n\
                    drop_peer_down: 0\ndrop_iface_down: 0\nifname: -\n";
        assert_eq!(render(&mut [0u8; 2048], &t, 7).unwrap(), want);
        assert!(t.set_ifname(i, IfName::new("vw7").unwrap()));
        assert!(render(&mut [0u8; 2048], &t, 7).unwrap().ends_with("drop_iface_down: 0\nifname: vw7\n"));
    }

    #[test]
    fn collapsed_pair_sorted_blocks() {
        // Created in reverse local-address order; printed in address order.
        let t = table_with(&[
            b"5 [2001:db8::1]:2 [2001:db8::1]:1",
            b"5 [2001:db8::1]:1 [2001:db8::1]:2",
        ]);
        let mut buf = [0u8; 2048];
        let text = render(&mut buf, &t, 5).unwrap();
        assert_eq!(text.split("\n\n").count(), 2);
        let mut it = text.split("\n\n");
        let blocks = [it.next().unwrap(), it.next().unwrap()];
        assert!(blocks[0].contains("local: [2001:db8::1]:1\n"));
        assert!(blocks[0].contains("mode: collapsed\npeer: [2001:db8::1]:2\n"));
        assert!(blocks[1].contains("local: [2001:db8::1]:2\n"));
        assert!(blocks[1].contains("peer: [2001:db8::1]:1\n"));
        assert!(blocks[0].contains("family: ipv6\n"));
        assert!(blocks[0].contains("mtu: 1430\n"));
    }

    #[test]
    fn relay_and_big_id() {
        let t = table_with(&[b"relay 4294967295 10.0.0.1:6000 10.0.0.3"]);
        let mut buf = [0u8; 2048];
        let text = render(&mut buf, &t, 4_294_967_295).unwrap();
        assert!(text.contains("kind: relay\n"));
        assert!(text.contains("mode: relay\npeer: -\nvxlan_vni: -\npath_mtu: -\nmtu: -\n"));
    }

    #[test]
    fn not_found_and_too_small() {
        let t = table_with(&[b"7 10.0.0.1 10.0.0.2"]);
        assert_eq!(render(&mut [0u8; 2048], &t, 8), Err(RenderError::NotFound));
        let mut small = [0u8; 40];
        assert_eq!(
            render_status(&mut small, &t, cid(7)),
            Err(RenderError::BufferTooSmall)
        );
    }

    #[test]
    fn list_and_manager() {
        let mut t = table_with(&[
            b"9 10.0.0.1 10.0.0.2",
            b"3 10.0.0.1:2 10.0.0.1:1",
            b"3 10.0.0.1:1 10.0.0.1:2",
        ]);
        let mut buf = [0u8; 512];
        let n = render_list(&mut buf, &t).unwrap();
        assert_eq!(
            core::str::from_utf8(&buf[..n]).unwrap(),
            "3 endpoint 10.0.0.1:1 10.0.0.1:2 collapsed\n3 endpoint 10.0.0.1:2 10.0.0.1:1 collapsed\n\
             9 endpoint 10.0.0.1:4789 10.0.0.2:4789 encapsulating\n"
        );
        t.manager.drop_frame(DropReason::UnknownConnector);
        t.set_collapse(false);
        let mut w = BufWriter::new(&mut buf);
        write_manager(&mut w, &t, 4789).unwrap();
        let text = core::str::from_utf8(w.as_bytes()).unwrap();
        assert!(text.starts_with("entries: 3\ncapacity: 8\ncollapse: off\ndefault port: 4789\n"));
        assert!(text.contains("drop_bad_header: 0\ndrop_unknown_connector: 1\n"));
        let mut w = BufWriter::new(&mut buf);
        write_ids(&mut w, &t).unwrap();
        assert_eq!(core::str::from_utf8(w.as_bytes()).unwrap(), "3\n9\n");
        let empty: Table<[Slot; 8]> = Table::new([EMPTY_SLOT; 8]);
        assert_eq!(render_list(&mut buf, &empty), Ok(0));
        assert_eq!(
            render_list(&mut buf[..10], &t),
            Err(RenderError::BufferTooSmall)
        );
    }

    #[test]
    fn bufwriter_all_or_nothing() {
        let mut buf = [0u8; 5];
        let mut w = BufWriter::new(&mut buf);
        assert!(w.is_empty());
        w.write_str("abc").unwrap();
        assert!(w.write_str("def").is_err());
        assert_eq!(w.as_bytes(), b"abc");
        w.write_str("de").unwrap();
        assert_eq!(w.as_bytes(), b"abcde");
    }
}
