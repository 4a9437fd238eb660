// SPDX-License-Identifier: GPL-2.0

//! The transmit path of an endpoint's interface `vw<N>` (§5.1.2, Fig. 5.7): a frame the bridge (or anything else)
//! sends into the interface is encapsulated and sent in UDP to the endpoint's remote address, or, when the other
//! end of the connector is on this host and collapse is on (§5.2.3, Fig. 5.8), handed straight to that end's
//! interface with no encapsulation. The decision is vwire/core's `classify_tx`.

use crate::counters::DropReason;
use crate::datapath::{classify_tx, TxVerdict};
use crate::header::HEADER_LEN;
use crate::manager::Manager;
use crate::overcast::net::{NetDevHandler, NetDevRef, RxError, Skb};
use crate::overcast::udp::{DstCache, TxError, UdpSockRef};
use core::net::SocketAddr;
use kernel::sync::Arc;

/// What to do with one frame, decided under the data lock and done after it.
enum Plan {
    Encapsulate {
        sock: UdpSockRef,
        dev: NetDevRef,
        route: Option<Arc<DstCache>>,
        remote: SocketAddr,
        header: [u8; HEADER_LEN],
        df: bool,
    },
    Handoff { dev: NetDevRef, peer: usize, peer_dev: NetDevRef },
    Drop,
}

impl NetDevHandler for Manager {
    fn xmit(&self, slot: usize, skb: Skb) {
        let len = skb.len();
        let frame_len = skb.frame_len();
        let plan = {
            let mut d = self.data.lock();
            let io = d.io.get(slot);
            let dev = io.and_then(|io| io.dev.clone());
            let sock = io.and_then(|io| io.sock.clone());
            let route = io.and_then(|io| io.route.clone());
            match (classify_tx(&d.table, slot, frame_len), dev) {
                (TxVerdict::Encapsulate { remote, header, fits_path, .. }, Some(dev)) => match sock {
                    Some(sock) => Plan::Encapsulate { sock, dev, route, remote, header, df: fits_path },
                    None => {
                        d.count_drop(Some(slot), DropReason::IfaceDown);
                        Plan::Drop
                    }
                },
                (TxVerdict::Handoff { peer }, Some(dev)) => {
                    match d.io.get(peer).and_then(|io| io.dev.clone()) {
                        Some(peer_dev) => Plan::Handoff { dev, peer, peer_dev },
                        None => {
                            d.count_drop(Some(slot), DropReason::PeerDown);
                            Plan::Drop
                        }
                    }
                }
                (TxVerdict::Drop(reason), _) => {
                    d.count_drop(Some(slot), reason);
                    Plan::Drop
                }
                (_, None) => {
                    d.count_drop(Some(slot), DropReason::IfaceDown);
                    Plan::Drop
                }
            }
        };
        match plan {
            Plan::Drop => drop(skb),
            Plan::Encapsulate { sock, dev, route, remote, header, df } => {
                let res = sock.xmit(skb, 0, &header, &remote, df, Some(&dev), route.as_deref());
                let mut d = self.data.lock();
                match res {
                    Ok(()) => {
                        if let Some(c) = d.table.counters_mut(slot) {
                            c.tx(len);
                        }
                    }
                    Err(TxError::NoRoute | TxError::Loop) => d.count_drop(Some(slot), DropReason::NoRoute),
                    Err(TxError::NoMemory) => d.count_drop(Some(slot), DropReason::NoMemory),
                    Err(TxError::TooBig) => d.count_drop(Some(slot), DropReason::TooBig),
                    Err(TxError::Other(_)) => d.count_drop(Some(slot), DropReason::TxError),
                }
            }
            Plan::Handoff { dev, peer, peer_dev } => {
                let res = peer_dev.receive(skb, 0);
                match res {
                    Ok(()) => dev.count_tx(len),
                    Err(_) => dev.count_tx_dropped(),
                }
                let mut d = self.data.lock();
                match res {
                    Ok(()) => {
                        if let Some(c) = d.table.counters_mut(slot) {
                            c.tx(len);
                        }
                        if let Some(c) = d.table.counters_mut(peer) {
                            c.rx(len);
                        }
                    }
                    Err(RxError::TooBig) => d.count_drop(Some(slot), DropReason::TooBig),
                    Err(RxError::Down) => d.count_drop(Some(slot), DropReason::PeerDown),
                    Err(RxError::Invalid) => d.count_drop(Some(slot), DropReason::Runt),
                    Err(RxError::NoBuffer | RxError::Other(_)) => d.count_drop(Some(slot), DropReason::NoMemory),
                }
            }
        }
    }
}
