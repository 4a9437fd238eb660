//! `link_vwire.so`: the iproute2 plugin for VirtualWire endpoints (Documentation/vwire.md, "iproute2").
//!
//! `ip link add NAME type vwire …` hands the words after `type vwire` to this plugin's `parse_opt`, which turns them
//! into the vwire netlink attributes (IFLA_INFO_DATA) that vwire.ko's rtnl_link_ops read; `ip -d link show` hands
//! the attributes back to `print_opt`. iproute2 finds the plugin as `$IP_LIB_DIR/link_vwire.so` (default
//! `/usr/lib/x86_64-linux-gnu/ip/link_vwire.so` on Debian) and its `vwire_link_util` symbol, a `struct link_util` (iproute2's ip/ip_common.h;
//! its layout has been stable since iproute2 3.x). The attribute numbers are the module's own
//! (rust/helpers/net.h: OVC_LINK_ATTR_*). Addresses are passed as text and parsed by the module, with the same parser
//! as /proc/vw/create — one implementation.
//!
//! The argument parsing and attribute encoding are plain functions ([`parse_args`], [`encode`], [`decode`]),
//! tested on the host; the `extern "C"` part only moves bytes between them and iproute2.

use core::ffi::{c_char, c_int, CStr};

/// Attribute numbers inside IFLA_INFO_DATA (rust/helpers/net.h).
pub const ATTR_ID: u16 = 1;
/// Local address, NUL-terminated text.
pub const ATTR_LOCAL: u16 = 2;
/// Remote address, NUL-terminated text.
pub const ATTR_REMOTE: u16 = 3;
/// Highest attribute number.
pub const ATTR_MAX: u16 = 3;
/// Longest address text the module accepts, without the NUL.
pub const ADDR_MAX: usize = 63;

/// Usage text of `ip link add … type vwire help`.
pub const USAGE: &str = "Usage: ip link add NAME type vwire id N local ADDR remote ADDR\n\
    \x20      ip link set NAME type vwire remote ADDR   (repoint: the other end moved)\n\
    \n\
    Where: N    := connector id, 1..4294967295\n\
    \x20      ADDR := IPv4:PORT | [IPv6]:PORT | IPv4 | [IPv6]  (port: the module's default_port, 4789)\n\
    The endpoint receives on local and sends to remote, as echo \"N local remote\" > /proc/vw/create.\n";

/// What `ip link add … type vwire` (all three) or `ip link set … type vwire` (remote; id and local only to
/// confirm, they cannot change) asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkArgs {
    pub id: Option<u32>,
    pub local: Option<String>,
    pub remote: String,
}

/// Which command the words belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `ip link add`: id, local and remote are needed.
    Add,
    /// `ip link set` (a repoint): remote is needed.
    Set,
}

/// Parses the words after `type vwire`: `id N`, `local ADDR`, `remote ADDR`, in any order, each once.
pub fn parse_args<S: AsRef<str>>(args: &[S], mode: Mode) -> Result<LinkArgs, String> {
    let (mut id, mut local, mut remote) = (None, None, None);
    let mut it = args.iter().map(AsRef::as_ref);
    while let Some(word) = it.next() {
        let slot: &mut Option<String> = match word {
            "id" => {
                let v = it.next().ok_or("\"id\" needs a connector id")?;
                let n: u32 = v.parse().map_err(|_| format!("\"{v}\" is not a connector id (1..4294967295)"))?;
                if n == 0 {
                    return Err("connector id 0 is outside 1..4294967295".into());
                }
                if id.replace(n).is_some() {
                    return Err("\"id\" given twice".into());
                }
                continue;
            }
            "local" => &mut local,
            "remote" => &mut remote,
            "help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option \"{other}\"")),
        };
        let v = it.next().ok_or_else(|| format!("\"{word}\" needs an address"))?;
        if v.is_empty() || v.len() > ADDR_MAX || v.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(format!("\"{v}\" is not an address"));
        }
        if slot.replace(v.to_string()).is_some() {
            return Err(format!("\"{word}\" given twice"));
        }
    }
    if mode == Mode::Add {
        id.ok_or("missing \"id N\"")?;
        local.as_ref().ok_or("missing \"local ADDR\"")?;
    }
    Ok(LinkArgs { id, local, remote: remote.ok_or("missing \"remote ADDR\"")? })
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn put_attr(out: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(align4(out.len()), 0);
}

/// The netlink attributes (struct rtattr, host byte order, 4-byte aligned) for `a`.
pub fn encode(a: &LinkArgs) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(id) = a.id {
        put_attr(&mut out, ATTR_ID, &id.to_ne_bytes());
    }
    for (ty, text) in [(ATTR_LOCAL, a.local.as_ref()), (ATTR_REMOTE, Some(&a.remote))] {
        if let Some(text) = text {
            let mut z = text.as_bytes().to_vec();
            z.push(0);
            put_attr(&mut out, ty, &z);
        }
    }
    out
}

/// The attributes back from their payloads (as iproute2's table gives them): id, local, remote.
pub fn decode(id: Option<&[u8]>, local: Option<&[u8]>, remote: Option<&[u8]>) -> (Option<u32>, Option<String>, Option<String>) {
    let text = |b: &[u8]| {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    };
    let id = id.and_then(|b| b.get(..4)).and_then(|b| b.try_into().ok()).map(u32::from_ne_bytes);
    (id, local.map(text), remote.map(text))
}

// ---- the iproute2 side ------------------------------------------------------------------------------------------

/// iproute2's `struct link_util` (ip/ip_common.h).
#[repr(C)]
pub struct LinkUtil {
    next: *mut LinkUtil,
    id: *const c_char,
    maxattr: c_int,
    parse_opt: Option<unsafe extern "C" fn(*mut LinkUtil, c_int, *mut *mut c_char, *mut NlMsgHdr) -> c_int>,
    print_opt: Option<unsafe extern "C" fn(*mut LinkUtil, *mut libc::FILE, *mut *mut RtAttr)>,
    print_xstats: Option<unsafe extern "C" fn()>,
    print_help: Option<unsafe extern "C" fn(*mut LinkUtil, c_int, *mut *mut c_char, *mut libc::FILE)>,
    parse_ifla_xstats: Option<unsafe extern "C" fn()>,
    print_ifla_xstats: Option<unsafe extern "C" fn()>,
}

// SAFETY: the descriptor is immutable after load except for `next`, which iproute2 (single-threaded) links once.
unsafe impl Sync for LinkUtil {}

/// `NLM_F_CREATE`: set by `ip link add`, not by `ip link set`.
const NLM_F_CREATE: u16 = 0x400;

/// `struct nlmsghdr`.
#[repr(C)]
pub struct NlMsgHdr {
    len: u32,
    ty: u16,
    flags: u16,
    seq: u32,
    pid: u32,
}

/// `struct rtattr`.
#[repr(C)]
pub struct RtAttr {
    len: u16,
    ty: u16,
}

/// Room iproute2's `ip link` request has for the whole message (struct iplink_req: header, ifinfomsg and 1024
/// bytes of attributes); we stay well inside it.
const REQUEST_ROOM: usize = 1024;

extern "C" {
    // Exported by iproute2's `ip` (linked -rdynamic): its JSON-aware printers.
    fn print_color_string(t: c_int, color: c_int, key: *const c_char, fmt: *const c_char, value: *const c_char);
    fn print_color_uint(t: c_int, color: c_int, key: *const c_char, fmt: *const c_char, value: u64);
}
const PRINT_ANY: c_int = 4;
const COLOR_NONE: c_int = -1;

unsafe extern "C" fn parse_opt(_lu: *mut LinkUtil, argc: c_int, argv: *mut *mut c_char, n: *mut NlMsgHdr) -> c_int {
    let mut args = Vec::new();
    for i in 0..usize::try_from(argc).unwrap_or(0) {
        // SAFETY: iproute2 passes argc valid C strings in argv.
        let p = unsafe { *argv.add(i) };
        if p.is_null() {
            break;
        }
        // SAFETY: as above.
        args.push(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned());
    }
    // SAFETY: `n` is iproute2's request message header.
    let mode = if unsafe { (*n).flags } & NLM_F_CREATE != 0 { Mode::Add } else { Mode::Set };
    let a = match parse_args(&args, mode) {
        Ok(a) => a,
        Err(e) if e == USAGE => {
            eprint!("{USAGE}");
            return -1;
        }
        Err(e) => {
            eprintln!("vwire: {e}\n{USAGE}");
            return -1;
        }
    };
    let bytes = encode(&a);
    // SAFETY: `n` is iproute2's request message; we append after its current (aligned) length, within its room.
    unsafe {
        let at = align4((*n).len as usize);
        if at + bytes.len() > REQUEST_ROOM {
            eprintln!("vwire: request too long");
            return -1;
        }
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), n.cast::<u8>().add(at), bytes.len());
        (*n).len = (at + bytes.len()) as u32;
    }
    0
}

/// The payload of `tb[i]`, if present.
///
/// # Safety
///
/// `tb` must be iproute2's parsed attribute table with at least `ATTR_MAX + 1` entries.
unsafe fn payload<'a>(tb: *mut *mut RtAttr, i: u16) -> Option<&'a [u8]> {
    // SAFETY: per the contract.
    let a = unsafe { *tb.add(usize::from(i)) };
    if a.is_null() {
        return None;
    }
    // SAFETY: a parsed attribute: `len` covers its header and payload.
    let len = usize::from(unsafe { (*a).len }).checked_sub(4)?;
    // SAFETY: as above.
    Some(unsafe { core::slice::from_raw_parts(a.cast::<u8>().add(4), len) })
}

unsafe extern "C" fn print_opt(_lu: *mut LinkUtil, _f: *mut libc::FILE, tb: *mut *mut RtAttr) {
    if tb.is_null() {
        return;
    }
    // SAFETY: iproute2 parsed IFLA_INFO_DATA into `tb` with maxattr entries (+1).
    let (id, local, remote) = unsafe { decode(payload(tb, ATTR_ID), payload(tb, ATTR_LOCAL), payload(tb, ATTR_REMOTE)) };
    if let Some(id) = id {
        // SAFETY: constant C strings; the exported printer writes to ip's current output (text or JSON).
        unsafe { print_color_uint(PRINT_ANY, COLOR_NONE, c"id".as_ptr(), c"id %u ".as_ptr(), u64::from(id)) };
    }
    for (key, fmt, v) in [(c"local", c"local %s ", local), (c"remote", c"remote %s ", remote)] {
        if let Some(v) = v.and_then(|v| std::ffi::CString::new(v).ok()) {
            // SAFETY: as above; `v` lives across the call.
            unsafe { print_color_string(PRINT_ANY, COLOR_NONE, key.as_ptr(), fmt.as_ptr(), v.as_ptr()) };
        }
    }
}

unsafe extern "C" fn print_help(_lu: *mut LinkUtil, _argc: c_int, _argv: *mut *mut c_char, f: *mut libc::FILE) {
    if let Ok(u) = std::ffi::CString::new(USAGE) {
        // SAFETY: `f` is the stream iproute2 passes; `u` is NUL-terminated.
        unsafe { libc::fputs(u.as_ptr(), f) };
    }
}

/// The symbol iproute2 looks up: `<kind>_link_util`.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut vwire_link_util: LinkUtil = LinkUtil {
    next: core::ptr::null_mut(),
    id: c"vwire".as_ptr(),
    maxattr: ATTR_MAX as c_int,
    parse_opt: Some(parse_opt),
    print_opt: Some(print_opt),
    print_xstats: None,
    print_help: Some(print_help),
    parse_ifla_xstats: None,
    print_ifla_xstats: None,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_in_any_order() {
        let a = parse_args(&["remote", "10.0.0.2:4789", "id", "7", "local", "[fd00::1]:4789"], Mode::Add).unwrap();
        assert_eq!(a, LinkArgs { id: Some(7), local: Some("[fd00::1]:4789".into()), remote: "10.0.0.2:4789".into() });
    }

    #[test]
    fn set_needs_only_remote() {
        let a = parse_args(&["remote", "10.0.0.9:4789"], Mode::Set).unwrap();
        assert_eq!(a, LinkArgs { id: None, local: None, remote: "10.0.0.9:4789".into() });
        assert_eq!(encode(&a).len(), 4 + 16, "only the remote attribute");
        assert!(parse_args(&["id", "7"], Mode::Set).unwrap_err().contains("missing \"remote"));
        assert!(parse_args(&["remote", "10.0.0.9"], Mode::Add).unwrap_err().contains("missing \"id"));
        let confirmed = parse_args(&["id", "7", "remote", "b"], Mode::Set).unwrap();
        assert_eq!(confirmed.id, Some(7));
    }

    #[test]
    fn refuses_bad_input() {
        for (args, want) in [
            (&["id", "7", "local", "10.0.0.1"][..], "missing \"remote"),
            (&["id", "0", "local", "a", "remote", "b"][..], "outside"),
            (&["id", "4294967296", "local", "a", "remote", "b"][..], "not a connector id"),
            (&["id", "x", "local", "a", "remote", "b"][..], "not a connector id"),
            (&["id", "7", "id", "8", "local", "a", "remote", "b"][..], "twice"),
            (&["id", "7", "local", "a", "local", "b", "remote", "c"][..], "twice"),
            (&["id", "7", "local"][..], "needs an address"),
            (&["id", "7", "bogus", "1"][..], "unknown option"),
            (&[][..], "missing \"id"),
        ] {
            let e = parse_args(args, Mode::Add).unwrap_err();
            assert!(e.contains(want), "{args:?}: {e}");
        }
        let long = "1".repeat(ADDR_MAX + 1);
        assert!(parse_args(&["id", "1", "local", &long, "remote", "b"], Mode::Add).is_err());
        assert_eq!(parse_args(&["help"], Mode::Add).unwrap_err(), USAGE);
    }

    #[test]
    fn encodes_aligned_attributes_that_decode_back() {
        let a = LinkArgs { id: Some(42), local: Some("10.0.0.1:4789".into()), remote: "10.0.0.2".into() };
        let b = encode(&a);
        assert_eq!(b.len() % 4, 0);
        // id: 4 + 4; local: 4 + 14 -> 20; remote: 4 + 9 -> 16
        assert_eq!(b.len(), 8 + 20 + 16);
        assert_eq!(u16::from_ne_bytes([b[0], b[1]]), 8);
        assert_eq!(u16::from_ne_bytes([b[2], b[3]]), ATTR_ID);
        let local = &b[12..12 + 14];
        let remote = &b[32..32 + 9];
        assert_eq!(decode(Some(&b[4..8]), Some(local), Some(remote)), (Some(42), a.local, Some(a.remote)));
    }
}
