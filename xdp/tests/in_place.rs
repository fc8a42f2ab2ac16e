//! Transmit in place over a spanning UMEM, against the mock kernel: the
//! pool's frames are conserved whatever the order of operations, received
//! packets arrive intact through the unaligned-mode addresses, in-place
//! sends leave byte for byte in order and are reported done (by address,
//! in submission order) only after the kernel completed them, also when it
//! completes out of order; and what `send_in_place` must refuse, it does.
//!
//! No privileges needed (the veth test is in `xsk_veth_in_place.rs`).

use std::collections::VecDeque;

use proptest::prelude::*;
use tilewire_aio::{Aio, PktInfo};
use tilewire_shmem::Region;
use tilewire_xdp::mock::{MockConfig, MockKernel};
use tilewire_xdp::{InPlaceError, RxPacket, RxRefused, RxSink, Umem, UmemError, Xsk, FRAME_SIZE};

#[repr(C, align(4096))]
struct Page([u8; 4096]);

const PAGE: usize = 4096;
/// Pages before the pool (in-place memory), pool pages, pages after it.
const BEFORE: usize = 2;
const POOL: usize = 16;
const AFTER: usize = 1;

/// Where in-place sends start, in the span: 64-byte aligned, some across
/// a 2048-byte boundary, before and after the pool.
const SLOTS: [u64; 6] = [
    0,
    1984,
    4096 + 64,
    4096 + 1920,
    ((BEFORE + POOL) * PAGE) as u64,
    ((BEFORE + POOL) * PAGE + 2000 - 16) as u64,
];

fn pages() -> Vec<Page> {
    (0..BEFORE + POOL + AFTER)
        .map(|_| Page([0; 4096]))
        .collect()
}

/// A spanning UMEM over `mem`: the pool is the middle pages.
fn spanning(mem: &mut [Page]) -> Umem<'_> {
    let len = mem.len() * PAGE;
    // SAFETY: the pages are `len` contiguous initialised bytes.
    let bytes = unsafe { std::slice::from_raw_parts_mut(mem.as_mut_ptr().cast::<u8>(), len) };
    let span = Region::from_mut(bytes);
    let pool = span.sub(BEFORE * PAGE, POOL * PAGE).unwrap();
    Umem::spanning(pool, span).unwrap()
}

/// Writes `data` at span address `addr` (memory the test owns: no send
/// in flight there).
fn put(umem: &Umem<'_>, addr: u64, data: &[u8]) {
    assert!(umem.in_span(addr, data.len() as u32));
    // SAFETY: inside the span (asserted); no in-flight send reads these
    // bytes (the caller's rule), and the test is the only thread.
    unsafe {
        std::ptr::copy_nonoverlapping(
            data.as_ptr(),
            umem.region().as_ptr().add(addr as usize),
            data.len(),
        )
    }
}

fn packet(n: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (n as usize * 131 + i * 7) as u8).collect()
}

/// Copies each packet out and checks it against what was received.
struct Check(VecDeque<Vec<u8>>);

impl RxSink for Check {
    fn take(&mut self, pkt: RxPacket<'_>) -> Result<u64, RxRefused> {
        let want = self.0.pop_front().expect("a packet nobody received");
        assert_eq!(pkt.data, &want[..], "received bytes differ");
        assert_eq!(pkt.frame, pkt.addr & !(u64::from(FRAME_SIZE) - 1));
        Ok(pkt.frame)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Receive(usize),
    PollRx(u32),
    SendCopy(usize),
    SendInPlace(usize, usize),
    Transmit(u32),
    Complete(u32),
    CompleteNewest(u32),
    Service,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (14usize..1700).prop_map(Op::Receive),
        (1u32..10).prop_map(Op::PollRx),
        (14usize..1500).prop_map(Op::SendCopy),
        (0..SLOTS.len(), 14usize..1500).prop_map(|(s, l)| Op::SendInPlace(s, l)),
        (1u32..10).prop_map(Op::Transmit),
        (1u32..10).prop_map(Op::Complete),
        (1u32..4).prop_map(Op::CompleteNewest),
        Just(Op::Service),
    ]
}

/// Every frame the socket took from the pool (`total`, its first ones)
/// exactly once across the socket and the kernel.
fn check_frames(xsk: &Xsk<'_>, kernel: &MockKernel<'_>, total: u32) {
    let u = xsk.umem();
    let mut all = xsk.frame_list();
    all.extend(kernel.frame_list());
    all.sort_unstable();
    let want: Vec<u64> = (0..total).map(|i| u.frame_addr(i)).collect();
    assert_eq!(all, want, "a pool frame is lost or in two places");
}

/// The test's view of the in-place sends.
#[derive(Default)]
struct Ledger {
    /// In flight: (slot, address, transmitted yet), oldest first.
    sends: VecDeque<(usize, u64, bool)>,
    /// What the wire must carry next, in order: (bytes, in-place slot).
    wire: VecDeque<(Vec<u8>, Option<usize>)>,
    busy: [bool; SLOTS.len()],
}

impl Ledger {
    /// Takes the sends the socket reports done and frees their slots.
    fn reap(&mut self, xsk: &mut Xsk<'_>) {
        let done: Vec<u64> = xsk.in_place_done().collect();
        for addr in done {
            let (slot, want, transmitted) = self.sends.pop_front().expect("done, never sent");
            assert_eq!(addr, want, "done out of submission order");
            assert!(transmitted, "reported done before the kernel sent it");
            self.busy[slot] = false;
        }
        assert_eq!(xsk.in_place_in_flight(), self.sends.len());
    }

    fn transmitted(&mut self, wire: Vec<Vec<u8>>) {
        for w in wire {
            let (want, slot) = self.wire.pop_front().expect("sent, never queued");
            assert_eq!(w, want, "transmitted bytes or order differ");
            if let Some(s) = slot {
                let e = self.sends.iter_mut().find(|e| e.0 == s && !e.2).unwrap();
                e.2 = true;
            }
        }
    }
}

fn run(ops: Vec<Op>) {
    let mut mem = pages();
    let umem = spanning(&mut mem);
    let cfg = MockConfig {
        rx_size: 4,
        fill_size: 4,
        tx_size: 4,
        lines: 0,
        start: u32::MAX - 20,
        tx_high_water: 2,
    };
    let (mut xsk, _, mut kernel) = MockKernel::new(umem, &cfg);
    let mut check = Check(VecDeque::new());
    let mut l = Ledger::default();
    let mut n = 0u64;
    let total = cfg.fill_size + cfg.tx_size;
    check_frames(&xsk, &kernel, total);
    for op in ops {
        n += 1;
        match op {
            Op::Receive(len) => {
                let p = packet(n, len);
                if kernel.receive(&p) {
                    check.0.push_back(p);
                }
            }
            Op::PollRx(b) => {
                xsk.poll_rx(&mut check, b);
            }
            Op::SendCopy(len) => {
                let p = packet(n, len);
                if xsk.send(&[PktInfo::new(&p)], false).is_ok() {
                    l.wire.push_back((p, None));
                }
            }
            Op::SendInPlace(slot, len) => {
                if l.busy[slot] {
                    continue;
                }
                let (addr, p) = (SLOTS[slot], packet(n, len));
                put(&umem, addr, &p);
                match xsk.send_in_place(addr, len as u32) {
                    Ok(()) => {
                        l.busy[slot] = true;
                        l.sends.push_back((slot, addr, false));
                        l.wire.push_back((p, Some(slot)));
                    }
                    Err(InPlaceError::Full) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            Op::Transmit(k) => l.transmitted(kernel.transmit(k)),
            Op::Complete(k) => {
                kernel.complete(k);
            }
            Op::CompleteNewest(k) => {
                kernel.complete_newest(k);
            }
            Op::Service => xsk.service(u64::MAX / 2),
        }
        l.reap(&mut xsk);
        check_frames(&xsk, &kernel, total);
    }
    for _ in 0..16 {
        xsk.send(&[], true).unwrap();
        xsk.poll_rx(&mut check, 64);
        l.transmitted(kernel.transmit(64));
        kernel.complete(64);
        xsk.service(u64::MAX / 2);
        l.reap(&mut xsk);
    }
    assert!(check.0.is_empty(), "received packets never delivered");
    assert!(l.wire.is_empty(), "queued packets never sent");
    assert!(l.sends.is_empty(), "in-place sends never reported done");
    let s = xsk.stats();
    assert_eq!(s.tx_in_place, s.tx_in_place_completed);
    assert_eq!((s.rx_bad_desc, s.tx_bad_completion), (0, 0));
    check_frames(&xsk, &kernel, total);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn in_place_sends_and_pool_frames_are_conserved(ops in proptest::collection::vec(op(), 1..150)) {
        run(ops);
    }
}

#[test]
fn out_of_order_completions_retire_in_submission_order() {
    let mut mem = pages();
    let umem = spanning(&mut mem);
    let (mut xsk, _, mut kernel) = MockKernel::new(umem, &MockConfig::default());
    for (i, &a) in SLOTS[..3].iter().enumerate() {
        put(&umem, a, &packet(i as u64, 60));
        xsk.send_in_place(a, 60).unwrap();
    }
    xsk.send(&[], true).unwrap();
    assert_eq!(kernel.transmit(8).len(), 3);
    assert_eq!(kernel.complete_newest(1), 1);
    xsk.service(0);
    assert_eq!(xsk.in_place_done().count(), 0, "the newest waits");
    assert_eq!(xsk.in_place_in_flight(), 3);
    assert_eq!(kernel.complete(2), 2);
    xsk.service(0);
    assert_eq!(xsk.in_place_done().collect::<Vec<_>>(), SLOTS[..3]);
    let s = xsk.stats();
    assert_eq!(
        (s.tx_in_place, s.tx_in_place_completed, s.tx_completed),
        (3, 3, 0)
    );
    check_frames(&xsk, &kernel, 32);
}

#[test]
fn refuses_what_it_must() {
    let mut mem = pages();
    let umem = spanning(&mut mem);
    let (mut xsk, _, _k) = MockKernel::new(umem, &MockConfig::default());
    let end = umem.len() as u64;
    let pool = umem.pool_off();
    let cases = [
        (end - 59, 60, "leaves the UMEM's span"),
        (u64::MAX - 10, 60, "leaves the UMEM's span"),
        (pool, 60, "overlaps the UMEM's frame pool"),
        (pool - 30, 60, "overlaps the UMEM's frame pool"),
        (pool + umem.pool_len() as u64 - 1, 60, "overlaps"),
        (0, 13, "not between 14 and"),
        (0, FRAME_SIZE + 1, "not between 14 and"),
    ];
    for (addr, len, says) in cases {
        let e = xsk.send_in_place(addr, len).unwrap_err();
        assert!(e.to_string().contains(says), "{addr:#x}+{len}: {e}");
    }
    assert_eq!(xsk.stats().tx_in_place, 0);
    // Right next to the pool on both sides is fine.
    xsk.send_in_place(pool - 60, 60).unwrap();
    xsk.send_in_place(pool + umem.pool_len() as u64, 60)
        .unwrap();
    // A plain UMEM has nothing outside its frames.
    let mut plain = pages();
    let len = plain.len() * PAGE;
    // SAFETY: the pages are `len` contiguous initialised bytes.
    let bytes = unsafe { std::slice::from_raw_parts_mut(plain.as_mut_ptr().cast::<u8>(), len) };
    let u = Umem::new(Region::from_mut(bytes)).unwrap();
    assert!(!u.is_unaligned());
    let (mut x, _, _k) = MockKernel::new(u, &MockConfig::default());
    assert_eq!(x.send_in_place(0, 60), Err(InPlaceError::NotSpanning));
}

#[test]
fn a_span_must_hold_its_pool() {
    let mut mem = pages();
    let len = mem.len() * PAGE;
    // SAFETY: the pages are `len` contiguous initialised bytes.
    let bytes = unsafe { std::slice::from_raw_parts_mut(mem.as_mut_ptr().cast::<u8>(), len) };
    let all = Region::from_mut(bytes);
    let pool = all.sub(4 * PAGE, 4 * PAGE).unwrap();
    let short = all.sub(0, 6 * PAGE).unwrap();
    let e = Umem::spanning(pool, short).unwrap_err();
    assert!(matches!(e, UmemError::PoolOutsideSpan { .. }), "{e}");
    let late = all.sub(5 * PAGE, 8 * PAGE).unwrap();
    let e = Umem::spanning(pool, late).unwrap_err();
    assert!(matches!(e, UmemError::PoolOutsideSpan { .. }), "{e}");
    let ragged = all.sub(0, 9 * PAGE - 64).unwrap();
    let e = Umem::spanning(pool, ragged).unwrap_err();
    assert!(matches!(e, UmemError::Misaligned { .. }), "{e}");
    let u = Umem::spanning(pool, all).unwrap();
    assert_eq!(
        (u.len(), u.pool_len(), u.pool_off()),
        (len, 4 * PAGE, 4 * PAGE as u64)
    );
    assert_eq!(
        u.frame_of(4 * PAGE as u64 + 300, 100),
        Some(4 * PAGE as u64)
    );
    assert_eq!(u.frame_of(300, 100), None, "outside the pool is no frame");
    assert_eq!(u.frame_of(8 * PAGE as u64, 1), None, "past the pool");
    assert_eq!(u.rx_addr(4096 | (256 << 48)), 4096 + 256);
}
