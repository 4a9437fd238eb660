//! Model check of the worker's window of requests in service: under any interleaving of admissions (requests over
//! random page ranges, in queue order: a refused one stays first in line), repository requests sent, replies applied
//! in any order and completions, no two requests in service ever share a byte, a request completes only when every
//! repository request sent for it was answered and with the first error recorded for it, every admitted request
//! completes exactly once, and requests are admitted in the order they were queued.

use coopswap_proto::window::{Refused, Span, Window, WINDOW};
use proptest::prelude::*;
use std::collections::{HashMap, VecDeque};

#[derive(Clone, Debug)]
enum Step {
    /// A request over pages `first .. first + count` is queued.
    Queue(u64, u32),
    /// The worker admits from the queue until it is refused.
    Admit,
    /// A repository request is sent for the request in service at this index (modulo those in service).
    Send(usize),
    /// The reply of one outstanding repository request (this index modulo their number) is applied.
    Reply(usize),
    /// A request in service fails (this index modulo those in service) with this error.
    Fail(usize, u8),
    /// The worker completes every request that waits for no reply.
    Complete,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..12u64, 0..4u32).prop_map(|(f, c)| Step::Queue(f, c)),
        2 => Just(Step::Admit),
        3 => (0..64usize).prop_map(Step::Send),
        3 => (0..256usize).prop_map(Step::Reply),
        1 => (0..64usize, 0..4u8).prop_map(|(i, e)| Step::Fail(i, e)),
        2 => Just(Step::Complete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn window_model(steps in proptest::collection::vec(step(), 1..200)) {
        let mut w: Window<u64, u8> = Window::new();
        let mut queue: VecDeque<(u64, Span)> = VecDeque::new();
        let mut next_id = 0u64;
        let mut admitted: Vec<u64> = Vec::new();
        let mut in_service: HashMap<usize, (u64, Span, u32, Option<u8>)> = HashMap::new();
        let mut outstanding: Vec<usize> = Vec::new();
        let mut completed: Vec<u64> = Vec::new();
        for s in steps {
            match s {
                Step::Queue(first, count) => {
                    queue.push_back((next_id, Span { pos: first * 4096, len: count * 4096 }));
                    next_id += 1;
                }
                Step::Admit => {
                    while let Some((id, span)) = queue.pop_front() {
                        match w.admit(id, span) {
                            Ok(at) => {
                                prop_assert!(!in_service.contains_key(&at), "a taken place handed out");
                                in_service.insert(at, (id, span, 0, None));
                                admitted.push(id);
                            }
                            Err((back, why)) => {
                                prop_assert_eq!(back, id);
                                let overlaps = in_service.values().any(|(_, o, _, _)| o.overlaps(&span));
                                prop_assert_eq!(why == Refused::Overlaps, overlaps);
                                prop_assert_eq!(why == Refused::Full, !overlaps && in_service.len() == WINDOW);
                                queue.push_front((id, span));
                                break;
                            }
                        }
                    }
                }
                Step::Send(i) => {
                    let mut places: Vec<usize> = in_service.keys().copied().collect();
                    places.sort_unstable();
                    if let Some(&at) = places.get(i % places.len().max(1)) {
                        w.sent(at);
                        outstanding.push(at);
                        if let Some(e) = in_service.get_mut(&at) {
                            e.2 += 1;
                        }
                    }
                }
                Step::Reply(i) => {
                    if !outstanding.is_empty() {
                        let at = outstanding.remove(i % outstanding.len());
                        w.answered(at);
                        if let Some(e) = in_service.get_mut(&at) {
                            e.2 -= 1;
                        }
                    }
                }
                Step::Fail(i, err) => {
                    let mut places: Vec<usize> = in_service.keys().copied().collect();
                    places.sort_unstable();
                    if let Some(&at) = places.get(i % places.len().max(1)) {
                        w.fail(at, err);
                        if let Some(e) = in_service.get_mut(&at) {
                            e.3.get_or_insert(err);
                        }
                    }
                }
                Step::Complete => {
                    let mut from = 0;
                    while let Some(at) = w.next_answered(from) {
                        let model = in_service.remove(&at);
                        prop_assert!(model.is_some(), "completed a place not in service");
                        let Some((id, _, out, err)) = model else { break };
                        prop_assert_eq!(out, 0, "completed while replies were awaited");
                        prop_assert_eq!(w.complete(at), Some((id, err.map_or(Ok(()), Err))));
                        completed.push(id);
                        from = at + 1;
                    }
                    for (at, (_, _, out, _)) in &in_service {
                        prop_assert!(*out > 0 && !w.is_answered(*at), "an answered request was left in service");
                    }
                }
            }
            // No two requests in service share a byte; the window counts what the model holds.
            let spans: Vec<Span> = in_service.values().map(|e| e.1).collect();
            for (i, a) in spans.iter().enumerate() {
                for b in spans.iter().skip(i + 1) {
                    prop_assert!(!a.overlaps(b), "two requests in service overlap: {:?} {:?}", a, b);
                }
            }
            prop_assert_eq!(w.busy(), in_service.len());
            for (at, (id, _, _, _)) in &in_service {
                prop_assert_eq!(w.get(*at), Some(id));
            }
        }
        // Admitted in queue order; completed at most once each.
        prop_assert!(admitted.windows(2).all(|p| p[0] < p[1]), "admitted out of order: {:?}", admitted);
        let mut c = completed.clone();
        c.sort_unstable();
        c.dedup();
        prop_assert_eq!(c.len(), completed.len(), "a request completed twice");
    }
}
