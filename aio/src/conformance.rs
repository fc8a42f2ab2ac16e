//! The aio contract as executable checks, generic over backends.
//!
//! Every backend of tilewire — [`MemAio`](crate::MemAio) and
//! [`PcapTee`](crate::PcapTee) here, link transmit, io_uring and mmsg UDP,
//! AF_XDP in later crates — runs the same checks, so "implements [`Aio`]"
//! means one thing everywhere. A backend takes part by providing a
//! [`Harness`]: the aio under test plus a way to see what reached the far
//! side. Then one line runs the suite; for [`MemAio`](crate::MemAio):
//!
//! ```
//! use tilewire_aio::conformance::{self, Harness};
//! use tilewire_aio::MemAio;
//!
//! struct MemHarness(MemAio);
//!
//! impl Harness for MemHarness {
//!     type A = MemAio;
//!     fn aio(&mut self) -> &mut MemAio {
//!         &mut self.0
//!     }
//!     fn take_delivered(&mut self, _expect: usize) -> Vec<Vec<u8>> {
//!         self.0.drain().map(|p| p.buf.to_vec()).collect()
//!     }
//!     fn capacity(&self) -> Option<usize> {
//!         Some(self.0.pkt_cap())
//!     }
//! }
//!
//! conformance::run_all(|| MemHarness(MemAio::with_capacity(16)));
//! ```
//!
//! # What a harness promises
//!
//! - [`Harness::aio`] gives the backend's sending side.
//! - [`Harness::take_delivered`] returns, in order, every packet that reached
//!   the far side since the previous call, and frees whatever room they held
//!   (the harness drains its receive side). The checks always ask for a flush
//!   (an empty batch with `flush = true`) before calling it, except where
//!   they check that `flush = true` alone is enough. A network harness polls
//!   its receive socket or ring until `expect` packets arrived or a bounded
//!   time passed (a second or so), then returns what it has; it must not
//!   block forever, and it returns at once when `expect` is 0 after one
//!   non-blocking poll.
//! - [`Harness::capacity`] is how many undrained packets the backend takes
//!   before it answers `Again`: `Some(n)` if the harness can make it push
//!   back (a small ring, a receive side that is not drained until
//!   `take_delivered`), `None` if it cannot, in which case the checks that
//!   need back-pressure are skipped. When `Some(n)`, `n` must be at least
//!   [`MIN_CAPACITY`].
//! - [`Harness::max_pkt_len`] is the longest packet the backend takes:
//!   `Some(n)` if longer ones are refused with `Inval` (most backends:
//!   [`BUF_MAX`]), `None` if it takes any length.
//!
//! Each check makes its own harness (through the closure given to
//! [`run_all`]), so a check never sees another's leftovers. A violation
//! panics with the check's name and what differed: the checks are meant to
//! run inside `#[test]` functions.

#![forbid(unsafe_code)]

use crate::{Aio, PktInfo, SendError, SendErrorKind, BUF_MAX};

/// Smallest [`Harness::capacity`] the checks work with.
pub const MIN_CAPACITY: usize = 8;

/// A backend under test and the far side it delivers to.
pub trait Harness {
    /// The aio under test.
    type A: Aio;

    /// The sending side of the backend.
    fn aio(&mut self) -> &mut Self::A;

    /// Everything delivered since the previous call, in order; frees the
    /// room those packets held. `expect` is how many packets the check
    /// expects, for harnesses that must wait for the network.
    fn take_delivered(&mut self, expect: usize) -> Vec<Vec<u8>>;

    /// Undrained packets the backend takes before answering `Again`, or
    /// `None` if it cannot be made to push back.
    fn capacity(&self) -> Option<usize>;

    /// Longest packet taken; longer ones are refused with `Inval`. `None`
    /// if any length is taken.
    fn max_pkt_len(&self) -> Option<usize> {
        Some(BUF_MAX)
    }
}

/// A check of the suite: its name and the function.
pub type Check<H> = (&'static str, fn(&mut H));

/// Every check, in the order [`run_all`] runs them.
pub fn checks<H: Harness>() -> Vec<Check<H>> {
    vec![
        ("empty_batch", check_empty_batch::<H>),
        ("zero_length_packets", check_zero_length_packets::<H>),
        ("duplicate_buffers", check_duplicate_buffers::<H>),
        ("overlapping_buffers", check_overlapping_buffers::<H>),
        ("max_len_accepted", check_max_len_accepted::<H>),
        (
            "too_long_is_inval_at_culprit",
            check_too_long_is_inval_at_culprit::<H>,
        ),
        ("resume_after_inval", check_resume_after_inval::<H>),
        ("again_when_full", check_again_when_full::<H>),
        (
            "retry_after_again_exactly_once",
            check_retry_after_again_exactly_once::<H>,
        ),
        ("flush_true_delivers", check_flush_true_delivers::<H>),
        (
            "flush_false_then_flush_delivers",
            check_flush_false_then_flush_delivers::<H>,
        ),
        ("retains_no_interest", check_retains_no_interest::<H>),
        ("order_across_sends", check_order_across_sends::<H>),
    ]
}

/// Runs every check, each on a fresh harness from `make`, and prints one
/// line per check to stderr.
///
/// # Panics
/// At the first check that finds the contract broken, naming it.
pub fn run_all<H: Harness>(mut make: impl FnMut() -> H) {
    for (name, check) in checks::<H>() {
        let mut harness = make();
        check(&mut harness);
        eprintln!("aio conformance: {name} ... ok");
    }
}

/// A packet of `len` bytes that differs from every other `seed`.
pub fn payload(seed: usize, len: usize) -> Vec<u8> {
    let tag = (seed as u32).to_le_bytes();
    (0..len)
        .map(|i| match tag.get(i) {
            Some(&b) => b,
            None => (seed.wrapping_mul(31) + i.wrapping_mul(7)) as u8,
        })
        .collect()
}

/// `n` packets of assorted lengths (1 to 1232 bytes, within the backend's
/// limit), distinct seeds from `first`.
fn assorted(h: &impl Harness, first: usize, n: usize) -> Vec<Vec<u8>> {
    const LENS: [usize; 6] = [1, 60, 200, 1232, 17, 512];
    let max = h.max_pkt_len().unwrap_or(BUF_MAX).max(1);
    (0..n)
        .map(|i| payload(first + i, LENS[(first + i) % LENS.len()].min(max)))
        .collect()
}

fn infos(bufs: &[Vec<u8>]) -> Vec<PktInfo<'_>> {
    bufs.iter().map(|b| PktInfo::new(b)).collect()
}

/// Asks for a flush (an empty batch, which must succeed), then takes.
fn flush_and_take<H: Harness>(h: &mut H, check: &str, expect: usize) -> Vec<Vec<u8>> {
    let r = h.aio().send(&[], true);
    assert_eq!(r, Ok(()), "{check}: an empty flushing send must succeed");
    h.take_delivered(expect)
}

fn expect_delivered<H: Harness>(h: &mut H, check: &str, want: &[Vec<u8>]) {
    let got = flush_and_take(h, check, want.len());
    assert_delivered(check, &got, want);
}

fn assert_delivered(check: &str, got: &[Vec<u8>], want: &[Vec<u8>]) {
    if got != want {
        let lens = |v: &[Vec<u8>]| v.iter().map(Vec::len).collect::<Vec<_>>();
        panic!(
            "{check}: delivered {} packets (lengths {:?}), expected {} (lengths {:?}); \
             first difference at index {}",
            got.len(),
            lens(got),
            want.len(),
            lens(want),
            got.iter().zip(want).take_while(|(a, b)| a == b).count(),
        );
    }
}

fn capacity_or_skip<H: Harness>(h: &H, check: &str) -> Option<usize> {
    match h.capacity() {
        Some(c) => {
            assert!(
                c >= MIN_CAPACITY,
                "{check}: harness capacity {c} < {MIN_CAPACITY}"
            );
            Some(c)
        }
        None => {
            eprintln!("aio conformance: {check} skipped: backend cannot push back");
            None
        }
    }
}

/// An empty batch succeeds, flushing or not, and delivers nothing.
pub fn check_empty_batch<H: Harness>(h: &mut H) {
    const C: &str = "empty_batch";
    assert_eq!(h.aio().send(&[], false), Ok(()), "{C}: flush = false");
    assert_eq!(h.aio().send(&[], true), Ok(()), "{C}: flush = true");
    expect_delivered(h, C, &[]);
}

/// Zero-length packets succeed and arrive as zero-length packets, in place.
pub fn check_zero_length_packets<H: Harness>(h: &mut H) {
    const C: &str = "zero_length_packets";
    let want = vec![Vec::new(), payload(1, 5), Vec::new()];
    assert_eq!(h.aio().send(&infos(&want), false), Ok(()), "{C}");
    expect_delivered(h, C, &want);
}

/// The same buffer several times in one batch is delivered each time.
pub fn check_duplicate_buffers<H: Harness>(h: &mut H) {
    const C: &str = "duplicate_buffers";
    let a = payload(7, 100);
    let b = payload(8, 40);
    let batch = [
        PktInfo::new(&a),
        PktInfo::new(&a),
        PktInfo::new(&b),
        PktInfo::new(&a),
    ];
    assert_eq!(h.aio().send(&batch, false), Ok(()), "{C}");
    expect_delivered(h, C, &[a.clone(), a.clone(), b, a]);
}

/// Descriptors naming overlapping parts of one buffer are each delivered
/// intact.
pub fn check_overlapping_buffers<H: Harness>(h: &mut H) {
    const C: &str = "overlapping_buffers";
    let buf = payload(9, 300);
    let ranges = [0..200, 100..300, 50..250, 0..300, 299..300, 150..150];
    let batch: Vec<PktInfo<'_>> = ranges
        .iter()
        .map(|r| PktInfo::new(&buf[r.clone()]))
        .collect();
    assert_eq!(h.aio().send(&batch, false), Ok(()), "{C}");
    let want: Vec<Vec<u8>> = ranges.iter().map(|r| buf[r.clone()].to_vec()).collect();
    expect_delivered(h, C, &want);
}

/// A packet of exactly the backend's maximum length is taken.
pub fn check_max_len_accepted<H: Harness>(h: &mut H) {
    const C: &str = "max_len_accepted";
    let Some(max) = h.max_pkt_len() else {
        eprintln!("aio conformance: {C} skipped: backend has no length bound");
        return;
    };
    let want = vec![payload(10, max)];
    assert_eq!(h.aio().send(&infos(&want), false), Ok(()), "{C}");
    expect_delivered(h, C, &want);
}

/// A packet over the maximum is `Inval` at its own index, and exactly the
/// packets before it are delivered.
pub fn check_too_long_is_inval_at_culprit<H: Harness>(h: &mut H) {
    const C: &str = "too_long_is_inval_at_culprit";
    let Some(max) = h.max_pkt_len() else {
        eprintln!("aio conformance: {C} skipped: backend has no length bound");
        return;
    };
    let mut bufs = assorted(h, 20, 4);
    bufs[2] = payload(22, max + 1);
    let r = h.aio().send(&infos(&bufs), true);
    assert_eq!(r, Err(SendError::inval(2)), "{C}");
    expect_delivered(h, C, &bufs[..2]);
}

/// After `Inval`, resuming from the packet after the culprit delivers the
/// rest, so the caller loses only the culprit.
pub fn check_resume_after_inval<H: Harness>(h: &mut H) {
    const C: &str = "resume_after_inval";
    let Some(max) = h.max_pkt_len() else {
        eprintln!("aio conformance: {C} skipped: backend has no length bound");
        return;
    };
    let mut bufs = assorted(h, 30, 6);
    bufs[0] = payload(30, max + 1);
    bufs[4] = payload(34, max + 100);
    let batch = infos(&bufs);
    let mut start = 0;
    for round in 0.. {
        assert!(round < 3, "{C}: too many rounds");
        match h.aio().send(&batch[start..], false) {
            Ok(()) => break,
            Err(e) => {
                assert_eq!(e.kind, SendErrorKind::Inval, "{C}: round {round}");
                assert!(
                    start + e.batch_idx == 0 || start + e.batch_idx == 4,
                    "{C}: culprit {e:?}"
                );
                start += e.batch_idx + 1;
            }
        }
    }
    let want = [1, 2, 3, 5].map(|i| bufs[i].clone());
    expect_delivered(h, C, &want);
}

/// With the backend full, a send is `Again` at the first packet that did not
/// fit, and exactly the packets before it are delivered, in order.
pub fn check_again_when_full<H: Harness>(h: &mut H) {
    const C: &str = "again_when_full";
    let Some(cap) = capacity_or_skip(h, C) else {
        return;
    };
    let bufs = assorted(h, 40, cap + 3);
    let r = h.aio().send(&infos(&bufs), false);
    assert_eq!(r, Err(SendError::again(cap)), "{C}: batch of capacity + 3");
    let one = payload(1000, 10);
    let r = h.aio().send(&[PktInfo::new(&one)], false);
    assert_eq!(r, Err(SendError::again(0)), "{C}: one more while full");
    expect_delivered(h, C, &bufs[..cap]);
}

/// Retrying from `batch_idx` after each `Again`, draining in between,
/// delivers every packet exactly once, in order.
pub fn check_retry_after_again_exactly_once<H: Harness>(h: &mut H) {
    const C: &str = "retry_after_again_exactly_once";
    let cap = capacity_or_skip(h, C);
    let n = cap.map_or(64, |c| 3 * c + 5);
    let bufs = assorted(h, 100, n);
    let batch = infos(&bufs);
    let mut got = Vec::new();
    let (mut start, mut agains) = (0, 0);
    while start < n {
        assert!(agains <= n, "{C}: no progress after {agains} retries");
        match h.aio().send(&batch[start..], false) {
            Ok(()) => start = n,
            Err(e) => {
                assert_eq!(e.kind, SendErrorKind::Again, "{C}: {e:?} at {start}");
                assert!(start + e.batch_idx < n, "{C}: index {e:?} past the batch");
                start += e.batch_idx;
                agains += 1;
                got.extend(flush_and_take(h, C, e.batch_idx));
            }
        }
    }
    got.extend(flush_and_take(h, C, n - got.len()));
    if cap.is_some() {
        assert!(
            agains >= 3,
            "{C}: {n} packets over capacity gave only {agains} Again"
        );
    }
    assert_delivered(C, &got, &bufs);
    expect_delivered(h, C, &[]);
}

/// `flush = true` on the send itself is enough to deliver the batch.
pub fn check_flush_true_delivers<H: Harness>(h: &mut H) {
    const C: &str = "flush_true_delivers";
    let bufs = assorted(h, 200, MIN_CAPACITY);
    assert_eq!(h.aio().send(&infos(&bufs), true), Ok(()), "{C}");
    let got = h.take_delivered(bufs.len());
    assert_delivered(C, &got, &bufs);
}

/// Sends with `flush = false` are delivered, in order, once a flush follows.
pub fn check_flush_false_then_flush_delivers<H: Harness>(h: &mut H) {
    const C: &str = "flush_false_then_flush_delivers";
    let bufs = assorted(h, 300, MIN_CAPACITY);
    let (a, b) = bufs.split_at(3);
    assert_eq!(h.aio().send(&infos(a), false), Ok(()), "{C}: first");
    assert_eq!(h.aio().send(&infos(b), false), Ok(()), "{C}: second");
    expect_delivered(h, C, &bufs);
}

/// The caller may overwrite and drop every buffer (and the batch) as soon as
/// `send` returns, on success and on `Again`, without changing what is
/// delivered.
pub fn check_retains_no_interest<H: Harness>(h: &mut H) {
    const C: &str = "retains_no_interest";
    let want = assorted(h, 400, MIN_CAPACITY - 2);
    let mut owned = want.clone();
    {
        let batch = infos(&owned);
        assert_eq!(h.aio().send(&batch, false), Ok(()), "{C}");
    }
    for b in &mut owned {
        b.fill(0xee);
    }
    drop(owned);
    // Churn the allocator so freed buffers get reused and rewritten.
    let churn: Vec<Vec<u8>> = (0..64).map(|i| vec![0xdd; 64 + i * 37]).collect();
    drop(churn);
    expect_delivered(h, C, &want);

    let Some(cap) = capacity_or_skip(h, C) else {
        return;
    };
    let want = assorted(h, 500, cap + 2);
    let mut owned = want.clone();
    let r = h.aio().send(&infos(&owned), false);
    assert_eq!(r, Err(SendError::again(cap)), "{C}: over capacity");
    for b in &mut owned {
        b.fill(0xcc);
    }
    drop(owned);
    expect_delivered(h, C, &want[..cap]);
}

/// Many sends of assorted sizes, flushing or not, drained as they go,
/// arrive in send order.
pub fn check_order_across_sends<H: Harness>(h: &mut H) {
    const C: &str = "order_across_sends";
    let per_round = h.capacity().map_or(MIN_CAPACITY, |c| c.min(MIN_CAPACITY));
    let mut got = Vec::new();
    let mut want = Vec::new();
    for round in 0..40 {
        let n = round % (per_round + 1);
        let bufs = assorted(h, 1000 + want.len(), n);
        let r = h.aio().send(&infos(&bufs), round % 3 == 0);
        assert_eq!(r, Ok(()), "{C}: round {round}");
        want.extend(bufs);
        got.extend(flush_and_take(h, C, want.len() - got.len()));
    }
    assert_delivered(C, &got, &want);
}
