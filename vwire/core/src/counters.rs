//! Counters: per endpoint (shown by `cat /proc/vw/<N>`) and manager-wide (frames that match no endpoint).
//!
//! All additions wrap (a counter that runs for years must not panic).  The kernel may keep per-CPU copies and sum
//! them with [`Counters::add`] when rendering.

/// Why a frame was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// Received UDP payload with a malformed header (manager-wide).
    BadHeader,
    /// Received a valid header for a connector id with no entry at that local address (manager-wide).
    UnknownConnector,
    /// Inner frame shorter than an Ethernet header.
    Runt,
    /// Frame larger than the endpoint MTU allows.
    TooBig,
    /// No route to the remote address.
    NoRoute,
    /// Memory allocation failed (headroom, clone).
    NoMemory,
    /// The lower layer refused the packet.
    TxError,
    /// Collapsed peer interface down.
    PeerDown,
    /// The interface was down when the frame arrived.
    IfaceDown,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 9;
    /// All reasons, in rendering order.
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::BadHeader,
        DropReason::UnknownConnector,
        DropReason::Runt,
        DropReason::TooBig,
        DropReason::NoRoute,
        DropReason::NoMemory,
        DropReason::TxError,
        DropReason::PeerDown,
        DropReason::IfaceDown,
    ];

    /// Name used in status output (`drop_<name>: <count>`).
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::BadHeader => "bad_header",
            DropReason::UnknownConnector => "unknown_connector",
            DropReason::Runt => "runt",
            DropReason::TooBig => "too_big",
            DropReason::NoRoute => "no_route",
            DropReason::NoMemory => "no_memory",
            DropReason::TxError => "tx_error",
            DropReason::PeerDown => "peer_down",
            DropReason::IfaceDown => "iface_down",
        }
    }

    /// Whether the reason can only be attributed to the manager, not to one endpoint (nothing matched yet).
    pub const fn manager_only(self) -> bool {
        matches!(self, DropReason::BadHeader | DropReason::UnknownConnector)
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Frame/byte counters and drops by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames delivered out of the endpoint interface (decapsulated or from the collapsed peer).
    pub rx_frames: u64,
    /// Inner-frame bytes of `rx_frames`.
    pub rx_bytes: u64,
    /// Frames sent by the endpoint (encapsulated or handed to the collapsed peer), or forwarded by a relay.
    pub tx_frames: u64,
    /// Inner-frame bytes of `tx_frames`.
    pub tx_bytes: u64,
    drops: [u64; DropReason::COUNT],
}

impl Counters {
    /// All zero.
    pub const ZERO: Counters = Counters {
        rx_frames: 0,
        rx_bytes: 0,
        tx_frames: 0,
        tx_bytes: 0,
        drops: [0; DropReason::COUNT],
    };

    /// Counts one received frame of `len` bytes.
    pub fn rx(&mut self, len: usize) {
        self.rx_frames = self.rx_frames.wrapping_add(1);
        self.rx_bytes = self.rx_bytes.wrapping_add(len as u64);
    }

    /// Counts one sent frame of `len` bytes.
    pub fn tx(&mut self, len: usize) {
        self.tx_frames = self.tx_frames.wrapping_add(1);
        self.tx_bytes = self.tx_bytes.wrapping_add(len as u64);
    }

    /// Counts one dropped frame.
    pub fn drop_frame(&mut self, reason: DropReason) {
        if let Some(c) = self.drops.get_mut(reason.index()) {
            *c = c.wrapping_add(1);
        }
    }

    /// Drops for one reason.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).copied().unwrap_or(0)
    }

    /// Drops over all reasons.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().fold(0u64, |acc, d| acc.wrapping_add(*d))
    }

    /// Adds `other` into `self` (summing per-CPU copies).
    pub fn add(&mut self, other: &Counters) {
        self.rx_frames = self.rx_frames.wrapping_add(other.rx_frames);
        self.rx_bytes = self.rx_bytes.wrapping_add(other.rx_bytes);
        self.tx_frames = self.tx_frames.wrapping_add(other.tx_frames);
        self.tx_bytes = self.tx_bytes.wrapping_add(other.tx_bytes);
        for (d, o) in self.drops.iter_mut().zip(other.drops.iter()) {
            *d = d.wrapping_add(*o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_sums() {
        let mut a = Counters::ZERO;
        a.rx(100);
        a.rx(50);
        a.tx(60);
        a.drop_frame(DropReason::TooBig);
        a.drop_frame(DropReason::TooBig);
        a.drop_frame(DropReason::IfaceDown);
        assert_eq!(
            (a.rx_frames, a.rx_bytes, a.tx_frames, a.tx_bytes),
            (2, 150, 1, 60)
        );
        assert_eq!(a.drops(DropReason::TooBig), 2);
        assert_eq!(a.drops(DropReason::IfaceDown), 1);
        assert_eq!(a.drops(DropReason::Runt), 0);
        assert_eq!(a.total_drops(), 3);
        let mut b = a;
        b.add(&a);
        assert_eq!((b.rx_frames, b.rx_bytes, b.total_drops()), (4, 300, 6));
        assert_eq!(Counters::default(), Counters::ZERO);
    }

    #[test]
    fn wraps_instead_of_panicking() {
        let mut a = Counters {
            rx_frames: u64::MAX,
            rx_bytes: u64::MAX,
            ..Counters::ZERO
        };
        a.rx(2);
        assert_eq!((a.rx_frames, a.rx_bytes), (0, 1));
    }

    #[test]
    fn reasons_are_complete_and_ordered() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut names: [&str; DropReason::COUNT] = DropReason::ALL.map(DropReason::name);
        names.sort_unstable();
        assert!(names.windows(2).all(|w| w[0] != w[1]));
    }
}
