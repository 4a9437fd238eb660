//! The block requests a device has in service (dissertation §6.2.4; `device.rs`'s worker).
//!
//! The worker keeps up to [`WINDOW`] requests in service at once. It admits them in the order they were queued, as
//! long as none touches a byte that a request in service touches (so no page ever has two requests in flight, the
//! page map's rule), sends their repository requests at once, and completes each request as soon as the replies to
//! *its own* repository requests are in — not when those of others are. This module is that bookkeeping, generic
//! over the request type: which places are taken, the byte range of each, how many repository requests each still
//! waits for, and its first error.

/// Most requests in service at once.
pub const WINDOW: usize = 32;

/// The bytes of the device a request touches: `len` bytes from `pos` (0 for a flush, which touches none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub pos: u64,
    pub len: u32,
}

impl Span {
    /// Whether the two spans share a byte (an empty span shares none).
    pub fn overlaps(&self, o: &Span) -> bool {
        let end = self.pos.saturating_add(u64::from(self.len));
        let oend = o.pos.saturating_add(u64::from(o.len));
        self.len > 0 && o.len > 0 && self.pos < oend && o.pos < end
    }
}

/// One request in service.
struct Place<R, E> {
    rq: R,
    span: Span,
    /// Repository requests sent for it whose replies are not applied yet.
    out: u32,
    /// Its first error.
    err: Option<E>,
}

/// Why [`Window::admit`] gave a request back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Every place is taken.
    Full,
    /// It touches a byte a request in service touches: it waits until that one is done.
    Overlaps,
}

/// The requests in service: `R` is the request, `E` its error.
pub struct Window<R, E> {
    places: [Option<Place<R, E>>; WINDOW],
    busy: usize,
}

impl<R, E: Copy> Default for Window<R, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R, E: Copy> Window<R, E> {
    /// An empty window.
    pub const fn new() -> Self {
        Self { places: [const { None }; WINDOW], busy: 0 }
    }

    /// Requests in service.
    pub fn busy(&self) -> usize {
        self.busy
    }

    /// Whether no request is in service.
    pub fn is_empty(&self) -> bool {
        self.busy == 0
    }

    /// Takes `rq`, touching `span`, into service. Returns its place, or gives it back with the reason.
    pub fn admit(&mut self, rq: R, span: Span) -> Result<usize, (R, Refused)> {
        if self.places.iter().flatten().any(|p| p.span.overlaps(&span)) {
            return Err((rq, Refused::Overlaps));
        }
        let Some((at, slot)) = self.places.iter_mut().enumerate().find(|(_, p)| p.is_none()) else {
            return Err((rq, Refused::Full));
        };
        *slot = Some(Place { rq, span, out: 0, err: None });
        self.busy = self.busy.saturating_add(1);
        Ok(at)
    }

    fn place(&self, at: usize) -> Option<&Place<R, E>> {
        self.places.get(at).and_then(Option::as_ref)
    }

    fn place_mut(&mut self, at: usize) -> Option<&mut Place<R, E>> {
        self.places.get_mut(at).and_then(Option::as_mut)
    }

    /// The request at `at`, if one is in service there.
    pub fn get(&self, at: usize) -> Option<&R> {
        self.place(at).map(|p| &p.rq)
    }

    /// A repository request was sent for the request at `at`: it waits for one more reply.
    pub fn sent(&mut self, at: usize) {
        if let Some(p) = self.place_mut(at) {
            p.out = p.out.saturating_add(1);
        }
    }

    /// A reply for the request at `at` was applied (or its repository request failed).
    pub fn answered(&mut self, at: usize) {
        if let Some(p) = self.place_mut(at) {
            p.out = p.out.saturating_sub(1);
        }
    }

    /// Records an error of the request at `at`; the first one is kept.
    pub fn fail(&mut self, at: usize, e: E) {
        if let Some(p) = self.place_mut(at) {
            p.err.get_or_insert(e);
        }
    }

    /// Whether the request at `at` is in service and waits for no reply.
    pub fn is_answered(&self, at: usize) -> bool {
        self.place(at).is_some_and(|p| p.out == 0)
    }

    /// The first place (from `from` on) whose request waits for no reply.
    pub fn next_answered(&self, from: usize) -> Option<usize> {
        (from..WINDOW).find(|&at| self.is_answered(at))
    }

    /// Takes the request at `at` out of service, with its outcome (its first error, if any).
    pub fn complete(&mut self, at: usize) -> Option<(R, Result<(), E>)> {
        let p = self.places.get_mut(at).and_then(Option::take)?;
        self.busy = self.busy.saturating_sub(1);
        Some((p.rq, p.err.map_or(Ok(()), Err)))
    }

    /// Forgets every reply that is awaited (when there is none to await: a broken count must not hang the worker).
    pub fn forget_replies(&mut self) {
        for p in self.places.iter_mut().flatten() {
            p.out = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(pos: u64, len: u32) -> Span {
        Span { pos, len }
    }

    #[test]
    fn spans_overlap_only_when_they_share_a_byte() {
        assert!(span(0, 4096).overlaps(&span(4095, 1)));
        assert!(!span(0, 4096).overlaps(&span(4096, 4096)));
        assert!(!span(8192, 4096).overlaps(&span(4096, 4096)));
        assert!(!span(0, 0).overlaps(&span(0, 4096)), "a flush touches nothing");
        assert!(span(u64::MAX - 1, 4096).overlaps(&span(u64::MAX - 1, 1)), "no overflow at the end");
    }

    #[test]
    fn an_overlapping_request_is_given_back_until_the_other_is_done() {
        let mut w: Window<u32, i32> = Window::new();
        let a = w.admit(1, span(0, 8192)).ok();
        assert_eq!(a, Some(0));
        assert_eq!(w.admit(2, span(4096, 4096)).err(), Some((2, Refused::Overlaps)));
        assert_eq!(w.admit(3, span(8192, 4096)).ok(), Some(1));
        assert_eq!(w.admit(4, span(0, 0)).ok(), Some(2), "a flush is admitted beside anything");
        assert_eq!(w.complete(0), Some((1, Ok(()))));
        assert_eq!(w.admit(2, span(4096, 4096)).ok(), Some(0), "the freed place is taken again");
        assert_eq!(w.busy(), 3);
    }

    #[test]
    fn a_full_window_refuses() {
        let mut w: Window<usize, i32> = Window::new();
        for i in 0..WINDOW {
            assert_eq!(w.admit(i, span(i as u64 * 4096, 4096)).ok(), Some(i));
        }
        assert_eq!(w.admit(99, span(1 << 40, 4096)).err(), Some((99, Refused::Full)));
        assert_eq!(w.busy(), WINDOW);
    }

    #[test]
    fn a_request_completes_when_its_own_replies_are_in() {
        let mut w: Window<u32, i32> = Window::new();
        let a = w.admit(1, span(0, 4096)).unwrap_or(usize::MAX);
        let b = w.admit(2, span(4096, 4096)).unwrap_or(usize::MAX);
        w.sent(a);
        w.sent(a);
        w.sent(b);
        assert_eq!(w.next_answered(0), None);
        w.answered(b);
        assert_eq!(w.next_answered(0), Some(b), "b does not wait for a's replies");
        assert!(!w.is_answered(a));
        w.answered(a);
        assert!(!w.is_answered(a));
        w.answered(a);
        assert!(w.is_answered(a));
        w.answered(a);
        assert!(w.is_answered(a), "an extra reply does not wrap the count");
    }

    #[test]
    fn the_first_error_is_kept() {
        let mut w: Window<u32, i32> = Window::new();
        let a = w.admit(1, span(0, 4096)).unwrap_or(usize::MAX);
        w.fail(a, 5);
        w.fail(a, 7);
        assert_eq!(w.complete(a), Some((1, Err(5))));
        assert_eq!(w.complete(a), None, "completed once");
        assert!(w.is_empty());
    }

    #[test]
    fn forgetting_replies_answers_everything() {
        let mut w: Window<u32, i32> = Window::new();
        let a = w.admit(1, span(0, 4096)).unwrap_or(usize::MAX);
        w.sent(a);
        w.forget_replies();
        assert_eq!(w.next_answered(0), Some(a));
        assert_eq!(w.next_answered(a + 1), None);
    }
}
