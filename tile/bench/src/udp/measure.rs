//! The three measurements (transmit rate, receive rate, ping-pong RTT),
//! each one run of two pinned threads over one path.

use crate::harness::cpu::{ns_per, ThreadWindow};
use crate::harness::pin::pinned_pair as pinned;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tilewire_aio::netns::VethPair;
use tilewire_shmem::clock::mono_ns;

use super::endpoint::{pattern, stamp, Checker, Endpoint, Impl, Unavailable, BURST};

/// How long a receiver keeps draining after its sender stopped and the
/// socket went quiet.
const QUIET: Duration = Duration::from_millis(20);
/// Longest a receiver keeps going after its sender's time is up, quiet or
/// not: every loop here ends.
const TAIL_MAX: Duration = Duration::from_secs(2);
/// A ping-pong round trip not back within this is counted lost.
const RTT_TIMEOUT_NS: u64 = 50_000_000;

/// Where the two sockets of a run live: side `a` (core 0) and side `b`
/// (core 1) of a veth pair, or both on loopback.
pub(super) struct Host {
    pub path: &'static str,
    pair: Option<VethPair>,
}

impl Host {
    pub(super) fn loopback() -> Host {
        Host {
            path: "loopback",
            pair: None,
        }
    }

    pub(super) fn veth(pair: VethPair) -> Host {
        Host {
            path: "veth",
            pair: Some(pair),
        }
    }

    /// A socket of `imp` on side `a` (`on_a`) or `b`, made inside that
    /// side's namespace (it stays there, used from the pinned threads).
    pub(super) fn bind(&self, on_a: bool, imp: Impl, sz: usize) -> Result<Endpoint, Unavailable> {
        match &self.pair {
            None => Endpoint::bind(imp, IpAddr::V4(Ipv4Addr::LOCALHOST), sz),
            Some(pair) => {
                let side = if on_a { pair.a() } else { pair.b() };
                let ip = IpAddr::V4(side.addr());
                side.run(|| Endpoint::bind(imp, ip, sz))
                    .map_err(|e| format!("{}: {e}", imp.name()))?
            }
        }
    }
}

/// What the sending thread of a rate run saw.
struct Sent {
    /// Packets the kernel took.
    kernel: u64,
    /// Sequence numbers handed out (taken by the implementation).
    seqs: u64,
    /// Packets lost to send errors.
    errors: u64,
    secs: f64,
    cpu_ns: u64,
}

/// Sends bursts of `sz`-byte packets from `ep` to `dest` for `dur`, then
/// flushes, then raises `done`. A burst is [`Endpoint::send_burst`]
/// packets: one full GSO transmit where the endpoint does GSO.
fn blast(ep: &mut Endpoint, dest: SocketAddr, sz: usize, dur: Duration, done: &AtomicBool) -> Sent {
    let burst = ep.send_burst();
    let mut bufs = pattern(sz).repeat(burst);
    let w = ThreadWindow::start();
    let t0 = Instant::now();
    let mut seq = 0u64;
    while t0.elapsed() < dur {
        stamp(&mut bufs, sz, seq, burst);
        let taken = ep.send_run(&bufs, sz, burst, dest);
        seq += taken as u64;
        if taken == 0 {
            std::hint::spin_loop();
        }
    }
    ep.flush(1 << 20);
    let secs = t0.elapsed().as_secs_f64();
    let cpu_ns = w.cpu_ns();
    let (kernel, errors) = ep.tx_counts();
    // SYNC: Release; pairs with the receiver's Acquire load: it starts
    // its quiet countdown only after every send of this thread.
    done.store(true, Ordering::Release);
    Sent {
        kernel,
        seqs: seq,
        errors,
        secs,
        cpu_ns,
    }
}

/// What the receiving thread of a rate run saw.
struct Received {
    checker: Checker,
    /// The blast window, from start until the receiver saw the sender
    /// done: its length, the receiver's CPU time in it and the packets
    /// it received in it.
    window_secs: f64,
    window_cpu_ns: u64,
    window_pkts: u64,
}

/// Receives on `ep` until the sender is done and the socket was quiet for
/// [`QUIET`] (or [`TAIL_MAX`] passed), checking every packet.
fn drain(ep: &mut Endpoint, mut checker: Checker, dur: Duration, done: &AtomicBool) -> Received {
    let w = ThreadWindow::start();
    let t0 = Instant::now();
    let mut last = t0;
    let mut window: Option<(f64, u64, u64)> = None;
    loop {
        let n = ep.recv_burst(&mut |pkt, src| {
            checker.check(pkt, src);
        });
        let now = Instant::now();
        if n > 0 {
            last = now;
        }
        // SYNC: Acquire; pairs with the sender's Release store of `done`.
        if window.is_none() && done.load(Ordering::Acquire) {
            window = Some((
                now.duration_since(t0).as_secs_f64(),
                w.cpu_ns(),
                checker.received,
            ));
        }
        if window.is_some() && now.duration_since(last) > QUIET {
            break;
        }
        if now.duration_since(t0) > dur + TAIL_MAX {
            break;
        }
    }
    // No window: the sender outlasted `dur + TAIL_MAX`; the whole run is
    // the window then.
    let (window_secs, window_cpu_ns, window_pkts) =
        window.unwrap_or((t0.elapsed().as_secs_f64(), w.cpu_ns(), checker.received));
    Received {
        checker,
        window_secs,
        window_cpu_ns,
        window_pkts,
    }
}

/// One transmit-rate run.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct TxRun {
    /// Packets per second the kernel took from the implementation.
    pub rate: f64,
    /// Packets the kernel took.
    pub sent: u64,
    /// Packets the drain received.
    pub received: u64,
    /// Sender CPU time per packet the kernel took.
    pub cpu_ns_per_pkt: f64,
}

/// One receive-rate run.
#[derive(Clone, Copy, Debug)]
pub(super) struct RxRun {
    /// Packets per second the receiver took in the blast window (start
    /// until it saw the blaster done): its capacity when it dropped,
    /// the blaster's rate when it kept up.
    pub rate: f64,
    /// Packets the blaster got the kernel to take.
    pub sent: u64,
    /// Packets the receiver got, the tail after the window included.
    pub received: u64,
    /// Receiver CPU time per packet, in the blast window.
    pub cpu_ns_per_pkt: f64,
    /// Who blasted.
    pub blaster: Impl,
}

impl RxRun {
    /// Packets sent but never received: what the receiver's socket buffer
    /// (or the veth's backlog) overflowed while the receiver fell behind.
    pub(super) fn drops(&self) -> u64 {
        self.sent.saturating_sub(self.received)
    }
}

/// The blaster of the receive runs on `host` at `sz` bytes: quinn-udp with
/// GSO (up to [`BURST`] segments per `sendmsg`), the fastest sender here,
/// so that the receiver is the bottleneck. Where GSO is unavailable, the
/// mmsg engine, with the reason.
pub(super) fn rx_blaster(host: &Host, sz: usize) -> (Impl, Option<Unavailable>) {
    match host.bind(true, Impl::QuinnGso, sz) {
        Ok(_) => (Impl::QuinnGso, None),
        Err(why) => (Impl::Mmsg, Some(why)),
    }
}

/// Errors found by the checkers of a run, with the first few described.
#[derive(Default, Debug)]
pub(super) struct Errors {
    pub count: u64,
    pub notes: Vec<String>,
}

impl Errors {
    fn take(&mut self, what: &str, c: &Checker) {
        self.count += c.errors;
        for n in &c.notes {
            if self.notes.len() < 20 {
                self.notes.push(format!("{what}: {n}"));
            }
        }
    }

    fn note(&mut self, what: String, count: u64) {
        self.count += count;
        if self.notes.len() < 20 {
            self.notes.push(what);
        }
    }
}

/// `imp` sends on side `a` (core 0) for `dur`; the mmsg engine drains on
/// side `b` (core 1).
pub(super) fn tx(
    host: &Host,
    imp: Impl,
    sz: usize,
    dur: Duration,
    errs: &mut Errors,
) -> Result<TxRun, Unavailable> {
    let mut sender = host.bind(true, imp, sz)?;
    let mut receiver = host.bind(false, Impl::Mmsg, sz)?;
    let (src, dest) = (sender.local_addr(), receiver.local_addr());
    let done = AtomicBool::new(false);
    let done = &done;
    let (sent, mut got) = pinned(
        || blast(&mut sender, dest, sz, dur, done),
        || drain(&mut receiver, Checker::new(sz, Some(src)), dur, done),
    );
    got.checker.finish(sent.seqs);
    errs.take(&format!("{} tx {sz} B", imp.name()), &got.checker);
    if sent.errors > 0 {
        errs.note(
            format!(
                "{} tx {sz} B: {} packets lost to send errors",
                imp.name(),
                sent.errors
            ),
            sent.errors,
        );
    }
    Ok(TxRun {
        rate: sent.kernel as f64 / sent.secs,
        sent: sent.kernel,
        received: got.checker.received,
        cpu_ns_per_pkt: ns_per(sent.cpu_ns, sent.kernel),
    })
}

/// `blaster` (see [`rx_blaster`]) blasts from side `a` (core 0) for
/// `dur`; `imp` receives on side `b` (core 1). Each GSO segment reaches
/// the receiver as its own datagram (the kernel segments on the way, or
/// at the socket unless the socket asked for GRO; quinn-udp's does and
/// splits by stride), and is checked like any other.
pub(super) fn rx(
    host: &Host,
    blaster_imp: Impl,
    imp: Impl,
    sz: usize,
    dur: Duration,
    errs: &mut Errors,
) -> Result<RxRun, Unavailable> {
    let mut blaster = host.bind(true, blaster_imp, sz)?;
    let mut receiver = host.bind(false, imp, sz)?;
    let (src, dest) = (blaster.local_addr(), receiver.local_addr());
    let done = AtomicBool::new(false);
    let done = &done;
    let (sent, mut got) = pinned(
        || blast(&mut blaster, dest, sz, dur, done),
        || drain(&mut receiver, Checker::new(sz, Some(src)), dur, done),
    );
    got.checker.finish(sent.seqs);
    errs.take(&format!("{} rx {sz} B", imp.name()), &got.checker);
    if sent.errors > 0 {
        errs.note(
            format!(
                "{} rx {sz} B: blaster {} lost {} packets to send errors",
                imp.name(),
                blaster_imp.name(),
                sent.errors
            ),
            sent.errors,
        );
    }
    Ok(RxRun {
        rate: got.window_pkts as f64 / got.window_secs.max(1e-9),
        sent: sent.kernel,
        received: got.checker.received,
        cpu_ns_per_pkt: ns_per(got.window_cpu_ns, got.window_pkts),
        blaster: blaster_imp,
    })
}

/// Round trips of one `sz`-byte packet between a client on side `a`
/// (core 0) and an echo on side `b` (core 1), both of `imp`, both busy
/// polling. Returns the RTTs in ns (after a warm-up) and how many were
/// lost.
pub(super) fn pingpong(
    host: &Host,
    imp: Impl,
    sz: usize,
    n: u64,
    errs: &mut Errors,
) -> Result<(Vec<u64>, u64), Unavailable> {
    let mut client = host.bind(true, imp, sz)?;
    let mut echo = host.bind(false, imp, sz)?;
    let (client_addr, echo_addr) = (client.local_addr(), echo.local_addr());
    let warmup = (n / 10).min(200);
    let stop = AtomicBool::new(false);
    let stop = &stop;
    let ((rtts, lost, client_check), echo_check) = pinned(
        || {
            let mut check = Checker::new(sz, Some(echo_addr));
            let mut buf = pattern(sz);
            let (mut rtts, mut lost) = (Vec::with_capacity(n as usize), 0u64);
            for seq in 0..n {
                stamp(&mut buf, sz, seq, 1);
                let t0 = mono_ns();
                let mut back = false;
                let mut sent = false;
                while !back && mono_ns().wrapping_sub(t0) < RTT_TIMEOUT_NS {
                    if !sent {
                        sent = client.send_run(&buf, sz, 1, echo_addr) == 1;
                        continue;
                    }
                    client.recv_burst(&mut |pkt, src| {
                        back |= check.check(pkt, src) == Some(seq);
                    });
                }
                let rtt = mono_ns().wrapping_sub(t0);
                match back {
                    true if seq >= warmup => rtts.push(rtt),
                    true => {}
                    false => lost += 1,
                }
            }
            // SYNC: Release; pairs with the echo's Acquire load.
            stop.store(true, Ordering::Release);
            (rtts, lost, check)
        },
        || {
            let mut check = Checker::new(sz, Some(client_addr));
            let mut bufs = vec![0u8; BURST * sz];
            let t0 = Instant::now();
            let limit = Duration::from_nanos(RTT_TIMEOUT_NS) * (n as u32).max(1) + TAIL_MAX;
            // SYNC: Acquire; pairs with the client's Release store.
            while !stop.load(Ordering::Acquire) && t0.elapsed() < limit {
                let mut k = 0;
                echo.recv_burst(&mut |pkt, src| {
                    if check.check(pkt, src).is_some() && k < BURST {
                        bufs[k * sz..(k + 1) * sz].copy_from_slice(pkt);
                        k += 1;
                    }
                });
                let mut done = 0;
                for _ in 0..1000 {
                    if done == k {
                        break;
                    }
                    done += echo.send_run(&bufs[done * sz..], sz, k - done, client_addr);
                }
            }
            check
        },
    );
    errs.take(&format!("{} ping {sz} B", imp.name()), &client_check);
    errs.take(&format!("{} pong {sz} B", imp.name()), &echo_check);
    Ok((rtts, lost))
}
