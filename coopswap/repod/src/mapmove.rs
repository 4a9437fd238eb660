//! The transfer of a page map between two Dom0s (`coopswap-move`): the source exports its device's map and sends it,
//! the destination imports it into its own device and answers whether that worked.
//!
//! On the TCP connection, the source sends one frame: the magic `OVCMAP01`, the map's length (u64, little endian),
//! the map's bytes, their CRC32C (u32, little endian). The destination answers with one line: `OK <what it did>` or
//! `ERR <why not>`, and closes. The map file carries its own checksum, which the kernel checks on import; the frame's
//! CRC catches a transfer that went wrong before the kernel sees it, with a message that says so.

use coopswap_proto::crc32c::crc32c;
use std::io::{self, BufRead, Read, Write};

/// First bytes of a frame.
pub const MAGIC: &[u8; 8] = b"OVCMAP01";
/// Largest map accepted (a map has 24 bytes per page written: 1 GiB is a device of about 170 GiB fully written).
pub const MAX_MAP: u64 = 1 << 30;

/// Writes `map` as one frame.
pub fn send_frame(w: &mut impl Write, map: &[u8]) -> io::Result<()> {
    w.write_all(MAGIC)?;
    w.write_all(&(map.len() as u64).to_le_bytes())?;
    w.write_all(map)?;
    w.write_all(&crc32c(map).to_le_bytes())?;
    w.flush()
}

/// Reads one frame and returns the map, or an error that says what was wrong with it.
pub fn recv_frame(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
    let mut head = [0u8; 16];
    r.read_exact(&mut head)?;
    let (magic, len) = head.split_at(8);
    if magic != MAGIC {
        return Err(bad(format!(
            "not a coopswap-move frame (first bytes {:02x?}); is the sender coopswap-move send?",
            magic
        )));
    }
    let len = u64::from_le_bytes(len.try_into().map_err(|_| bad("short header".into()))?);
    if len > MAX_MAP {
        return Err(bad(format!("map of {len} bytes announced, more than the {MAX_MAP} accepted")));
    }
    let mut map = vec![0u8; len as usize];
    r.read_exact(&mut map)?;
    let mut crc = [0u8; 4];
    r.read_exact(&mut crc)?;
    let (want, got) = (u32::from_le_bytes(crc), crc32c(&map));
    if want != got {
        return Err(bad(format!(
            "map damaged in transfer: CRC32C {got:08x}, the sender's {want:08x}"
        )));
    }
    Ok(map)
}

/// The destination's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Imported; what the destination says about it.
    Ok(String),
    /// Not imported; why.
    Err(String),
}

/// Writes `reply` as its line.
pub fn send_reply(w: &mut impl Write, reply: &Reply) -> io::Result<()> {
    let (tag, text) = match reply {
        Reply::Ok(t) => ("OK", t),
        Reply::Err(t) => ("ERR", t),
    };
    // One line: a message with line breaks in it is joined.
    let text = text.replace(['\n', '\r'], " ");
    writeln!(w, "{tag} {}", text.trim())?;
    w.flush()
}

/// Reads the destination's answer line.
pub fn recv_reply(r: &mut impl BufRead) -> io::Result<Reply> {
    let mut line = String::new();
    let n = r.take(64 * 1024).read_line(&mut line)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the destination closed the connection without an answer",
        ));
    }
    let line = line.trim_end();
    match line.split_once(' ').unwrap_or((line, "")) {
        ("OK", t) => Ok(Reply::Ok(t.to_string())),
        ("ERR", t) => Ok(Reply::Err(t.to_string())),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected answer from the destination: {line:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Cursor;

    #[test]
    fn a_frame_comes_back_as_sent() {
        let map = b"a page map".to_vec();
        let mut buf = Vec::new();
        send_frame(&mut buf, &map).unwrap();
        assert_eq!(buf.len(), 8 + 8 + map.len() + 4);
        assert_eq!(recv_frame(&mut Cursor::new(buf)).unwrap(), map);
    }

    #[test]
    fn damage_is_reported_as_such() {
        let mut buf = Vec::new();
        send_frame(&mut buf, b"0123456789").unwrap();
        let mut bent = buf.clone();
        bent[20] ^= 1;
        let e = recv_frame(&mut Cursor::new(bent)).unwrap_err();
        assert!(e.to_string().contains("damaged in transfer"), "{e}");
        let mut other = buf.clone();
        other[0] = b'X';
        let e = recv_frame(&mut Cursor::new(other)).unwrap_err();
        assert!(e.to_string().contains("not a coopswap-move frame"), "{e}");
        let e = recv_frame(&mut Cursor::new(&buf[..buf.len() - 1])).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&(MAX_MAP + 1).to_le_bytes());
        let e = recv_frame(&mut Cursor::new(huge)).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
    }

    #[test]
    fn replies_are_one_line_each_way() {
        for r in [Reply::Ok("imported: 4096 pages".into()), Reply::Err("busy\nreally".into())] {
            let mut buf = Vec::new();
            send_reply(&mut buf, &r).unwrap();
            assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
            let back = recv_reply(&mut Cursor::new(buf)).unwrap();
            match (&r, back) {
                (Reply::Ok(a), Reply::Ok(b)) => assert_eq!(*a, b),
                (Reply::Err(_), Reply::Err(b)) => assert_eq!(b, "busy really"),
                (a, b) => panic!("{a:?} came back as {b:?}"),
            }
        }
        assert!(recv_reply(&mut Cursor::new(b"HELLO there\n".to_vec())).is_err());
        assert!(recv_reply(&mut Cursor::new(Vec::new())).is_err());
    }

    proptest! {
        #[test]
        fn any_map_round_trips_and_any_garbage_is_an_error_not_a_panic(
            map in proptest::collection::vec(any::<u8>(), 0..4096),
            garbage in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut buf = Vec::new();
            send_frame(&mut buf, &map).unwrap();
            prop_assert_eq!(recv_frame(&mut Cursor::new(buf)).unwrap(), map);
            let _ = recv_frame(&mut Cursor::new(garbage.clone()));
            let _ = recv_reply(&mut Cursor::new(garbage));
        }
    }
}
