//! Counters of a [`UdpAio`](super::UdpAio): plain integers owned by the one
//! thread that drives the aio (no atomics; a tile copies them into its
//! metrics at housekeeping).

use std::io;

/// Kernel errors met by transmit, by kind. Each is one error the kernel
/// returned for one message; see [`UdpStats::tx_dropped`] for the packets
/// they cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxErrors {
    /// `EMSGSIZE`: the datagram is larger than the path allows.
    pub msg_size: u64,
    /// `ECONNREFUSED`: an ICMP port unreachable came back for an earlier
    /// datagram (reported on connected sockets).
    pub conn_refused: u64,
    /// `EHOSTUNREACH`: no route to the host, or an ICMP host unreachable.
    pub host_unreachable: u64,
    /// `ENETUNREACH`: no route to the network.
    pub net_unreachable: u64,
    /// `EPERM` / `EACCES`: refused by a firewall rule or a broadcast
    /// address without `SO_BROADCAST`.
    pub denied: u64,
    /// Any other error.
    pub other: u64,
}

impl TxErrors {
    /// All kinds together.
    pub fn total(&self) -> u64 {
        self.msg_size
            + self.conn_refused
            + self.host_unreachable
            + self.net_unreachable
            + self.denied
            + self.other
    }

    pub(crate) fn count(&mut self, err: &io::Error) {
        let slot = match err.raw_os_error() {
            Some(libc::EMSGSIZE) => &mut self.msg_size,
            Some(libc::ECONNREFUSED) => &mut self.conn_refused,
            Some(libc::EHOSTUNREACH) => &mut self.host_unreachable,
            Some(libc::ENETUNREACH) => &mut self.net_unreachable,
            Some(libc::EPERM | libc::EACCES) => &mut self.denied,
            _ => &mut self.other,
        };
        *slot += 1;
    }
}

/// Cumulative counters of a [`UdpAio`](super::UdpAio).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UdpStats {
    /// Packets the kernel took for transmission.
    pub tx_pkts: u64,
    /// Payload bytes of those packets.
    pub tx_bytes: u64,
    /// Send system calls made (`sendmmsg`, or the `io_uring_enter` that
    /// submitted sends), successful or not.
    pub tx_send_calls: u64,
    /// io_uring: sends submitted whose completion was not reaped yet, at
    /// the time of the reading (a gauge; 0 for mmsg).
    pub tx_in_flight: u64,
    /// io_uring: the limit on sends queued or in flight at the time of the
    /// reading (the AIMD limit, or the slots without one).
    pub tx_limit: u64,
    /// io_uring: times the AIMD limit was halved.
    pub tx_limit_decreases: u64,
    /// Sends answered with `Again` (transmit slots full and the kernel's
    /// socket buffer full).
    pub tx_again: u64,
    /// Sends answered with `Inval` (too long, no usable destination).
    pub tx_inval: u64,
    /// Times the kernel refused with `EAGAIN` / `ENOBUFS` (socket buffer
    /// full); the packets stay queued.
    pub tx_would_block: u64,
    /// Kernel errors, by kind.
    pub tx_errors: TxErrors,
    /// Packets dropped because of kernel errors (each counted once).
    pub tx_dropped: u64,
    /// Whole datagrams received.
    pub rx_pkts: u64,
    /// Payload bytes of those datagrams.
    pub rx_bytes: u64,
    /// Receive system calls made (`recvmmsg`, or the `io_uring_enter` of a
    /// poll that found nothing ready), successful or not.
    pub rx_recv_calls: u64,
    /// io_uring: times the multishot receive was armed (once, then again
    /// each time the kernel ended it, e.g. for lack of buffers).
    pub rx_arms: u64,
    /// io_uring: times the provided buffers ran out (`ENOBUFS`) while the
    /// downstream held packets; the datagrams waited in the socket buffer.
    pub rx_no_buffers: u64,
    /// Datagrams longer than the receive buffer: truncated by the kernel,
    /// counted here, not delivered.
    pub rx_truncated: u64,
    /// Receive calls that failed with something other than "nothing to
    /// read" (such as a pending `ECONNREFUSED` on a connected socket).
    pub rx_errors: u64,
    /// Times the downstream aio answered `Again`; the rest of the burst was
    /// kept and offered again.
    pub rx_downstream_again: u64,
    /// Packets the downstream aio refused with `Inval`, dropped.
    pub rx_downstream_inval: u64,
    /// io_uring: `io_uring_enter` or ring-enable calls that failed (the
    /// queued entries stay queued), and the errno of the last.
    pub ring_errors: u64,
    /// The errno of the last failed ring call (0: none).
    pub ring_last_errno: i32,
}
