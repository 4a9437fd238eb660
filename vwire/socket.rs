// SPDX-License-Identifier: GPL-2.0

//! The receive path (§5.1.2): a UDP datagram arriving on an endpoint manager's socket is matched by the address it
//! arrived on and the connector id in its header, then decapsulated and delivered out of that endpoint's interface,
//! or, for an extender relay (Fig. 5.4), sent on unchanged to the relay's next hop. Runs in the kernel's UDP
//! receive path (softirq): no thread, no copy. The decision is vwire/core's `classify_rx_indexed`.

use crate::counters::DropReason;
use crate::datapath::{classify_rx_indexed, RxVerdict};
use crate::header::HEADER_LEN;
use crate::manager::Manager;
use crate::overcast::net::{NetDevRef, RxError};
use crate::overcast::udp::{DstCache, RxDatagram, UdpHandler, UdpSockRef, UDP_HLEN};
use core::net::SocketAddr;
use kernel::sync::Arc;

enum Plan {
    Deliver { slot: usize, dev: NetDevRef },
    Forward { slot: usize, sock: UdpSockRef, route: Option<Arc<DstCache>>, remote: SocketAddr },
    Drop,
}

impl UdpHandler for Manager {
    fn rcv(&self, tag: usize, dgram: RxDatagram) {
        let payload_len = dgram.payload_len();
        let inner_len = payload_len.saturating_sub(HEADER_LEN);
        let plan = {
            let mut d = self.data.lock();
            match d.sock_addrs.get(tag).copied().flatten() {
                None => Plan::Drop,
                Some(local) => match classify_rx_indexed(&d.table, &d.index, &local, dgram.head()) {
                    RxVerdict::Deliver { slot, .. } => match d.io.get(slot).and_then(|io| io.dev.clone()) {
                        Some(dev) => Plan::Deliver { slot, dev },
                        None => {
                            d.count_drop(Some(slot), DropReason::IfaceDown);
                            Plan::Drop
                        }
                    },
                    RxVerdict::Forward { slot, remote } => match d.io.get(slot).and_then(|io| io.sock.clone()) {
                        Some(sock) => {
                            let route = d.io.get(slot).and_then(|io| io.route.clone());
                            Plan::Forward { slot, sock, route, remote }
                        }
                        None => {
                            d.count_drop(Some(slot), DropReason::IfaceDown);
                            Plan::Drop
                        }
                    },
                    RxVerdict::Drop { slot, reason } => {
                        d.count_drop(slot, reason);
                        Plan::Drop
                    }
                },
            }
        };
        match plan {
            Plan::Drop => drop(dgram),
            Plan::Deliver { slot, dev } => {
                let res = dev.receive(dgram.into_skb(), UDP_HLEN + HEADER_LEN as u32);
                let mut d = self.data.lock();
                match res {
                    Ok(()) => {
                        if let Some(c) = d.table.counters_mut(slot) {
                            c.rx(inner_len);
                        }
                    }
                    Err(RxError::Invalid) => d.count_drop(Some(slot), DropReason::Runt),
                    Err(RxError::TooBig) => d.count_drop(Some(slot), DropReason::TooBig),
                    Err(RxError::Down) => d.count_drop(Some(slot), DropReason::IfaceDown),
                    Err(RxError::NoBuffer | RxError::Other(_)) => d.count_drop(Some(slot), DropReason::NoMemory),
                }
            }
            Plan::Forward { slot, sock, route, remote } => {
                let res = sock.xmit(dgram.into_skb(), UDP_HLEN, &[], &remote, false, None, route.as_deref());
                let mut d = self.data.lock();
                match res {
                    Ok(()) => {
                        if let Some(c) = d.table.counters_mut(slot) {
                            c.rx(inner_len);
                            c.tx(inner_len);
                        }
                    }
                    Err(_) => d.count_drop(Some(slot), DropReason::NoRoute),
                }
            }
        }
    }
}
