//! The sendmmsg/recvmmsg engine of [`UdpAio`](super::UdpAio): a transmit
//! queue drained by `sendmmsg` and receive slots filled by `recvmmsg`.

use std::io;
use std::net::SocketAddr;

use super::stats::UdpStats;
use super::sys::{MsgSlots, Socket};
use super::tx::TxQueue;

/// Slots and queues of the mmsg engine.
#[derive(Debug)]
pub(crate) struct Mmsg {
    tx: TxQueue,
    rx: MsgSlots,
    batch: usize,
    /// Slots of the last receive burst still to be delivered, in order:
    /// `rx_ready[rx_head..rx_len]`.
    rx_ready: Box<[u16]>,
    rx_head: usize,
    rx_len: usize,
}

impl Mmsg {
    /// `batch` transmit slots of `tx_pkt_max` bytes and `batch` receive
    /// slots of `rx_buf_len` bytes.
    pub(super) fn new(batch: usize, tx_pkt_max: usize, rx_buf_len: usize) -> Mmsg {
        Mmsg {
            tx: TxQueue::new(MsgSlots::new(batch, tx_pkt_max)),
            rx: MsgSlots::new(batch, rx_buf_len),
            batch,
            rx_ready: vec![0; batch].into_boxed_slice(),
            rx_head: 0,
            rx_len: 0,
        }
    }

    /// Packets taken and not yet handed to the kernel.
    pub(super) fn tx_pending(&self) -> usize {
        self.tx.len()
    }

    /// Hands queued packets to the kernel; true if none is left.
    pub(super) fn drain(&mut self, sock: &Socket, stats: &mut UdpStats) -> bool {
        self.tx.drain(stats, &mut |slots, start, count| {
            slots.sendmmsg(sock, start, count)
        })
    }

    /// Copies a packet into a slot, draining first when all are taken;
    /// false when they stay taken (socket buffer full).
    pub(super) fn take(
        &mut self,
        sock: &Socket,
        bytes: &[u8],
        dest: Option<&SocketAddr>,
        stats: &mut UdpStats,
    ) -> bool {
        if self.tx.is_full() && !self.drain(sock, stats) && self.tx.is_full() {
            return false;
        }
        self.tx.push(bytes, dest);
        true
    }

    /// The end of a send: drain on flush or when every slot is taken.
    pub(super) fn end_send(&mut self, sock: &Socket, flush: bool, stats: &mut UdpStats) {
        if flush || self.tx.is_full() {
            self.drain(sock, stats);
        }
    }

    /// One `recvmmsg` of up to a batch, when nothing is ready.
    pub(super) fn recv(&mut self, sock: &Socket, stats: &mut UdpStats) {
        if self.rx_len > self.rx_head {
            return;
        }
        stats.rx_recv_calls += 1;
        let n = match self.rx.recvmmsg(sock, self.batch) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(_) => {
                stats.rx_errors += 1;
                0
            }
        };
        self.rx_head = 0;
        self.rx_len = 0;
        for i in 0..n {
            let (bytes, _, truncated) = self.rx.received(i);
            if truncated {
                stats.rx_truncated += 1;
                continue;
            }
            stats.rx_pkts += 1;
            stats.rx_bytes += bytes.len() as u64;
            // `batch <= BATCH_MAX = 1024`, so a slot index fits.
            self.rx_ready[self.rx_len] = i as u16;
            self.rx_len += 1;
        }
    }

    /// Packets received and not yet taken.
    pub(super) fn ready_len(&self) -> usize {
        self.rx_len - self.rx_head
    }

    /// The `j`-th packet not yet taken: payload and source.
    pub(super) fn ready(&self, j: usize) -> (&[u8], Option<SocketAddr>) {
        let slot = usize::from(self.rx_ready[self.rx_head + j]);
        let (bytes, src, _) = self.rx.received(slot);
        (bytes, src)
    }

    /// Marks the first `k` ready packets taken.
    pub(super) fn consume(&mut self, k: usize) {
        self.rx_head += k;
        if self.rx_head >= self.rx_len {
            self.rx_head = 0;
            self.rx_len = 0;
        }
    }
}
