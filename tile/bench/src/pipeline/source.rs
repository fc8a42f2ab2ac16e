//! The helpers around a UDP cell, the same for both pipelines: the
//! source that offers the load and the collector the pipelines send to.
//! Each runs on a thread of its own and publishes its CPU time, which
//! the bench leaves out of the pipeline's.
//!
//! - [`Blaster::Udp`]: a UDP socket (tilewire's sendmmsg engine, batches
//!   of 64) on loopback, or in the peer's namespace over veth.
//! - [`Blaster::Xdp`]: AF_XDP sockets (copy mode) on the peer's veth
//!   end, one per queue the cell feeds, sending whole frames, the fastest
//!   source this machine has; the
//!   kernel's receive path on the pipeline's side (veth, IP, UDP, the
//!   socket enqueue) runs in its softirq on its core.
//!
//! Both play the list in order ([`Sequence`]), stamping each payload's
//! pass and send time; a packet the socket has no room for is offered
//! again, so what was sent is exactly the first `sent` packets of the
//! list. With a [`RateLimit`] they send bursts of [`RATE_BURST`] on a
//! token bucket; without, as fast as the kernel takes them.

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tilewire_aio::frame::{build_vec, UdpEndpoints, UdpFrame, HEADERS_LEN};
use tilewire_aio::udp::{Engine, UdpAio, UdpConfig};
use tilewire_aio::{Aio, PktInfo, SendError, SendErrorKind};
use tilewire_shmem::clock::{mono_ns, thread_cpu_ns};
use tilewire_xdp::Xsk;

use super::collect::Collector;
use super::traffic::{self, Sequence, Traffic};

/// Packets per send call.
const BATCH: usize = 64;
/// Packets per burst under a rate limit.
pub(super) const RATE_BURST: usize = 8;

/// The burst a source sends at `rate` packets a second (0: as fast as it
/// goes): [`RATE_BURST`], or more at high rates, so that bursts come at
/// most every 100 µs (a sleep shorter than the kernel's timer slack, 50
/// µs, cannot keep a high rate).
pub(super) fn burst_for(rate: u64) -> usize {
    if rate == 0 {
        64
    } else {
        RATE_BURST.max((rate / 10_000) as usize)
    }
}
/// How long an idle collector sleeps before it polls again.
const IDLE_SLEEP: Duration = Duration::from_micros(20);

/// A token bucket: `rate` packets a second in bursts of `burst`; rate 0
/// is no limit.
#[derive(Debug, Clone, Copy)]
pub(super) struct RateLimit {
    rate: u64,
    burst: usize,
    t0: Option<Instant>,
    sent: u64,
}

impl RateLimit {
    pub(super) fn new(rate: u64, burst: usize) -> RateLimit {
        RateLimit {
            rate,
            burst: burst.max(1),
            t0: None,
            sent: 0,
        }
    }

    /// Packets that may go now, at most `max`; sleeps (and returns 0)
    /// until a burst is due.
    pub(super) fn wait(&mut self, max: usize) -> usize {
        if self.rate == 0 {
            return max;
        }
        let t0 = *self.t0.get_or_insert_with(Instant::now);
        let due = (t0.elapsed().as_nanos() * u128::from(self.rate) / 1_000_000_000) as u64;
        // A source that fell behind (descheduled) does not catch up in
        // one long burst.
        let behind = due.saturating_sub(self.sent);
        if behind > 4 * self.burst as u64 {
            self.sent = due - self.burst as u64;
        }
        let n = due
            .saturating_sub(self.sent)
            .min(self.burst as u64)
            .min(max as u64) as usize;
        if n < self.burst.min(max) {
            let short = (self.burst.min(max) - n) as u64;
            let ns = short * 1_000_000_000 / self.rate;
            std::thread::sleep(Duration::from_nanos(ns.min(1_000_000)));
            return 0;
        }
        self.sent += n as u64;
        n
    }
}

/// What a helper thread shows the main thread as it runs.
#[derive(Debug, Default)]
pub(super) struct SourceLive {
    /// Packets the kernel took so far.
    pub sent: AtomicU64,
    /// The thread's CPU time so far.
    pub cpu_ns: AtomicU64,
}

/// The source of a UDP cell.
pub(super) enum Blaster<'w> {
    Udp {
        aio: Box<UdpAio>,
        dest: SocketAddrV4,
    },
    /// One socket per queue of the peer's veth end (a frame sent on
    /// queue q arrives on the pipeline's queue q), a batch on each in
    /// turn.
    Xdp {
        xsks: Vec<Xsk<'w>>,
        frames: Vec<Vec<u8>>,
        turn: usize,
    },
}

/// A UDP socket for a blaster or collector, bound to `addr` in the
/// calling thread's namespace.
pub(super) fn udp_socket(addr: SocketAddrV4) -> Result<UdpAio, String> {
    let cfg = UdpConfig {
        engine: Engine::Mmsg,
        send_buf: Some(4 << 20),
        recv_buf: Some(4 << 20),
        batch: BATCH,
        ..UdpConfig::new(SocketAddr::V4(addr))
    };
    UdpAio::bind(&cfg).map_err(|e| format!("UDP socket {addr}: {e}"))
}

/// Source ports an AF_XDP blaster's frames come from, in turn: as many
/// flows, for the kernel to spread over sockets sharing the port.
pub(super) const XDP_FLOWS: u16 = 64;

/// The frames an AF_XDP blaster sends: each item of the list as a frame
/// of `ends` (UDP checksum 0, "none", so the stamps need no update), item
/// `i` from source port `ends.src.port() + i % XDP_FLOWS`.
pub(super) fn xdp_frames(t: &Traffic, ends: &UdpEndpoints) -> Result<Vec<Vec<u8>>, String> {
    t.items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let mut ends = *ends;
            ends.src.set_port(
                ends.src
                    .port()
                    .wrapping_add((i % usize::from(XDP_FLOWS)) as u16),
            );
            let mut f = build_vec(&ends, &it.payload).map_err(|e| e.to_string())?;
            UdpFrame::new_checked(&mut f[..])
                .map_err(|e| e.to_string())?
                .set_udp_checksum(0);
            Ok(f)
        })
        .collect()
}

impl Blaster<'_> {
    /// Sends until `stop`; returns the packets the kernel took.
    pub(super) fn run(
        &mut self,
        t: &Traffic,
        mut rate: RateLimit,
        stop: &AtomicBool,
        live: &SourceLive,
    ) -> u64 {
        let mut seq = Sequence::default();
        let mut slots: Vec<Vec<u8>> = vec![vec![0u8; 2048]; BATCH];
        let mut lens = [0usize; BATCH];
        let mut sent = 0u64;
        // SYNC: Relaxed; a flag the main thread raises, no data rides on it.
        while !stop.load(Ordering::Relaxed) {
            let n = rate.wait(BATCH);
            if n == 0 {
                continue;
            }
            let now = mono_ns();
            for (slot, len) in slots.iter_mut().zip(lens.iter_mut()).take(n) {
                *len = match self {
                    Blaster::Udp { .. } => seq.fill(t, slot, now),
                    Blaster::Xdp { frames, .. } => {
                        let (i, pass, sent) = seq.take(t, now);
                        let f = &frames[i];
                        slot[..f.len()].copy_from_slice(f);
                        traffic::stamp(&mut slot[HEADERS_LEN..f.len()], pass, sent);
                        f.len()
                    }
                };
            }
            let mut at = 0;
            while at < n {
                let r = match self {
                    Blaster::Udp { aio, dest } => {
                        let to = SocketAddr::V4(*dest);
                        let pkts: Vec<PktInfo<'_>> = (at..n)
                            .map(|k| PktInfo::with_addr(&slots[k][..lens[k]], to))
                            .collect();
                        aio.send(&pkts, true)
                    }
                    Blaster::Xdp { xsks, turn, .. } => {
                        let xsk = &mut xsks[*turn];
                        let pkts: Vec<PktInfo<'_>> = (at..n)
                            .map(|k| PktInfo::new(&slots[k][..lens[k]]))
                            .collect();
                        let r = xsk.send(&pkts, true);
                        xsk.service(mono_ns());
                        r
                    }
                };
                match r {
                    Ok(()) => at = n,
                    Err(SendError {
                        kind: SendErrorKind::Again,
                        batch_idx,
                        ..
                    }) => {
                        at += batch_idx;
                        std::hint::spin_loop();
                        // SYNC: Relaxed; as above.
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                    // Refused for good (a bug of the bench): counted as
                    // sent so the sequence stays exact; the check finds it
                    // missing.
                    Err(e) => at += e.batch_idx + 1,
                }
            }
            sent += at as u64;
            if let Blaster::Xdp { xsks, turn, .. } = self {
                *turn = (*turn + 1) % xsks.len();
            }
            // SYNC: Relaxed; progress counters the main thread samples.
            live.sent.store(sent, Ordering::Relaxed);
            live.cpu_ns.store(thread_cpu_ns(), Ordering::Relaxed);
        }
        self.finish(sent);
        sent
    }

    /// Pushes out what the socket still holds (`sent` taken in all).
    fn finish(&mut self, sent: u64) {
        let end = Instant::now() + Duration::from_millis(200);
        while Instant::now() < end {
            match self {
                Blaster::Udp { aio, .. } => {
                    if aio.tx_pending() == 0 {
                        return;
                    }
                    let _ = aio.send(&[], true);
                }
                Blaster::Xdp { xsks, .. } => {
                    let mut completed = 0;
                    for xsk in xsks.iter_mut() {
                        xsk.service(mono_ns());
                        let _ = xsk.send(&[], true);
                        completed += xsk.stats().tx_completed;
                    }
                    if completed >= sent {
                        return;
                    }
                }
            }
        }
    }
}

/// Shows each received payload to the collector.
struct ToCollector<'c> {
    col: &'c mut Collector,
    window: bool,
}

impl Aio for ToCollector<'_> {
    fn send(&mut self, batch: &[PktInfo<'_>], _flush: bool) -> Result<(), SendError> {
        let now = mono_ns();
        for p in batch {
            let lat = now.saturating_sub(traffic::sent_ns(p.buf));
            self.col.packet(p.buf, lat, self.window);
        }
        Ok(())
    }
}

/// Receives on `sock` into `col` until `stop` is raised and nothing came
/// for `quiet` (or `tail_max` passed after `stop`).
pub(super) fn collect(
    sock: &mut UdpAio,
    col: &mut Collector,
    stop: &AtomicBool,
    quiet: Duration,
    tail_max: Duration,
) {
    let mut last = Instant::now();
    let mut stopped_at: Option<Instant> = None;
    loop {
        let window = col.window();
        let n = sock.poll(&mut ToCollector { col, window });
        col.publish();
        // SYNC: Relaxed; see SourceLive.
        col.live.cpu_ns.store(thread_cpu_ns(), Ordering::Relaxed);
        let now = Instant::now();
        if n > 0 {
            last = now;
        } else {
            std::thread::sleep(IDLE_SLEEP);
        }
        // SYNC: Relaxed; a flag, no data rides on it.
        if stopped_at.is_none() && stop.load(Ordering::Relaxed) {
            stopped_at = Some(now);
        }
        if let Some(s) = stopped_at {
            if now.duration_since(last) > quiet || now.duration_since(s) > tail_max {
                return;
            }
        }
    }
}

/// The kernel's drop count of the UDP sockets bound to `port` in the
/// calling thread's network namespace (`/proc/thread-self/net/udp`, the
/// last column), all of them together; `None` if there is none.
pub(super) fn socket_drops(port: u16) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/net/udp").ok()?;
    let want = format!(":{port:04X}");
    // Every socket on the port: several share it with SO_REUSEPORT.
    let drops: Vec<u64> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let local = f.nth(1)?;
            if !local.ends_with(&want) {
                return None;
            }
            l.split_whitespace().last()?.parse().ok()
        })
        .collect();
    (!drops.is_empty()).then(|| drops.iter().sum())
}
