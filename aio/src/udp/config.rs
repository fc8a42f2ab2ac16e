//! What a [`UdpAio`](super::UdpAio) is made from: [`UdpConfig`], the
//! [`Engine`] choice, and the [`BindError`] of making one.

use std::io;
use std::net::SocketAddr;

use super::aimd::AimdConfig;
use crate::BUF_MAX;

/// Largest UDP payload over IPv4: 65535 - 20 (IP header) - 8 (UDP header).
pub const UDP_V4_PAYLOAD_MAX: usize = 65_507;
/// Largest UDP payload over IPv6 without jumbograms: 65535 - 8.
pub const UDP_V6_PAYLOAD_MAX: usize = 65_527;
/// Most messages one `sendmmsg` / `recvmmsg` call takes (the kernel's
/// `UIO_MAXIOV`); the largest [`UdpConfig::batch`].
pub const BATCH_MAX: usize = 1024;
/// Default [`UdpConfig::batch`]: what validators use with `sendmmsg` today.
pub const BATCH_DEFAULT: usize = 64;
/// Default [`UdpConfig::rx_buf_len`]: a validator packet (up to 1232 bytes)
/// with room to spare, and two buffers to a page.
pub const RX_BUF_DEFAULT: usize = 2048;
/// Default [`UdpConfig::queue_depth`].
pub const QUEUE_DEPTH_DEFAULT: usize = 256;
/// Largest [`UdpConfig::queue_depth`] (the kernel's limit on a provided
/// buffer ring).
pub const QUEUE_DEPTH_MAX: usize = 32_768;

/// Which kernel interface moves the packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Engine {
    /// The best engine this host allows: [`Engine::Uring`] when this
    /// process may use io_uring and its ring can be made, else
    /// [`Engine::Mmsg`];
    /// [`UdpAio::engine_note`](super::UdpAio::engine_note) says which and
    /// why.
    #[default]
    Auto,
    /// io_uring: sends queued as `Send` entries and submitted with one
    /// `io_uring_enter` per flush, receives by a multishot `RecvMsg` on a
    /// provided-buffer ring. Binding fails with [`BindError::Os`] (the
    /// step `io_uring_setup`, ...) where io_uring is not allowed, rather
    /// than quietly using another engine.
    Uring,
    /// `sendmmsg(2)` / `recvmmsg(2)` in batches: works wherever UDP sockets
    /// do (also where io_uring is disabled by sysctl or seccomp).
    Mmsg,
}

/// How the io_uring engine receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum UringRecv {
    /// Multishot on a provided-buffer ring where the kernel has it (6.0+),
    /// else a fixed set of one-shot receives.
    #[default]
    Auto,
    /// Multishot on a provided-buffer ring; binding fails without it.
    Multishot,
    /// One one-shot `RecvMsg` per buffer, each posted again once its
    /// packet was taken.
    Fixed,
}

/// How to make a [`UdpAio`](super::UdpAio).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpConfig {
    /// Local address to bind (port 0: the kernel picks one). Its family
    /// (IPv4 or IPv6) is the socket's; an IPv6 socket also reaches IPv4
    /// peers through IPv4-mapped addresses unless the host sets
    /// `net.ipv6.bindv6only`.
    pub bind: SocketAddr,
    /// Connect the socket to this peer: packets sent without an address go
    /// to it, only its packets are received, and ICMP errors about it
    /// (port unreachable: `ECONNREFUSED`) are reported by the kernel and
    /// counted. `None` (the default): unconnected, every packet sent needs
    /// an address.
    pub connect: Option<SocketAddr>,
    /// Set `SO_REUSEPORT` so several sockets (one per net tile, one tile
    /// per core) share one port; the kernel spreads flows across them.
    pub reuse_port: bool,
    /// `SO_SNDBUF` in bytes (the kernel doubles it and caps it at
    /// `net.core.wmem_max`); `None` keeps the system default.
    pub send_buf: Option<usize>,
    /// `SO_RCVBUF` in bytes (doubled, capped at `net.core.rmem_max`);
    /// `None` keeps the system default.
    pub recv_buf: Option<usize>,
    /// Packets per `sendmmsg` / `recvmmsg` call and transmit slots held:
    /// 1 to [`BATCH_MAX`], default [`BATCH_DEFAULT`].
    pub batch: usize,
    /// Longest packet sent, in bytes; longer ones are refused with `Inval`.
    /// Default [`BUF_MAX`]; at most [`UDP_V4_PAYLOAD_MAX`] (IPv4) or
    /// [`UDP_V6_PAYLOAD_MAX`] (IPv6). Each transmit slot is this big.
    pub tx_pkt_max: usize,
    /// Receive buffer per slot, in bytes: 1 to 65536, default
    /// [`RX_BUF_DEFAULT`]. A longer datagram is truncated by the kernel,
    /// counted and not delivered.
    pub rx_buf_len: usize,
    /// Which engine to use.
    pub engine: Engine,
    /// io_uring engine: transmit slots (sends queued or in flight at once)
    /// and receive buffers (rounded up to a power of two, at least
    /// `batch`): 1 to [`QUEUE_DEPTH_MAX`], default
    /// [`QUEUE_DEPTH_DEFAULT`]. The mmsg engine has `batch` of each.
    pub queue_depth: usize,
    /// io_uring engine: let a kernel thread poll the submission ring
    /// (`IORING_SETUP_SQPOLL`), idling to sleep after this many
    /// milliseconds without work. Saves the `io_uring_enter` of a flush
    /// at the cost of a core the kernel thread spins on. Off (`None`) by
    /// default.
    pub sqpoll: Option<u32>,
    /// io_uring engine: an AIMD limit on sends in flight against a latency
    /// target; `None` (the default): no limit but the slots.
    pub aimd: Option<AimdConfig>,
    /// io_uring engine: how receives are posted.
    pub uring_recv: UringRecv,
}

impl UdpConfig {
    /// The defaults, bound to `bind`.
    pub const fn new(bind: SocketAddr) -> UdpConfig {
        UdpConfig {
            bind,
            connect: None,
            reuse_port: false,
            send_buf: None,
            recv_buf: None,
            batch: BATCH_DEFAULT,
            tx_pkt_max: BUF_MAX,
            rx_buf_len: RX_BUF_DEFAULT,
            engine: Engine::Auto,
            queue_depth: QUEUE_DEPTH_DEFAULT,
            sqpoll: None,
            aimd: None,
            uring_recv: UringRecv::Auto,
        }
    }

    /// Checks the numbers against their bounds.
    ///
    /// # Errors
    /// The first [`BindError`] variant whose bound is broken.
    pub fn validate(&self) -> Result<(), BindError> {
        if self.batch == 0 || self.batch > BATCH_MAX {
            return Err(BindError::Batch { batch: self.batch });
        }
        let limit = match self.bind {
            SocketAddr::V4(_) => UDP_V4_PAYLOAD_MAX,
            SocketAddr::V6(_) => UDP_V6_PAYLOAD_MAX,
        };
        if self.tx_pkt_max > limit {
            return Err(BindError::TxPktMax {
                len: self.tx_pkt_max,
                limit,
            });
        }
        if self.rx_buf_len == 0 || self.rx_buf_len > 65_536 {
            return Err(BindError::RxBufLen {
                len: self.rx_buf_len,
            });
        }
        if self.queue_depth == 0 || self.queue_depth > QUEUE_DEPTH_MAX {
            return Err(BindError::QueueDepth {
                depth: self.queue_depth,
            });
        }
        if let Some(peer) = self.connect {
            if self.bind.is_ipv4() && peer.is_ipv6() {
                return Err(BindError::PeerFamily { peer });
            }
        }
        Ok(())
    }
}

/// Why a [`UdpAio`](super::UdpAio) could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// [`UdpConfig::batch`] is 0 or over [`BATCH_MAX`].
    #[error("batch of {batch} packets: must be 1 to {BATCH_MAX}")]
    Batch {
        /// The configured batch.
        batch: usize,
    },
    /// [`UdpConfig::tx_pkt_max`] is over the largest UDP payload of the
    /// socket's family.
    #[error("tx_pkt_max of {len} bytes is over the UDP payload limit of {limit}")]
    TxPktMax {
        /// The configured length.
        len: usize,
        /// The family's limit.
        limit: usize,
    },
    /// [`UdpConfig::rx_buf_len`] is 0 or over 65536.
    #[error("rx_buf_len of {len} bytes: must be 1 to 65536")]
    RxBufLen {
        /// The configured length.
        len: usize,
    },
    /// [`UdpConfig::queue_depth`] is 0 or over [`QUEUE_DEPTH_MAX`].
    #[error("queue_depth of {depth}: must be 1 to {QUEUE_DEPTH_MAX}")]
    QueueDepth {
        /// The configured depth.
        depth: usize,
    },
    /// An IPv6 peer for an IPv4 socket.
    #[error("cannot connect an IPv4 socket to the IPv6 peer {peer}")]
    PeerFamily {
        /// The configured peer.
        peer: SocketAddr,
    },
    /// A system call failed while making the socket (address in use,
    /// permission denied, no such address, ...).
    #[error("{step} failed: {source}")]
    Os {
        /// The call that failed, e.g. `"bind"`.
        step: &'static str,
        /// What the OS said.
        source: io::Error,
    },
}
