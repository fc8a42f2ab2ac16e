//! The send paths do not allocate in steady state: a counting global
//! allocator, armed per thread around the measured code, sees zero heap
//! allocations over thousands of sends, drains and retries.

use std::hint::black_box;
use std::io;
use std::time::Duration;

mod common;

use common::RawHarness;
use tilewire_aio::conformance::Harness;
use tilewire_aio::{Aio, MemAio, PcapConfig, PcapTee, PktInfo, SendErrorKind, BUF_MAX};

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

use counting::allocations_in;

#[test]
fn the_counter_sees_allocations() {
    assert_eq!(allocations_in(|| drop(black_box(Box::new(7u64)))), 1);
    let n = allocations_in(|| {
        let mut v: Vec<u8> = black_box(Vec::new());
        v.extend_from_slice(&[1; 100]);
        v.extend_from_slice(&[2; 1000]);
        black_box(v);
    });
    assert!(n >= 2, "counted {n} allocations for a growing Vec");
    assert_eq!(allocations_in(|| black_box(())), 0);
}

/// Sends, pushes back, retries and drains a pool for `rounds` rounds;
/// returns (packets taken, times it pushed back, bytes read back).
fn churn<S>(
    sut: &mut S,
    aio: fn(&mut S) -> &mut dyn Aio,
    far: fn(&mut S) -> &mut MemAio,
    batch: &[PktInfo<'_>],
    rounds: usize,
) -> (u64, u64, u64) {
    let (mut taken, mut agains, mut bytes) = (0u64, 0u64, 0u64);
    for round in 0..rounds {
        let mut start = 0;
        while start < batch.len() {
            match aio(sut).send(&batch[start..], round % 4 == 0) {
                Ok(()) => {
                    taken += (batch.len() - start) as u64;
                    start = batch.len();
                }
                Err(e) => {
                    assert_eq!(e.kind, SendErrorKind::Again);
                    taken += e.batch_idx as u64;
                    start += e.batch_idx;
                    agains += 1;
                    // Read some back one by one, then the rest in a drain.
                    let pool = far(sut);
                    assert!(pool.get(0).is_some() && pool.iter().count() > 0);
                    for _ in 0..3 {
                        bytes += pool.pop_front().map_or(0, |p| p.len() as u64);
                    }
                    bytes += pool.drain().map(|p| p.len() as u64).sum::<u64>();
                }
            }
        }
        if round % 16 == 15 {
            far(sut).clear();
        }
    }
    (taken, agains, bytes)
}

fn test_batch(bufs: &[Vec<u8>]) -> Vec<PktInfo<'_>> {
    bufs.iter().map(|b| PktInfo::new(b)).collect()
}

fn test_bufs(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| vec![i as u8; (i * 97) % (BUF_MAX + 1)])
        .collect()
}

#[test]
fn mem_aio_send_and_drain_do_not_allocate() {
    let bufs = test_bufs(48);
    let batch = test_batch(&bufs);
    let mut mem = MemAio::with_capacity(32);
    let aio: fn(&mut MemAio) -> &mut dyn Aio = |m| m;
    let far: fn(&mut MemAio) -> &mut MemAio = |m| m;
    churn(&mut mem, aio, far, &batch, 8); // warm-up
    let mut result = (0, 0, 0);
    let n = allocations_in(|| result = churn(&mut mem, aio, far, &batch, 5_000));
    assert_eq!(n, 0, "MemAio allocated {n} times in steady state");
    let (taken, agains, bytes) = result;
    assert_eq!(taken, 5_000 * 48);
    assert!(agains >= 5_000, "the pool pushed back only {agains} times");
    assert!(bytes > 0);
}

fn fixed_clock() -> Duration {
    Duration::from_secs(1)
}

#[test]
fn pcap_tee_over_mem_does_not_allocate_with_a_sink_writer() {
    type Tee = PcapTee<io::Sink, MemAio>;
    let bufs = test_bufs(48);
    let batch = test_batch(&bufs);
    let config = PcapConfig {
        clock: fixed_clock,
        ..PcapConfig::default()
    };
    let mut tee = PcapTee::new(io::sink(), MemAio::with_capacity(32), config).unwrap();
    let aio: fn(&mut Tee) -> &mut dyn Aio = |t| t;
    let far: fn(&mut Tee) -> &mut MemAio = PcapTee::downstream_mut;
    churn(&mut tee, aio, far, &batch, 8);
    let mut result = (0, 0, 0);
    let n = allocations_in(|| result = churn(&mut tee, aio, far, &batch, 2_000));
    assert_eq!(n, 0, "PcapTee allocated {n} times in steady state");
    assert_eq!(result.0, 2_000 * 48);
    assert_eq!(tee.pkts_captured(), 2_008 * 48);
}

#[test]
fn raw_aio_handle_send_does_not_allocate() {
    // 150 packets: the handle converts them in stack chunks of 64, and the
    // trampoline converts them back the same way.
    let bufs = test_bufs(150);
    let batch = test_batch(&bufs);
    let mut h = RawHarness::new(100);
    let aio: fn(&mut RawHarness) -> &mut dyn Aio = |h| h.aio();
    let far: fn(&mut RawHarness) -> &mut MemAio = RawHarness::sink;
    churn(&mut h, aio, far, &batch, 8);
    let mut result = (0, 0, 0);
    let n = allocations_in(|| result = churn(&mut h, aio, far, &batch, 1_000));
    assert_eq!(n, 0, "RawAioHandle allocated {n} times in steady state");
    assert_eq!(result.0, 1_000 * 150);
    assert!(result.1 >= 1_000);
}
