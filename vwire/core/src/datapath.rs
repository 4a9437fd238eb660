//! Per-frame decisions of the data path, as pure functions over the table, so that the module's receive and
//! transmit hooks only move bytes and the decisions are tested on the host.
//!
//! * [`classify_rx`]: a UDP payload arrived on a local address - deliver it out of an endpoint, forward it
//!   unchanged (relay), or drop it for a reason.
//! * [`classify_tx`]: an endpoint interface was handed a frame - encapsulate it to the remote (with the header
//!   bytes to prepend), hand it to the collapsed peer, or drop it.

use core::net::SocketAddr;

use super::counters::DropReason;
use super::header::{WireHeader, HEADER_LEN, MIN_INNER_FRAME};
use super::id::ConnectorId;
use super::index::{BucketStorage, RxIndex};
use super::mtu::{outer_datagram_len, MAX_PATH_MTU};
use super::table::{Kind, Mode, Storage, Table};
use zerocopy::FromBytes;

/// What to do with a received UDP payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxVerdict<'a> {
    /// Deliver `frame` (the inner Ethernet frame) out of the endpoint interface of `slot`.
    Deliver {
        /// Endpoint slot.
        slot: usize,
        /// Inner frame.
        frame: &'a [u8],
    },
    /// Extender relay: send the whole UDP payload, header included, unchanged to `remote`.
    Forward {
        /// Relay slot.
        slot: usize,
        /// Next hop.
        remote: SocketAddr,
    },
    /// Drop; charge the entry in `slot`, or the manager when `None`.
    Drop {
        /// Entry to charge.
        slot: Option<usize>,
        /// Why.
        reason: DropReason,
    },
}

/// Classifies a UDP payload that arrived on `local`.
pub fn classify_rx<'a, S: Storage>(
    table: &Table<S>,
    local: &SocketAddr,
    udp_payload: &'a [u8],
) -> RxVerdict<'a> {
    classify_rx_with(table, udp_payload, |id| table.find(id, local))
}

/// [`classify_rx`] with the entry looked up in `index` (the per-packet path; `index` built from `table`).
pub fn classify_rx_indexed<'a, S: Storage, B: BucketStorage>(
    table: &Table<S>,
    index: &RxIndex<B>,
    local: &SocketAddr,
    udp_payload: &'a [u8],
) -> RxVerdict<'a> {
    classify_rx_with(table, udp_payload, |id| index.lookup(table, id, local))
}

fn classify_rx_with<'a, S: Storage>(
    table: &Table<S>,
    udp_payload: &'a [u8],
    find: impl FnOnce(ConnectorId) -> Option<usize>,
) -> RxVerdict<'a> {
    let manager = |reason| RxVerdict::Drop { slot: None, reason };
    let Ok((hdr, inner)) = WireHeader::ref_from_prefix(udp_payload) else {
        return manager(DropReason::BadHeader);
    };
    let Ok(id) = hdr.connector() else {
        return manager(DropReason::BadHeader);
    };
    let Some(slot) = find(id) else {
        return manager(DropReason::UnknownConnector);
    };
    if inner.len() < MIN_INNER_FRAME {
        return RxVerdict::Drop {
            slot: Some(slot),
            reason: DropReason::Runt,
        };
    }
    match table.get(slot) {
        Some(e) if e.kind() == Kind::Relay => RxVerdict::Forward {
            slot,
            remote: e.remote(),
        },
        Some(_) => RxVerdict::Deliver { slot, frame: inner },
        None => manager(DropReason::UnknownConnector),
    }
}

/// What to do with a frame an endpoint interface must send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxVerdict {
    /// Prepend `header`, then UDP/IP to `remote`.
    Encapsulate {
        /// Destination.
        remote: SocketAddr,
        /// The 8 header bytes.
        header: [u8; HEADER_LEN],
        /// Length of the outer IP datagram.
        outer_len: u32,
        /// Whether the datagram fits the path MTU (false only for frames beyond the endpoint MTU, e.g. a VLAN tag
        /// on a full-size frame; the module sends those with DF clear).
        fits_path: bool,
    },
    /// Collapsed: hand the frame to the endpoint in slot `peer` as if it had been received there.
    Handoff {
        /// Peer endpoint slot.
        peer: usize,
    },
    /// Drop, charging the sending entry.
    Drop(DropReason),
}

/// Classifies a frame of `frame_len` bytes (Ethernet header included) sent by the endpoint in `slot`.
pub fn classify_tx<S: Storage>(table: &Table<S>, slot: usize, frame_len: usize) -> TxVerdict {
    let Some(e) = table.get(slot) else {
        return TxVerdict::Drop(DropReason::IfaceDown);
    };
    if e.kind() != Kind::Endpoint {
        return TxVerdict::Drop(DropReason::IfaceDown);
    }
    if frame_len < MIN_INNER_FRAME {
        return TxVerdict::Drop(DropReason::Runt);
    }
    match e.mode() {
        Mode::Collapsed { peer } => TxVerdict::Handoff { peer },
        Mode::Relay => TxVerdict::Drop(DropReason::IfaceDown),
        Mode::Encapsulating => {
            let outer = u32::try_from(frame_len)
                .ok()
                .and_then(|len| outer_datagram_len(len, e.family()));
            match outer {
                Some(outer_len) if outer_len <= MAX_PATH_MTU => TxVerdict::Encapsulate {
                    remote: e.remote(),
                    header: WireHeader::new(e.id()).to_bytes(),
                    outer_len,
                    fits_path: outer_len <= e.path_mtu(),
                },
                _ => TxVerdict::Drop(DropReason::TooBig),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::cmd::parse_create;
    use super::super::header::encode;
    use super::super::id::ConnectorId;
    use super::super::table::{Slot, EMPTY_SLOT};
    use super::*;

    fn table_with(cmds: &[&[u8]]) -> Table<[Slot; 8]> {
        let mut t = Table::new([EMPTY_SLOT; 8]);
        for c in cmds {
            t.create(&parse_create(c, 4789).unwrap(), 1500).unwrap();
        }
        t
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn packet(id: u32) -> [u8; 100] {
        let mut p = [0x11u8; 100];
        encode(ConnectorId::new(id).unwrap(), &mut p).unwrap();
        p
    }

    #[test]
    fn rx_deliver_forward_drop() {
        let t = table_with(&[b"7 10.0.0.1 10.0.0.2", b"relay 7 10.0.0.1:6000 10.0.0.3"]);
        let p = packet(7);
        let ep = t
            .find(ConnectorId::new(7).unwrap(), &addr("10.0.0.1:4789"))
            .unwrap();
        let relay = t
            .find(ConnectorId::new(7).unwrap(), &addr("10.0.0.1:6000"))
            .unwrap();
        assert_eq!(
            classify_rx(&t, &addr("10.0.0.1:4789"), &p),
            RxVerdict::Deliver {
                slot: ep,
                frame: &p[8..]
            }
        );
        assert_eq!(
            classify_rx(&t, &addr("10.0.0.1:6000"), &p),
            RxVerdict::Forward {
                slot: relay,
                remote: addr("10.0.0.3:4789")
            }
        );
        // Right id, wrong local address; unknown id; bad header; runt.
        let unknown = RxVerdict::Drop {
            slot: None,
            reason: DropReason::UnknownConnector,
        };
        assert_eq!(classify_rx(&t, &addr("10.0.0.1:9"), &p), unknown);
        assert_eq!(classify_rx(&t, &addr("10.0.0.1:4789"), &packet(8)), unknown);
        let mut bad = p;
        bad[0] = 0;
        let bad_header = RxVerdict::Drop {
            slot: None,
            reason: DropReason::BadHeader,
        };
        assert_eq!(classify_rx(&t, &addr("10.0.0.1:4789"), &bad), bad_header);
        assert_eq!(classify_rx(&t, &addr("10.0.0.1:4789"), &p[..7]), bad_header);
        assert_eq!(
            classify_rx(&t, &addr("10.0.0.1:4789"), &p[..21]),
            RxVerdict::Drop {
                slot: Some(ep),
                reason: DropReason::Runt
            }
        );
        assert!(matches!(
            classify_rx(&t, &addr("10.0.0.1:4789"), &p[..22]),
            RxVerdict::Deliver { .. }
        ));
    }

    #[test]
    fn rx_indexed_agrees_with_scan() {
        let t = table_with(&[
            b"7 10.0.0.1 10.0.0.2",
            b"relay 7 10.0.0.1:6000 10.0.0.3",
            b"8 10.0.0.1 10.0.0.2",
        ]);
        let mut index = RxIndex::new([0u32; 16]);
        index.rebuild(&t).unwrap();
        let mut bad = packet(7);
        bad[1] = 1;
        let payloads: [&[u8]; 5] = [&packet(7), &packet(8), &packet(9), &bad, &packet(7)[..21]];
        for local in ["10.0.0.1:4789", "10.0.0.1:6000", "10.0.0.2:4789"] {
            for p in payloads {
                assert_eq!(
                    classify_rx_indexed(&t, &index, &addr(local), p),
                    classify_rx(&t, &addr(local), p),
                    "{local}"
                );
            }
        }
        // A stale (empty) index misses but never delivers to a wrong entry.
        let empty = RxIndex::new([0u32; 16]);
        assert_eq!(
            classify_rx_indexed(&t, &empty, &addr("10.0.0.1:4789"), &packet(7)),
            RxVerdict::Drop {
                slot: None,
                reason: DropReason::UnknownConnector
            }
        );
    }

    #[test]
    fn tx_encapsulate_handoff_drop() {
        let mut t = table_with(&[b"5 10.0.0.1:1 10.0.0.1:2", b"9 [2001:db8::1] [2001:db8::2]"]);
        let x = t
            .find(ConnectorId::new(5).unwrap(), &addr("10.0.0.1:1"))
            .unwrap();
        let v6 = t
            .find(ConnectorId::new(9).unwrap(), &addr("[2001:db8::1]:4789"))
            .unwrap();
        // Alone: encapsulates; a full 1450-MTU frame (1464 bytes) exactly fills 1500.
        assert_eq!(
            classify_tx(&t, x, 1464),
            TxVerdict::Encapsulate {
                remote: addr("10.0.0.1:2"),
                header: [8, 0, 0, 0, 0, 0, 5, 0],
                outer_len: 1500,
                fits_path: true
            }
        );
        // One VLAN tag more does not fit the path.
        assert!(matches!(
            classify_tx(&t, x, 1468),
            TxVerdict::Encapsulate {
                fits_path: false,
                outer_len: 1504,
                ..
            }
        ));
        assert!(matches!(
            classify_tx(&t, v6, 1444),
            TxVerdict::Encapsulate {
                fits_path: true,
                outer_len: 1500,
                ..
            }
        ));
        assert_eq!(classify_tx(&t, x, 13), TxVerdict::Drop(DropReason::Runt));
        assert_eq!(
            classify_tx(&t, x, 65535),
            TxVerdict::Drop(DropReason::TooBig)
        );
        assert_eq!(
            classify_tx(&t, x, usize::MAX),
            TxVerdict::Drop(DropReason::TooBig)
        );
        assert_eq!(
            classify_tx(&t, 7, 100),
            TxVerdict::Drop(DropReason::IfaceDown)
        );
        // The other end arrives on this host: hand-off, no encapsulation.
        let y = t
            .create(
                &parse_create(b"5 10.0.0.1:2 10.0.0.1:1", 4789).unwrap(),
                1500,
            )
            .unwrap();
        assert_eq!(classify_tx(&t, x, 100), TxVerdict::Handoff { peer: y });
        assert_eq!(classify_tx(&t, y, 100), TxVerdict::Handoff { peer: x });
        let r = t
            .create(
                &parse_create(b"relay 5 10.0.0.1:3 10.0.0.4", 4789).unwrap(),
                1500,
            )
            .unwrap();
        assert_eq!(
            classify_tx(&t, r, 100),
            TxVerdict::Drop(DropReason::IfaceDown)
        );
    }
}
