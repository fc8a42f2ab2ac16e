//! What the tests of the built-in tile kinds share: frames, a feeder that
//! publishes into a link, a collector that reads one, and a runner that
//! runs stems on threads until a condition holds (bounded in time).
//! Used with `mod common; mod kinds_support;` in each `kinds_*.rs`.
#![allow(dead_code)]

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use tilewire_aio::frame::{build_vec, UdpEndpoints};
use tilewire_pipeline::kinds::dedup::tcache_name;
use tilewire_shmem::Workspace;
use tilewire_tile::link::frag::{ctl, FragMeta};
use tilewire_tile::link::{Link, Poll, Producer};
use tilewire_tile::stem::metrics::TileMetricsHandle;
use tilewire_tile::stem::{RunEnd, Stem, StemConfig, Tile};
use tilewire_tile::tcache::{Tcache, TcacheHandle};

/// Longest any test waits for anything.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// Frequent housekeeping, so counters and credits move quickly.
pub(crate) fn config() -> StemConfig {
    StemConfig {
        lazy: 64,
        stop_grace: Duration::from_millis(500),
    }
}

/// Endpoints from `198.18.0.1:src_port` to `198.18.0.2:dst_port`.
pub(crate) fn ends(src_port: u16, dst_port: u16) -> UdpEndpoints {
    UdpEndpoints {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        src: SocketAddrV4::new([198, 18, 0, 1].into(), src_port),
        dst: SocketAddrV4::new([198, 18, 0, 2].into(), dst_port),
    }
}

/// A well-formed IPv4 UDP frame.
pub(crate) fn udp_frame(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    build_vec(&ends(src_port, dst_port), payload).unwrap()
}

/// A frame that is not IPv4: an ARP-typed frame of `len` bytes.
pub(crate) fn arp_frame(len: usize, fill: u8) -> Vec<u8> {
    let mut f = vec![fill; len.max(14)];
    f[..12].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    f.truncate(len);
    f
}

/// One frag to publish: `prefix` junk bytes before the packet, the
/// packet starting at origin `prefix.len()` (or `origin` if given, to make
/// bad frags), a signature and a `tsorig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frag {
    pub packet: Vec<u8>,
    pub prefix: usize,
    pub origin: Option<u16>,
    pub sig: u64,
    pub tsorig: u32,
}

impl Frag {
    /// A plain frag: origin 0.
    pub(crate) fn plain(packet: Vec<u8>, sig: u64) -> Frag {
        Frag {
            packet,
            prefix: 0,
            origin: None,
            sig,
            tsorig: sig as u32 ^ 0x5a5a,
        }
    }

    /// The packet behind `prefix` bytes of junk, origin pointing at it.
    pub(crate) fn at(packet: Vec<u8>, prefix: usize, sig: u64) -> Frag {
        Frag {
            prefix,
            ..Frag::plain(packet, sig)
        }
    }

    fn payload(&self) -> Vec<u8> {
        let mut p = vec![0xee; self.prefix];
        p.extend_from_slice(&self.packet);
        p
    }

    fn ctl(&self) -> u16 {
        ctl(true, true, false, self.origin.unwrap_or(self.prefix as u16))
    }
}

/// Publishes a list of frags into a link, as credits allow.
pub(crate) struct Feeder<'w> {
    producer: Producer<'w>,
    frags: Vec<Frag>,
    next: usize,
}

impl<'w> Feeder<'w> {
    pub(crate) fn new(link: &Link<'w>, frags: Vec<Frag>) -> Feeder<'w> {
        Feeder {
            producer: link.producer(),
            frags,
            next: 0,
        }
    }

    /// Publishes what fits; true once everything is out.
    pub(crate) fn feed(&mut self) -> bool {
        while let Some(f) = self.frags.get(self.next) {
            if self
                .producer
                .publish(&f.payload(), f.sig, f.ctl(), f.tsorig)
                .is_err()
            {
                return false;
            }
            self.next += 1;
        }
        true
    }
}

/// A frag read back from a link: its metadata and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Got {
    pub meta: FragMeta,
    pub bytes: Vec<u8>,
}

/// Reads a link through one consumer, keeping every frag.
pub(crate) struct Collector<'w> {
    consumer: tilewire_tile::link::Consumer<'w>,
    buf: Vec<u8>,
    pub got: Vec<Got>,
    pub overruns: u64,
}

impl<'w> Collector<'w> {
    pub(crate) fn new(link: &Link<'w>, consumer: usize) -> Collector<'w> {
        Collector {
            consumer: link.consumer(consumer).unwrap(),
            buf: vec![0; link.mtu()],
            got: Vec::new(),
            overruns: 0,
        }
    }

    /// Reads everything there is now and hands the credits back.
    pub(crate) fn drain(&mut self) -> usize {
        for _ in 0..1_000_000 {
            match self.consumer.poll_copy(&mut self.buf) {
                Poll::Frag(meta, ()) => self.got.push(Got {
                    meta,
                    bytes: self.buf[..meta.sz as usize].to_vec(),
                }),
                Poll::Empty => break,
                Poll::Overrun { .. } | Poll::Dropped(_) => self.overruns += 1,
            }
        }
        self.consumer.housekeeping();
        self.got.len()
    }
}

/// A stem that can be run on a thread, whatever its tile.
pub(crate) trait Runnable<'w>: Send {
    fn run_loop(&mut self) -> RunEnd;
    fn handle(&self) -> TileMetricsHandle<'w>;
}

impl<'w, T: Tile + Send> Runnable<'w> for Stem<'w, T> {
    fn run_loop(&mut self) -> RunEnd {
        self.run()
    }
    fn handle(&self) -> TileMetricsHandle<'w> {
        self.metrics()
    }
}

/// Asks every tile to stop when dropped, so a failing assertion never
/// leaves tile threads spinning (the scope would wait for them forever).
struct StopOnDrop<'a>(Vec<TileMetricsHandle<'a>>);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        for m in &self.0 {
            m.request_stop();
        }
    }
}

/// Runs `stems` on threads until `done` returns true (checked every
/// millisecond, for at most [`DEADLINE`]), stops them, and returns how
/// each run ended. Panics if `done` never held.
pub(crate) fn run_until<'w>(
    stems: &mut [&mut dyn Runnable<'w>],
    mut done: impl FnMut() -> bool,
) -> Vec<RunEnd> {
    std::thread::scope(|s| {
        let handles: Vec<_> = stems.iter().map(|st| st.handle()).collect();
        let guard = StopOnDrop(handles);
        let threads: Vec<_> = stems
            .iter_mut()
            .map(|st| s.spawn(move || st.run_loop()))
            .collect();
        let deadline = Instant::now() + DEADLINE;
        while !done() {
            assert!(Instant::now() < deadline, "condition not met in time");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(guard);
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

/// Counter `name` of a tile, as a monitor reads it.
pub(crate) fn counter(m: TileMetricsHandle<'_>, name: &str) -> u64 {
    m.snapshot()
        .counters
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no counter {name:?}"))
        .1
}

/// Allocates, formats and joins the tcache of dedup tile `tile`.
pub(crate) fn tcache<'w>(ws: &'w Workspace, tile: &str, depth: usize) -> TcacheHandle<'w> {
    let map_cnt = Tcache::default_map_cnt(depth).unwrap();
    let size = Tcache::footprint(depth, map_cnt).unwrap();
    let gaddr = ws
        .alloc_named(&tcache_name(tile), Tcache::ALIGN, size, 0)
        .unwrap();
    Tcache::new(ws.region(gaddr, size).unwrap(), depth, map_cnt).unwrap();
    Tcache::join(ws.region(gaddr, size).unwrap()).unwrap()
}
