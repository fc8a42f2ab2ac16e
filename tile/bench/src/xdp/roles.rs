//! The parts every cell of `bench xdp` is made of: UMEMs inside one
//! workspace, the XDP programs, the sockets of each implementation, the
//! addresses, the scheduler's and the veth's own counters and pinning.
//! The frames and the per-packet check are in [`super::frames`].

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use tilewire_aio::netns::{VethPair, VethSide};
use tilewire_aio::udp::{Engine, UdpAio, UdpConfig};
use tilewire_shmem::Workspace;
use tilewire_xdp::bpf::{AttachMode, FilterSpec, XdpAction, XdpLink, XdpProgram};
use tilewire_xdp::xskrs_peer::{PeerMode, XskRsPeer};
use tilewire_xdp::{BindMode, Umem, Xsk, XskConfig};

use super::axes::{Dir, Family};
use crate::harness::pin::Cores;

/// UDP port in namespace `a` the RX bench blasts to.
pub(super) const PORT_A: u16 = 9300;
/// UDP port in namespace `b` the TX bench sends to (dropped at XDP).
pub(super) const PORT_B: u16 = 9301;
/// Source port of every frame built here.
pub(super) const PORT_SRC: u16 = 9302;
/// Packets per send call and per receive ring operation, for every
/// implementation (xsk-rs's loops use the same 64).
pub(super) const BATCH: usize = 64;
/// Ring entries of a receiving AF_XDP socket's rx and fill rings (and
/// frames on its fill ring), tilewire's and xsk-rs's alike: at the
/// blaster's 1.5 to 2.7 M pkt/s, 12 to 22 ms of packets. The receiver,
/// pinned to a core of this shared 2-vCPU machine, is off it for 2 to 4
/// ms at a time in every cell (longer while other work runs there), and
/// every packet that arrives meanwhile needs a frame from the fill ring:
/// with 2048 (1 ms of packets) each RX cell lost 0.1 to 3% at the socket
/// to an empty fill ring, the receiver idle the rest of the time (the
/// bench's `max gap` and `run delay` figures show it).
pub(super) const RX_RING: u32 = 32768;
/// Ring entries of a sending socket's tx and completion rings (and its
/// transmit frames), tilewire's and xsk-rs's alike.
pub(super) const TX_RING: u32 = 2048;
/// Entries of the rings a socket does not use (tilewire needs them all).
const RING_IDLE: u32 = 64;
/// `SO_RCVBUF` / `SO_SNDBUF` asked for on the mmsg sockets.
const SOCK_BUF: usize = 4 << 20;
/// Bytes of the workspace the UMEMs come from: enough for two receivers
/// (64 MiB of frames each: the queues section) and their blasters at a
/// time (each is freed when its cell ends).
pub(crate) const WS_BYTES: usize = 256 << 20;

/// UMEMs carved out of one workspace, each under a name of its own.
pub(crate) struct Umems<'w> {
    ws: &'w Workspace,
    next: AtomicU32,
}

impl<'w> Umems<'w> {
    pub(crate) fn new(ws: &'w Workspace) -> Umems<'w> {
        Umems {
            ws,
            next: AtomicU32::new(0),
        }
    }

    /// A UMEM of `frames` frames and the name to free it by.
    fn take(&self, frames: u64) -> Result<(Umem<'w>, String), String> {
        // Relaxed: a counter for unique names, nothing is published by it.
        let name = format!("umem{}", self.next.fetch_add(1, Ordering::Relaxed));
        let frames = u32::try_from(frames).map_err(|_| format!("{frames} UMEM frames"))?;
        let umem = Umem::alloc_named(self.ws, &name, frames)
            .map_err(|e| format!("UMEM of {frames} frames: {e}"))?;
        Ok((umem, name))
    }
}

/// A tilewire AF_XDP socket whose UMEM goes back to the workspace when it
/// is dropped.
pub(crate) struct XskSock<'w> {
    xsk: Option<Xsk<'w>>,
    ws: &'w Workspace,
    name: String,
}

impl<'w> XskSock<'w> {
    pub(crate) fn xsk(&mut self) -> &mut Xsk<'w> {
        self.xsk.as_mut().expect("present until drop")
    }
}

impl Drop for XskSock<'_> {
    fn drop(&mut self) {
        // Close the socket first: the kernel lets go of the UMEM then.
        self.xsk = None;
        let _ = self.ws.free_named(&self.name);
    }
}

/// Whether a tilewire socket receives (big rx and fill rings) or sends
/// (big tx and completion rings).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Receive,
    Send,
}

/// A copy-mode tilewire socket on `queue` of `side`'s veth end, bound
/// inside `side`'s namespace.
pub(crate) fn bind_xsk<'w>(
    side: &VethSide,
    umems: &Umems<'w>,
    role: Role,
    queue: u32,
) -> Result<XskSock<'w>, String> {
    let (rx, tx) = match role {
        Role::Receive => (RX_RING, RING_IDLE),
        Role::Send => (RING_IDLE, TX_RING),
    };
    let cfg = XskConfig {
        ifname: side.ifname().to_string(),
        queue,
        bind: BindMode::Copy,
        rx_size: rx,
        fill_size: rx,
        tx_size: tx,
        tx_high_water: BATCH as u32,
        ..XskConfig::default()
    };
    let (umem, name) = umems.take(cfg.frames_needed())?;
    let bound = side
        .run(|| Xsk::bind(umem, &cfg))
        .map_err(|e| e.to_string())?;
    match bound {
        Ok((xsk, _lines)) => Ok(XskSock {
            xsk: Some(xsk),
            ws: umems.ws,
            name,
        }),
        Err(e) => {
            let _ = umems.ws.free_named(&name);
            Err(format!(
                "tilewire Xsk::bind on queue {queue} of {}: {e}",
                side.ifname()
            ))
        }
    }
}

/// tilewire's XDP program for `spec` with a socket slot for each of
/// `queues`, attached to `side`'s veth end in `mode` (detached when the
/// link drops).
pub(crate) fn attach(
    side: &VethSide,
    spec: &FilterSpec,
    mode: AttachMode,
    queues: u32,
) -> Result<(XdpProgram, XdpLink), String> {
    side.run(|| {
        let prog =
            XdpProgram::load(spec, queues).map_err(|e| format!("loading the program: {e}"))?;
        let link = prog
            .attach(side.ifindex(), mode)
            .map_err(|e| format!("attaching the program ({mode:?}): {e}"))?;
        Ok((prog, link))
    })
    .map_err(|e| e.to_string())?
}

/// tilewire's program attached to `side` in `mode`, steering [`PORT_A`]
/// to a socket bound there for `role` (the RX receiver or the TX sender).
/// The program stays attached while the returned pair lives.
///
/// # Errors
/// A step that failed, as a note for the output.
pub(super) fn steered_xsk<'w>(
    side: &VethSide,
    umems: &Umems<'w>,
    mode: AttachMode,
    role: Role,
) -> Result<(XskSock<'w>, (XdpProgram, XdpLink)), String> {
    let (mut socks, program) = steered_xsks(side, umems, mode, role, 1)?;
    Ok((socks.remove(0), program))
}

/// As [`steered_xsk`] with a socket on each of queues `0..queues`, each
/// registered at its queue in the one program: what net tiles, one per
/// queue, share on an interface.
///
/// # Errors
/// A step that failed, as a note for the output.
pub(super) fn steered_xsks<'w>(
    side: &VethSide,
    umems: &Umems<'w>,
    mode: AttachMode,
    role: Role,
    queues: u32,
) -> Result<(Vec<XskSock<'w>>, (XdpProgram, XdpLink)), String> {
    let (prog, link) = attach(side, &steer_spec(), mode, queues)?;
    let mut socks = Vec::with_capacity(queues as usize);
    for q in 0..queues {
        let mut sock = bind_xsk(side, umems, role, q)?;
        let fd = sock.xsk().raw_fd().ok_or("a socket without a descriptor")?;
        prog.register_socket(q, fd)
            .map_err(|e| format!("registering the socket of queue {q}: {e}"))?;
        socks.push(sock);
    }
    Ok((socks, (prog, link)))
}

/// The program that steers [`PORT_A`] to the socket on queue 0 (the RX
/// receiver and the TX sender's end), over IPv4 and IPv6 alike: no IPv4
/// destination address is set, which would send IPv6 to the stack.
pub(super) fn steer_spec() -> FilterSpec {
    FilterSpec::new([PORT_A]).expect("one valid port")
}

/// The program on `b` during the TX bench: [`PORT_B`] matches, no socket
/// is registered, so every datagram is dropped at XDP before b's stack,
/// IPv4 and IPv6 alike (no IPv4 destination address is set; neighbour
/// discovery and everything else not to the port pass).
pub(super) fn drop_spec() -> FilterSpec {
    FilterSpec::new([PORT_B])
        .expect("one valid port")
        .with_miss_action(XdpAction::Drop)
}

/// An xsk-rs socket on queue 0 of `side`'s veth end (libxdp attaches its
/// own program in `mode`) for `role`: each ring holds [`RX_RING`] entries
/// for a receiver, [`TX_RING`] for a sender. A queue
/// whose last socket is still being torn down may refuse for a moment:
/// retried for up to a second.
pub(super) fn bind_xskrs(side: &VethSide, mode: PeerMode, role: Role) -> Result<XskRsPeer, String> {
    let ring = match role {
        Role::Receive => RX_RING,
        Role::Send => TX_RING,
    };
    let mut last = String::new();
    for attempt in 0..20 {
        if attempt > 0 {
            // A failed bind can leave libxdp's program attached, and
            // libxdp then refuses to replace it.
            xdp_off(side);
        }
        match side.run(|| XskRsPeer::bind(side.ifname(), 0, mode, 2 * ring)) {
            Ok(Ok(peer)) => return Ok(peer),
            Ok(Err(e)) => last = e.to_string(),
            Err(e) => return Err(e.to_string()),
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Err(format!("xsk-rs bind on {}: {last}", side.ifname()))
}

/// Detaches whatever XDP program is attached to `side`'s veth end
/// without a BPF link (libxdp's, which it sometimes leaves behind when a
/// socket goes away), in both modes. A program held by a BPF link
/// (tilewire's) is not touched.
pub(super) fn xdp_off(side: &VethSide) {
    for mode in ["xdpgeneric", "xdpdrv"] {
        let _ = Command::new("ip")
            .args([
                "-n",
                side.netns(),
                "link",
                "set",
                "dev",
                side.ifname(),
                mode,
                "off",
            ])
            .output();
    }
}

/// tilewire's sendmmsg/recvmmsg engine bound to `addr` inside `side`.
pub(super) fn bind_mmsg(side: &VethSide, addr: SocketAddr) -> Result<UdpAio, String> {
    let cfg = UdpConfig {
        engine: Engine::Mmsg,
        send_buf: Some(SOCK_BUF),
        recv_buf: Some(SOCK_BUF),
        batch: BATCH,
        ..UdpConfig::new(addr)
    };
    side.run(|| UdpAio::bind(&cfg))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("UdpAio::bind (mmsg) {addr}: {e}"))
}

/// `a`'s IPv6 address, in RFC 5180's benchmarking range (2001:2::/48).
pub(super) const ADDR6_A: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
/// `b`'s IPv6 address, in the same /64 as [`ADDR6_A`].
pub(super) const ADDR6_B: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

/// Gives `pair`'s ends their IPv6 addresses ([`ADDR6_A`], [`ADDR6_B`], a
/// /64, usable at once: no duplicate address detection) and each the
/// other's MAC as a permanent neighbour entry, as [`VethPair`] does for
/// IPv4, so no datagram waits for neighbour discovery.
///
/// # Errors
/// The `ip` command that failed.
pub(super) fn add_ipv6(pair: &VethPair) -> Result<(), String> {
    let ends = [
        (pair.a(), ADDR6_A, ADDR6_B, pair.b().mac()),
        (pair.b(), ADDR6_B, ADDR6_A, pair.a().mac()),
    ];
    for (side, mine, _, _) in ends {
        side.add_ipv6(mine, 64)
            .map_err(|e| format!("{mine}/64 on {}: {e}", side.ifname()))?;
    }
    for (side, _, peer, mac) in ends {
        let mac = mac.map(|b| format!("{b:02x}")).join(":");
        let out = Command::new("ip")
            .args(["-n", side.netns(), "-6", "neigh", "replace"])
            .arg(peer.to_string())
            .args(["lladdr", &mac, "dev", side.ifname(), "nud", "permanent"])
            .output()
            .map_err(|e| format!("ip neigh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ip neigh replace {peer} on {}: {}",
                side.ifname(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}

/// The addresses of `a` and `b` in family `fam` (IPv6: after
/// [`add_ipv6`]).
pub(super) fn addrs(pair: &VethPair, fam: Family) -> (IpAddr, IpAddr) {
    match fam {
        Family::V4 => (pair.a().addr().into(), pair.b().addr().into()),
        Family::V6 => (ADDR6_A.into(), ADDR6_B.into()),
    }
}

/// What the kernel counts on one veth end (`ip -s -j link show`,
/// `stats64`): packets each way and the drops veth itself counts (on
/// `rx`: packets its XDP run or its NAPI ring refused, redirects that
/// failed included; on `tx`: packets the peer's ring had no room for).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VethCounters {
    pub rx_packets: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
}

impl VethCounters {
    /// What was counted between `self` (before) and `later`.
    pub(crate) fn delta(self, later: VethCounters) -> VethCounters {
        VethCounters {
            rx_packets: later.rx_packets.saturating_sub(self.rx_packets),
            rx_dropped: later.rx_dropped.saturating_sub(self.rx_dropped),
            tx_packets: later.tx_packets.saturating_sub(self.tx_packets),
            tx_dropped: later.tx_dropped.saturating_sub(self.tx_dropped),
        }
    }
}

/// `side`'s veth counters, or `None` if they cannot be read.
pub(crate) fn veth_counters(side: &VethSide) -> Option<VethCounters> {
    let out = Command::new("ip")
        .args(["-n", side.netns(), "-s", "-j", "link", "show", "dev"])
        .arg(side.ifname())
        .output()
        .ok()?;
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let stats = links.get(0)?.get("stats64")?;
    let get = |dir: &str, key: &str| stats.get(dir)?.get(key)?.as_u64();
    Some(VethCounters {
        rx_packets: get("rx", "packets")?,
        rx_dropped: get("rx", "dropped")?,
        tx_packets: get("tx", "packets")?,
        tx_dropped: get("tx", "dropped")?,
    })
}

/// Packets the kernel counts as received on `side`'s veth end, or `None`
/// if it cannot be read.
pub(super) fn veth_rx_packets(side: &VethSide) -> Option<u64> {
    veth_counters(side).map(|c| c.rx_packets)
}

/// How the scheduler treated the calling thread so far: time it waited
/// runnable for a cpu (`/proc/thread-self/schedstat`, second field) and
/// how often it was preempted (`nonvoluntary_ctxt_switches`). Zero where
/// the kernel does not say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct SchedCounters {
    pub run_delay_ns: u64,
    pub preempted: u64,
}

impl SchedCounters {
    pub(super) fn now() -> SchedCounters {
        let run_delay_ns = std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        let preempted = std::fs::read_to_string("/proc/thread-self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0);
        SchedCounters {
            run_delay_ns,
            preempted,
        }
    }

    /// What happened between `self` (before) and `later`.
    pub(super) fn delta(self, later: SchedCounters) -> SchedCounters {
        SchedCounters {
            run_delay_ns: later.run_delay_ns.saturating_sub(self.run_delay_ns),
            preempted: later.preempted.saturating_sub(self.preempted),
        }
    }
}

/// For TX, the program on `b` that drops the port at XDP (DRV) for every
/// sender alike, attached while it lives; nothing for RX.
pub(super) fn drop_on_b(
    pair: &VethPair,
    dir: Dir,
) -> Result<Option<(tilewire_xdp::bpf::XdpProgram, tilewire_xdp::bpf::XdpLink)>, String> {
    match dir {
        Dir::Rx => Ok(None),
        Dir::Tx => attach(pair.b(), &drop_spec(), AttachMode::Drv, 1)
            .map(Some)
            .map_err(|e| format!("the drop program on b: {e}")),
    }
}

/// What the output says about pinning.
pub(super) fn pinned(cores: &Cores) -> String {
    cores.describe("RX blaster and TX sender", "RX receiver")
}
