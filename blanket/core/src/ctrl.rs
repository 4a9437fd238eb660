//! The virtio-net control queue (virtio 1.2 §5.1.6.5): the commands blanket_net sends and the receive filter it
//! asks the provider's device to apply.
//!
//! A command is a header (class, command), its data, and one status byte the device writes back. blanket_net uses
//! the receive-mode class (promiscuous, all-multicast: `CTRL_RX`) and the MAC class (the address filter table and
//! the primary address: `CTRL_RX`, `CTRL_MAC_ADDR`). The filter follows the interface: the provider's device then
//! drops, before they cost the Blanket Dom0 anything, frames that no address of the interface wants — and when a
//! bridge enslaves the interface (the top half, §4.1) it turns promiscuous mode on, and the device passes every
//! frame again.

/// Command classes and commands (virtio 1.2 §5.1.6.5.1, §5.1.6.5.2).
pub mod cmd {
    /// Receive-mode class.
    pub const CLASS_RX: u8 = 0;
    /// Promiscuous mode on (1) or off (0).
    pub const RX_PROMISC: u8 = 0;
    /// All-multicast mode on (1) or off (0).
    pub const RX_ALLMULTI: u8 = 1;
    /// MAC address class.
    pub const CLASS_MAC: u8 = 1;
    /// The unicast and multicast filter tables.
    pub const MAC_TABLE_SET: u8 = 0;
    /// The primary MAC address.
    pub const MAC_ADDR_SET: u8 = 1;
}

/// Status byte of a command the device carried out.
pub const ACK_OK: u8 = 0;

/// Entries of each filter table at most; an interface with more addresses of a kind asks for promiscuous
/// (unicast) or all-multicast (multicast) mode instead, with that table empty.
pub const TABLE_ENTRIES_MAX: usize = 64;

/// Largest encoded filter (both tables full).
pub const TABLE_BYTES_MAX: usize = 2 * (4 + TABLE_ENTRIES_MAX * 6);

/// Why a control command or its data could not be made or was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtrlError {
    /// The address list is not `(n_uc + n_mc) * 6` bytes.
    BadList,
    /// The output buffer is smaller than the filter.
    NoRoom,
    /// The device answered with a status other than OK.
    Refused(u8),
}

impl CtrlError {
    /// The errno (positive) this error maps to.
    pub const fn errno(self) -> i32 {
        match self {
            Self::BadList | Self::NoRoom => 22, // EINVAL
            Self::Refused(_) => 5,              // EIO
        }
    }
}

/// The receive filter for the provider's device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxFilter {
    /// Every frame passes.
    pub promisc: bool,
    /// Every multicast frame passes.
    pub allmulti: bool,
    /// Bytes of the encoded tables at the start of the output buffer (the `MAC_TABLE_SET` data).
    pub table_len: usize,
}

/// The filter for an interface with flags `promisc`/`allmulti` and the addresses `addrs`: `n_uc` unicast then
/// `n_mc` multicast addresses of 6 bytes. The `MAC_TABLE_SET` data is written to `out`: two tables, each a
/// little-endian 32-bit entry count followed by the entries (§5.1.6.5.2, `struct virtio_net_ctrl_mac`).
pub fn rx_filter(
    promisc: bool,
    allmulti: bool,
    addrs: &[u8],
    n_uc: usize,
    n_mc: usize,
    out: &mut [u8],
) -> Result<RxFilter, CtrlError> {
    let total = n_uc
        .checked_add(n_mc)
        .and_then(|n| n.checked_mul(6))
        .ok_or(CtrlError::BadList)?;
    if addrs.len() != total {
        return Err(CtrlError::BadList);
    }
    let (uc, mc) = addrs.split_at(n_uc * 6);
    let uc_over = n_uc > TABLE_ENTRIES_MAX;
    let mc_over = n_mc > TABLE_ENTRIES_MAX;
    let mut at = 0;
    for (list, over) in [(uc, uc_over), (mc, mc_over)] {
        let list: &[u8] = if over { &[] } else { list };
        let n = u32::try_from(list.len() / 6).map_err(|_| CtrlError::BadList)?;
        let end = at + 4 + list.len();
        let dst = out.get_mut(at..end).ok_or(CtrlError::NoRoom)?;
        let (count, entries) = dst.split_at_mut(4);
        count.copy_from_slice(&n.to_le_bytes());
        entries.copy_from_slice(list);
        at = end;
    }
    Ok(RxFilter {
        promisc: promisc || uc_over,
        allmulti: allmulti || mc_over,
        table_len: at,
    })
}

/// The outcome of a command from the status byte the device wrote.
pub const fn ack(status: u8) -> Result<(), CtrlError> {
    if status == ACK_OK {
        Ok(())
    } else {
        Err(CtrlError::Refused(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [0x52, 0x54, 0, 0x99, 0, 0x42];
    const M: [u8; 6] = [0x01, 0, 0x5e, 0, 0, 1];

    #[test]
    fn tables_are_counted_and_in_order() {
        let mut out = [0xaa; TABLE_BYTES_MAX];
        let addrs = [A, M, [0x33, 0x33, 0, 0, 0, 1]].concat();
        let f = rx_filter(false, false, &addrs, 1, 2, &mut out).unwrap();
        assert_eq!(
            f,
            RxFilter {
                promisc: false,
                allmulti: false,
                table_len: 4 + 6 + 4 + 12
            }
        );
        assert_eq!(out[..4], [1, 0, 0, 0]);
        assert_eq!(out[4..10], A);
        assert_eq!(out[10..14], [2, 0, 0, 0]);
        assert_eq!(out[14..20], M);
        assert_eq!(out[26], 0xaa);
    }

    #[test]
    fn empty_lists_give_two_zero_counts() {
        let mut out = [0xaa; 8];
        let f = rx_filter(true, false, &[], 0, 0, &mut out).unwrap();
        assert_eq!(
            f,
            RxFilter {
                promisc: true,
                allmulti: false,
                table_len: 8
            }
        );
        assert_eq!(out, [0; 8]);
    }

    #[test]
    fn too_many_addresses_fall_back_to_modes() {
        let mut out = [0; TABLE_BYTES_MAX];
        let many: [u8; (TABLE_ENTRIES_MAX + 1) * 6] = [1; (TABLE_ENTRIES_MAX + 1) * 6];
        let f = rx_filter(false, false, &many, TABLE_ENTRIES_MAX + 1, 0, &mut out).unwrap();
        assert_eq!((f.promisc, f.allmulti, f.table_len), (true, false, 8));
        let f = rx_filter(false, false, &many, 0, TABLE_ENTRIES_MAX + 1, &mut out).unwrap();
        assert_eq!((f.promisc, f.allmulti, f.table_len), (false, true, 8));
        let full = [1u8; TABLE_ENTRIES_MAX * 2 * 6];
        let f = rx_filter(
            false,
            false,
            &full,
            TABLE_ENTRIES_MAX,
            TABLE_ENTRIES_MAX,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            (f.promisc, f.allmulti, f.table_len),
            (false, false, TABLE_BYTES_MAX)
        );
    }

    #[test]
    fn bad_list_or_small_buffer_is_an_error() {
        let mut out = [0; TABLE_BYTES_MAX];
        assert_eq!(
            rx_filter(false, false, &A[..5], 1, 0, &mut out),
            Err(CtrlError::BadList)
        );
        assert_eq!(
            rx_filter(false, false, &A, 0, 0, &mut out),
            Err(CtrlError::BadList)
        );
        assert_eq!(
            rx_filter(false, false, &[], usize::MAX, 1, &mut out),
            Err(CtrlError::BadList)
        );
        let mut small = [0; 13];
        assert_eq!(
            rx_filter(false, false, &A, 1, 0, &mut small),
            Err(CtrlError::NoRoom)
        );
    }

    #[test]
    fn ack_maps_status() {
        assert_eq!(ack(ACK_OK), Ok(()));
        assert_eq!(ack(1), Err(CtrlError::Refused(1)));
        assert_eq!(CtrlError::Refused(1).errno(), 5);
    }
}
