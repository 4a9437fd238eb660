//! A writer (and, for tests and inspection, a reader) for the "newc" cpio format that the Linux kernel
//! unpacks as an initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).
//!
//! Each entry is a 110-byte ASCII header (`070701` followed by 13 eight-digit hex fields), the NUL-terminated
//! name padded to a multiple of four bytes (counting the header), then the data padded to four bytes. The
//! archive ends with an entry named `TRAILER!!!`. Owners are always root; inode numbers are assigned in order.

use std::io::{self, Write};

use thiserror::Error;

pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;

const MAGIC: &[u8; 6] = b"070701";
const HEADER_LEN: usize = 110;
const TRAILER: &str = "TRAILER!!!";

#[derive(Debug, Error)]
pub enum CpioError {
    #[error("cpio entry name {0:?} is empty, absolute or contains a NUL byte")]
    BadName(String),
    #[error("cpio entry {0:?} is larger than the format's 4 GiB limit")]
    TooLarge(String),
    #[error("malformed cpio archive at byte {offset}: {what}")]
    Malformed { offset: usize, what: &'static str },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Writes entries in newc format to any `Write` (a file, a gzip encoder, a Vec).
pub struct CpioWriter<W: Write> {
    out: W,
    next_ino: u32,
    written: u64,
    mtime: u32,
    finished: bool,
}

fn pad4(n: u64) -> usize {
    ((4 - (n % 4)) % 4) as usize
}

fn check_name(name: &str) -> Result<(), CpioError> {
    if name.is_empty() || name.starts_with('/') || name.contains('\0') {
        return Err(CpioError::BadName(name.to_string()));
    }
    Ok(())
}

impl<W: Write> CpioWriter<W> {
    /// `mtime` is stamped on every entry (a fixed value keeps archives reproducible).
    pub fn new(out: W, mtime: u32) -> Self {
        CpioWriter { out, next_ino: 1, written: 0, mtime, finished: false }
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) -> Result<(), CpioError> {
        let size = u32::try_from(data.len()).map_err(|_| CpioError::TooLarge(name.to_string()))?;
        let ino = if name == TRAILER { 0 } else { self.next_ino };
        self.next_ino = self.next_ino.wrapping_add(1);
        let namesize = name.len() as u32 + 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            ino, mode, 0, 0, nlink, self.mtime, size, 0, 0, rdev.0, rdev.1, namesize, 0
        );
        debug_assert_eq!(header.len(), HEADER_LEN);
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        let name_pad = pad4(HEADER_LEN as u64 + u64::from(namesize));
        self.out.write_all(&[0u8; 3][..name_pad])?;
        self.out.write_all(data)?;
        let data_pad = pad4(data.len() as u64);
        self.out.write_all(&[0u8; 3][..data_pad])?;
        self.written += (HEADER_LEN + namesize as usize + name_pad + data.len() + data_pad) as u64;
        Ok(())
    }

    /// A directory; `perm` is the permission bits (e.g. 0o755).
    pub fn dir(&mut self, name: &str, perm: u32) -> Result<(), CpioError> {
        check_name(name)?;
        self.entry(name, S_IFDIR | (perm & 0o7777), 2, (0, 0), &[])
    }

    /// A regular file with the given permission bits and contents.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> Result<(), CpioError> {
        check_name(name)?;
        self.entry(name, S_IFREG | (perm & 0o7777), 1, (0, 0), data)
    }

    /// A symbolic link `name` -> `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> Result<(), CpioError> {
        check_name(name)?;
        self.entry(name, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes())
    }

    /// A character device node (e.g. /dev/console = 5,1).
    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> Result<(), CpioError> {
        check_name(name)?;
        self.entry(name, S_IFCHR | (perm & 0o7777), 1, (major, minor), &[])
    }

    /// Writes the trailer and returns the inner writer. Bytes written so far are in `bytes_written`.
    pub fn finish(mut self) -> Result<W, CpioError> {
        self.entry(TRAILER, 0, 1, (0, 0), &[])?;
        self.finished = true;
        self.out.flush()?;
        Ok(self.out)
    }

    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

/// One entry read back from an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub mode: u32,
    pub rdev: (u32, u32),
    pub data: Vec<u8>,
}

fn hex_field(buf: &[u8], at: usize, field: usize) -> Result<u32, CpioError> {
    let start = at + 6 + field * 8;
    let bytes = buf.get(start..start + 8).ok_or(CpioError::Malformed { offset: start, what: "short header" })?;
    let s = std::str::from_utf8(bytes).map_err(|_| CpioError::Malformed { offset: start, what: "non-ASCII header" })?;
    u32::from_str_radix(s, 16).map_err(|_| CpioError::Malformed { offset: start, what: "bad hex field" })
}

/// Parses one uncompressed newc archive (up to and excluding its trailer). Used by tests and by `inspect`.
pub fn read_archive(buf: &[u8]) -> Result<Vec<Entry>, CpioError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    loop {
        let magic = buf.get(at..at + 6).ok_or(CpioError::Malformed { offset: at, what: "missing trailer" })?;
        if magic != MAGIC {
            return Err(CpioError::Malformed { offset: at, what: "bad magic" });
        }
        let mode = hex_field(buf, at, 1)?;
        let size = hex_field(buf, at, 6)? as usize;
        let rdev = (hex_field(buf, at, 9)?, hex_field(buf, at, 10)?);
        let namesize = hex_field(buf, at, 11)? as usize;
        if namesize == 0 {
            return Err(CpioError::Malformed { offset: at, what: "empty name" });
        }
        let name_start = at + HEADER_LEN;
        let name_bytes = buf
            .get(name_start..name_start + namesize - 1)
            .ok_or(CpioError::Malformed { offset: name_start, what: "name past end" })?;
        let name = String::from_utf8(name_bytes.to_vec())
            .map_err(|_| CpioError::Malformed { offset: name_start, what: "non-UTF-8 name" })?;
        let data_start = name_start + namesize + pad4((HEADER_LEN + namesize) as u64);
        let data = buf
            .get(data_start..data_start + size)
            .ok_or(CpioError::Malformed { offset: data_start, what: "data past end" })?;
        at = data_start + size + pad4(size as u64);
        if name == TRAILER {
            return Ok(out);
        }
        out.push(Entry { name, mode, rdev, data: data.to_vec() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_layout_matches_the_kernel_format() {
        let mut w = CpioWriter::new(Vec::new(), 0x1234);
        w.file("init", 0o755, b"#!/bin/sh\n").unwrap();
        let buf = w.finish().unwrap();
        // magic, ino 1, mode 0100755, uid 0, gid 0, nlink 1, mtime, size 10, ..., namesize 5
        let head = std::str::from_utf8(&buf[..HEADER_LEN]).unwrap();
        assert_eq!(&head[0..6], "070701");
        assert_eq!(&head[6..14], "00000001");
        assert_eq!(&head[14..22], "000081ed");
        assert_eq!(&head[46..54], "00001234");
        assert_eq!(&head[54..62], "0000000a");
        assert_eq!(&head[94..102], "00000005");
        // name "init\0" ends at 115, padded to 116; data at 116
        assert_eq!(&buf[110..115], b"init\0");
        assert_eq!(&buf[116..126], b"#!/bin/sh\n");
        assert_eq!(buf.len() % 4, 0);
        assert!(buf.windows(10).any(|w| w == b"TRAILER!!!"));
    }

    #[test]
    fn rejects_absolute_and_empty_names() {
        let mut w = CpioWriter::new(Vec::new(), 0);
        assert!(matches!(w.file("/etc/passwd", 0o644, b""), Err(CpioError::BadName(_))));
        assert!(matches!(w.dir("", 0o755), Err(CpioError::BadName(_))));
    }

    #[test]
    fn reads_back_every_kind_of_entry() {
        let mut w = CpioWriter::new(Vec::new(), 0);
        w.dir("dev", 0o755).unwrap();
        w.char_dev("dev/console", 0o600, 5, 1).unwrap();
        w.symlink("bin", "usr/bin").unwrap();
        w.file("a", 0o644, b"xyz").unwrap();
        let buf = w.finish().unwrap();
        let e = read_archive(&buf).unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!(e[0].mode, S_IFDIR | 0o755);
        assert_eq!(e[1].rdev, (5, 1));
        assert_eq!(e[1].mode & S_IFMT, S_IFCHR);
        assert_eq!(e[2].data, b"usr/bin");
        assert_eq!(e[3].data, b"xyz");
    }

    #[test]
    fn truncated_archive_is_an_error() {
        let mut w = CpioWriter::new(Vec::new(), 0);
        w.file("a", 0o644, b"hello").unwrap();
        let buf = w.finish().unwrap();
        assert!(read_archive(&buf[..buf.len() - 20]).is_err());
        assert!(read_archive(&buf[..50]).is_err());
    }

    #[test]
    fn matches_gnu_cpio_when_available() {
        // GNU cpio lists our archive with the same names (skipped only if the tool is absent).
        let Ok(out) = std::process::Command::new("cpio").arg("--version").output() else {
            eprintln!("SKIP: no cpio(1) on this host");
            return;
        };
        assert!(out.status.success());
        let mut w = CpioWriter::new(Vec::new(), 0);
        w.dir("etc", 0o755).unwrap();
        w.file("etc/hostname", 0o644, b"lab\n").unwrap();
        w.symlink("sbin", "usr/sbin").unwrap();
        let buf = w.finish().unwrap();
        let mut child = std::process::Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&buf).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "etc\netc/hostname\nsbin\n");
    }

    proptest! {
        #[test]
        fn roundtrip(files in proptest::collection::vec(("[a-z]{1,12}(/[a-z0-9._-]{1,9}){0,3}", proptest::collection::vec(any::<u8>(), 0..300), 0u32..0o7777), 0..12)) {
            let mut w = CpioWriter::new(Vec::new(), 7);
            for (name, data, perm) in &files {
                w.file(name, *perm, data).unwrap();
            }
            let buf = w.finish().unwrap();
            prop_assert_eq!(buf.len() % 4, 0);
            let back = read_archive(&buf).unwrap();
            prop_assert_eq!(back.len(), files.len());
            for (e, (name, data, perm)) in back.iter().zip(files.iter()) {
                prop_assert_eq!(&e.name, name);
                prop_assert_eq!(&e.data, data);
                prop_assert_eq!(e.mode, S_IFREG | perm);
            }
        }

        #[test]
        fn reader_never_panics_on_garbage(buf in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = read_archive(&buf);
        }
    }
}
