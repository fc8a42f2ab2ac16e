//! The link-tx aio runs the same conformance suite as every other backend.

mod common;

use common::TestWs;
use tilewire_aio::conformance::{self, Harness};
use tilewire_aio::{Aio, PktInfo, PktMeta, SendError, BUF_MAX};
use tilewire_tile::link::tx::LinkTx;
use tilewire_tile::link::{Consumer, Link, Poll, Reliability::*};

/// A link of `depth` frags whose one reliable consumer is drained only by
/// `take_delivered`, so the link pushes back after `depth` packets.
struct LinkHarness {
    // Field order: the handles go before the workspace they point into.
    tx: LinkTx<'static>,
    rx: Consumer<'static>,
    mtu: usize,
    depth: u64,
    _ws: &'static TestWs,
}

impl LinkHarness {
    fn new(depth: u64, mtu: usize) -> LinkHarness {
        // Leaked so the handles can live in the same struct; each harness
        // unlinks its workspace file when dropped (the mapping stays until
        // the test process ends, a few hundred KiB).
        let ws: &'static TestWs = Box::leak(Box::new(TestWs::new("linktx", 1 << 22)));
        let link: Link<'static> = ws.link("tx", depth, mtu, &[Reliable]);
        LinkHarness {
            tx: LinkTx::new(&link),
            rx: link.consumer(0).unwrap(),
            mtu,
            depth,
            _ws: ws,
        }
    }
}

impl Drop for LinkHarness {
    fn drop(&mut self) {
        let _ = tilewire_shmem::Workspace::unlink(self._ws.ws.name());
    }
}

impl Harness for LinkHarness {
    type A = LinkTx<'static>;

    fn aio(&mut self) -> &mut LinkTx<'static> {
        &mut self.tx
    }

    fn take_delivered(&mut self, _expect: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; self.mtu];
        loop {
            match self.rx.poll_copy(&mut buf) {
                Poll::Frag(m, ()) => out.push(buf[..m.sz as usize].to_vec()),
                Poll::Empty => return out,
                other => panic!("a reliable consumer of a live link saw {other:?}"),
            }
        }
    }

    fn capacity(&self) -> Option<usize> {
        Some(self.depth as usize)
    }

    fn max_pkt_len(&self) -> Option<usize> {
        Some(self.tx.max_pkt_len())
    }
}

#[test]
fn link_tx_conforms() {
    conformance::run_all(|| LinkHarness::new(16, 1500));
}

#[test]
fn link_tx_conforms_at_minimum_depth_and_full_mtu() {
    conformance::run_all(|| LinkHarness::new(conformance::MIN_CAPACITY as u64, BUF_MAX));
}

#[test]
fn link_tx_carries_the_signature_and_stamps_tsorig() {
    let mut h = LinkHarness::new(16, 256);
    let a = [1u8, 2, 3];
    let batch = [
        PktInfo::new(&a).with_meta(PktMeta {
            addr: None,
            user: 0xfeed,
        }),
        PktInfo::new(&a[..1]).with_meta(PktMeta {
            addr: None,
            user: 7,
        }),
    ];
    h.tx.send(&batch, true).unwrap();
    let mut buf = [0u8; 256];
    let Poll::Frag(m0, ()) = h.rx.poll_copy(&mut buf) else {
        panic!("first frag missing")
    };
    let Poll::Frag(m1, ()) = h.rx.poll_copy(&mut buf) else {
        panic!("second frag missing")
    };
    assert_eq!((m0.sig, m0.sz, m1.sig, m1.sz), (0xfeed, 3, 7, 1));
    assert!(m0.som() && m0.eom() && !m0.err());
    // Both packets arrived in one batch: one origin time, and each was
    // published at or after it.
    assert_eq!(m0.tsorig, m1.tsorig);
    assert!(m0.tspub.wrapping_sub(m0.tsorig) < 1_000_000_000);
}

#[test]
fn link_tx_refuses_what_the_link_cannot_carry() {
    let mut h = LinkHarness::new(16, 100);
    let ok = [0u8; 100];
    let long = [0u8; 101];
    let r = h.tx.send(&[PktInfo::new(&ok), PktInfo::new(&long)], true);
    assert_eq!(r, Err(SendError::inval(1)));
    assert_eq!(h.take_delivered(1), vec![ok.to_vec()]);
}
