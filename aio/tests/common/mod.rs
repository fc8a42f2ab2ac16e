//! Conformance harnesses for this crate's backends, shared by the
//! integration tests.

#![allow(dead_code)] // each test binary uses some of these

use std::ptr::NonNull;
use std::time::Duration;

use pcap_file::pcap::PcapParser;
use tilewire_aio::conformance::Harness;
use tilewire_aio::{MemAio, PcapConfig, PcapTee, RawAio, RawAioHandle};
use tilewire_shmem::{Access, Region};

/// A fixed clock, so captures are byte-reproducible.
pub(crate) fn fixed_clock() -> Duration {
    Duration::new(1_700_000_000, 987_654_321)
}

/// Every packet of a pcap stream, parsed with the pcap-file crate.
///
/// # Panics
/// If the stream does not parse to the end.
pub(crate) fn parse_pcap(bytes: &[u8]) -> Vec<Vec<u8>> {
    let (mut rest, parser) = PcapParser::new(bytes).expect("pcap global header");
    let mut pkts = Vec::new();
    while !rest.is_empty() {
        let (next, pkt) = parser.next_packet(rest).expect("pcap record");
        pkts.push(pkt.data.into_owned());
        rest = next;
    }
    pkts
}

/// [`MemAio`] alone: the far side is its pool.
#[derive(Debug)]
pub(crate) struct MemHarness {
    pub mem: MemAio,
}

impl MemHarness {
    pub(crate) fn new(capacity: usize) -> MemHarness {
        MemHarness {
            mem: MemAio::with_capacity(capacity),
        }
    }
}

impl Harness for MemHarness {
    type A = MemAio;

    fn aio(&mut self) -> &mut MemAio {
        &mut self.mem
    }

    fn take_delivered(&mut self, _expect: usize) -> Vec<Vec<u8>> {
        self.mem.drain().map(|p| p.buf.to_vec()).collect()
    }

    fn capacity(&self) -> Option<usize> {
        Some(self.mem.pkt_cap())
    }
}

/// [`PcapTee`] in front of a [`MemAio`], capturing to memory. Every
/// `take_delivered` also checks that the capture holds exactly the packets
/// delivered, no more and no fewer.
#[derive(Debug)]
pub(crate) struct PcapHarness {
    pub tee: PcapTee<Vec<u8>, MemAio>,
    pub captured: Vec<Vec<u8>>,
}

impl PcapHarness {
    pub(crate) fn new(capacity: usize) -> PcapHarness {
        let config = PcapConfig {
            clock: fixed_clock,
            ..PcapConfig::default()
        };
        PcapHarness {
            tee: PcapTee::new(Vec::new(), MemAio::with_capacity(capacity), config).unwrap(),
            captured: Vec::new(),
        }
    }
}

impl Harness for PcapHarness {
    type A = PcapTee<Vec<u8>, MemAio>;

    fn aio(&mut self) -> &mut Self::A {
        &mut self.tee
    }

    fn take_delivered(&mut self, _expect: usize) -> Vec<Vec<u8>> {
        let got: Vec<Vec<u8>> = self
            .tee
            .downstream_mut()
            .drain()
            .map(|p| p.buf.to_vec())
            .collect();
        self.captured.extend(got.iter().cloned());
        assert_eq!(
            parse_pcap(self.tee.writer()),
            self.captured,
            "the capture differs from what the downstream took"
        );
        assert!(self.tee.io_error().is_none());
        got
    }

    fn capacity(&self) -> Option<usize> {
        Some(self.tee.downstream().pkt_cap())
    }
}

/// One cache line of object memory.
#[repr(C, align(64))]
struct ObjMem([u8; 64]);

/// A [`RawAio`] made with `new_for` over a boxed [`MemAio`], joined.
#[derive(Debug)]
pub(crate) struct RawHarness {
    handle: Option<RawAioHandle<'static>>,
    region: Region<'static>,
    obj: *mut ObjMem,
    target: *mut MemAio,
}

impl RawHarness {
    pub(crate) fn new(capacity: usize) -> RawHarness {
        let obj = Box::into_raw(Box::new(ObjMem([0; 64])));
        let target = Box::into_raw(Box::new(MemAio::with_capacity(capacity)));
        // SAFETY: `obj` is a live 64-byte allocation that is freed only in
        // Drop, after the handle was dropped and the object deleted; the
        // region is only touched through RawAio's atomics.
        let region = unsafe {
            Region::from_raw(
                NonNull::new(obj.cast::<u8>()).unwrap(),
                64,
                Access::ReadWrite,
            )
        };
        // SAFETY: `target` stays live until Drop, which deletes the object
        // and drops the handle first; the handle is used on this thread only
        // and `target` is touched directly only between sends.
        unsafe { RawAio::new_for(region, target) }.unwrap();
        let handle = RawAio::join(region).unwrap();
        RawHarness {
            handle: Some(handle),
            region,
            obj,
            target,
        }
    }

    /// The MemAio behind the object.
    pub(crate) fn sink(&mut self) -> &mut MemAio {
        // SAFETY: `&mut self` means no send through the handle is running.
        unsafe { &mut *self.target }
    }
}

impl Drop for RawHarness {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            RawAio::leave(h);
        }
        RawAio::delete(self.region).unwrap();
        // SAFETY: the object is deleted and its only handle dropped, so
        // nothing refers to either allocation any more.
        unsafe {
            drop(Box::from_raw(self.target));
            drop(Box::from_raw(self.obj));
        }
    }
}

impl Harness for RawHarness {
    type A = RawAioHandle<'static>;

    fn aio(&mut self) -> &mut Self::A {
        self.handle.as_mut().unwrap()
    }

    fn take_delivered(&mut self, _expect: usize) -> Vec<Vec<u8>> {
        self.sink().drain().map(|p| p.buf.to_vec()).collect()
    }

    fn capacity(&self) -> Option<usize> {
        // SAFETY: `&self` borrows the harness, so no send is running.
        Some(unsafe { &*self.target }.pkt_cap())
    }
}
