//! [`UdpAio`]: one UDP socket, its transmit side as an [`Aio`] and its
//! receive side as [`UdpAio::poll`] into a downstream aio.

use core::fmt;
use std::io;
use std::net::{SocketAddr, SocketAddrV6};

use super::config::{BindError, Engine, UdpConfig};
use super::mmsg::Mmsg;
use super::probe::UringSupport;
use super::stats::UdpStats;
use super::sys::{Socket, SocketOpts};
use super::uring::Uring;
use crate::{Aio, PktInfo, SendError, SendErrorKind};
use tilewire_shmem::hist::HistSnapshot;

/// Packets handed to the downstream aio per call of its `send` (a stack
/// array, so delivery does not allocate whatever the batch size).
const DELIVER_CHUNK: usize = 64;

/// The engine behind the API.
#[derive(Debug)]
enum Io {
    Mmsg(Box<Mmsg>),
    Uring(Box<Uring>),
}

/// A UDP socket with a batched transmit side (an [`Aio`]) and a batched
/// receive side ([`UdpAio::poll`]). See the [module documentation](super)
/// for the design.
pub struct UdpAio {
    // Dropped before the socket: the io_uring engine's ring holds the
    // socket as a registered file and ends its operations on close.
    io: Io,
    sock: Socket,
    config: UdpConfig,
    local: SocketAddr,
    engine_note: EngineNote,
    stats: UdpStats,
}

impl fmt::Debug for UdpAio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpAio")
            .field("local", &self.local)
            .field("engine", &self.engine())
            .field("tx_pending", &self.tx_pending())
            .field("rx_pending", &self.rx_pending())
            .field("stats", &self.stats)
            .finish()
    }
}

/// `addr` in the family of a socket bound to `bind`: IPv4 peers of an IPv6
/// socket become IPv4-mapped IPv6 addresses, IPv4-mapped peers of an IPv4
/// socket become IPv4; `None` when it cannot be reached from that socket.
fn in_family(bind: &SocketAddr, addr: SocketAddr) -> Option<SocketAddr> {
    match (bind, addr) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => {
            Some(addr)
        }
        (SocketAddr::V6(_), SocketAddr::V4(a)) => Some(SocketAddr::V6(SocketAddrV6::new(
            a.ip().to_ipv6_mapped(),
            a.port(),
            0,
            0,
        ))),
        (SocketAddr::V4(_), SocketAddr::V6(a)) => a
            .ip()
            .to_ipv4_mapped()
            .map(|ip| SocketAddr::new(ip.into(), a.port())),
    }
}

impl UdpAio {
    /// Makes a nonblocking UDP socket as `config` says, binds it, and
    /// allocates every buffer the aio will use. mmsg: `batch` transmit
    /// slots of `tx_pkt_max` bytes and `batch` receive slots of
    /// `rx_buf_len` bytes. io_uring: `queue_depth` of each, in one mapping
    /// shared with the ring. Nothing is allocated after this.
    ///
    /// [`Engine::Auto`] asks the kernel whether io_uring may be used
    /// ([`uring_support`](super::uring_support)) and uses it if so and if
    /// its ring can be made, else mmsg; [`UdpAio::engine_note`] says which
    /// and why, for the caller's log.
    ///
    /// # Errors
    /// The bound violated for bad numbers (see [`UdpConfig::validate`]);
    /// [`BindError::Os`] with the failing call when the OS refuses (address
    /// in use without `reuse_port`, address not local, io_uring not
    /// allowed for [`Engine::Uring`], ...).
    pub fn bind(config: &UdpConfig) -> Result<UdpAio, BindError> {
        config.validate()?;
        let opts = SocketOpts {
            reuse_port: config.reuse_port,
            send_buf: config.send_buf,
            recv_buf: config.recv_buf,
        };
        let peer = config.connect.and_then(|p| in_family(&config.bind, p));
        let sock = Socket::open(config.bind, peer, opts)
            .map_err(|(step, source)| BindError::Os { step, source })?;
        let local = sock.local_addr().map_err(|source| BindError::Os {
            step: "getsockname",
            source,
        })?;
        let mmsg = || {
            Io::Mmsg(Box::new(Mmsg::new(
                config.batch,
                config.tx_pkt_max,
                config.rx_buf_len,
            )))
        };
        let (io, engine_note) = match config.engine {
            Engine::Mmsg => (mmsg(), EngineNote::MmsgConfigured),
            Engine::Uring => {
                let u = Uring::new(sock.raw(), config)
                    .map_err(|(step, source)| BindError::Os { step, source })?;
                let multishot = u.multishot();
                (
                    Io::Uring(Box::new(u)),
                    EngineNote::UringConfigured { multishot },
                )
            }
            _ => {
                let fallback = |why| (mmsg(), EngineNote::AutoMmsg(why));
                match super::uring_support() {
                    UringSupport::Available => match Uring::new(sock.raw(), config) {
                        Ok(u) => (Io::Uring(Box::new(u)), EngineNote::AutoUring),
                        Err((step, _)) if step == super::uring::NEEDS_6_0 => {
                            fallback(Fallback::NeedsLinux6)
                        }
                        Err(_) => fallback(Fallback::RingFailed),
                    },
                    UringSupport::NotInKernel => fallback(Fallback::NotInKernel),
                    UringSupport::Denied { sysctl: Some(n) } if n > 0 => {
                        fallback(Fallback::DisabledBySysctl)
                    }
                    UringSupport::Denied { .. } => fallback(Fallback::DeniedBySeccomp),
                    _ => fallback(Fallback::SetupFailed),
                }
            }
        };
        Ok(UdpAio {
            io,
            sock,
            config: *config,
            local,
            engine_note,
            stats: UdpStats::default(),
        })
    }

    /// The address the socket is bound to, with the port the kernel chose
    /// when the configuration asked for port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The configuration it was made from.
    pub fn config(&self) -> &UdpConfig {
        &self.config
    }

    /// The engine in use (never [`Engine::Auto`]).
    pub fn engine(&self) -> Engine {
        match self.io {
            Io::Mmsg(_) => Engine::Mmsg,
            Io::Uring(_) => Engine::Uring,
        }
    }

    /// Which engine is in use and why, for the log of whoever made the
    /// aio (this crate does not log); its `Display` is one line.
    pub fn engine_note(&self) -> EngineNote {
        self.engine_note
    }

    /// `SO_SNDBUF` as the kernel reports it (twice what was asked, capped).
    ///
    /// # Errors
    /// The OS error of `getsockopt`.
    pub fn send_buf_size(&self) -> io::Result<usize> {
        self.sock.get_int(libc::SO_SNDBUF)
    }

    /// `SO_RCVBUF` as the kernel reports it (twice what was asked, capped).
    ///
    /// # Errors
    /// The OS error of `getsockopt`.
    pub fn recv_buf_size(&self) -> io::Result<usize> {
        self.sock.get_int(libc::SO_RCVBUF)
    }

    /// The counters since bind (with the io_uring gauges read now).
    pub fn stats(&self) -> UdpStats {
        let mut s = self.stats;
        if let Io::Uring(u) = &self.io {
            s.tx_in_flight = u.in_flight() as u64;
            s.tx_limit = u.limit() as u64;
            s.tx_limit_decreases = u.limit_decreases();
            s.ring_errors = u.enter_errors;
            s.ring_last_errno = u.last_enter_errno;
        }
        s
    }

    /// io_uring: the latency of sends, submit to completion reaped, in
    /// nanoseconds, since bind (`p50` / `p99` by
    /// [`HistSnapshot::percentile`]); `None` for mmsg, whose sends
    /// complete inside the system call. Allocates the copy.
    pub fn tx_latency(&self) -> Option<HistSnapshot> {
        match &self.io {
            Io::Mmsg(_) => None,
            Io::Uring(u) => Some(u.latency()),
        }
    }

    /// Packets taken by `send` and not yet done: for mmsg, queued because
    /// the socket buffer was full (the next `send`, an empty batch with
    /// `flush = true` will do, tries them again); for io_uring, queued or
    /// in flight until their completion is reaped.
    pub fn tx_pending(&self) -> usize {
        match &self.io {
            Io::Mmsg(m) => m.tx_pending(),
            Io::Uring(u) => u.tx_pending(),
        }
    }

    /// Packets received and not yet taken by the downstream aio (it
    /// answered `Again`); the next [`UdpAio::poll`] offers them first.
    pub fn rx_pending(&self) -> usize {
        self.ready_len()
    }

    fn ready_len(&self) -> usize {
        match &self.io {
            Io::Mmsg(m) => m.ready_len(),
            Io::Uring(u) => u.ready_len(),
        }
    }

    /// Hands queued packets to the kernel (a flush).
    fn push_out(&mut self) {
        match &mut self.io {
            Io::Mmsg(m) => {
                m.drain(&self.sock, &mut self.stats);
            }
            Io::Uring(u) => u.flush(&mut self.stats),
        }
    }

    /// Where a packet goes, in the socket's family (`Some(None)`: the
    /// connected peer), or `None` if it has no usable destination.
    fn destination(&self, pkt: &PktInfo<'_>) -> Option<Option<SocketAddr>> {
        match pkt.meta.addr {
            Some(addr) if addr.port() == 0 => None,
            Some(addr) => in_family(&self.local, addr).map(Some),
            None if self.config.connect.is_some() => Some(None),
            None => None,
        }
    }

    /// Receives one burst (up to `batch` datagrams, without blocking) and
    /// sends it to `downstream`, `flush = true` at the end of the burst.
    /// Each packet carries its source address in `meta.addr` (an IPv4 peer
    /// of an IPv6 socket as its IPv4 address) and `meta.user` 0.
    ///
    /// Packets of an earlier burst that `downstream` refused with `Again`
    /// are offered first, and nothing new is received until all of them
    /// were taken: nothing is lost, and the kernel's socket buffer is what
    /// absorbs a slow downstream. A packet `downstream` refuses with
    /// `Inval` is dropped and counted. Datagrams longer than
    /// [`UdpConfig::rx_buf_len`] are counted as truncated and not
    /// delivered.
    ///
    /// Returns how many packets `downstream` took in this call. Receive
    /// errors (such as a pending `ECONNREFUSED` on a connected socket) are
    /// counted in [`UdpStats::rx_errors`], never returned: the socket stays
    /// usable.
    pub fn poll<A: Aio + ?Sized>(&mut self, downstream: &mut A) -> usize {
        let mut taken = self.deliver(downstream);
        if self.ready_len() > 0 {
            return taken;
        }
        match &mut self.io {
            Io::Mmsg(m) => m.recv(&self.sock, &mut self.stats),
            Io::Uring(u) => u.recv(&mut self.stats),
        }
        taken += self.deliver(downstream);
        taken
    }

    /// Offers the ready packets to `downstream` in chunks; returns how many
    /// it took.
    fn deliver<A: Aio + ?Sized>(&mut self, downstream: &mut A) -> usize {
        let mut taken = 0;
        loop {
            let mut chunk = [PktInfo::new(&[]); DELIVER_CHUNK];
            let ready = self.ready_len();
            if ready == 0 {
                return taken;
            }
            let m = ready.min(DELIVER_CHUNK);
            for (j, pkt) in chunk[..m].iter_mut().enumerate() {
                let (bytes, src) = match &self.io {
                    Io::Mmsg(io) => io.ready(j),
                    Io::Uring(io) => io.ready(j),
                };
                *pkt = PktInfo {
                    buf: bytes,
                    ..PktInfo::new(&[])
                };
                pkt.meta.addr = src;
            }
            let last = m == ready;
            let (k, stop) = match downstream.send(&chunk[..m], last) {
                Ok(()) => (m, false),
                Err(e) => {
                    let k = e.batch_idx.min(m);
                    if e.kind == SendErrorKind::Again {
                        self.stats.rx_downstream_again += 1;
                        (k, true)
                    } else {
                        // Inval (or a kind added later): drop the culprit.
                        self.stats.rx_downstream_inval += 1;
                        taken += k;
                        self.consume(k + 1.min(m - k));
                        continue;
                    }
                }
            };
            taken += k;
            self.consume(k);
            if stop {
                return taken;
            }
        }
    }

    fn consume(&mut self, k: usize) {
        match &mut self.io {
            Io::Mmsg(m) => m.consume(k),
            Io::Uring(u) => u.consume(k),
        }
    }
}

impl Aio for UdpAio {
    /// Copies each packet, in order, into a transmit slot; hands the slots
    /// to the kernel with one system call (`sendmmsg`, or `io_uring_enter`
    /// for the queued `Send` entries) when a batch is ready and at the
    /// end of a call with `flush = true`.
    ///
    /// A packet needs a destination: `meta.addr` (port not 0, reachable
    /// from the socket's family) or, with `meta.addr = None`, the
    /// configured [`UdpConfig::connect`] peer.
    ///
    /// Taken means copied into a slot: a packet taken is sent, or dropped
    /// and counted in [`UdpStats::tx_dropped`] if the kernel refuses it
    /// with an error, never lost silently. When the kernel's socket buffer
    /// is full, taken packets stay queued in their slots (see
    /// [`UdpAio::tx_pending`]) and the next send or flush tries them first,
    /// so packets leave in the order they were taken. `flush` is
    /// best effort: an `Ok` from a flushing send with the socket buffer
    /// full leaves packets queued, because they were already taken and
    /// must not be reported (and retried) as not sent.
    ///
    /// # Errors
    /// - [`SendErrorKind::Inval`] at the first packet longer than
    ///   [`UdpConfig::tx_pkt_max`] or without a usable destination; packets
    ///   before it were taken (and, with `flush`, handed to the kernel).
    /// - [`SendErrorKind::Again`] at the first packet that found every slot
    ///   taken and the kernel's socket buffer full; packets before it were
    ///   taken.
    fn send(&mut self, batch: &[PktInfo<'_>], flush: bool) -> Result<(), SendError> {
        for (i, pkt) in batch.iter().enumerate() {
            let dest = match self.destination(pkt) {
                Some(d) if pkt.buf.len() <= self.config.tx_pkt_max => d,
                _ => {
                    self.stats.tx_inval += 1;
                    if flush {
                        self.push_out();
                    }
                    return Err(SendError::inval(i));
                }
            };
            let took = match &mut self.io {
                Io::Mmsg(m) => m.take(&self.sock, pkt.buf, dest.as_ref(), &mut self.stats),
                Io::Uring(u) => u.take(pkt.buf, dest.as_ref(), &mut self.stats),
            };
            if !took {
                self.stats.tx_again += 1;
                return Err(SendError::again(i));
            }
        }
        match &mut self.io {
            Io::Mmsg(m) => m.end_send(&self.sock, flush, &mut self.stats),
            Io::Uring(u) if flush => u.flush(&mut self.stats),
            Io::Uring(_) => {}
        }
        Ok(())
    }
}

/// Which engine a [`UdpAio`] uses, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineNote {
    /// [`Engine::Mmsg`] was configured.
    MmsgConfigured,
    /// [`Engine::Uring`] was configured; `multishot` says how it receives
    /// (a multishot receive on a provided-buffer ring, or fixed one-shot
    /// receives).
    UringConfigured {
        /// Multishot receives on a provided-buffer ring.
        multishot: bool,
    },
    /// [`Engine::Auto`] chose io_uring: it is available.
    AutoUring,
    /// [`Engine::Auto`] chose sendmmsg/recvmmsg, for this reason.
    AutoMmsg(Fallback),
}

/// Why [`Engine::Auto`] fell back to sendmmsg/recvmmsg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fallback {
    /// The io_uring engine needs Linux 6.0 or later.
    NeedsLinux6,
    /// io_uring is available but making the engine's ring failed.
    RingFailed,
    /// io_uring is not in this kernel (ENOSYS).
    NotInKernel,
    /// `kernel.io_uring_disabled` denies it.
    DisabledBySysctl,
    /// `io_uring_setup` is denied (EPERM) by a seccomp filter.
    DeniedBySeccomp,
    /// `io_uring_setup` failed otherwise.
    SetupFailed,
}

impl EngineNote {
    /// The engine in use.
    pub fn engine(self) -> Engine {
        match self {
            EngineNote::MmsgConfigured | EngineNote::AutoMmsg(_) => Engine::Mmsg,
            EngineNote::UringConfigured { .. } | EngineNote::AutoUring => Engine::Uring,
        }
    }
}

impl core::fmt::Display for EngineNote {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let auto = "mmsg: Engine::Auto chose sendmmsg/recvmmsg:";
        match self {
            EngineNote::MmsgConfigured => f.write_str("mmsg: sendmmsg/recvmmsg, as configured"),
            EngineNote::UringConfigured { multishot: true } => f.write_str(
                "uring: io_uring, as configured; multishot receive on a provided-buffer ring",
            ),
            EngineNote::UringConfigured { multishot: false } => {
                f.write_str("uring: io_uring, as configured; fixed one-shot receives")
            }
            EngineNote::AutoUring => {
                f.write_str("uring: Engine::Auto chose io_uring: it is available")
            }
            EngineNote::AutoMmsg(why) => {
                let why = match why {
                    Fallback::NeedsLinux6 => "the io_uring engine needs Linux 6.0 or later",
                    Fallback::RingFailed => {
                        "io_uring is available but making the engine's ring failed"
                    }
                    Fallback::NotInKernel => "io_uring is not in this kernel (ENOSYS)",
                    Fallback::DisabledBySysctl => "io_uring is denied by kernel.io_uring_disabled",
                    Fallback::DeniedBySeccomp => "io_uring is denied (EPERM), by a seccomp filter",
                    Fallback::SetupFailed => "io_uring_setup failed",
                };
                write!(f, "{auto} {why}")
            }
        }
    }
}
