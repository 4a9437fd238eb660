//! Connector ids: the `<N>` of Fig. 5.9 and the 32-bit connector id of the wire header (Fig. 5.3).
//!
//! Range: `1..=4294967295` (all of `u32` except 0).  0 is reserved so that an all-zero header never names a
//! connector.  Ids `1..=16777215` ([`VXLAN_VNI_MAX`]) are sent in the VXLAN-compatible header form and equal the
//! VNI of a kernel VXLAN device; larger ids use the extended form (see `header`).

use core::fmt;

/// Largest VXLAN Network Identifier (24 bits).
pub const VXLAN_VNI_MAX: u32 = 0x00FF_FFFF;

/// A connector id, never 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectorId(u32);

impl ConnectorId {
    /// Smallest id.
    pub const MIN: ConnectorId = ConnectorId(1);
    /// Largest id.
    pub const MAX: ConnectorId = ConnectorId(u32::MAX);

    /// `Some` unless `raw` is 0.
    pub const fn new(raw: u32) -> Option<ConnectorId> {
        if raw == 0 {
            None
        } else {
            Some(ConnectorId(raw))
        }
    }

    /// The numeric value.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The VNI a kernel VXLAN device must use to interoperate with this connector, if the id fits in 24 bits.
    pub const fn vxlan_vni(self) -> Option<u32> {
        if self.0 <= VXLAN_VNI_MAX {
            Some(self.0)
        } else {
            None
        }
    }
}

impl fmt::Display for ConnectorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a connector id field was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdError {
    /// Empty field.
    Empty,
    /// Something other than the digits 0-9 (signs, hex, spaces...).
    NotDecimal,
    /// A leading zero (`007`): ids have exactly one spelling, the one /proc/vw/<N> uses.
    LeadingZero,
    /// 0 is reserved.
    Zero,
    /// Larger than 4294967295.
    TooLarge,
}

impl IdError {
    /// Short human text.
    pub const fn message(self) -> &'static str {
        match self {
            IdError::Empty => "empty connector id",
            IdError::NotDecimal => "connector id must be decimal digits",
            IdError::LeadingZero => "connector id has a leading zero",
            IdError::Zero => "connector id 0 is reserved",
            IdError::TooLarge => "connector id larger than 4294967295",
        }
    }
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// Parses the decimal text of a connector id: digits only, no sign, no leading zero, `1..=4294967295`.
pub fn parse_id(text: &str) -> Result<ConnectorId, IdError> {
    let bytes = text.as_bytes();
    let first = *bytes.first().ok_or(IdError::Empty)?;
    if !bytes.iter().all(u8::is_ascii_digit) {
        return Err(IdError::NotDecimal);
    }
    if first == b'0' {
        return Err(if bytes.len() == 1 {
            IdError::Zero
        } else {
            IdError::LeadingZero
        });
    }
    let mut value: u32 = 0;
    for &b in bytes {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u32::from(b - b'0')))
            .ok_or(IdError::TooLarge)?;
    }
    ConnectorId::new(value).ok_or(IdError::Zero)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_range_ends() {
        assert_eq!(parse_id("1"), Ok(ConnectorId::MIN));
        assert_eq!(parse_id("4294967295"), Ok(ConnectorId::MAX));
        assert_eq!(
            parse_id("16777215").map(ConnectorId::get),
            Ok(VXLAN_VNI_MAX)
        );
    }

    #[test]
    fn rejects_each_error() {
        assert_eq!(parse_id(""), Err(IdError::Empty));
        assert_eq!(parse_id("0"), Err(IdError::Zero));
        assert_eq!(parse_id("007"), Err(IdError::LeadingZero));
        assert_eq!(parse_id("00"), Err(IdError::LeadingZero));
        assert_eq!(parse_id("4294967296"), Err(IdError::TooLarge));
        assert_eq!(parse_id("99999999999999999999"), Err(IdError::TooLarge));
        assert_eq!(parse_id("+7"), Err(IdError::NotDecimal));
        assert_eq!(parse_id("-7"), Err(IdError::NotDecimal));
        assert_eq!(parse_id("0x10"), Err(IdError::NotDecimal));
        assert_eq!(parse_id("7a"), Err(IdError::NotDecimal));
        assert_eq!(parse_id("٣"), Err(IdError::NotDecimal));
    }

    #[test]
    fn vni_mapping() {
        assert_eq!(ConnectorId::new(0), None);
        assert_eq!(
            ConnectorId::new(42).and_then(ConnectorId::vxlan_vni),
            Some(42)
        );
        assert_eq!(
            ConnectorId::new(VXLAN_VNI_MAX).and_then(ConnectorId::vxlan_vni),
            Some(VXLAN_VNI_MAX)
        );
        assert_eq!(
            ConnectorId::new(VXLAN_VNI_MAX + 1).and_then(ConnectorId::vxlan_vni),
            None
        );
    }
}
