//! The pipeline's steady state does not allocate: a counting global
//! allocator, armed per thread, sees zero heap allocations in the sender's
//! `LinkTx` sends and in two run loops (a forwarding tile and a drain into
//! an aio) over tens of thousands of frags, back-pressure, housekeeping and
//! the stop included.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::TestWs;
use tilewire_aio::{Aio, PktInfo, PktMeta, SendError};
use tilewire_shmem::load_bytes;
use tilewire_tile::link::frag::{FragMeta, CTL_PKT};
use tilewire_tile::link::tx::LinkTx;
use tilewire_tile::link::Reliability::*;
use tilewire_tile::stem::drain::Drain;
use tilewire_tile::stem::{Filter, Outputs, Stem, StemConfig, Tile};

#[path = "../../aio/tests/support/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

use counting::{arm, armed, disarm};

const MTU: usize = 1232;
const FRAGS: u64 = 30_000;

/// Arms the counter on the loop's thread at the tile's first housekeeping,
/// which the loop runs after its own set-up: from there on, everything the
/// loop does is steady state.
struct Armed<T>(T);

impl<T: Tile> Tile for Armed<T> {
    fn kind(&self) -> &str {
        self.0.kind()
    }
    fn counters(&self) -> &'static [&'static str] {
        self.0.counters()
    }
    fn before_frag(&mut self, i: usize, seq: u64, sig: u64) -> Filter {
        self.0.before_frag(i, seq, sig)
    }
    fn after_credit(&mut self, out: &mut Outputs<'_, '_>) {
        self.0.after_credit(out)
    }
    fn during_frag(&mut self, i: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        self.0.during_frag(i, meta, payload)
    }
    fn after_frag(&mut self, i: usize, meta: &FragMeta, out: &mut Outputs<'_, '_>) {
        self.0.after_frag(i, meta, out)
    }
    fn end_of_burst(&mut self, i: usize, out: &mut Outputs<'_, '_>) {
        self.0.end_of_burst(i, out)
    }
    fn housekeeping(&mut self, out: &mut Outputs<'_, '_>) {
        if !armed() {
            arm();
        }
        self.0.housekeeping(out)
    }
    fn metrics_write(&mut self, c: &mut [u64]) {
        self.0.metrics_write(c)
    }
    fn pending(&self) -> usize {
        self.0.pending()
    }
}

/// Forwards each frag through a fixed buffer.
struct Forward([u8; MTU]);

impl Tile for Forward {
    fn kind(&self) -> &str {
        "forward"
    }
    fn during_frag(&mut self, _: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        let n = meta.sz as usize;
        load_bytes(&mut self.0[..n], &payload[..n]);
    }
    fn after_frag(&mut self, _: usize, meta: &FragMeta, out: &mut Outputs<'_, '_>) {
        let _ = out.publish(
            0,
            &self.0[..meta.sz as usize],
            meta.sig,
            CTL_PKT,
            meta.tsorig,
        );
    }
}

/// Sums what it is sent; pushes back now and then so the drain's retry
/// path runs too.
struct Sum<'a> {
    bytes: &'a AtomicU64,
    pkts: &'a AtomicU64,
    calls: u64,
}

impl Aio for Sum<'_> {
    fn send(&mut self, batch: &[PktInfo<'_>], _flush: bool) -> Result<(), SendError> {
        self.calls += 1;
        let take = if self.calls.is_multiple_of(7) {
            batch.len() / 2
        } else {
            batch.len()
        };
        for p in &batch[..take] {
            self.bytes.fetch_add(p.buf.len() as u64, Ordering::Relaxed);
        }
        self.pkts.fetch_add(take as u64, Ordering::Release);
        if take < batch.len() {
            Err(SendError::again(take))
        } else {
            Ok(())
        }
    }
}

#[test]
fn sender_and_two_run_loops_allocate_nothing_in_steady_state() {
    let t = TestWs::new("noalloc", 1 << 22);
    let a = t.link("a", 64, MTU, &[Reliable]);
    let b = t.link("b", 64, MTU, &[Reliable]);
    let (bytes, pkts) = (AtomicU64::new(0), AtomicU64::new(0));
    let config = StemConfig {
        lazy: 64,
        stop_grace: Duration::from_secs(1),
    };
    let mut fwd = Stem::new(
        &t.ws,
        "fwd",
        Armed(Forward([0; MTU])),
        &[(&a, 0)],
        &[&b],
        config,
    )
    .unwrap();
    let sum = Sum {
        bytes: &bytes,
        pkts: &pkts,
        calls: 0,
    };
    let mut drain = Stem::new(
        &t.ws,
        "drain",
        Armed(Drain::new(sum, MTU)),
        &[(&b, 0)],
        &[],
        config,
    )
    .unwrap();
    let (mf, md) = (fwd.metrics(), drain.metrics());
    let mut tx = LinkTx::new(&a);
    let payload: Vec<u8> = (0..MTU).map(|i| i as u8).collect();

    let (fwd_allocs, drain_allocs, tx_allocs) = std::thread::scope(|s| {
        let hf = s.spawn(|| {
            let end = fwd.run();
            (disarm(), end)
        });
        let hd = s.spawn(|| {
            let end = drain.run();
            (disarm(), end)
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        // Warm up (first sends may touch lazily made state), then count.
        let meta = PktMeta {
            addr: None,
            user: 0,
        };
        let mut sent = 0u64;
        let mut tx_allocs = 0;
        while sent < FRAGS && Instant::now() < deadline {
            if sent == 100 {
                arm();
            }
            let len = (sent as usize * 7) % MTU;
            let pkt = PktInfo::new(&payload[..len]).with_meta(meta);
            if tx.send(black_box(&[pkt]), sent.is_multiple_of(16)).is_ok() {
                sent += 1;
            }
            if sent == FRAGS {
                tx_allocs = disarm();
            }
        }
        assert_eq!(sent, FRAGS, "the sender got stuck");
        while pkts.load(Ordering::Acquire) < FRAGS && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        mf.request_stop();
        md.request_stop();
        let (fa, fe) = hf.join().unwrap();
        let (da, de) = hd.join().unwrap();
        assert_eq!((fe.pending, de.pending), (0, 0));
        (fa, da, tx_allocs)
    });
    assert_eq!(pkts.load(Ordering::Acquire), FRAGS, "every packet arrived");
    let want: u64 = (0..FRAGS).map(|s| (s as usize * 7 % MTU) as u64).sum();
    assert_eq!(bytes.load(Ordering::Relaxed), want);
    assert_eq!(tx_allocs, 0, "LinkTx::send allocated");
    assert_eq!(fwd_allocs, 0, "the forward tile's loop allocated");
    assert_eq!(drain_allocs, 0, "the drain tile's loop allocated");
    assert!(md.snapshot().counters[2].1 > 0, "the retry path ran");
}

#[test]
fn the_counter_sees_allocations() {
    arm();
    drop(black_box(Box::new(7u64)));
    assert_eq!(disarm(), 1);
}
