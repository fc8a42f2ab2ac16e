//! A workspace per test, unlinked at the end even when the test fails.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use tilewire_shmem::{PageKind, Workspace};
use tilewire_tile::link::{Link, LinkParams, Reliability};

pub struct TestWs {
    pub ws: Workspace,
}

impl TestWs {
    pub fn new(tag: &str, size: usize) -> TestWs {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        TestWs {
            ws: Workspace::create(&name, size, PageKind::Normal).unwrap(),
        }
    }

    pub fn link(&self, name: &str, depth: u64, mtu: usize, consumers: &[Reliability]) -> Link<'_> {
        let p = LinkParams {
            depth,
            mtu,
            consumers: consumers.to_vec(),
            seq0: 0,
        };
        Link::create(&self.ws, name, &p).unwrap()
    }
}

impl Drop for TestWs {
    fn drop(&mut self) {
        let _ = Workspace::unlink(self.ws.name());
    }
}

/// The payload frag `seq` carries in tests: its length and bytes both
/// derive from the seq, so a consumer can check every byte.
pub fn payload(seq: u64, mtu: usize, buf: &mut Vec<u8>) {
    let len = (seq.wrapping_mul(2654435761) % (mtu as u64 + 1)) as usize;
    buf.clear();
    buf.extend((0..len).map(|i| (seq as u8).wrapping_add(i as u8).wrapping_mul(31)));
}
