//! The transmit queue: packets taken by `send` and not yet handed to the
//! kernel.
//!
//! The queue is a ring over the [`MsgSlots`] made at bind: `len` packets
//! pending from slot `head` on, wrapping at the end. A drain hands the
//! longest contiguous run to the kernel in one `sendmmsg`, then the
//! wrapped part, until the queue is empty or the kernel refuses. The
//! system call is a parameter (`SendFn`), so the bookkeeping is tested here
//! against a scripted kernel that pushes back and fails on cue.

use std::io;

use super::stats::UdpStats;
use super::sys::MsgSlots;

/// Hands slots `[start, start + count)` to the kernel; returns how many it
/// took, in order (at least 1), or the error of the first.
pub(crate) type SendFn<'a> = &'a mut dyn FnMut(&mut MsgSlots, usize, usize) -> io::Result<usize>;

/// True for the errors that mean "the socket buffer is full, try later".
fn is_full(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock || err.raw_os_error() == Some(libc::ENOBUFS)
}

/// Packets taken and not yet sent, in order.
#[derive(Debug)]
pub(crate) struct TxQueue {
    slots: MsgSlots,
    head: usize,
    len: usize,
    /// The packet at `head` already failed once with a kernel error that
    /// may have been about an earlier datagram; a second failure drops it.
    head_failed: bool,
}

impl TxQueue {
    pub(super) fn new(slots: MsgSlots) -> TxQueue {
        TxQueue {
            slots,
            head: 0,
            len: 0,
            head_failed: false,
        }
    }

    /// Packets pending.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_full(&self) -> bool {
        self.len == self.slots.len()
    }

    /// Copies a packet into the next free slot.
    ///
    /// # Panics
    /// If the queue is full or the packet longer than a slot (callers check).
    pub(super) fn push(&mut self, bytes: &[u8], dest: Option<&std::net::SocketAddr>) {
        assert!(!self.is_full());
        let n = self.slots.len();
        let slot = (self.head + self.len) % n;
        self.slots.write(slot, bytes, dest);
        self.len += 1;
    }

    fn retire(&mut self, k: usize) {
        self.head = (self.head + k) % self.slots.len();
        self.len -= k;
        self.head_failed = false;
        if self.len == 0 {
            self.head = 0;
        }
    }

    /// Hands pending packets to the kernel until none is left (true) or the
    /// kernel's buffer is full (false; the rest stays queued, in order).
    ///
    /// A kernel error other than "full" is counted by kind. `EMSGSIZE`
    /// drops the packet at once (it is about this packet). Any other error
    /// may be an asynchronous report about an earlier datagram (an ICMP
    /// error left on the socket), which the kernel clears as it reports it,
    /// so the packet is tried once more and dropped only if it fails again.
    /// Each drop is counted in `tx_dropped`; every packet is either sent,
    /// dropped and counted, or still queued.
    pub(super) fn drain(&mut self, stats: &mut UdpStats, send: SendFn<'_>) -> bool {
        let n = self.slots.len();
        while self.len > 0 {
            let run = self.len.min(n - self.head);
            stats.tx_send_calls += 1;
            match send(&mut self.slots, self.head, run) {
                Ok(0) => {
                    // Not something sendmmsg does for a nonempty batch;
                    // treat it as "full" rather than spin.
                    stats.tx_would_block += 1;
                    return false;
                }
                Ok(k) => {
                    let k = k.min(run);
                    stats.tx_pkts += k as u64;
                    for i in self.head..self.head + k {
                        stats.tx_bytes += self.slots.pkt_len(i) as u64;
                    }
                    self.retire(k);
                }
                Err(e) if is_full(&e) => {
                    stats.tx_would_block += 1;
                    return false;
                }
                Err(e) => {
                    stats.tx_errors.count(&e);
                    if self.head_failed || e.raw_os_error() == Some(libc::EMSGSIZE) {
                        stats.tx_dropped += 1;
                        self.retire(1);
                    } else {
                        self.head_failed = true;
                    }
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted kernel: each call pops the next answer (`Ok(k)`: take up
    /// to k, `Err(errno)`); records every packet taken by its first byte.
    struct Script {
        answers: Vec<Result<usize, i32>>,
        sent: Vec<u8>,
    }

    impl Script {
        fn new(mut answers: Vec<Result<usize, i32>>) -> Script {
            answers.reverse();
            Script {
                answers,
                sent: Vec::new(),
            }
        }

        fn call(&mut self, slots: &mut MsgSlots, start: usize, count: usize) -> io::Result<usize> {
            match self.answers.pop().unwrap_or(Ok(usize::MAX)) {
                Ok(k) => {
                    let k = k.min(count);
                    for i in start..start + k {
                        self.sent.push(slots.received(i).0[0]);
                    }
                    Ok(k)
                }
                Err(errno) => Err(io::Error::from_raw_os_error(errno)),
            }
        }
    }

    fn queue(n: usize) -> TxQueue {
        TxQueue::new(MsgSlots::new(n, 16))
    }

    fn drain(q: &mut TxQueue, stats: &mut UdpStats, s: &mut Script) -> bool {
        q.drain(stats, &mut |slots, start, count| {
            s.call(slots, start, count)
        })
    }

    #[test]
    fn partial_sends_wrap_and_keep_order() {
        let mut q = queue(4);
        let mut st = UdpStats::default();
        let mut s = Script::new(vec![Ok(3), Err(libc::EAGAIN), Ok(9), Ok(9)]);
        for b in 0..4u8 {
            q.push(&[b, 0xaa], None);
        }
        assert!(q.is_full());
        assert!(!drain(&mut q, &mut st, &mut s), "blocked after 3");
        assert_eq!((q.len(), st.tx_would_block), (1, 1));
        q.push(&[4], None);
        q.push(&[5], None);
        q.push(&[6], None);
        assert!(q.is_full());
        assert!(drain(&mut q, &mut st, &mut s));
        assert_eq!(s.sent, [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!((st.tx_pkts, st.tx_bytes, st.tx_send_calls), (7, 11, 4));
    }

    #[test]
    fn errors_drop_one_packet_and_keep_the_rest() {
        let mut q = queue(8);
        let mut st = UdpStats::default();
        // 0 sent; 1 EMSGSIZE (dropped at once); 2 refused once then sent
        // (an asynchronous report); 3 unreachable twice (dropped); 4 sent.
        let mut s = Script::new(vec![
            Ok(1),
            Err(libc::EMSGSIZE),
            Err(libc::ECONNREFUSED),
            Ok(1),
            Err(libc::EHOSTUNREACH),
            Err(libc::EHOSTUNREACH),
            Err(libc::ENOBUFS),
        ]);
        for b in 0..5u8 {
            q.push(&[b], None);
        }
        assert!(!drain(&mut q, &mut st, &mut s), "ENOBUFS is full");
        assert_eq!(q.len(), 1);
        assert!(drain(&mut q, &mut st, &mut s));
        assert_eq!(s.sent, [0, 2, 4]);
        assert_eq!(st.tx_dropped, 2);
        assert_eq!(st.tx_errors.msg_size, 1);
        assert_eq!(st.tx_errors.conn_refused, 1);
        assert_eq!(st.tx_errors.host_unreachable, 2);
        assert_eq!(st.tx_errors.total(), 4);
        assert_eq!(st.tx_pkts, 3);
    }
}
