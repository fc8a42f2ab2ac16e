//! The queues section of `bench xdp`: tilewire's AF_XDP sockets on one and
//! on two queues of a veth pair with two queues each side, a socket per
//! queue registered at its queue in one program: what a net tile per
//! queue does. DRV mode only: veth records a frame's receive queue only
//! there (in SKB mode every frame is queue 0's).
//!
//! - **RX**: a blaster socket on each of `b`'s queues, one thread on the
//!   first core taking turns with a batch each; veth hands a frame sent on
//!   `b`'s queue q to `a`'s queue q, whose XDP run steers it to the socket
//!   at q. A receiver thread per queue on the second core checks its
//!   queue's flow (its own source port: a frame steered to the wrong
//!   socket shows) and measures its own rate and CPU per packet.
//! - **TX**: a sender thread per queue on the first core, each on a socket
//!   of its own queue; `b`'s program drops the port at XDP, as in the
//!   main TX cells.
//!
//! The one-queue cell runs on the same pair, so the two compare the queue
//! count alone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::Instant;

use crate::harness::cpu::{ns_per, ThreadWindow};
use crate::harness::pin::{pin, Cores};
use tilewire_aio::netns::VethPair;
use tilewire_xdp::bpf::AttachMode;
use tilewire_xdp::KernelStats;

use super::axes::Dir;
use super::axes::Family;
use super::cells::{blast, receive, send, Gap, Timing, OVERRUN_MAX, QUIET};
use super::frames::{self, Check};
use super::roles::{self, Role, Umems, VethCounters, XskSock};

/// The queue counts compared.
pub(super) const QUEUES: [u32; 2] = [1, 2];

/// One queue's part of a cell.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Queue {
    /// Packets per second in the window (received for RX, completed for
    /// TX).
    pub rate: f64,
    /// Its thread's CPU time in the window, ns.
    pub cpu_ns: u64,
    /// Packets in the window.
    pub pkts: u64,
    /// Whole cell: packets blasted at this queue (RX) or completed (TX).
    pub sent: u64,
    /// RX, whole cell: packets this queue's socket received.
    pub got: Option<u64>,
    /// RX: the socket's drop counters over the cell.
    pub socket: Option<KernelStats>,
}

impl Queue {
    pub(super) fn cpu_ns_per_pkt(&self) -> f64 {
        ns_per(self.cpu_ns, self.pkts)
    }
}

/// A cell of one or more queues.
#[derive(Clone, Debug)]
pub(super) struct QueuesCell {
    pub dir: Dir,
    pub sz: usize,
    pub each: Vec<Queue>,
    /// TX: packets `b`'s veth counted received over the cell.
    pub delivered: Option<u64>,
    /// RX: `a`'s and `b`'s veth counters over the cell (where packets
    /// lost before the sockets went).
    pub veth: Option<(VethCounters, VethCounters)>,
}

impl QueuesCell {
    pub(super) fn queues(&self) -> u32 {
        self.each.len() as u32
    }

    /// All queues together: packets per second.
    pub(super) fn rate(&self) -> f64 {
        self.each.iter().map(|q| q.rate).sum()
    }

    /// All queues together: CPU ns per packet.
    pub(super) fn cpu_ns_per_pkt(&self) -> f64 {
        let cpu: u64 = self.each.iter().map(|q| q.cpu_ns).sum();
        let pkts: u64 = self.each.iter().map(|q| q.pkts).sum();
        ns_per(cpu, pkts)
    }

    pub(super) fn sent(&self) -> u64 {
        self.each.iter().map(|q| q.sent).sum()
    }

    /// RX: packets sent and neither received nor dropped at a socket:
    /// lost before the sockets (veth).
    pub(super) fn lost_elsewhere(&self) -> Option<u64> {
        let got = self.got()?;
        let drops: u64 = self
            .each
            .iter()
            .map(|q| q.socket.map_or(0, |k| k.rx_lost()))
            .sum();
        Some(self.sent().saturating_sub(got).saturating_sub(drops))
    }

    /// Received (RX) or delivered to `b` (TX), whole cell.
    pub(super) fn got(&self) -> Option<u64> {
        match self.dir {
            Dir::Rx => self.each.iter().map(|q| q.got).sum(),
            Dir::Tx => self.delivered,
        }
    }
}

/// The source port of queue `q`'s blaster.
fn src_port(q: u32) -> u16 {
    roles::PORT_SRC + 10 + q as u16
}

/// An RX cell of `queues` queues at `sz` payload bytes; packets that
/// failed their check are pushed onto `failures`.
///
/// # Errors
/// Why the cell could not be set up (a note for the output).
pub(super) fn rx(
    pair: &VethPair,
    umems: &Umems<'_>,
    queues: u32,
    sz: usize,
    t: Timing,
    cores: Cores,
    failures: &mut Vec<String>,
) -> Result<QueuesCell, String> {
    let (mut receivers, _program) =
        roles::steered_xsks(pair.a(), umems, AttachMode::Drv, Role::Receive, queues)?;
    let mut blasters = (0..queues)
        .map(|q| roles::bind_xsk(pair.b(), umems, Role::Send, q))
        .collect::<Result<Vec<_>, _>>()?;
    let frames: Vec<Vec<u8>> = (0..queues)
        .map(|q| {
            let mut flow = frames::rx_flow(pair, Family::V4);
            flow.set_src_port(src_port(q));
            frames::frame_of(&flow, sz)
        })
        .collect();
    let veth0 = (
        roles::veth_counters(pair.a()),
        roles::veth_counters(pair.b()),
    );
    let stop = AtomicBool::new(false);
    let start = Barrier::new(1 + queues as usize);
    let closed = Barrier::new(queues as usize);
    let cap = Instant::now() + t.warm + t.window + OVERRUN_MAX;
    let (blasted, received) = std::thread::scope(|s| {
        let (stop, start, closed, frames) = (&stop, &start, &closed, &frames);
        let tb = s.spawn(move || {
            pin(cores.first);
            let mut socks: Vec<&mut XskSock<'_>> = blasters.iter_mut().collect();
            let frames: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
            start.wait();
            blast(&mut socks, &frames, stop, cap)
        });
        let trs: Vec<_> = receivers
            .iter_mut()
            .enumerate()
            .map(|(q, sock)| {
                s.spawn(move || {
                    pin(cores.second);
                    let mut check = Check::from_port(sz, src_port(q as u32));
                    let mut gap = Gap::default();
                    start.wait();
                    let t0 = Instant::now();
                    receive(sock, &mut check, t0 + t.warm, &mut gap);
                    let (w, n0) = (ThreadWindow::start(), check.pkts);
                    receive(sock, &mut check, t0 + t.warm + t.window, &mut gap);
                    let pkts = check.pkts - n0;
                    let cpu_ns = w.cpu_ns();
                    let secs = w.secs();
                    // The last receiver out of its window stops the
                    // blaster; then each drains its socket.
                    if closed.wait().is_leader() {
                        // SYNC: Release; pairs with the blaster's Acquire.
                        stop.store(true, Ordering::Release);
                    }
                    let end = Instant::now() + OVERRUN_MAX;
                    loop {
                        let before = check.pkts + check.foreign + check.bad + check.misrouted;
                        receive(sock, &mut check, Instant::now() + QUIET, &mut gap);
                        let after = check.pkts + check.foreign + check.bad + check.misrouted;
                        if after == before || Instant::now() > end {
                            break;
                        }
                    }
                    let socket = sock.xsk().kernel_stats().ok();
                    (check, pkts, cpu_ns, secs, socket)
                })
            })
            .collect();
        (
            tb.join().expect("blaster thread"),
            trs.into_iter()
                .map(|t| t.join().expect("receiver thread"))
                .collect::<Vec<_>>(),
        )
    });
    let mut each = Vec::with_capacity(queues as usize);
    for (q, (b, (check, pkts, cpu_ns, secs, socket))) in blasted.iter().zip(received).enumerate() {
        let what = format!("rx {sz} B, queue {q} of {queues}");
        let past_end = check.max_seq.is_some_and(|m| m >= b.stamped);
        if check.bad > 0 || past_end {
            failures.push(format!(
                "{what}: {} packets with a wrong length, pattern or sequence number",
                check.bad + u64::from(past_end)
            ));
        }
        if check.disorder > 0 {
            failures.push(format!(
                "{what}: {} packets out of order or repeated",
                check.disorder
            ));
        }
        if check.misrouted > 0 {
            failures.push(format!(
                "{what}: {} packets of another queue's flow reached this queue's socket",
                check.misrouted
            ));
        }
        each.push(Queue {
            rate: pkts as f64 / secs.max(1e-9),
            cpu_ns,
            pkts,
            sent: b.completed,
            got: Some(check.pkts),
            socket,
        });
    }
    let veth = match (
        veth0,
        roles::veth_counters(pair.a()),
        roles::veth_counters(pair.b()),
    ) {
        ((Some(a0), Some(b0)), Some(a1), Some(b1)) => Some((a0.delta(a1), b0.delta(b1))),
        _ => None,
    };
    Ok(QueuesCell {
        dir: Dir::Rx,
        sz,
        each,
        delivered: None,
        veth,
    })
}

/// A TX cell of `queues` queues at `sz` payload bytes. `b` must already
/// drop the flow at XDP (see [`roles::drop_spec`]).
///
/// # Errors
/// Why the cell could not be set up or a send failed (a note).
pub(super) fn tx(
    pair: &VethPair,
    umems: &Umems<'_>,
    queues: u32,
    sz: usize,
    t: Timing,
    cores: Cores,
) -> Result<QueuesCell, String> {
    let (mut senders, _program) =
        roles::steered_xsks(pair.a(), umems, AttachMode::Drv, Role::Send, queues)?;
    let frame = frames::frame_of(&frames::tx_flow(pair, Family::V4), sz);
    let delivered0 = roles::veth_rx_packets(pair.b());
    let start = Barrier::new(queues as usize);
    let sent = std::thread::scope(|s| {
        let (start, frame) = (&start, &frame);
        let ts: Vec<_> = senders
            .iter_mut()
            .map(|sock| {
                s.spawn(move || {
                    pin(cores.first);
                    start.wait();
                    let t0 = Instant::now();
                    let warm = send(sock, frame, t0 + t.warm)?;
                    let w = ThreadWindow::start();
                    let pkts = send(sock, frame, t0 + t.warm + t.window)?;
                    let cpu_ns = w.cpu_ns();
                    Ok::<_, String>(Queue {
                        rate: pkts as f64 / w.secs().max(1e-9),
                        cpu_ns,
                        pkts,
                        sent: warm + pkts,
                        got: None,
                        socket: None,
                    })
                })
            })
            .collect();
        ts.into_iter()
            .map(|t| t.join().expect("sender thread"))
            .collect::<Result<Vec<_>, _>>()
    })?;
    drop(senders);
    let delivered1 = roles::veth_rx_packets(pair.b());
    Ok(QueuesCell {
        dir: Dir::Tx,
        sz,
        each: sent,
        delivered: delivered0.zip(delivered1).map(|(x, y)| y.saturating_sub(x)),
        veth: None,
    })
}
