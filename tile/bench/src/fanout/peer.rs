//! The far side of `fanout`: a peer namespace across a veth pair holding
//! the destinations, and what counts what reaches each of them.
//!
//! # The destinations
//!
//! [`Net::new`] gives namespace b of the pair [`DESTS`] /32 addresses
//! (198.19.250.1 and up) and namespace a a route to them via b's address,
//! so every sender resolves one next hop, the gateway, as a validator's
//! peers are reached through its default route. The pair's permanent
//! neighbour entry for the gateway stays: every sender starts resolved.
//!
//! # The count
//!
//! A UDP socket per address would make b's kernel run its whole receive
//! path for each packet, and on veth that work runs in the softirq of the
//! sending cpu, charged to the sender: the same for every sender, it
//! would only blur the comparison. So b counts at XDP instead: tilewire's
//! program on b's veth end (DRV mode, where veth records the receive
//! queue) steers the destination port to an AF_XDP socket on each of b's
//! queues, and one thread ([`Counter`]) reads them all and counts each
//! frame by its destination address. It checks the whole frame: b's MAC,
//! IPv4 to one of the destinations, UDP from a's address and the source
//! port to the port, the shred's length and its pattern. A frame to any
//! other address (or MAC) is `wrong`, one with a bad length or pattern
//! `bad`; both must stay 0. What the sockets drop (rx ring full, fill
//! ring empty: the kernel's `XDP_STATISTICS`) and what veth drops are read
//! too, so a loss is explained or not.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tilewire_aio::netns::VethPair;
use tilewire_shmem::clock::{mono_ns, thread_cpu_ns};
use tilewire_shmem::Workspace;
use tilewire_xdp::bpf::{AttachMode, FilterSpec};
use tilewire_xdp::{RxPacket, RxRefused, RxSink};

use crate::xdp::roles::{attach, bind_xsk, veth_counters, Role, Umems, VethCounters, XskSock};

/// Destinations of the one set every shred goes to.
pub(super) const DESTS: usize = 200;
/// Their UDP port.
pub(super) const DEST_PORT: u16 = 9000;
/// The senders' UDP source port.
pub(super) const SRC_PORT: u16 = 8000;
/// A shred's payload.
pub(super) const SHRED: usize = 1228;
/// Frames the counter takes off a socket per poll.
const BATCH: u32 = 64;
/// How long the counter sleeps when every socket was empty.
const IDLE: Duration = Duration::from_micros(20);
/// After the sender stopped, the counter drains until nothing came for
/// this long.
const QUIET: Duration = Duration::from_millis(50);

/// The payload of shred `n`: its number in the first 8 bytes, then a
/// pattern, so a shifted or truncated payload shows.
pub(super) fn shred(n: u64) -> Vec<u8> {
    let mut p: Vec<u8> = (0..SHRED)
        .map(|j| (j as u8).wrapping_mul(151) ^ 0x3c)
        .collect();
    p[..8].copy_from_slice(&n.to_le_bytes());
    p
}

/// The veth pair, the destinations and b's MAC: what every cell sends
/// across.
pub(super) struct Net {
    pub pair: VethPair,
    pub dests: Vec<SocketAddrV4>,
    base: u32,
}

fn ip(ns: &str, script: &str) -> Result<(), String> {
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("running ip: {e}"))?;
    {
        use std::io::Write;
        let stdin = child.stdin.as_mut().ok_or("ip without stdin")?;
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("writing to ip: {e}"))?;
    }
    let status = child.wait().map_err(|e| format!("waiting for ip: {e}"))?;
    if !status.success() {
        return Err(format!("ip -n {ns} -batch failed: {script}"));
    }
    Ok(())
}

impl Net {
    /// Adds the destinations to b and the route to them to a (see the
    /// [module docs](self)).
    ///
    /// # Errors
    /// An `ip` command that failed.
    pub(super) fn new(pair: VethPair) -> Result<Net, String> {
        // 198.19.250.0/24, or .251 if the pair's own /30 lies there.
        let third = if [pair.a().addr(), pair.b().addr()]
            .iter()
            .any(|a| a.octets()[..3] == [198, 19, 250])
        {
            251
        } else {
            250
        };
        let base = u32::from(Ipv4Addr::new(198, 19, third, 1));
        let dests: Vec<SocketAddrV4> = (0..DESTS as u32)
            .map(|i| SocketAddrV4::new(Ipv4Addr::from(base + i), DEST_PORT))
            .collect();
        let adds: String = dests
            .iter()
            .map(|d| format!("addr add {}/32 dev {}\n", d.ip(), pair.b().ifname()))
            .collect();
        ip(pair.b().netns(), &adds)?;
        ip(
            pair.a().netns(),
            &format!("route add 198.19.{third}.0/24 via {}\n", pair.b().addr()),
        )?;
        Ok(Net { pair, dests, base })
    }

    /// The index of destination `addr` (network byte order), if it is one.
    #[inline]
    fn index(&self, addr: [u8; 4]) -> Option<usize> {
        let i = u32::from_be_bytes(addr).wrapping_sub(self.base) as usize;
        (i < DESTS).then_some(i)
    }

    /// Both ends' veth counters.
    pub(super) fn veth(&self) -> (VethCounters, VethCounters) {
        (
            veth_counters(self.pair.a()).unwrap_or_default(),
            veth_counters(self.pair.b()).unwrap_or_default(),
        )
    }
}

/// What the main thread sees of the counter while it runs.
#[derive(Debug, Default)]
pub(super) struct Live {
    /// Good frames so far.
    pub good: AtomicU64,
    /// The counting thread's CPU time so far, ns.
    pub cpu_ns: AtomicU64,
}

/// What the counter counted over a cell.
#[derive(Debug, Clone, Default)]
pub(super) struct Counts {
    /// Good frames per destination.
    pub per_dest: Vec<u64>,
    /// Frames to no destination of the set (or not to b's MAC).
    pub wrong: u64,
    /// Frames to a destination with a wrong length, pattern or source.
    pub bad: u64,
    /// Dropped at the sockets (the kernel's rx_dropped + rx_ring_full).
    pub socket_drops: u64,
}

impl Counts {
    pub(super) fn good(&self) -> u64 {
        self.per_dest.iter().sum()
    }
}

/// The frame check and the per-destination counts.
struct Tally<'n> {
    net: &'n Net,
    mac: [u8; 6],
    src: [u8; 4],
    tail: [u8; 16],
    counts: Counts,
}

impl Tally<'_> {
    #[inline]
    fn frame(&mut self, f: &[u8]) {
        const HDRS: usize = 42;
        let ipv4_udp = f.len() >= HDRS && f[12..14] == [0x08, 0x00] && f[14] == 0x45 && f[23] == 17;
        let dst = ipv4_udp.then(|| [f[30], f[31], f[32], f[33]]);
        let Some(i) = dst
            .filter(|_| f[..6] == self.mac && f[36..38] == DEST_PORT.to_be_bytes())
            .and_then(|d| self.net.index(d))
        else {
            self.counts.wrong += 1;
            return;
        };
        let p = &f[HDRS..];
        if p.len() != SHRED
            || p[SHRED - 16..] != self.tail
            || f[26..30] != self.src
            || f[34..36] != SRC_PORT.to_be_bytes()
        {
            self.counts.bad += 1;
            return;
        }
        self.counts.per_dest[i] += 1;
    }
}

struct Sink<'t, 'n>(&'t mut Tally<'n>);

impl RxSink for Sink<'_, '_> {
    fn take(&mut self, pkt: RxPacket<'_>) -> Result<u64, RxRefused> {
        self.0.frame(pkt.data);
        Ok(pkt.frame)
    }
}

/// b's sockets and program, ready to count; the program is detached and
/// the sockets closed when it drops.
pub(super) struct Counter<'w> {
    socks: Vec<XskSock<'w>>,
    _program: (tilewire_xdp::bpf::XdpProgram, tilewire_xdp::bpf::XdpLink),
}

impl<'w> Counter<'w> {
    /// tilewire's program on b (DRV mode) steering [`DEST_PORT`] to a
    /// receiving socket on each of b's `queues` queues, their UMEMs from
    /// `ws`.
    ///
    /// # Errors
    /// A step that failed, as text.
    pub(super) fn new(net: &Net, ws: &'w Workspace, queues: u32) -> Result<Counter<'w>, String> {
        let b = net.pair.b();
        let spec = FilterSpec::new([DEST_PORT]).map_err(|e| e.to_string())?;
        let (prog, link) = attach(b, &spec, AttachMode::Drv, queues)?;
        let umems = Umems::new(ws);
        let mut socks = Vec::with_capacity(queues as usize);
        for q in 0..queues {
            let mut sock = bind_xsk(b, &umems, Role::Receive, q)?;
            let fd = sock.xsk().raw_fd().ok_or("a socket without a descriptor")?;
            prog.register_socket(q, fd)
                .map_err(|e| format!("registering b's socket of queue {q}: {e}"))?;
            socks.push(sock);
        }
        Ok(Counter {
            socks,
            _program: (prog, link),
        })
    }

    /// Counts until `stop` is set and then nothing came for [`QUIET`];
    /// publishes progress to `live`. Runs on the calling thread.
    pub(super) fn run(&mut self, net: &Net, stop: &AtomicBool, live: &Live) -> Counts {
        let src = net.pair.a().addr().octets();
        let p = shred(0);
        let mut tail = [0u8; 16];
        tail.copy_from_slice(&p[SHRED - 16..]);
        let mut t = Tally {
            net,
            mac: net.pair.b().mac(),
            src,
            tail,
            counts: Counts {
                per_dest: vec![0; DESTS],
                ..Counts::default()
            },
        };
        let drops0: u64 = self.drops();
        let mut quiet_since: Option<Instant> = None;
        loop {
            let mut got = 0;
            for s in &mut self.socks {
                got += s.xsk().poll_rx(&mut Sink(&mut t), BATCH);
            }
            // SYNC: Relaxed throughout: progress counts and a flag; the
            // result travels back through the return value (a join).
            live.good.store(t.counts.good(), Ordering::Relaxed);
            live.cpu_ns.store(thread_cpu_ns(), Ordering::Relaxed);
            if got > 0 {
                quiet_since = None;
                continue;
            }
            if stop.load(Ordering::Relaxed) {
                let since = *quiet_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= QUIET {
                    break;
                }
            }
            for s in &mut self.socks {
                s.xsk().service(mono_ns());
            }
            std::thread::sleep(IDLE);
        }
        t.counts.socket_drops = self.drops().saturating_sub(drops0);
        t.counts
    }

    /// What b's sockets dropped so far.
    fn drops(&mut self) -> u64 {
        self.socks
            .iter_mut()
            .filter_map(|s| s.xsk().kernel_stats().ok())
            .map(|k| k.rx_lost())
            .sum()
    }
}
