//! The gap a continuous flow saw: computed from the replies of the probe (`vwire-migrate probe`), which sends
//! sequence-numbered UDP datagrams at a fixed interval to an echo in the moving guest and prints one line per echo
//! it receives back. Pure functions of those lines.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Probe datagram: magic, sequence number, send time (µs since the Unix epoch), all big-endian.
pub const PROBE_MAGIC: u32 = 0x7677_6d67; // "vwmg"
pub const PROBE_LEN: usize = 20;

pub fn encode_probe(seq: u64, sent_us: u64) -> [u8; PROBE_LEN] {
    let mut b = [0u8; PROBE_LEN];
    b[0..4].copy_from_slice(&PROBE_MAGIC.to_be_bytes());
    b[4..12].copy_from_slice(&seq.to_be_bytes());
    b[12..20].copy_from_slice(&sent_us.to_be_bytes());
    b
}

/// (seq, sent_us) of an echoed probe datagram, or `None` for anything else.
pub fn decode_probe(b: &[u8]) -> Option<(u64, u64)> {
    if b.len() != PROBE_LEN || b[0..4] != PROBE_MAGIC.to_be_bytes() {
        return None;
    }
    let seq = u64::from_be_bytes(b[4..12].try_into().ok()?);
    let sent = u64::from_be_bytes(b[12..20].try_into().ok()?);
    Some((seq, sent))
}

/// One echo received by the probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub seq: u64,
    pub sent_us: u64,
    pub recv_us: u64,
}

/// A line of the probe's output: `r SEQ SENT_US RECV_US` per echo, `s SENT` once at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeLine {
    Reply(Reply),
    Sent(u64),
}

pub fn parse_probe_line(line: &str) -> Option<ProbeLine> {
    let f: Vec<&str> = line.split_whitespace().collect();
    match f.as_slice() {
        ["r", s, t, r] => Some(ProbeLine::Reply(Reply {
            seq: s.parse().ok()?,
            sent_us: t.parse().ok()?,
            recv_us: r.parse().ok()?,
        })),
        ["s", n] => Some(ProbeLine::Sent(n.parse().ok()?)),
        _ => None,
    }
}

/// What the flow saw.
#[derive(Clone, Debug, PartialEq)]
pub struct GapReport {
    /// Datagrams the probe sent (sequence numbers `0..sent`).
    pub sent: u64,
    /// Distinct sequence numbers echoed back.
    pub received: u64,
    /// `sent - received`: never echoed (lost either way, or dropped while the connector moved).
    pub lost: u64,
    /// Echoes of a sequence number already received.
    pub duplicates: u64,
    /// Echoes that arrived after one of a higher sequence number.
    pub reordered: u64,
    /// Echoes whose round trip exceeded the window (out of window).
    pub late: u64,
    /// The longest consecutive run of sequence numbers never echoed.
    pub longest_lost_run: u64,
    /// The outage: the longest stretch of send time over which every datagram was lost, in ms — from the send time
    /// of the last datagram echoed before a run of losses to that of the first echoed after it (or to the end of the
    /// observation if none was). 0 when nothing was lost. This is the time the connector was dark for the flow; a
    /// stall of the probe's own host (no datagrams sent, none lost) does not count.
    pub outage_ms: f64,
    /// When the outage began: send time of the last datagram echoed before it (µs since the epoch; 0 if none).
    pub outage_from_us: u64,
    /// The longest time without any echo at the receiver, in ms, between the first echo and the end of the
    /// observation. It includes the outage, and also any time the probe's host did not run the probe at all (under
    /// QEMU TCG on a loaded machine: up to seconds), so it bounds the outage from above.
    pub longest_silence_ms: f64,
    /// When that silence began (receive time of the echo before it, µs since the epoch).
    pub silence_from_us: u64,
    /// Echoes of datagrams sent at or after `after_us` (the end of the move): > 0 means the flow resumed.
    pub after_move: u64,
}

/// Computes the report. `replies` in the order received; `end_us` is when the observation ended (the probe stopped
/// sending), so that a flow that never resumed shows a silence up to then; `after_us` is the end of the move.
pub fn analyze(sent: u64, replies: &[Reply], window_us: u64, end_us: u64, after_us: u64) -> GapReport {
    let mut seen = BTreeSet::new();
    let mut sent_of = BTreeMap::new();
    let mut duplicates = 0;
    let mut reordered = 0;
    let mut late = 0;
    let mut max_seq: Option<u64> = None;
    let mut longest_silence_us = 0u64;
    let mut silence_from_us = 0u64;
    let mut prev_recv: Option<u64> = None;
    let mut after_move = 0;
    for r in replies {
        if r.seq >= sent {
            // Not one the probe claims to have sent: ignore rather than count it as received.
            continue;
        }
        if !seen.insert(r.seq) {
            duplicates += 1;
            continue;
        }
        sent_of.insert(r.seq, r.sent_us);
        if max_seq.is_some_and(|m| r.seq < m) {
            reordered += 1;
        }
        max_seq = Some(max_seq.map_or(r.seq, |m| m.max(r.seq)));
        if r.recv_us.saturating_sub(r.sent_us) > window_us {
            late += 1;
        }
        if r.sent_us >= after_us {
            after_move += 1;
        }
        if let Some(p) = prev_recv {
            let d = r.recv_us.saturating_sub(p);
            if d > longest_silence_us {
                longest_silence_us = d;
                silence_from_us = p;
            }
        }
        prev_recv = Some(prev_recv.map_or(r.recv_us, |p| p.max(r.recv_us)));
    }
    if let Some(p) = prev_recv {
        let d = end_us.saturating_sub(p);
        if d > longest_silence_us {
            longest_silence_us = d;
            silence_from_us = p;
        }
    }
    let mut longest_lost_run = 0;
    let mut next = 0u64;
    for &s in seen.iter().chain(std::iter::once(&sent)) {
        longest_lost_run = longest_lost_run.max(s - next);
        next = s + 1;
    }
    // Each run of losses: (send time of the echoed datagram before it, send time of the one after it, or the end).
    let mut outage_us = 0u64;
    let mut outage_from_us = 0u64;
    let mut runs = Vec::new();
    let mut prev: Option<(u64, u64)> = None;
    for (&s, &t) in &sent_of {
        match prev {
            Some((ps, pt)) if s > ps + 1 => runs.push((pt, t)),
            _ => {}
        }
        prev = Some((s, t));
    }
    match prev {
        Some((ps, pt)) if ps + 1 < sent => runs.push((pt, end_us)),
        _ => {}
    }
    for (from, to) in runs {
        if to.saturating_sub(from) > outage_us {
            outage_us = to.saturating_sub(from);
            outage_from_us = from;
        }
    }
    let received = seen.len() as u64;
    GapReport {
        sent,
        received,
        lost: sent - received,
        duplicates,
        reordered,
        late,
        longest_lost_run,
        outage_ms: outage_us as f64 / 1000.0,
        outage_from_us,
        longest_silence_ms: longest_silence_us as f64 / 1000.0,
        silence_from_us,
        after_move,
    }
}

impl fmt::Display for GapReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent={} received={} lost={} longest_lost_run={} outage_ms={:.1} duplicates={} reordered={} late={} longest_silence_ms={:.1} resumed={}",
            self.sent,
            self.received,
            self.lost,
            self.longest_lost_run,
            self.outage_ms,
            self.duplicates,
            self.reordered,
            self.late,
            self.longest_silence_ms,
            if self.after_move > 0 { "yes" } else { "no" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replies to a 10 ms flow of `n` datagrams starting at t=1 s with a 2 ms round trip, except `missing`.
    fn flow(n: u64, missing: &[u64]) -> Vec<Reply> {
        (0..n)
            .filter(|s| !missing.contains(s))
            .map(|s| Reply {
                seq: s,
                sent_us: 1_000_000 + s * 10_000,
                recv_us: 1_002_000 + s * 10_000,
            })
            .collect()
    }

    #[test]
    fn probe_codec() {
        let b = encode_probe(42, 1234);
        assert_eq!(decode_probe(&b), Some((42, 1234)));
        assert_eq!(decode_probe(&b[..19]), None);
        let mut c = b;
        c[0] ^= 1;
        assert_eq!(decode_probe(&c), None);
        assert_eq!(
            parse_probe_line("r 3 10 20"),
            Some(ProbeLine::Reply(Reply {
                seq: 3,
                sent_us: 10,
                recv_us: 20
            }))
        );
        assert_eq!(parse_probe_line("s 99"), Some(ProbeLine::Sent(99)));
        assert_eq!(parse_probe_line("r 3 x 20"), None);
        assert_eq!(parse_probe_line("probe: started"), None);
    }

    #[test]
    fn no_gap() {
        let r = analyze(100, &flow(100, &[]), 1_000_000, 1_000_000 + 100 * 10_000, 1_500_000);
        assert_eq!(
            (
                r.received,
                r.lost,
                r.longest_lost_run,
                r.duplicates,
                r.reordered,
                r.late
            ),
            (100, 0, 0, 0, 0, 0)
        );
        assert!((r.longest_silence_ms - 10.0).abs() < 1e-9);
        assert_eq!(r.outage_ms, 0.0);
        assert_eq!(r.after_move, 50);
    }

    #[test]
    fn a_gap_of_25_datagrams() {
        let missing: Vec<u64> = (40..65).collect();
        let r = analyze(100, &flow(100, &missing), 1_000_000, 2_000_000, 1_500_000);
        assert_eq!(r.lost, 25);
        assert_eq!(r.longest_lost_run, 25);
        // Echo 39 at 1.392 s, echo 65 at 1.652 s: 260 ms of silence.
        assert!((r.longest_silence_ms - 260.0).abs() < 1e-9);
        assert_eq!(r.silence_from_us, 1_392_000);
        // Datagram 39 sent at 1.39 s, 65 at 1.65 s: the connector was dark for 260 ms of the flow.
        assert!((r.outage_ms - 260.0).abs() < 1e-9);
        assert_eq!(r.outage_from_us, 1_390_000);
        assert!(r.to_string().contains("lost=25"));
    }

    #[test]
    fn never_resumed_is_silence_to_the_end() {
        let missing: Vec<u64> = (50..100).collect();
        let r = analyze(100, &flow(100, &missing), 1_000_000, 3_000_000, 1_500_000);
        assert_eq!(r.after_move, 0);
        assert_eq!(r.longest_lost_run, 50);
        assert!((r.longest_silence_ms - (3_000_000.0 - 1_492_000.0) / 1000.0).abs() < 1e-9);
        assert!((r.outage_ms - (3_000_000.0 - 1_490_000.0) / 1000.0).abs() < 1e-9);
        assert!(r.to_string().ends_with("resumed=no"));
    }

    #[test]
    fn a_stalled_prober_is_silence_but_no_outage() {
        // Nothing sent or received for 2 s (the probe's host did not run), nothing lost.
        let mut v = flow(100, &[]);
        for r in v.iter_mut().skip(50) {
            r.sent_us += 2_000_000;
            r.recv_us += 2_000_000;
        }
        let r = analyze(100, &v, 1_000_000, 4_000_000, 1_500_000);
        assert_eq!((r.lost, r.outage_ms), (0, 0.0));
        assert!((r.longest_silence_ms - 2010.0).abs() < 1e-9);
    }

    #[test]
    fn leading_and_trailing_losses_count() {
        let r = analyze(10, &flow(10, &[0, 1, 2, 9]), 1_000_000, 1_100_000, 0);
        assert_eq!(r.lost, 4);
        assert_eq!(r.longest_lost_run, 3);
        let r = analyze(10, &[], 1_000_000, 1_100_000, 0);
        assert_eq!((r.lost, r.longest_lost_run, r.longest_silence_ms), (10, 10, 0.0));
    }

    #[test]
    fn duplicates_reordering_late_and_strays() {
        let mut v = flow(5, &[]);
        v.swap(1, 2);
        v.push(v[0]);
        v.push(Reply {
            seq: 77,
            sent_us: 0,
            recv_us: 0,
        });
        v[4].recv_us = v[4].sent_us + 2_000_000;
        let r = analyze(5, &v, 1_000_000, 1_100_000, 0);
        assert_eq!((r.received, r.duplicates, r.reordered, r.late, r.lost), (5, 1, 1, 1, 0));
    }
}
