//! The conformance suite against this crate's backends: MemAio, PcapTee
//! over MemAio, and a RawAio (through its trampoline) over MemAio.

mod common;

use common::{MemHarness, PcapHarness, RawHarness};
use tilewire_aio::conformance::{self, Harness};
use tilewire_aio::{Aio, PktInfo, SendError};

#[test]
fn mem_aio_conforms() {
    conformance::run_all(|| MemHarness::new(16));
}

#[test]
fn mem_aio_conforms_at_minimum_capacity() {
    conformance::run_all(|| MemHarness::new(conformance::MIN_CAPACITY));
}

#[test]
fn pcap_tee_over_mem_conforms() {
    conformance::run_all(|| PcapHarness::new(16));
}

#[test]
fn raw_aio_over_mem_conforms() {
    // Over CHUNK (64) packets so Again lands in a later chunk of the
    // handle's conversion.
    conformance::run_all(|| RawHarness::new(100));
    conformance::run_all(|| RawHarness::new(9));
}

/// The suite must be able to fail: a backend that duplicates a packet on
/// retry, and one that reports a wrong index, are both caught.
#[test]
fn suite_catches_a_broken_backend() {
    /// Takes `room` packets, then reports Again one index too early while
    /// keeping the packet anyway (so a retry duplicates it).
    struct Duplicating(MemHarness);

    impl Aio for Duplicating {
        fn send(&mut self, batch: &[PktInfo<'_>], flush: bool) -> Result<(), SendError> {
            match self.0.mem.send(batch, flush) {
                Err(e) if e.batch_idx > 0 => Err(SendError::again(e.batch_idx - 1)),
                r => r,
            }
        }
    }

    impl Harness for Duplicating {
        type A = Self;
        fn aio(&mut self) -> &mut Self {
            self
        }
        fn take_delivered(&mut self, expect: usize) -> Vec<Vec<u8>> {
            self.0.take_delivered(expect)
        }
        fn capacity(&self) -> Option<usize> {
            self.0.capacity()
        }
    }

    let failed = std::panic::catch_unwind(|| {
        conformance::check_retry_after_again_exactly_once(&mut Duplicating(MemHarness::new(8)))
    });
    assert!(
        failed.is_err(),
        "a duplicating backend passed the retry check"
    );
    let failed = std::panic::catch_unwind(|| {
        conformance::check_again_when_full(&mut Duplicating(MemHarness::new(8)))
    });
    assert!(failed.is_err(), "a backend with a wrong Again index passed");
    // And an honest backend passes the same checks.
    conformance::check_retry_after_again_exactly_once(&mut MemHarness::new(8));
    conformance::check_again_when_full(&mut MemHarness::new(8));
}
