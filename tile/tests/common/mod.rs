//! A workspace per test, unlinked at the end even when the test fails.
#![allow(dead_code)]

pub(crate) mod tiles;

use std::time::{Duration, Instant};

use tilewire_aio::{Aio, PktInfo, PktMeta};
use tilewire_shmem::TempWorkspace;
use tilewire_tile::link::tx::LinkTx;
use tilewire_tile::link::{Link, LinkParams, Reliability};

pub(crate) struct TestWs {
    pub ws: TempWorkspace,
}

impl TestWs {
    pub(crate) fn new(tag: &str, size: usize) -> TestWs {
        TestWs {
            ws: TempWorkspace::new(tag, size).unwrap(),
        }
    }

    pub(crate) fn link(
        &self,
        name: &str,
        depth: u64,
        mtu: usize,
        consumers: &[Reliability],
    ) -> Link<'_> {
        let p = LinkParams {
            depth,
            mtu,
            consumers: consumers.to_vec(),
            seq0: 0,
        };
        Link::create(&self.ws, name, &p).unwrap()
    }
}

/// The payload frag `seq` carries in tests: its length and bytes both
/// derive from the seq, so a consumer can check every byte.
pub(crate) fn payload(seq: u64, mtu: usize, buf: &mut Vec<u8>) {
    let len = (seq.wrapping_mul(2654435761) % (mtu as u64 + 1)) as usize;
    buf.clear();
    buf.extend((0..len).map(|i| (seq as u8).wrapping_add(i as u8).wrapping_mul(31)));
}

/// How long a test waits for anything before it fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

/// Sends `n` packets `payload(first..first+n, mtu)` with `user = seq`
/// through `tx`, retrying on `Again` until the [`DEADLINE`].
pub(crate) fn send_all(tx: &mut LinkTx<'_>, first: u64, n: u64, mtu: usize) {
    let deadline = Instant::now() + DEADLINE;
    let mut buf = Vec::new();
    for seq in first..first + n {
        payload(seq, mtu, &mut buf);
        let pkt = PktInfo::new(&buf).with_meta(PktMeta {
            addr: None,
            user: seq,
        });
        while tx.send(&[pkt], true).is_err() {
            assert!(Instant::now() < deadline, "link stayed full at {seq}");
            std::thread::yield_now();
        }
    }
}

/// Extension for tests: one packet `payload(seq, mtu)` with `user = seq`.
pub(crate) trait TrySend {
    /// Sends it if the link has room; false if not.
    fn try_send(&mut self, seq: u64, mtu: usize) -> bool;
}

impl TrySend for LinkTx<'_> {
    fn try_send(&mut self, seq: u64, mtu: usize) -> bool {
        let mut buf = Vec::new();
        payload(seq, mtu, &mut buf);
        let pkt = PktInfo::new(&buf).with_meta(PktMeta {
            addr: None,
            user: seq,
        });
        self.send(&[pkt], true).is_ok()
    }
}

/// Waits until `done`, failing the test after the [`DEADLINE`].
pub(crate) fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}
