//! Model check of the write-behind pool together with the page map and the store's slot map: under any interleaving
//! of the worker (write a page: free its old store slot, take the next free one, claim a buffer, queue it; reap) and
//! any number of writers (take the oldest buffer, or a run of consecutive store slots from the oldest on; finish any
//! buffer being written, in any order, as several writers do), the writers take buffers in the order they were queued
//! but never one whose store slot is being written (slots are freed and handed out again while old writes to them are
//! still queued), the worker is refused a buffer exactly when all are queued or being written, every queued write
//! completes exactly once, and the local store (a model disk written in the order the buffers finish) holds each
//! page's latest content in the slot the page map names whenever the map says its local copy is valid.

use coopswap_proto::pagemap::{PageFlags, PageRecord, NO_LOCAL};
use coopswap_proto::slots::{words_for, Layout, Slots};
use coopswap_proto::writebehind::{ArrayPool, Completion};
use proptest::prelude::*;
use std::collections::{HashMap, VecDeque};

const N: usize = 4;
const PAGES: u64 = 5;

#[derive(Clone, Debug)]
enum Step {
    /// The worker writes page (new content).
    Write(u64),
    /// The writer takes the next buffer.
    Take,
    /// The writer takes the next run of at most this many buffers (consecutive pages, FIFO prefix).
    TakeRun(usize),
    /// A writer finishes one of the buffers being written (the index modulo their number; ok or failed).
    Finish(usize, bool),
    /// The worker applies completions.
    Reap,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..PAGES).prop_map(Step::Write),
        2 => Just(Step::Take),
        2 => (0..=N).prop_map(Step::TakeRun),
        2 => (0..N).prop_map(|i| Step::Finish(i, true)),
        1 => (0..N).prop_map(|i| Step::Finish(i, false)),
        1 => Just(Step::Reap),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn writes_land_in_order_and_complete_once(
        steps in proptest::collection::vec(step(), 1..120),
        layout in prop_oneof![Just(Layout::Fixed), Just(Layout::Log)],
    ) {
        let mut pool: ArrayPool<N> = ArrayPool::new();
        let mut records: Vec<PageRecord> = (0..PAGES).map(PageRecord::new).collect();
        // As many store slots as pages, as in the kernel: the tightest reuse of freed slots.
        let slots = Slots::with(vec![0u64; words_for(PAGES) as usize], PAGES);
        prop_assert!(slots.is_some());
        let Some(mut slots) = slots else { return Ok(()) };
        // disk[slot] = (page, seq) the model store holds there (a write's seq stands for its content).
        let mut disk: HashMap<u64, (u64, u32)> = HashMap::new();
        // buffer -> (page, seq, store slot)
        let mut buffers: HashMap<usize, (u64, u32, u64)> = HashMap::new();
        let mut fifo: VecDeque<usize> = VecDeque::new();
        let mut writing: VecDeque<usize> = VecDeque::new();
        let mut busy = 0usize;
        let mut outstanding: HashMap<(u64, u32), ()> = HashMap::new();
        let apply = |records: &mut Vec<PageRecord>, c: Completion, outstanding: &mut HashMap<(u64, u32), ()>| {
            assert!(outstanding.remove(&(c.page, c.seq)).is_some(), "completion {c:?} twice or never queued");
            records[c.page as usize].complete_local(c.seq, c.ok);
        };
        for s in steps {
            match s {
                Step::Write(page) => {
                    let claimed = pool.claim();
                    prop_assert_eq!(claimed.is_none(), busy == N);
                    let Some((at, done)) = claimed else { continue };
                    if let Some(c) = done {
                        apply(&mut records, c, &mut outstanding);
                    }
                    let old = records[page as usize].local;
                    if old != NO_LOCAL {
                        prop_assert!(slots.free(old));
                    }
                    let slot = slots.take(layout, page);
                    prop_assert!(slot.is_some(), "a page being written always finds a slot");
                    let Some(slot) = slot else { continue };
                    let plan = records[page as usize].begin_write(0, None, Some(slot));
                    prop_assert!(pool.queue(at, page, plan.seq, slot));
                    buffers.insert(at, (page, plan.seq, slot));
                    fifo.push_back(at);
                    outstanding.insert((page, plan.seq), ());
                    busy += 1;
                }
                Step::Take => {
                    let got = pool.take_next();
                    // The oldest buffer, unless its store slot is being written.
                    let free = |at: &usize| !writing.iter().any(|w| buffers[w].2 == buffers[at].2);
                    let want = fifo.front().copied().filter(free);
                    if want.is_some() {
                        fifo.pop_front();
                    }
                    prop_assert_eq!(got.map(|g| g.0), want);
                    if let Some((at, slot)) = got {
                        prop_assert_eq!(Some(&slot), buffers.get(&at).map(|b| &b.2));
                        writing.push_back(at);
                    }
                }
                Step::TakeRun(k) => {
                    let mut out = vec![(usize::MAX, 0u64); k];
                    let n = pool.take_run(&mut out);
                    // The model's run: the FIFO's oldest buffer, then each next one whose slot is the previous + 1.
                    let mut want = Vec::new();
                    while want.len() < k {
                        let Some(&at) = fifo.front() else { break };
                        let slot = buffers[&at].2;
                        if writing.iter().any(|w| buffers[w].2 == slot) {
                            break;
                        }
                        if let Some(&(_, prev)) = want.last() {
                            if slot != prev + 1 {
                                break;
                            }
                        }
                        fifo.pop_front();
                        want.push((at, slot));
                    }
                    prop_assert_eq!(&out[..n], &want[..]);
                    writing.extend(want.iter().map(|w| w.0));
                }
                Step::Finish(i, ok) => {
                    let len = writing.len();
                    if let Some(at) = i.checked_rem(len).and_then(|i| writing.remove(i)) {
                        let (page, seq, slot) = buffers[&at];
                        if ok {
                            disk.insert(slot, (page, seq));
                        }
                        prop_assert!(pool.finish(at, ok));
                        busy -= 1;
                    }
                }
                Step::Reap => {
                    pool.reap(|c| apply(&mut records, c, &mut outstanding));
                }
            }
            for p in 0..PAGES {
                let queued = fifo.iter().chain(writing.iter()).any(|at| buffers[at].0 == p);
                prop_assert_eq!(pool.pending(p), queued);
                // A local copy the map calls valid holds the page's latest content, in the slot the map names.
                let r = &records[p as usize];
                if r.flags.has(PageFlags::LOCAL_VALID) {
                    prop_assert_eq!(disk.get(&r.local).copied(), Some((p, r.seq)));
                }
                if r.local != NO_LOCAL {
                    prop_assert!(slots.is_used(r.local));
                }
            }
            prop_assert_eq!(pool.idle(), fifo.is_empty() && writing.is_empty());
            prop_assert_eq!(pool.in_flight(), fifo.len() + writing.len());
        }
        // Drain: everything completes exactly once.
        for at in writing.drain(..) {
            prop_assert!(pool.finish(at, true));
        }
        while let Some((at, _)) = pool.take_next() {
            prop_assert!(pool.finish(at, true));
        }
        prop_assert!(pool.idle());
        pool.reap(|c| apply(&mut records, c, &mut outstanding));
        prop_assert!(outstanding.is_empty(), "never completed: {:?}", outstanding.keys().collect::<Vec<_>>());
    }
}
