//! One cell of the table: one implementation, one size, one direction,
//! measured over a fresh set of sockets and programs on the veth pair.
//!
//! - **RX**: a tilewire AF_XDP socket in namespace `b` (copy mode, no
//!   program needed to transmit) blasts stamped copies of one frame at
//!   `a` from the first core, as fast as the kernel takes them; the
//!   receiver under test runs in `a`'s sockets on the second core, checks
//!   every packet and counts. After a warm-up, the receiver's window
//!   gives the rate (packets it took per second) and its CPU time per
//!   packet; then it stops the blaster and drains the tail, so the loss
//!   (blasted but never received) covers the whole cell.
//! - **TX**: the sender under test runs on the first core in `a`, sending
//!   copies of one frame (or payload) to `b`, where tilewire's program in
//!   DRV mode drops everything for the port at XDP. After a warm-up, the
//!   window gives the rate (packets the kernel completed per second) and
//!   the sender's CPU time per packet; `b`'s veth counters, read before
//!   and after the cell, say how many arrived.
//!
//! Receivers that find nothing to do sleep [`IDLE_SLEEP`] (xsk-rs's loop
//! waits in `poll(2)` instead), so a receiver's CPU time is its work, not
//! busy-poll spinning: the CPU per packet of receivers that keep up with
//! the blaster compares their cost.

use crate::harness::cpu::{ns_per, ThreadWindow};
use crate::harness::pin::{pin, Cores};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use tilewire_aio::netns::VethPair;
use tilewire_aio::udp::UdpAio;
use tilewire_aio::{Aio, PktInfo, SendError, SendErrorKind};
use tilewire_shmem::clock::mono_ns;
use tilewire_xdp::bpf::AttachMode;
use tilewire_xdp::xskrs_peer::{PeerMode, XskRsPeer};
use tilewire_xdp::{KernelStats, RxPacket, RxRefused, RxSink};

use super::axes::Family;
use super::frames::{self, Check};
use super::roles::{self, Role, SchedCounters, Umems, VethCounters, XskSock, BATCH};

/// How long an idle receiver sleeps before it polls again.
pub(super) const IDLE_SLEEP: Duration = Duration::from_micros(20);
/// How long a receiver keeps draining after the blaster stopped and
/// nothing came.
pub(super) const QUIET: Duration = Duration::from_millis(20);
/// Longest a blaster runs past its cell's planned end: every loop ends.
pub(super) const OVERRUN_MAX: Duration = Duration::from_secs(3);
/// Longest a sender waits for its last completions.
pub(super) const FLUSH_MAX: Duration = Duration::from_millis(200);

/// An implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Impl {
    /// tilewire's AF_XDP socket, its program attached in this mode.
    Tilewire(AttachMode),
    /// The xsk-rs peer, libxdp's program attached in this mode.
    XskRs(PeerMode),
    /// tilewire's UDP aio on the sendmmsg/recvmmsg engine.
    Mmsg,
}

impl Impl {
    pub(super) const ALL: [Impl; 5] = [
        Impl::Tilewire(AttachMode::Skb),
        Impl::Tilewire(AttachMode::Drv),
        Impl::XskRs(PeerMode::Skb),
        Impl::XskRs(PeerMode::Drv),
        Impl::Mmsg,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Impl::Tilewire(AttachMode::Skb) => "tilewire-xdp-skb",
            Impl::Tilewire(AttachMode::Drv) => "tilewire-xdp-drv",
            Impl::XskRs(PeerMode::Skb) => "xsk-rs-skb",
            Impl::XskRs(PeerMode::Drv) => "xsk-rs-drv",
            Impl::Mmsg => "mmsg",
        }
    }

    /// Whether the bench runs it over IPv6 too (xsk-rs's rows are IPv4's
    /// alone: its loop is a peer to compare with, not the subject).
    pub(super) fn has_ipv6(self) -> bool {
        !matches!(self, Impl::XskRs(_))
    }

    /// The xsk-rs row in the same XDP mode, for the ratio.
    pub(super) fn xskrs_peer(self) -> Option<Impl> {
        match self {
            Impl::Tilewire(AttachMode::Skb) => Some(Impl::XskRs(PeerMode::Skb)),
            Impl::Tilewire(AttachMode::Drv) => Some(Impl::XskRs(PeerMode::Drv)),
            _ => None,
        }
    }
}

pub(super) use crate::harness::Timing;

/// What one RX cell measured.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct RxCell {
    /// Packets per second the receiver took in its window.
    pub rate: f64,
    /// Receiver CPU ns per packet in its window.
    pub cpu_ns_per_pkt: f64,
    /// Packets the blaster got the kernel to take, whole cell.
    pub sent: u64,
    /// Packets of the flow the receiver took, whole cell.
    pub received: u64,
    /// Packets that failed the check (wrong length or pattern, or a
    /// sequence number past what was sent).
    pub bad: u64,
    /// Packets whose sequence number did not rise.
    pub disorder: u64,
    /// The blaster's own rate over its run.
    pub blaster_rate: f64,
    /// The kernel's drop counters of the AF_XDP socket over the whole
    /// cell (`XDP_STATISTICS`: which counter says what is in
    /// [`KernelStats`]); `None` for mmsg.
    pub socket: Option<KernelStats>,
    /// `a`'s veth counters over the cell (in DRV mode its `rx_dropped`
    /// also counts the redirects the socket refused, the same packets as
    /// the socket's drops).
    pub veth_a: Option<VethCounters>,
    /// `b`'s veth counters over the cell (`tx_dropped`: packets veth
    /// itself had no room for on the way to `a`).
    pub veth_b: Option<VethCounters>,
    /// How the scheduler treated the receiver thread over the cell.
    pub sched: SchedCounters,
    /// Longest time between two polls of a tilewire receiver, ns: how long
    /// the fill ring had to last on its own.
    pub max_gap_ns: Option<u64>,
    /// Receive wakeups (`recvfrom`) a tilewire receiver made: in copy mode
    /// the kernel never asks for one on the fill ring.
    pub rx_wakeups: Option<u64>,
}

impl RxCell {
    /// Packets lost at the socket (either cause).
    pub(super) fn socket_lost(&self) -> Option<u64> {
        self.socket.map(|k| k.rx_lost())
    }

    /// Packets sent and never received that the socket did not drop:
    /// lost before it (veth, the UDP stack's buffers for mmsg).
    pub(super) fn lost_elsewhere(&self) -> u64 {
        self.sent
            .saturating_sub(self.received)
            .saturating_sub(self.socket_lost().unwrap_or(0))
    }
}

/// What one TX cell measured.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct TxCell {
    /// Packets per second the kernel completed in the window.
    pub rate: f64,
    /// Sender CPU ns per completed packet in the window.
    pub cpu_ns_per_pkt: f64,
    /// Packets completed, whole cell.
    pub sent: u64,
    /// Packets `b`'s veth counted as received, whole cell (`None` if its
    /// counters could not be read).
    pub delivered: Option<u64>,
}

/// Shows each received packet to the check and gives its frame back.
struct CountingSink<'c>(&'c mut Check);

impl RxSink for CountingSink<'_> {
    fn take(&mut self, pkt: RxPacket<'_>) -> Result<u64, RxRefused> {
        self.0.frame(pkt.data);
        Ok(pkt.frame)
    }
}

/// A downstream aio that shows each UDP payload to the check.
struct CountingAio<'c>(&'c mut Check);

impl Aio for CountingAio<'_> {
    fn send(&mut self, batch: &[PktInfo<'_>], _flush: bool) -> Result<(), SendError> {
        for p in batch {
            self.0.payload(p.buf);
        }
        Ok(())
    }
}

/// The receiving end of an RX cell.
enum Receiver<'w> {
    Tilewire(Box<XskSock<'w>>),
    XskRs(Box<XskRsPeer>),
    Mmsg(Box<UdpAio>),
}

impl Receiver<'_> {
    /// The kernel's drop counters of an AF_XDP socket (`XDP_STATISTICS`).
    fn socket_drops(&mut self) -> Option<KernelStats> {
        match self {
            Receiver::Tilewire(sock) => sock.xsk().kernel_stats().ok(),
            Receiver::XskRs(peer) => {
                let k = peer.xdp_statistics().ok()?;
                Some(KernelStats {
                    rx_dropped: k.rx_dropped(),
                    rx_invalid_descs: k.rx_invalid_descs(),
                    tx_invalid_descs: k.tx_invalid_descs(),
                    rx_ring_full: k.rx_ring_full(),
                    rx_fill_ring_empty_descs: k.rx_fill_ring_empty_descs(),
                    tx_ring_empty_descs: k.tx_ring_empty_descs(),
                })
            }
            Receiver::Mmsg(_) => None,
        }
    }

    /// Receives and checks until `until`.
    fn run_until(&mut self, check: &mut Check, until: Instant, gap: &mut Gap) {
        match self {
            Receiver::XskRs(peer) => {
                let never = AtomicBool::new(false);
                peer.rx_loop(&never, until, |f| check.frame(f));
            }
            Receiver::Tilewire(sock) => receive(sock, check, until, gap),
            Receiver::Mmsg(aio) => {
                while Instant::now() < until {
                    if aio.poll(&mut CountingAio(check)) == 0 {
                        std::thread::sleep(IDLE_SLEEP);
                    }
                }
            }
        }
    }
}

/// A tilewire receiver's loop: receives and checks until `until`, sleeping
/// [`IDLE_SLEEP`] when a poll finds nothing.
pub(super) fn receive(sock: &mut XskSock<'_>, check: &mut Check, until: Instant, gap: &mut Gap) {
    let xsk = sock.xsk();
    while Instant::now() < until {
        gap.poll();
        if xsk.poll_rx(&mut CountingSink(check), BATCH as u32) == 0 {
            xsk.service(mono_ns());
            std::thread::sleep(IDLE_SLEEP);
        }
    }
}

/// The longest time between two polls of a receiver (one clock read a
/// poll, a poll takes up to [`BATCH`] packets).
#[derive(Default)]
pub(super) struct Gap {
    pub last: u64,
    pub max: u64,
}

impl Gap {
    #[inline]
    fn poll(&mut self) {
        let now = mono_ns();
        if self.last != 0 {
            self.max = self.max.max(now - self.last);
        }
        self.last = now;
    }
}

/// What one blaster socket did.
pub(super) struct Blasted {
    pub completed: u64,
    pub stamped: u64,
    pub secs: f64,
}

/// Sends stamped copies of `frames[i]` on `socks[i]`, a batch of [`BATCH`]
/// on each in turn, until `stop`, then waits for the last completions.
/// Each socket has its own sequence numbers.
pub(super) fn blast(
    socks: &mut [&mut XskSock<'_>],
    frames: &[&[u8]],
    stop: &AtomicBool,
    cap: Instant,
) -> Vec<Blasted> {
    let before: Vec<u64> = socks
        .iter_mut()
        .map(|s| s.xsk().stats().tx_completed)
        .collect();
    let mut stamped: Vec<Vec<Vec<u8>>> = frames.iter().map(|f| vec![f.to_vec(); BATCH]).collect();
    let mut seq = vec![0u64; socks.len()];
    let t0 = Instant::now();
    // SYNC: Acquire; pairs with the receiver's Release store once its
    // window closed (no data rides on it, only "stop").
    while !stop.load(Ordering::Acquire) && Instant::now() < cap {
        for (i, sock) in socks.iter_mut().enumerate() {
            let xsk = sock.xsk();
            for f in stamped[i].iter_mut() {
                frames::stamp(f, seq[i]);
                seq[i] += 1;
            }
            let batch: [PktInfo<'_>; BATCH] = std::array::from_fn(|j| PktInfo::new(&stamped[i][j]));
            let mut at = 0;
            while at < BATCH {
                match xsk.send(&batch[at..], true) {
                    Ok(()) => at = BATCH,
                    Err(e) => {
                        at += e.batch_idx;
                        if e.kind != SendErrorKind::Again {
                            at += 1;
                        }
                        xsk.service(mono_ns());
                    }
                }
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let end = Instant::now() + FLUSH_MAX;
    socks
        .iter_mut()
        .zip(before.iter().zip(&seq))
        .map(|(sock, (&before, &stamped))| {
            let xsk = sock.xsk();
            while xsk.stats().tx_completed - before < stamped && Instant::now() < end {
                xsk.service(mono_ns());
                let _ = xsk.send(&[], true);
            }
            Blasted {
                completed: xsk.stats().tx_completed - before,
                stamped,
                secs,
            }
        })
        .collect()
}

/// One RX cell of `imp` at `sz` payload bytes over `fam` (IPv6: the
/// pair's addresses made by [`roles::add_ipv6`]).
///
/// # Errors
/// Why the cell could not be set up (a note for the output).
pub(super) fn rx(
    pair: &VethPair,
    umems: &Umems<'_>,
    (imp, fam): (Impl, Family),
    sz: usize,
    t: Timing,
    cores: Cores,
) -> Result<RxCell, String> {
    let a = pair.a();
    // The receiver's program (tilewire's; xsk-rs brings libxdp's) lives
    // until the cell ends.
    let mut _program = None;
    let mut receiver = match imp {
        Impl::Tilewire(mode) => {
            let (sock, program) = roles::steered_xsk(a, umems, mode, Role::Receive)?;
            _program = Some(program);
            Receiver::Tilewire(Box::new(sock))
        }
        Impl::XskRs(mode) => Receiver::XskRs(Box::new(roles::bind_xskrs(a, mode, Role::Receive)?)),
        Impl::Mmsg => {
            let addr = SocketAddr::from((roles::addrs(pair, fam).0, roles::PORT_A));
            Receiver::Mmsg(Box::new(roles::bind_mmsg(a, addr)?))
        }
    };
    let mut blaster = roles::bind_xsk(pair.b(), umems, Role::Send, 0)?;
    let frame = frames::frame_of(&frames::rx_flow(pair, fam), sz);
    let stop = AtomicBool::new(false);
    let start = Barrier::new(2);
    let cap = Instant::now() + t.warm + t.window + OVERRUN_MAX;
    let veth0 = (roles::veth_counters(a), roles::veth_counters(pair.b()));
    let (blasted, (check, window, socket, sched, (max_gap_ns, rx_wakeups))) =
        std::thread::scope(|s| {
            let (stop, start, frame) = (&stop, &start, &frame);
            let tb = s.spawn(move || {
                pin(cores.first);
                start.wait();
                let mut b = blast(&mut [&mut blaster], &[frame.as_slice()], stop, cap);
                b.remove(0)
            });
            let tr = s.spawn(move || {
                pin(cores.second);
                let mut check = Check::new(sz);
                let mut gap = Gap::default();
                start.wait();
                let sched0 = SchedCounters::now();
                receiver.run_until(&mut check, Instant::now() + t.warm, &mut gap);
                let (w, n0) = (ThreadWindow::start(), check.pkts);
                receiver.run_until(&mut check, w.started_at() + t.window, &mut gap);
                let window = (check.pkts - n0, w.cpu_ns(), w.secs());
                // SYNC: Release; pairs with the blaster's Acquire load.
                stop.store(true, Ordering::Release);
                let end = Instant::now() + OVERRUN_MAX;
                loop {
                    let before = check.pkts + check.foreign + check.bad;
                    gap.last = 0;
                    receiver.run_until(&mut check, Instant::now() + QUIET, &mut gap);
                    if check.pkts + check.foreign + check.bad == before || Instant::now() > end {
                        break;
                    }
                }
                let sched = sched0.delta(SchedCounters::now());
                let drops = receiver.socket_drops();
                let (max_gap, wakeups) = match &mut receiver {
                    Receiver::Tilewire(sock) => {
                        (Some(gap.max), Some(sock.xsk().stats().rx_wakeups))
                    }
                    _ => (None, None),
                };
                drop(receiver);
                (check, window, drops, sched, (max_gap, wakeups))
            });
            (
                tb.join().expect("blaster thread"),
                tr.join().expect("receiver thread"),
            )
        });
    if matches!(imp, Impl::XskRs(_)) {
        roles::xdp_off(a);
    }
    let (pkts, cpu_ns, secs) = window;
    let past_end = check.max_seq.is_some_and(|m| m >= blasted.stamped);
    Ok(RxCell {
        rate: pkts as f64 / secs.max(1e-9),
        cpu_ns_per_pkt: ns_per(cpu_ns, pkts),
        sent: blasted.completed,
        received: check.pkts,
        bad: check.bad + u64::from(past_end),
        disorder: check.disorder,
        blaster_rate: blasted.completed as f64 / blasted.secs.max(1e-9),
        socket,
        veth_a: veth0
            .0
            .zip(roles::veth_counters(a))
            .map(|(x, y)| x.delta(y)),
        veth_b: veth0
            .1
            .zip(roles::veth_counters(pair.b()))
            .map(|(x, y)| x.delta(y)),
        sched,
        max_gap_ns,
        rx_wakeups,
    })
}

/// The sending end of a TX cell.
enum Sender<'w> {
    Tilewire(Box<XskSock<'w>>),
    XskRs(Box<XskRsPeer>),
    Mmsg(Box<UdpAio>, SocketAddr),
}

impl Sender<'_> {
    /// Sends copies of `frame` (whole Ethernet frame; its UDP payload for
    /// mmsg) until `until`, then waits for the completions; returns the
    /// packets the kernel completed meanwhile.
    fn run_until(&mut self, frame: &[u8], until: Instant) -> Result<u64, String> {
        match self {
            Sender::XskRs(peer) => {
                let never = AtomicBool::new(false);
                let counts = peer
                    .tx_loop(frame, &never, until)
                    .map_err(|e| e.to_string())?;
                Ok(counts.packets)
            }
            Sender::Tilewire(sock) => send(sock, frame, until),
            Sender::Mmsg(aio, dest) => {
                let payload = tilewire_xdp::frame::udp_payload(frame).ok_or("not a UDP frame")?;
                let before = aio.stats().tx_pkts;
                let mut batch = [PktInfo::new(payload); BATCH];
                for p in batch.iter_mut() {
                    p.meta.addr = Some(*dest);
                }
                while Instant::now() < until {
                    let mut at = 0;
                    while at < BATCH {
                        match aio.send(&batch[at..], true) {
                            Ok(()) => at = BATCH,
                            Err(e) if e.kind == SendErrorKind::Again => at += e.batch_idx,
                            Err(e) => return Err(format!("mmsg send: {e}")),
                        }
                    }
                }
                let end = Instant::now() + FLUSH_MAX;
                while aio.tx_pending() > 0 && Instant::now() < end {
                    let _ = aio.send(&[], true);
                }
                Ok(aio.stats().tx_pkts - before)
            }
        }
    }
}

/// A tilewire sender's loop: sends copies of `frame` (a whole Ethernet
/// frame) in batches of [`BATCH`] until `until`, then waits for the
/// completions; returns the packets the kernel completed meanwhile.
///
/// # Errors
/// A send the socket refused for another reason than a full ring.
pub(super) fn send(sock: &mut XskSock<'_>, frame: &[u8], until: Instant) -> Result<u64, String> {
    let xsk = sock.xsk();
    let before = xsk.stats().tx_completed;
    let batch = [PktInfo::new(frame); BATCH];
    while Instant::now() < until {
        let mut at = 0;
        while at < BATCH {
            match xsk.send(&batch[at..], true) {
                Ok(()) => at = BATCH,
                Err(e) if e.kind == SendErrorKind::Again => {
                    at += e.batch_idx;
                    xsk.service(mono_ns());
                }
                Err(e) => return Err(format!("tilewire send: {e}")),
            }
        }
    }
    let end = Instant::now() + FLUSH_MAX;
    while xsk.stats().tx_completed < xsk.stats().tx_packets && Instant::now() < end {
        xsk.service(mono_ns());
        let _ = xsk.send(&[], true);
    }
    Ok(xsk.stats().tx_completed - before)
}

/// One TX cell of `imp` at `sz` payload bytes over `fam`. `b` must
/// already drop the flow at XDP (see [`roles::drop_spec`]).
///
/// # Errors
/// Why the cell could not be set up or a send failed (a note).
pub(super) fn tx(
    pair: &VethPair,
    umems: &Umems<'_>,
    (imp, fam): (Impl, Family),
    sz: usize,
    t: Timing,
    cores: Cores,
) -> Result<TxCell, String> {
    let a = pair.a();
    let mut _program = None;
    let mut sender = match imp {
        Impl::Tilewire(mode) => {
            let (sock, program) = roles::steered_xsk(a, umems, mode, Role::Send)?;
            _program = Some(program);
            Sender::Tilewire(Box::new(sock))
        }
        Impl::XskRs(mode) => Sender::XskRs(Box::new(roles::bind_xskrs(a, mode, Role::Send)?)),
        Impl::Mmsg => {
            let (addr_a, addr_b) = roles::addrs(pair, fam);
            let src = SocketAddr::from((addr_a, 0));
            let dest = SocketAddr::from((addr_b, roles::PORT_B));
            Sender::Mmsg(Box::new(roles::bind_mmsg(a, src)?), dest)
        }
    };
    let frame = frames::frame_of(&frames::tx_flow(pair, fam), sz);
    let delivered0 = roles::veth_rx_packets(pair.b());
    let result = std::thread::scope(|s| {
        let frame = &frame;
        s.spawn(move || {
            pin(cores.first);
            let warm = sender.run_until(frame, Instant::now() + t.warm)?;
            let w = ThreadWindow::start();
            let n = sender.run_until(frame, w.started_at() + t.window)?;
            let cpu = w.cpu_ns();
            let secs = w.secs();
            drop(sender);
            Ok::<_, String>((warm + n, n, cpu, secs))
        })
        .join()
        .expect("sender thread")
    });
    if matches!(imp, Impl::XskRs(_)) {
        roles::xdp_off(a);
    }
    let (total, n, cpu, secs) = result?;
    let delivered1 = roles::veth_rx_packets(pair.b());
    Ok(TxCell {
        rate: n as f64 / secs.max(1e-9),
        cpu_ns_per_pkt: ns_per(cpu, n),
        sent: total,
        delivered: delivered0.zip(delivered1).map(|(x, y)| y.saturating_sub(x)),
    })
}
