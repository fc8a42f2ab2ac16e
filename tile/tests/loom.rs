//! Model checks of a link's lock-free protocols, with loom: every
//! interleaving of the threads (up to a preemption bound) and every value
//! the memory model lets each load read, weak orderings included.
//!
//! Run with `cargo test -p tilewire-tile --test loom` (.ci/test does; the
//! target is left out of a plain `cargo test`).
//!
//! The models are small copies of the real protocols, step for step and
//! ordering for ordering; each step names the function it mirrors. They
//! cannot run the real code: that code works on a workspace's shared
//! memory and on the kernel's futex and membarrier, which loom cannot see.
//! What loom adds to the tests that run the real code: they pass on the
//! interleavings and store buffers one machine happens to produce; these
//! pass on all of them. Change an ordering in `link/mcache.rs`,
//! `link/fseq.rs`, `link/producer.rs`, `link/consumer.rs` or
//! `tilewire_shmem::wait` and change it here: each model fails if the
//! ordering it checks is weakened (tried once by hand for every model:
//! see each model's docs for what was broken and how loom failed).
//!
//! - [`parked_consumer_is_always_woken`]: the futex wake. A consumer with
//!   nothing to read counts itself a sleeper, fences, looks once more and
//!   sleeps; the producer publishes, then wakes if anyone counted itself.
//!   No wake is lost (a lost one is a consumer asleep forever, which loom
//!   reports as a deadlock), and a woken consumer reads the payload.
//! - [`reliable_consumer_is_never_overrun`]: the credits. The producer
//!   publishes only while its credits, computed from the reliable
//!   consumer's published progress, say the frag it overwrites was read;
//!   the consumer publishes its progress as it reads and when it runs out
//!   of frags. The consumer is never overrun, a payload is never written
//!   while it is read (loom checks every access to the payload cell), and
//!   a producer out of credits always gets them back (else the model
//!   spins forever, which loom reports).
//! - [`unreliable_consumer_never_delivers_a_torn_frag`]: the other side of
//!   the credits. Without them a consumer is lapped, and its re-check of
//!   the line after reading catches every frag overwritten while it was
//!   read.

use loom::cell::UnsafeCell;
use loom::sync::atomic::{fence, AtomicU64, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

/// Lines in the model's ring.
const DEPTH: u64 = 2;

/// What frag `seq` carries (payload and signature), so a reader can tell
/// whose bytes it read.
fn value(seq: u64) -> u64 {
    seq.wrapping_mul(0x9e37_79b9).wrapping_add(1)
}

/// `crate::link::frag::seq_diff`: `a - b` as a signed distance.
fn seq_diff(a: u64, b: u64) -> i64 {
    a.wrapping_sub(b) as i64
}

/// The futex word and the kernel's queue on it.
///
/// `tilewire_shmem::wait::futex_wait` sleeps only while the word still
/// holds what the caller saw, checked by the kernel under the lock of the
/// word's queue, which `futex_wake_all` takes too: so a wake either finds
/// the waiter queued, or comes before the check and the waiter sees the
/// changed word. A mutex and a condition variable have exactly that
/// contract.
struct Futex {
    word: AtomicU64,
    queue: Mutex<()>,
    wakeup: Condvar,
}

impl Futex {
    fn new() -> Futex {
        Futex {
            word: AtomicU64::new(0),
            queue: Mutex::new(()),
            wakeup: Condvar::new(),
        }
    }

    /// `tilewire_shmem::wait::futex_wait` (without its timeout: a sleep
    /// that only a timeout ends is the lost wake this model looks for).
    fn wait(&self, seen: u64) {
        let queued = self.queue.lock().unwrap();
        // The kernel compares the low 32 bits, under the queue's lock.
        if self.word.load(Ordering::Relaxed) as u32 == seen as u32 {
            drop(self.wakeup.wait(queued).unwrap());
        }
    }

    /// `tilewire_shmem::wait::futex_wake_all`.
    fn wake_all(&self) {
        let _queued = self.queue.lock().unwrap();
        self.wakeup.notify_all();
    }
}

/// What `MCacheHandle::peek` found.
#[derive(Debug, PartialEq)]
enum Peek {
    /// The frag, with its signature (the field words stand for all of
    /// them).
    Ready {
        sig: u64,
    },
    NotYet,
    /// The line holds `seq_found`, newer than wanted.
    Overrun {
        seq_found: u64,
    },
}

/// The mcache (`link/mcache.rs`): per line its seq and one field word,
/// the sleeper count and the wake word; and the payloads, one slot per
/// line (the dcache, where the bytes of frag `seq` are those frag
/// `seq - DEPTH` had: the overlap the credits must protect).
struct Link<P> {
    line_seq: Vec<AtomicU64>,
    line_sig: Vec<AtomicU64>,
    payload: Vec<P>,
    sleepers: AtomicU64,
    wake: Futex,
    /// The reliable consumer's fseq (`link/fseq.rs`): its progress.
    fseq: AtomicU64,
}

impl<P> Link<P> {
    /// `MCache::new` with `seq0 = 0`: every line holds an old frag, one a
    /// ring before the first.
    fn new(payload: impl Fn() -> P) -> Link<P> {
        Link {
            line_seq: (0..DEPTH)
                .map(|i| AtomicU64::new(i.wrapping_sub(DEPTH)))
                .collect(),
            line_sig: (0..DEPTH).map(|_| AtomicU64::new(0)).collect(),
            payload: (0..DEPTH).map(|_| payload()).collect(),
            sleepers: AtomicU64::new(0),
            wake: Futex::new(),
            fseq: AtomicU64::new(0),
        }
    }

    fn line(seq: u64) -> usize {
        (seq % DEPTH) as usize
    }

    /// `MCacheHandle::invalidate`.
    fn invalidate(&self, seq: u64) {
        self.line_seq[Self::line(seq)].store(seq.wrapping_sub(1), Ordering::Relaxed);
        fence(Ordering::Release);
    }

    /// `MCacheHandle::commit`: the fields Relaxed, the seq Release, then
    /// one Relaxed load of the sleeper count.
    fn commit(&self, seq: u64) {
        let line = Self::line(seq);
        self.line_sig[line].store(value(seq), Ordering::Relaxed);
        self.line_seq[line].store(seq, Ordering::Release);
        // `heavy_fence` in a parking consumer makes this thread run a full
        // barrier at whatever point of its program it is
        // (membarrier(GLOBAL_EXPEDITED)); between this store and the load
        // below is where that barrier is needed, and the compiler fence in
        // `commit` keeps the two in this order, so the model puts a
        // SeqCst fence here.
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            self.wake_sleepers();
        }
    }

    /// `MCacheHandle::wake_sleepers`.
    fn wake_sleepers(&self) {
        self.sleepers.swap(0, Ordering::SeqCst);
        self.wake.word.fetch_add(1, Ordering::Release);
        self.wake.wake_all();
    }

    /// `MCacheHandle::peek`.
    fn peek(&self, seq: u64) -> Peek {
        let line = Self::line(seq);
        let found = self.line_seq[line].load(Ordering::Acquire);
        match seq_diff(found, seq) {
            d if d < 0 => Peek::NotYet,
            d if d > 0 => Peek::Overrun { seq_found: found },
            _ => Peek::Ready {
                sig: self.line_sig[line].load(Ordering::Relaxed),
            },
        }
    }

    /// `MCacheHandle::check`.
    fn check(&self, seq: u64) -> bool {
        fence(Ordering::Acquire);
        self.line_seq[Self::line(seq)].load(Ordering::Relaxed) == seq
    }

    /// `MCacheHandle::park` on a fenced kernel (where it is not, the
    /// sleep is bounded instead, and a lost wake costs that bound).
    fn park(&self, seq: u64) {
        let seen = self.wake.word.load(Ordering::Acquire);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        // `tilewire_shmem::wait::heavy_fence`: this thread's SeqCst fence
        // (its barrier on the producer is the fence in `commit`).
        fence(Ordering::SeqCst);
        if self.peek(seq) == Peek::NotYet {
            self.wake.wait(seen);
        }
    }
}

/// A payload slot the protocol keeps race-free: a plain cell, whose every
/// access loom checks against every other (a write not ordered after a
/// read of the same slot, or a read not ordered after its write, fails).
/// The real dcache's bytes are relaxed atomics, for the consumers the
/// protocol does not protect (unreliable ones); for a reliable consumer
/// the credits order every access, so a cell must do.
type Cell = UnsafeCell<u64>;

/// The futex wake: `Stem::sleep` parking on an input link
/// (`MCacheHandle::park`) while the producer publishes frags 0 and 1
/// (`MCacheHandle::commit`, `wake_sleepers`). The consumer polls, parks
/// when there is nothing, and must get both frags and their payloads; a
/// wake lost would leave it asleep with nothing left to wake it, which
/// loom reports as a deadlock.
///
/// Broken by hand once each: without the re-check in `park` (sleep right
/// after counting itself), and with the SeqCst fence of `heavy_fence`
/// removed, loom reports the deadlock; with `commit`'s seq store Relaxed,
/// a frag read with the fields its line had before.
#[test]
fn parked_consumer_is_always_woken() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(4);
    model.check(|| {
        let link = Arc::new(Link::new(|| Cell::new(0)));
        let producer = {
            let link = link.clone();
            thread::spawn(move || {
                for seq in 0..2 {
                    // The payload first (`Producer::publish_at`), then the
                    // line (`commit_checked` -> `MCacheHandle::publish`).
                    // SAFETY: the cell is a live u64; loom checks that no
                    // other access overlaps this one.
                    link.payload[Link::<Cell>::line(seq)].with_mut(|p| unsafe { *p = value(seq) });
                    link.invalidate(seq);
                    link.commit(seq);
                }
            })
        };
        for seq in 0..2 {
            // `Stem::step` polls (`Consumer::next_frag`); with nothing
            // there, `Stem::sleep` parks on the link, then polls again.
            let sig = loop {
                match link.peek(seq) {
                    Peek::Ready { sig } => break sig,
                    Peek::NotYet => link.park(seq),
                    Peek::Overrun { .. } => panic!("frag {seq} overrun: nothing laps it"),
                }
            };
            assert_eq!(sig, value(seq), "the fields of frag {seq}");
            // SAFETY: as the write's.
            let payload = link.payload[Link::<Cell>::line(seq)].with(|p| unsafe { *p });
            assert!(link.check(seq), "frag {seq} overwritten");
            assert_eq!(payload, value(seq), "the payload of frag {seq}");
        }
        producer.join().unwrap();
    });
}

/// The credits: the producer (`Producer::publish_at`: `reserve`, the
/// payload, `commit_checked`) publishes 5 frags into a ring of 2, taking
/// credits from the reliable consumer's fseq (`Producer::refresh_credits`
/// over `FseqHandle::query`), and waits (back-pressure) while it has
/// none. The consumer (`Consumer::next_frag`, `payload`, `finish`) reads
/// them and publishes its progress (`Consumer::publish` over
/// `FseqHandle::update`) every 2 frags (`advance`; the real interval is
/// depth / 8, and a wider one leaves credits owed when the consumer runs
/// out of frags) and whenever it finds nothing (`next_frag` on
/// `Peek::NotYet`), which is what hands the last credits back.
///
/// It checks: the consumer is never overrun, neither while polling nor
/// while reading; every frag arrives, in order, with its own fields and
/// payload; no payload is written while the consumer may still read the
/// frag it held (loom checks the payload cell); and the producer never
/// waits for credits forever (a wait that never ends is a model that never
/// ends, which loom stops and reports).
///
/// Broken by hand once each: with `FseqHandle::update` Relaxed, and with
/// `FseqHandle::query` Relaxed, loom reports the producer's payload write
/// racing the consumer's read of the frag before; without the publish on
/// `Peek::NotYet`, it reports the producer spinning for credits forever.
#[test]
fn reliable_consumer_is_never_overrun() {
    const FRAGS: u64 = 4;
    const PUBLISH_EVERY: u64 = 4;
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(|| {
        let link = Arc::new(Link::new(|| Cell::new(0)));
        let producer = {
            let link = link.clone();
            thread::spawn(move || {
                let mut credits = 0u64;
                // `Producer::refresh_credits` for one reliable consumer.
                let refresh = |seq: u64| {
                    let progress = link.fseq.load(Ordering::Acquire);
                    let in_flight = seq_diff(seq, progress).clamp(0, DEPTH as i64) as u64;
                    DEPTH - in_flight
                };
                for seq in 0..FRAGS {
                    // `Producer::reserve`: a credit, or back-pressure (the
                    // stem tries again at its next iteration).
                    while credits == 0 {
                        credits = refresh(seq);
                        if credits == 0 {
                            thread::yield_now();
                        }
                    }
                    // `reservation_hits_live_frag`: the slot holds frag
                    // `seq - DEPTH`'s payload (or none yet), so the line is
                    // invalidated before the payload is written.
                    let _ = link.peek(seq.wrapping_sub(DEPTH));
                    link.invalidate(seq);
                    // SAFETY: the cell is a live u64; loom checks that no
                    // other access overlaps this one.
                    link.payload[Link::<Cell>::line(seq)].with_mut(|p| unsafe { *p = value(seq) });
                    // `commit_checked` -> `MCacheHandle::commit`.
                    link.commit(seq);
                    credits -= 1;
                }
            })
        };
        let mut seq = 0u64;
        while seq < FRAGS {
            match link.peek(seq) {
                Peek::NotYet => {
                    // `Consumer::next_frag` on nothing: `publish`.
                    link.fseq.store(seq, Ordering::Release);
                    thread::yield_now();
                }
                Peek::Overrun { .. } => panic!("the reliable consumer was overrun at frag {seq}"),
                Peek::Ready { sig } => {
                    // `Consumer::payload`, the tile's copy, `finish`.
                    // SAFETY: as the producer's write.
                    let payload = link.payload[Link::<Cell>::line(seq)].with(|p| unsafe { *p });
                    assert!(
                        link.check(seq),
                        "frag {seq} overwritten while the reliable consumer read it"
                    );
                    assert_eq!(sig, value(seq), "the fields of frag {seq}");
                    assert_eq!(payload, value(seq), "the payload of frag {seq}");
                    // `Consumer::advance`.
                    seq += 1;
                    if seq % PUBLISH_EVERY == 0 {
                        link.fseq.store(seq, Ordering::Release);
                    }
                }
            }
        }
        producer.join().unwrap();
    });
}

/// Overrun detection: a producer with no reliable consumer publishes 3
/// frags into a ring of 2 and laps the consumer whenever it likes. The
/// payload is a relaxed atomic here, as the dcache's bytes are
/// (`tilewire_shmem::store_bytes`, `load_bytes`). Whatever the consumer
/// delivers (`Consumer::poll_with`: `next_frag`, the read, `finish`) must
/// be the frag it claims to be, fields and payload; a frag overwritten
/// while it was read is caught by the re-check (`MCacheHandle::check`)
/// and dropped, and a lap while polling resyncs.
///
/// Broken by hand once each: without the re-check, and with
/// `MCacheHandle::invalidate`'s Release fence removed, loom finds a frag
/// delivered with the next one's payload.
#[test]
fn unreliable_consumer_never_delivers_a_torn_frag() {
    const FRAGS: u64 = 3;
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(4);
    model.check(|| {
        let link = Arc::new(Link::new(|| AtomicU64::new(0)));
        let producer = {
            let link = link.clone();
            thread::spawn(move || {
                for seq in 0..FRAGS {
                    let _ = link.peek(seq.wrapping_sub(DEPTH));
                    link.invalidate(seq);
                    link.payload[Link::<AtomicU64>::line(seq)].store(value(seq), Ordering::Relaxed);
                    link.commit(seq);
                }
            })
        };
        let mut seq = 0u64;
        // Polls until it has seen the last frag, or given up on it.
        while seq < FRAGS {
            match link.peek(seq) {
                Peek::NotYet => thread::yield_now(),
                Peek::Overrun { seq_found } => {
                    // `Consumer::next_frag`: resync to the newest frag
                    // seen (the frags lost are counted; not checked here).
                    seq = seq_found;
                }
                Peek::Ready { sig } => {
                    let payload =
                        link.payload[Link::<AtomicU64>::line(seq)].load(Ordering::Relaxed);
                    if link.check(seq) {
                        assert_eq!(sig, value(seq), "the fields of frag {seq}");
                        assert_eq!(payload, value(seq), "the payload of frag {seq}");
                        seq += 1;
                    }
                    // Else an overrun while reading: the copy is dropped
                    // and the next poll resyncs.
                }
            }
        }
        producer.join().unwrap();
    });
}
