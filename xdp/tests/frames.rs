//! Frame conservation: every UMEM frame is in exactly one place after every
//! operation — fill ring, kernel, rx ring, a link line, the transmit free
//! list, or in flight on the transmit side — whatever order the socket and
//! the (mock) kernel act in. Plus the data checks that come with it: what
//! the kernel received arrives downstream byte for byte and in order, and
//! what `send` took leaves on the wire byte for byte and in order.
//!
//! No privileges needed: the kernel is [`MockKernel`], the socket the real
//! data path over rings in plain memory.

use std::collections::VecDeque;

use proptest::prelude::*;
use tilewire_aio::{Aio, MemAio, PktInfo, SendErrorKind};
use tilewire_shmem::Region;
use tilewire_xdp::mock::{MockConfig, MockKernel};
use tilewire_xdp::{RxPacket, RxRefused, RxSink, Umem, Xsk, FRAME_SIZE};

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// Page-aligned memory for a UMEM of `frames` frames.
fn pages(frames: usize) -> Vec<Page> {
    (0..frames.div_ceil(2)).map(|_| Page([0; 4096])).collect()
}

fn umem(mem: &mut [Page]) -> Umem<'_> {
    let len = mem.len() * 4096;
    // SAFETY: the pages are `len` contiguous initialised bytes.
    let bytes = unsafe { std::slice::from_raw_parts_mut(mem.as_mut_ptr().cast::<u8>(), len) };
    Umem::new(Region::from_mut(bytes)).unwrap()
}

/// A sink that keeps each packet's frame on a ring of lines, like a link
/// receiving zero-copy: it gives back the frame the line held. With no
/// lines it copies and gives the packet's own frame back. It checks each
/// packet against what the kernel received and can be told to refuse.
struct LineSink {
    lines: Vec<u64>,
    seq: usize,
    expect: VecDeque<Vec<u8>>,
    refuse_after: Option<u32>,
    taken: u32,
}

impl RxSink for LineSink {
    fn take(&mut self, pkt: RxPacket<'_>) -> Result<u64, RxRefused> {
        if self.refuse_after.is_some_and(|n| self.taken >= n) {
            return Err(RxRefused);
        }
        self.taken += 1;
        let want = self.expect.pop_front().expect("a packet nobody received");
        assert_eq!(pkt.data, &want[..], "received bytes differ");
        assert_eq!(pkt.frame, pkt.addr & !(u64::from(FRAME_SIZE) - 1));
        if self.lines.is_empty() {
            return Ok(pkt.frame);
        }
        let i = self.seq % self.lines.len();
        self.seq += 1;
        Ok(std::mem::replace(&mut self.lines[i], pkt.frame))
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// The kernel receives a packet of this length.
    Receive(usize),
    /// The kernel publishes a corrupt descriptor (over a frame it holds, or
    /// outside the UMEM).
    ReceiveBad(bool),
    /// The kernel takes frames off the fill ring ahead of time.
    TakeFill(u32),
    /// The socket polls into the line sink, which refuses after some.
    PollRx(u32, Option<u32>),
    /// The socket polls into an aio with room for some packets.
    PollInto(u32, usize),
    /// `send` with these lengths (runts, empty and oversize included).
    Send(Vec<usize>, bool),
    /// The kernel sends some queued packets.
    Transmit(u32),
    /// The kernel completes some sent packets.
    Complete(u32),
    /// Housekeeping.
    Service,
}

fn op() -> impl Strategy<Value = Op> {
    let len = prop_oneof![
        8 => 14usize..=1500,
        1 => Just(0usize),
        1 => 1usize..14,
        1 => 2040usize..=2100,
    ];
    prop_oneof![
        6 => (14usize..=1700).prop_map(Op::Receive),
        1 => any::<bool>().prop_map(Op::ReceiveBad),
        1 => (0u32..6).prop_map(Op::TakeFill),
        3 => (1u32..12, proptest::option::of(0u32..6)).prop_map(|(b, r)| Op::PollRx(b, r)),
        2 => (1u32..12, 0usize..10).prop_map(|(b, r)| Op::PollInto(b, r)),
        4 => (proptest::collection::vec(len, 0..10), any::<bool>()).prop_map(|(l, f)| Op::Send(l, f)),
        3 => (0u32..10).prop_map(Op::Transmit),
        3 => (0u32..10).prop_map(Op::Complete),
        1 => Just(Op::Service),
    ]
}

/// The packet the test sends or receives as its `n`-th, `len` bytes.
fn packet(n: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (n as usize * 131 + i * 7) as u8).collect()
}

/// Every frame exactly once across the socket, the kernel and the lines.
fn check_conservation(xsk: &Xsk<'_>, kernel: &MockKernel<'_>, lines: &[u64], total: u32) {
    let mut all = xsk.frame_list();
    all.extend(kernel.frame_list());
    all.extend(lines);
    all.sort_unstable();
    let want: Vec<u64> = (0..total)
        .map(|i| u64::from(i) * u64::from(FRAME_SIZE))
        .collect();
    assert_eq!(all, want, "a frame is lost or in two places");
    // The same as the sum the design states.
    let k = kernel.frames();
    let s = xsk.frame_counts();
    let fill = s.fill_pending + k.fill + k.rx_held + s.fill_spill;
    let in_flight = s.tx_pending + k.tx + k.tx_held + k.comp;
    assert_eq!(
        fill + k.rx + lines.len() as u32 + s.tx_free + in_flight,
        total,
        "fill + rx + lines + tx free + tx in flight != total"
    );
}

fn run(ops: Vec<Op>, lines: u32, start: u32) {
    let cfg = MockConfig {
        rx_size: 8,
        fill_size: 8,
        tx_size: 8,
        lines,
        start,
        tx_high_water: 4,
    };
    let total = cfg.lines + cfg.fill_size + cfg.tx_size;
    let mut mem = pages(total as usize);
    let (mut xsk, line_frames, mut kernel) = MockKernel::new(umem(&mut mem), &cfg);
    let mut sink = LineSink {
        lines: line_frames,
        seq: 0,
        expect: VecDeque::new(),
        refuse_after: None,
        taken: 0,
    };
    let (mut rx_n, mut tx_n) = (0u64, 0u64);
    let mut sent: VecDeque<Vec<u8>> = VecDeque::new();
    let mut bad_published = 0u64;
    check_conservation(&xsk, &kernel, &sink.lines, total);
    for op in ops {
        match op {
            Op::Receive(len) => {
                let len = len.min(FRAME_SIZE as usize - 256);
                let p = packet(rx_n, len);
                if kernel.receive(&p) {
                    sink.expect.push_back(p);
                    rx_n += 1;
                }
            }
            Op::ReceiveBad(held) => {
                if kernel.receive_bad(held) {
                    bad_published += 1;
                }
            }
            Op::TakeFill(n) => {
                kernel.take_fill(n);
            }
            Op::PollRx(budget, refuse) => {
                sink.refuse_after = refuse;
                sink.taken = 0;
                xsk.poll_rx(&mut sink, budget);
            }
            Op::PollInto(budget, room) => {
                let mut aio = MemAio::with_capacity(room.max(1));
                let before = xsk.stats().rx_packets;
                xsk.poll_into(&mut aio, budget);
                let got: Vec<Vec<u8>> = aio.drain().map(|p| p.buf.to_vec()).collect();
                assert_eq!(got.len() as u64, xsk.stats().rx_packets - before);
                for g in got {
                    assert_eq!(
                        Some(g),
                        sink.expect.pop_front(),
                        "poll_into delivered out of order"
                    );
                }
            }
            Op::Send(lens, flush) => {
                let bufs: Vec<Vec<u8>> = lens
                    .iter()
                    .enumerate()
                    .map(|(i, &l)| packet(tx_n + i as u64, l))
                    .collect();
                let batch: Vec<PktInfo<'_>> = bufs.iter().map(|b| PktInfo::new(b)).collect();
                let r = xsk.send(&batch, flush);
                let taken = match r {
                    Ok(()) => batch.len(),
                    Err(e) => {
                        let l = lens[e.batch_idx];
                        match e.kind {
                            SendErrorKind::Inval => {
                                assert!(
                                    (1..14).contains(&l) || l > FRAME_SIZE as usize,
                                    "Inval for length {l}"
                                )
                            }
                            SendErrorKind::Again => {
                                assert!(
                                    (14..=FRAME_SIZE as usize).contains(&l),
                                    "Again for a bad length {l}"
                                );
                            }
                            k => panic!("unexpected error kind {k:?}"),
                        }
                        e.batch_idx
                    }
                };
                for (i, b) in bufs.iter().take(taken).enumerate() {
                    assert!(!(1..14).contains(&lens[i]) && lens[i] <= FRAME_SIZE as usize);
                    if !b.is_empty() {
                        sent.push_back(b.clone());
                    }
                }
                tx_n += lens.len() as u64;
            }
            Op::Transmit(n) => {
                for wire in kernel.transmit(n) {
                    assert_eq!(
                        Some(wire),
                        sent.pop_front(),
                        "transmitted bytes or order differ"
                    );
                }
            }
            Op::Complete(n) => {
                kernel.complete(n);
            }
            Op::Service => xsk.service(u64::MAX / 2),
        }
        check_conservation(&xsk, &kernel, &sink.lines, total);
    }
    // Drain: everything received arrives, everything taken leaves.
    for _ in 0..64 {
        sink.refuse_after = None;
        xsk.poll_rx(&mut sink, 64);
        xsk.service(u64::MAX / 2);
        for wire in kernel.transmit(64) {
            assert_eq!(Some(wire), sent.pop_front());
        }
        kernel.complete(64);
    }
    xsk.send(&[], true).unwrap();
    for wire in kernel.transmit(64) {
        assert_eq!(Some(wire), sent.pop_front());
    }
    assert!(
        sink.expect.is_empty(),
        "{} received packets never delivered",
        sink.expect.len()
    );
    assert!(sent.is_empty(), "{} sent packets never left", sent.len());
    assert!(xsk.stats().rx_bad_desc <= bad_published);
    check_conservation(&xsk, &kernel, &sink.lines, total);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn frames_are_conserved_zero_copy_into_lines(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops, 4, 0);
    }

    #[test]
    fn frames_are_conserved_copying_out(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops, 0, 0);
    }

    #[test]
    fn frames_are_conserved_across_the_index_wrap(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops, 2, u32::MAX - 20);
    }
}

#[test]
fn bad_descriptors_are_counted_dropped_and_their_frames_recycled() {
    let cfg = MockConfig::default();
    let total = cfg.fill_size + cfg.tx_size;
    let mut mem = pages(total as usize);
    let (mut xsk, _, mut kernel) = MockKernel::new(umem(&mut mem), &cfg);
    assert!(kernel.receive(&packet(0, 60)));
    assert!(kernel.receive_bad(true));
    assert!(kernel.receive_bad(false));
    assert!(kernel.receive(&packet(1, 61)));
    let mut aio = MemAio::with_capacity(8);
    assert_eq!(xsk.poll_into(&mut aio, 16), 4);
    let got: Vec<Vec<u8>> = aio.drain().map(|p| p.buf.to_vec()).collect();
    assert_eq!(got, vec![packet(0, 60), packet(1, 61)]);
    assert_eq!(xsk.stats().rx_bad_desc, 2);
    assert_eq!(xsk.stats().rx_packets, 2);
    check_conservation(&xsk, &kernel, &[], total);
    assert_eq!(
        kernel.frames().fill,
        cfg.fill_size,
        "all three frames went back"
    );
}

#[test]
fn again_leaves_packets_on_the_rx_ring_for_the_next_poll() {
    let cfg = MockConfig::default();
    let mut mem = pages((cfg.fill_size + cfg.tx_size) as usize);
    let (mut xsk, _, mut kernel) = MockKernel::new(umem(&mut mem), &cfg);
    for i in 0..5 {
        assert!(kernel.receive(&packet(i, 100 + i as usize)));
    }
    let mut aio = MemAio::with_capacity(2);
    assert_eq!(xsk.poll_into(&mut aio, 16), 2);
    assert_eq!(xsk.stats().rx_backpressure, 1);
    assert_eq!(aio.len(), 2);
    aio.clear();
    assert_eq!(xsk.poll_into(&mut aio, 16), 2);
    aio.clear();
    assert_eq!(xsk.poll_into(&mut aio, 16), 1);
    let last: Vec<u8> = aio.front().unwrap().buf.to_vec();
    assert_eq!(last, packet(4, 104));
}

#[test]
fn send_waits_for_flush_high_water_or_service() {
    let cfg = MockConfig {
        tx_high_water: 3,
        ..MockConfig::default()
    };
    let mut mem = pages((cfg.fill_size + cfg.tx_size) as usize);
    let (mut xsk, _, mut kernel) = MockKernel::new(umem(&mut mem), &cfg);
    let p = packet(0, 60);
    xsk.send(&[PktInfo::new(&p), PktInfo::new(&p)], false)
        .unwrap();
    assert!(
        kernel.transmit(8).is_empty(),
        "nothing published before flush"
    );
    xsk.send(&[PktInfo::new(&p)], false).unwrap();
    assert_eq!(kernel.transmit(8).len(), 3, "the high-water mark publishes");
    xsk.send(&[PktInfo::new(&p)], false).unwrap();
    xsk.service(0);
    xsk.service(u64::MAX / 2);
    assert_eq!(
        kernel.transmit(8).len(),
        1,
        "service publishes a queue that waited"
    );
    xsk.send(&[PktInfo::new(&p)], true).unwrap();
    assert_eq!(kernel.transmit(8).len(), 1, "flush publishes");
    assert_eq!(
        xsk.stats().tx_wakeups,
        0,
        "a kernel that is awake is not woken"
    );
    kernel.set_need_wakeup(true);
    xsk.send(&[PktInfo::new(&p)], true).unwrap();
    assert_eq!(
        xsk.stats().tx_wakeups,
        1,
        "need_wakeup set: one wakeup per publish"
    );
    assert_eq!(kernel.transmit(8).len(), 1);
}

#[test]
fn send_answers_again_when_frames_run_out_and_resumes_after_completions() {
    let cfg = MockConfig::default();
    let mut mem = pages((cfg.fill_size + cfg.tx_size) as usize);
    let (mut xsk, _, mut kernel) = MockKernel::new(umem(&mut mem), &cfg);
    let bufs: Vec<Vec<u8>> = (0..20).map(|i| packet(i, 64)).collect();
    let batch: Vec<PktInfo<'_>> = bufs.iter().map(|b| PktInfo::new(b)).collect();
    let e = xsk.send(&batch, true).unwrap_err();
    assert_eq!(
        (e.kind, e.batch_idx),
        (SendErrorKind::Again, cfg.tx_size as usize)
    );
    assert_eq!(xsk.stats().tx_full, 1);
    assert_eq!(kernel.transmit(64).len(), 16);
    assert_eq!(kernel.complete(64), 16);
    xsk.send(&batch[e.batch_idx..], true).unwrap();
    let wire = kernel.transmit(64);
    assert_eq!(
        wire,
        bufs[16..].to_vec(),
        "the retry sends the rest once, in order"
    );
}
