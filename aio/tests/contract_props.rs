//! The aio contract as a property: random batches (lengths up to past
//! BUF_MAX, duplicated and overlapping buffers) against random pool sizes,
//! with random drains between retries. At every step the packets the
//! backend holds are exactly the ones it reported taken, in order; at the
//! end every valid packet was delivered exactly once and every packet over
//! BUF_MAX was refused at its own index.

mod common;

use std::collections::VecDeque;

use proptest::prelude::*;
use proptest::sample::Index;
use tilewire_aio::{Aio, MemAio, PcapConfig, PcapTee, PktInfo, SendErrorKind, BUF_MAX};

/// Packets are windows into this buffer, so they overlap and repeat.
const POOL_LEN: usize = BUF_MAX + 64 + 512;

fn pool() -> Vec<u8> {
    (0..POOL_LEN)
        .map(|i| (i as u8) ^ ((i >> 8) as u8).wrapping_mul(29))
        .collect()
}

#[derive(Debug, Clone)]
struct Step {
    /// (offset, length) windows of the pool.
    pkts: Vec<(usize, usize)>,
    flush: bool,
    /// How many packets to drain after each Again (0 means 1), cycled.
    drains: Vec<usize>,
    /// Packets to drain after the step (may be more than held).
    drain_after: usize,
}

fn window() -> impl Strategy<Value = (usize, usize)> {
    prop_oneof![
        4 => 0usize..=200,
        2 => 0usize..=BUF_MAX,
        1 => BUF_MAX - 2..=BUF_MAX + 64,
    ]
    .prop_flat_map(|len| (0..=POOL_LEN - len, Just(len)))
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop::collection::vec(window(), 0..48),
        prop::collection::vec((any::<Index>(), any::<Index>()), 0..6),
        any::<bool>(),
        prop::collection::vec(0usize..12, 1..6),
        0usize..30,
    )
        .prop_map(|(mut pkts, dups, flush, drains, drain_after)| {
            let n = pkts.len();
            if n > 0 {
                for (src, dst) in dups {
                    pkts[dst.index(n)] = pkts[src.index(n)];
                }
            }
            Step {
                pkts,
                flush,
                drains,
                drain_after,
            }
        })
}

/// A backend under test: an aio with a MemAio at the far end.
trait Sut {
    fn aio(&mut self) -> &mut dyn Aio;
    fn far(&mut self) -> &mut MemAio;
    /// Checks kept by the backend itself (the tee's capture) against every
    /// packet taken so far.
    fn check_taken(&mut self, _taken: &[Vec<u8>]) -> Result<(), TestCaseError> {
        Ok(())
    }
}

impl Sut for MemAio {
    fn aio(&mut self) -> &mut dyn Aio {
        self
    }
    fn far(&mut self) -> &mut MemAio {
        self
    }
}

impl Sut for PcapTee<Vec<u8>, MemAio> {
    fn aio(&mut self) -> &mut dyn Aio {
        self
    }
    fn far(&mut self) -> &mut MemAio {
        self.downstream_mut()
    }
    fn check_taken(&mut self, taken: &[Vec<u8>]) -> Result<(), TestCaseError> {
        prop_assert!(self.io_error().is_none());
        prop_assert_eq!(common::parse_pcap(self.writer()), taken);
        Ok(())
    }
}

/// Frees up to `n` packets at the far end, checking each against the model.
fn drain(
    sut: &mut dyn Sut,
    n: usize,
    held: &mut VecDeque<Vec<u8>>,
    delivered: &mut Vec<Vec<u8>>,
) -> Result<(), TestCaseError> {
    for _ in 0..n {
        let Some(p) = sut.far().pop_front() else {
            break;
        };
        let want = held.pop_front();
        prop_assert_eq!(Some(p.buf), want.as_deref());
        delivered.push(p.buf.to_vec());
    }
    Ok(())
}

/// Runs `steps`; returns how many sends and flushing sends it made.
fn run(sut: &mut dyn Sut, steps: &[Step]) -> Result<(u64, u64), TestCaseError> {
    let pool = pool();
    let mut held: VecDeque<Vec<u8>> = VecDeque::new();
    let mut taken: Vec<Vec<u8>> = Vec::new();
    let mut delivered: Vec<Vec<u8>> = Vec::new();
    let mut refused = 0usize;
    let mut valid = 0usize;
    let (mut sends, mut flushes) = (0u64, 0u64);

    for st in steps {
        let batch: Vec<PktInfo<'_>> = st
            .pkts
            .iter()
            .map(|&(off, len)| PktInfo::new(&pool[off..off + len]))
            .collect();
        valid += batch.iter().filter(|p| p.len() <= BUF_MAX).count();
        let mut drains = st.drains.iter().cycle();
        let mut start = 0;
        let mut rounds = 0;
        // Progress: every round but the last takes or refuses a packet, or
        // (Again) drains at least one held packet; the step can drain at
        // most what was held when it began plus what it takes.
        let most_rounds = 2 * batch.len() + held.len() + 2;
        while start < batch.len() || rounds == 0 {
            rounds += 1;
            prop_assert!(rounds <= most_rounds, "no progress");
            let r = sut.aio().send(&batch[start..], st.flush);
            sends += 1;
            flushes += u64::from(st.flush);
            let end = match r {
                Ok(()) => batch.len(),
                Err(e) => start + e.batch_idx,
            };
            prop_assert!(end <= batch.len(), "index past the batch: {:?}", r);
            for p in &batch[start..end] {
                prop_assert!(p.len() <= BUF_MAX, "took a packet of {} bytes", p.len());
                held.push_back(p.buf.to_vec());
                taken.push(p.buf.to_vec());
            }
            // What the far end holds is exactly what was reported taken
            // and not yet drained, in order.
            let far: Vec<&[u8]> = sut.far().iter().map(|p| p.buf).collect();
            let model: Vec<&[u8]> = held.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(far, model);
            sut.check_taken(&taken)?;
            match r {
                Ok(()) => break,
                Err(e) if e.kind == SendErrorKind::Inval => {
                    prop_assert!(batch[end].len() > BUF_MAX, "Inval for a valid packet");
                    refused += 1;
                    start = end + 1;
                }
                Err(e) => {
                    prop_assert_eq!(e.kind, SendErrorKind::Again);
                    prop_assert!(batch[end].len() <= BUF_MAX, "Again for a too-long packet");
                    prop_assert!(!held.is_empty(), "Again with nothing held");
                    start = end;
                    let n = (*drains.next().unwrap()).max(1);
                    drain(sut, n, &mut held, &mut delivered)?;
                }
            }
        }
        drain(sut, st.drain_after, &mut held, &mut delivered)?;
    }
    let rest = held.len();
    drain(sut, rest, &mut held, &mut delivered)?;
    prop_assert!(sut.far().is_empty());
    prop_assert_eq!(delivered.len(), valid);
    prop_assert_eq!(&delivered, &taken);
    let total: usize = steps.iter().map(|s| s.pkts.len()).sum();
    prop_assert_eq!(valid + refused, total);
    Ok((sends, flushes))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn mem_aio_keeps_the_contract(
        pkt_cap in 1usize..24,
        arena in BUF_MAX..=3 * BUF_MAX,
        steps in prop::collection::vec(step(), 1..12),
    ) {
        let mut mem = MemAio::new(pkt_cap, arena);
        let (sends, flushes) = run(&mut mem, &steps)?;
        let s = mem.stats();
        prop_assert_eq!((s.send_calls, s.flushes), (sends, flushes));
    }

    #[test]
    fn pcap_tee_keeps_the_contract_and_captures_what_was_taken(
        pkt_cap in 1usize..24,
        arena in BUF_MAX..=3 * BUF_MAX,
        steps in prop::collection::vec(step(), 1..8),
    ) {
        let config = PcapConfig { clock: common::fixed_clock, ..PcapConfig::default() };
        let mut tee = PcapTee::new(Vec::new(), MemAio::new(pkt_cap, arena), config).unwrap();
        let (sends, flushes) = run(&mut tee, &steps)?;
        let s = tee.downstream().stats();
        prop_assert_eq!((s.send_calls, s.flushes), (sends, flushes));
        prop_assert_eq!(tee.pkts_captured() as usize, common::parse_pcap(tee.writer()).len());
    }
}
