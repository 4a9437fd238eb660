//! CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), slicing-by-8, no tables at run time to build.
//!
//! Used for every 4 KiB page payload on the wire (computed once by the writer, verified by the reader, and kept by the
//! repository so a fetch returns the checksum of the store) and for the page-map export stream.
//! Check value: `crc32c(b"123456789") == 0xE306_9283`.

const POLY: u32 = 0x82F6_3B78;

/// 8 tables of 256 entries, built at compile time.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)] // const evaluation: a fault is a build error
const fn make_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut k = 1;
        while k < 8 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            k += 1;
        }
        i += 1;
    }
    t
}

static TABLES: [[u32; 256]; 8] = make_tables();

#[inline(always)]
fn tab(k: usize, i: u32) -> u32 {
    // `i as u8` keeps the index below 256, so the lookups cannot fail; the compiler removes the checks.
    TABLES
        .get(k)
        .and_then(|t| t.get(usize::from(i as u8)))
        .copied()
        .unwrap_or(0)
}

/// Continue a CRC-32C: `crc32c_append(crc32c(a), b) == crc32c(a ++ b)`. Start with 0.
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        if let Ok(w) = <[u8; 8]>::try_from(chunk) {
            let lo = c ^ u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            let hi = u32::from_le_bytes([w[4], w[5], w[6], w[7]]);
            c = tab(7, lo)
                ^ tab(6, lo >> 8)
                ^ tab(5, lo >> 16)
                ^ tab(4, lo >> 24)
                ^ tab(3, hi)
                ^ tab(2, hi >> 8)
                ^ tab(1, hi >> 16)
                ^ tab(0, hi >> 24);
        }
    }
    for &b in chunks.remainder() {
        c = (c >> 8) ^ tab(0, c ^ u32::from(b));
    }
    !c
}

/// CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c_append(0, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-at-a-time reference implementation, independent of the tables.
    fn reference(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            }
        }
        !c
    }

    #[test]
    fn check_values() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        // RFC 3720 (iSCSI) B.4: 32 bytes of zeroes.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
    }

    #[test]
    fn matches_reference_and_appends() {
        let mut data = [0u8; 300];
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        for len in 0..data.len() {
            let d = &data[..len];
            assert_eq!(crc32c(d), reference(d), "len {len}");
            let split = len / 3;
            assert_eq!(crc32c_append(crc32c(&d[..split]), &d[split..]), crc32c(d));
        }
    }
}
