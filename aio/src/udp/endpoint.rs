//! [`UdpAio`]: one UDP socket, its transmit side as an [`Aio`] and its
//! receive side as [`UdpAio::poll`] into a downstream aio.

use core::fmt;
use std::io;
use std::net::{SocketAddr, SocketAddrV6};

use super::config::{BindError, Engine, UdpConfig};
use super::probe::UringSupport;
use super::stats::UdpStats;
use super::sys::{MsgSlots, Socket, SocketOpts};
use super::tx::TxQueue;
use crate::{Aio, PktInfo, SendError, SendErrorKind};

/// Packets handed to the downstream aio per call of its `send` (a stack
/// array, so delivery does not allocate whatever the batch size).
const DELIVER_CHUNK: usize = 64;

/// A UDP socket with a batched transmit side (an [`Aio`]) and a batched
/// receive side ([`UdpAio::poll`]). See the [module documentation](super)
/// for the design.
pub struct UdpAio {
    sock: Socket,
    config: UdpConfig,
    local: SocketAddr,
    engine_note: &'static str,
    tx: TxQueue,
    rx: MsgSlots,
    /// Slots of the last receive burst that are still to be delivered,
    /// in order: `rx_ready[rx_head..rx_len]`.
    rx_ready: Box<[u16]>,
    rx_head: usize,
    rx_len: usize,
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
    /// allocates every buffer the aio will use: `batch` transmit slots of
    /// `tx_pkt_max` bytes and `batch` receive slots of `rx_buf_len` bytes,
    /// with their message headers and addresses. Nothing is allocated
    /// after this.
    ///
    /// [`Engine::Auto`] picks [`Engine::Mmsg`] today (the io_uring engine
    /// is not built yet); [`UdpAio::engine_note`] says so.
    ///
    /// # Errors
    /// [`BindError::EngineNotBuilt`] for [`Engine::Uring`]; the bound
    /// violated for bad numbers (see [`UdpConfig::validate`]);
    /// [`BindError::Os`] with the failing call when the OS refuses (address
    /// in use without `reuse_port`, address not local, ...).
    pub fn bind(config: &UdpConfig) -> Result<UdpAio, BindError> {
        let engine_note = match config.engine {
            Engine::Uring => return Err(BindError::EngineNotBuilt(Engine::Uring)),
            Engine::Mmsg => "mmsg: sendmmsg/recvmmsg, as configured",
            _ => match super::uring_support() {
                UringSupport::Available => {
                    "mmsg: Engine::Auto chose sendmmsg/recvmmsg: io_uring is available \
                     but its engine is not built yet"
                }
                UringSupport::NotInKernel => {
                    "mmsg: Engine::Auto chose sendmmsg/recvmmsg: io_uring is not in this \
                     kernel (ENOSYS)"
                }
                UringSupport::Denied { sysctl: Some(n) } if n > 0 => {
                    "mmsg: Engine::Auto chose sendmmsg/recvmmsg: io_uring is denied by \
                     kernel.io_uring_disabled"
                }
                UringSupport::Denied { .. } => {
                    "mmsg: Engine::Auto chose sendmmsg/recvmmsg: io_uring is denied (EPERM), \
                     by a seccomp filter"
                }
                _ => "mmsg: Engine::Auto chose sendmmsg/recvmmsg: io_uring_setup failed",
            },
        };
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
        Ok(UdpAio {
            sock,
            config: *config,
            local,
            engine_note,
            tx: TxQueue::new(MsgSlots::new(config.batch, config.tx_pkt_max)),
            rx: MsgSlots::new(config.batch, config.rx_buf_len),
            rx_ready: vec![0; config.batch].into_boxed_slice(),
            rx_head: 0,
            rx_len: 0,
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
        Engine::Mmsg
    }

    /// One line on which engine is in use and why, for the log of whoever
    /// made the aio (this crate does not log).
    pub fn engine_note(&self) -> &'static str {
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

    /// The counters since bind.
    pub fn stats(&self) -> UdpStats {
        self.stats
    }

    /// Packets taken by `send` and not yet handed to the kernel. Nonzero
    /// after a send returned while the socket buffer was full; the next
    /// `send` (an empty batch with `flush = true` will do) tries them again.
    pub fn tx_pending(&self) -> usize {
        self.tx.len()
    }

    /// Packets received and not yet taken by the downstream aio (it
    /// answered `Again`); the next [`UdpAio::poll`] offers them first.
    pub fn rx_pending(&self) -> usize {
        self.rx_len - self.rx_head
    }

    /// Hands queued packets to the kernel; true if none is left.
    fn drain_tx(&mut self) -> bool {
        let sock = &self.sock;
        self.tx.drain(&mut self.stats, &mut |slots, start, count| {
            slots.sendmmsg(sock, start, count)
        })
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
        if self.rx_pending() > 0 {
            return taken;
        }
        self.stats.rx_recv_calls += 1;
        let n = match self.rx.recvmmsg(&self.sock, self.config.batch) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(_) => {
                self.stats.rx_errors += 1;
                0
            }
        };
        self.rx_head = 0;
        self.rx_len = 0;
        for i in 0..n {
            let (bytes, _, truncated) = self.rx.received(i);
            if truncated {
                self.stats.rx_truncated += 1;
                continue;
            }
            self.stats.rx_pkts += 1;
            self.stats.rx_bytes += bytes.len() as u64;
            // `batch <= BATCH_MAX = 1024`, so a slot index fits.
            self.rx_ready[self.rx_len] = i as u16;
            self.rx_len += 1;
        }
        taken += self.deliver(downstream);
        taken
    }

    /// Offers the ready packets to `downstream` in chunks; returns how many
    /// it took.
    fn deliver<A: Aio + ?Sized>(&mut self, downstream: &mut A) -> usize {
        let mut taken = 0;
        let mut chunk = [PktInfo::new(&[]); DELIVER_CHUNK];
        while self.rx_head < self.rx_len {
            let m = (self.rx_len - self.rx_head).min(DELIVER_CHUNK);
            for (j, pkt) in chunk[..m].iter_mut().enumerate() {
                let slot = usize::from(self.rx_ready[self.rx_head + j]);
                let (bytes, src, _) = self.rx.received(slot);
                *pkt = PktInfo {
                    buf: bytes,
                    ..PktInfo::new(&[])
                };
                pkt.meta.addr = src;
            }
            let last = self.rx_head + m == self.rx_len;
            match downstream.send(&chunk[..m], last) {
                Ok(()) => {
                    self.rx_head += m;
                    taken += m;
                }
                Err(e) => {
                    let k = e.batch_idx.min(m);
                    self.rx_head += k;
                    taken += k;
                    if e.kind == SendErrorKind::Again {
                        self.stats.rx_downstream_again += 1;
                        return taken;
                    }
                    // Inval (or a kind added later): drop the culprit.
                    self.stats.rx_downstream_inval += 1;
                    self.rx_head += 1.min(m - k);
                }
            }
        }
        self.rx_head = 0;
        self.rx_len = 0;
        taken
    }
}

impl Aio for UdpAio {
    /// Copies each packet, in order, into a transmit slot; hands the slots
    /// to the kernel with one `sendmmsg` when all `batch` slots are taken
    /// and at the end of a call with `flush = true`.
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
                        self.drain_tx();
                    }
                    return Err(SendError::inval(i));
                }
            };
            if self.tx.is_full() && !self.drain_tx() && self.tx.is_full() {
                self.stats.tx_again += 1;
                return Err(SendError::again(i));
            }
            self.tx.push(pkt.buf, dest.as_ref());
        }
        if flush || self.tx.is_full() {
            self.drain_tx();
        }
        Ok(())
    }
}
