//! The io_uring engine of [`UdpAio`](super::UdpAio).
//!
//! # Memory
//!
//! One anonymous mapping, made at bind, holds everything the kernel reads
//! or writes after a submission returns: the provided-buffer ring and the
//! receive buffers, the transmit slots, and the message headers, iovecs
//! and socket addresses that describe them. The kernel keeps pointers into
//! it until the completion of each operation, so Rust never holds a
//! reference over the whole mapping: each access goes through a raw
//! pointer to one slot or buffer that the engine owns at that moment (a
//! transmit slot on the free list; a receive buffer whose completion was
//! reaped and which is not back on the ring). The ring is dropped before
//! the mapping (field order), and closing the ring cancels every
//! operation still pending, so the kernel is done with the mapping before
//! it is unmapped.
//!
//! # Transmit
//!
//! `take` copies a packet into a free slot with its destination address
//! and queues a `Send` to that address (`sendto`) on the registered socket (a fixed
//! file: no descriptor lookup per operation). [`Uring::submit`] hands the
//! queue to the kernel with one `io_uring_enter`; it is called by a flush,
//! when a batch is queued, and when the slots run out. The completions are
//! reaped right after each enter (a UDP send completes inside the enter
//! unless the socket buffer is full), so the latency histogram measures
//! the kernel's time, not ours. A slot is the kernel's from submission to
//! completion; a send that finds no free slot, or the AIMD limit reached,
//! is refused and the caller gets `Again`.
//!
//! Completion errors are handled as the mmsg engine handles `sendmmsg`'s:
//! `EAGAIN` / `ENOBUFS` queue the packet again; `EMSGSIZE` drops it; any
//! other error is counted, the packet queued once more (the error may have
//! been an ICMP report about an earlier datagram) and dropped if it fails
//! again. Every drop is counted.
//!
//! Packets leave in the order they were taken while the socket buffer has
//! room. When it fills, the kernel parks each send that found none until
//! room appears (the slot stays in flight; its completion is deferred work
//! that the next enter runs, so a send or flush that finds no free slot
//! enters once before answering `Again`), and parked sends may leave in any
//! order. UDP promises no order; the mmsg engine keeps it.
//!
//! # Receive
//!
//! Preferred: one multishot `RecvMsg` on a provided-buffer ring (kernel
//! 6.0+). Each datagram takes a buffer from the ring and posts one
//! completion; the buffer holds the kernel's `io_uring_recvmsg_out`
//! header, the source address and the payload. Buffers go back on the ring
//! once the downstream took their packets; if the ring runs dry the kernel
//! ends the multishot receive (`ENOBUFS`), the datagrams wait in the
//! socket buffer, and the next poll arms it again.
//!
//! Fallback, or by config: a fixed set of one-shot `RecvMsg`, one per
//! buffer, each armed again once its packet was taken.
#![allow(unsafe_code)]

use core::mem::size_of;
use core::ptr;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use io_uring::{opcode, types, IoUring};
use tilewire_shmem::clock::mono_ns;
use tilewire_shmem::hist::{HistSnapshot, LocalHist};

mod mem;
mod rx;

use mem::{Layout, Mapping};
use rx::{Ready, RxMode};

use super::aimd::Aimd;
use super::config::{UdpConfig, UringRecv};
use super::stats::UdpStats;
use super::sys::encode_into;

/// `IORING_ENTER_GETEVENTS`: also run deferred completion work.
const ENTER_GETEVENTS: u32 = 1;
/// user_data of the multishot receive.
const TAG_MULTISHOT: u64 = 1 << 62;
/// user_data of a fixed receive: this bit and the buffer id.
const TAG_FIXED: u64 = 1 << 61;
/// The provided-buffer group id.
const BGID: u16 = 0;
/// Bytes of `io_uring_recvmsg_out` at the start of a multishot buffer.
const OUT_LEN: usize = 16;
/// Bytes reserved for the source address (a `sockaddr_in6`; a
/// `sockaddr_in` is shorter).
const NAME_LEN: usize = size_of::<libc::sockaddr_in6>();
/// The step named when the kernel is too old for this engine: a `Send`
/// with a destination address (`sendto`) needs Linux 6.0.
pub(crate) const NEEDS_6_0: &str =
    "io_uring engine needs Linux 6.0 or later (Send with an address)";

/// The running kernel's (major, minor), from uname; (0, 0) if unreadable.
fn kernel_version() -> (u32, u32) {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return (0, 0);
    };
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Completions copied out of the ring per pass.
const REAP_CHUNK: usize = 32;

/// The io_uring engine: a ring, its registered socket, and the slots and
/// buffers it lends the kernel.
pub(crate) struct Uring {
    // Dropped first: closing the ring ends every pending operation before
    // `mem` is unmapped.
    ring: IoUring,
    mem: Mapping,
    lay: Layout,
    sqpoll: bool,
    enabled: bool,
    batch: usize,
    /// Per transmit slot: payload length, address length, submit time
    /// and whether the kernel refused it once. The free list and the
    /// queue (pushed, not yet entered) hold slot numbers.
    tx_len: Box<[u32]>,
    tx_namelen: Box<[libc::socklen_t]>,
    tx_free: Box<[u16]>,
    tx_nfree: usize,
    tx_queued: Box<[u16]>,
    tx_nqueued: usize,
    tx_ts: Box<[u64]>,
    tx_failed: Box<[bool]>,
    tx_in_flight: usize,
    rx_mode: RxMode,
    rx_buf_len: usize,
    n_rx: usize,
    /// Ring of packets received and not yet taken.
    ready: Box<[Ready]>,
    ready_head: usize,
    ready_len: usize,
    hist: LocalHist,
    aimd: Option<Aimd>,
    /// `enter` calls that failed (other than `EINTR`), by the last errno.
    pub enter_errors: u64,
    pub last_enter_errno: i32,
}

impl core::fmt::Debug for Uring {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Uring")
            .field("rx_mode", &self.rx_mode)
            .field("tx_slots", &self.tx_len.len())
            .field("rx_bufs", &self.n_rx)
            .field("in_flight", &self.tx_in_flight)
            .finish()
    }
}
impl Uring {
    /// Makes the ring for `fd` (registered as fixed file 0), maps the
    /// slots and buffers, and registers the buffer ring (or falls back to
    /// fixed receives). The ring starts disabled: the first thread that
    /// sends or polls enables it and becomes its one submitter.
    pub(super) fn new(fd: RawFd, config: &UdpConfig) -> Result<Uring, (&'static str, io::Error)> {
        if kernel_version() < (6, 0) {
            return Err((NEEDS_6_0, io::Error::from_raw_os_error(libc::EOPNOTSUPP)));
        }
        let n_tx = config.queue_depth.max(1);
        let n_rx = config.queue_depth.max(config.batch).next_power_of_two();
        let lay = Layout::new(n_rx, config.rx_buf_len, n_tx, config.tx_pkt_max);
        let entries = (n_tx + n_rx + 8).next_power_of_two() as u32;
        let mut builder = IoUring::builder();
        builder.setup_cqsize(entries * 2);
        let sqpoll = config.sqpoll.is_some();
        if let Some(idle) = config.sqpoll {
            builder.setup_sqpoll(idle);
        } else {
            builder
                .setup_single_issuer()
                .setup_defer_taskrun()
                .setup_r_disabled();
        }
        let ring = builder.build(entries).map_err(|e| ("io_uring_setup", e))?;
        ring.submitter()
            .register_files(&[fd])
            .map_err(|e| ("io_uring_register(files)", e))?;
        let mem = Mapping::new(lay.len).map_err(|e| ("mmap", e))?;
        let mut u = Uring {
            ring,
            mem,
            lay,
            sqpoll,
            enabled: sqpoll,
            batch: config.batch,
            tx_len: vec![0; n_tx].into_boxed_slice(),
            tx_namelen: vec![0; n_tx].into_boxed_slice(),
            tx_free: (0..n_tx as u16).rev().collect(),
            tx_nfree: n_tx,
            tx_queued: vec![0; n_tx].into_boxed_slice(),
            tx_nqueued: 0,
            tx_ts: vec![0; n_tx].into_boxed_slice(),
            tx_failed: vec![false; n_tx].into_boxed_slice(),
            tx_in_flight: 0,
            rx_mode: RxMode::Fixed,
            rx_buf_len: config.rx_buf_len,
            n_rx,
            ready: vec![
                Ready {
                    buf: 0,
                    off: 0,
                    len: 0,
                    src: None
                };
                n_rx
            ]
            .into_boxed_slice(),
            ready_head: 0,
            ready_len: 0,
            hist: LocalHist::new(),
            aimd: config.aimd.map(|a| Aimd::new(a, n_tx)),
            enter_errors: 0,
            last_enter_errno: 0,
        };
        let want_ring = config.uring_recv != UringRecv::Fixed;
        if want_ring {
            match u.register_buf_ring() {
                Ok(()) => {}
                Err(e) if config.uring_recv == UringRecv::Multishot => {
                    return Err(("io_uring_register(pbuf_ring)", e))
                }
                Err(_) => {}
            }
        }
        if u.rx_mode == RxMode::Fixed {
            for b in 0..n_rx {
                u.post_fixed(b as u16);
            }
        }
        Ok(u)
    }

    fn tx_buf(&self, s: u16) -> *mut u8 {
        self.mem
            .at(self.lay.tx_bufs + usize::from(s) * self.lay.tx_stride)
    }

    /// Queues an entry. The submission ring has room for every slot and
    /// buffer at once, each at most one entry, so it cannot be full.
    fn push(&mut self, e: &io_uring::squeue::Entry) {
        // SAFETY: every pointer in the entries built here names memory in
        // `mem` that stays valid and untouched by us until the entry's
        // completion is reaped (see the module documentation).
        let pushed = unsafe { self.ring.submission().push(e) };
        debug_assert!(pushed.is_ok(), "submission ring sized for every slot");
    }

    /// Transmit slots taken (queued or in flight).
    pub(super) fn tx_pending(&self) -> usize {
        self.tx_len.len() - self.tx_nfree
    }

    /// Sends submitted whose completion was not reaped.
    pub(super) fn in_flight(&self) -> usize {
        self.tx_in_flight
    }

    /// The AIMD limit now (the number of slots when there is none).
    pub(super) fn limit(&self) -> usize {
        self.aimd.as_ref().map_or(self.tx_len.len(), Aimd::limit)
    }

    /// Times the AIMD limit was halved.
    pub(super) fn limit_decreases(&self) -> u64 {
        self.aimd.as_ref().map_or(0, Aimd::decreases)
    }

    /// The send latency histogram (allocates the copy).
    pub(super) fn latency(&self) -> HistSnapshot {
        self.hist.snapshot()
    }

    /// How receives are posted, for the engine note.
    pub(super) fn multishot(&self) -> bool {
        matches!(self.rx_mode, RxMode::Multishot { .. })
    }

    /// A flush: submits the queued sends with one enter. With none queued
    /// but some in flight (the kernel waits for room in the socket buffer;
    /// their completions are deferred work that only an enter runs), one
    /// enter too; with neither, only reaps (no system call).
    pub(super) fn flush(&mut self, stats: &mut UdpStats) {
        if self.tx_nqueued > 0 || self.tx_in_flight > 0 {
            self.submit(stats, true);
        } else {
            self.reap(stats);
        }
    }

    fn can_take(&self) -> bool {
        self.tx_nfree > 0 && self.tx_pending() < self.limit()
    }

    /// Copies a packet into a free slot and queues its send; false when no
    /// slot is free (or the AIMD limit is reached) even after submitting
    /// and reaping.
    pub(super) fn take(
        &mut self,
        bytes: &[u8],
        dest: Option<&SocketAddr>,
        stats: &mut UdpStats,
    ) -> bool {
        if !self.can_take() {
            self.flush(stats);
            if !self.can_take() {
                return false;
            }
        }
        self.tx_nfree -= 1;
        let s = self.tx_free[self.tx_nfree];
        let i = usize::from(s);
        let name = self.tx_name(s);
        // SAFETY: slot `s` came off the free list, so the kernel holds no
        // operation on it; its buffer (`tx_stride >= tx_pkt_max >=
        // bytes.len()`, checked by the caller) and its name lie in `mem` at
        // aligned offsets, and `bytes` is the caller's memory, not ours.
        unsafe {
            ptr::copy_nonoverlapping(bytes.as_ptr(), self.tx_buf(s), bytes.len());
            self.tx_namelen[i] = match dest {
                Some(a) => encode_into(a, &mut *name),
                None => 0,
            };
        }
        self.tx_failed[i] = false;
        self.tx_len[i] = bytes.len() as u32;
        self.queue_send(s);
        if self.tx_nqueued >= self.batch {
            self.submit(stats, true);
        }
        true
    }

    /// Where slot `s`'s destination address lives.
    fn tx_name(&self, s: u16) -> *mut libc::sockaddr_storage {
        self.mem
            .at(self.lay.tx_names + usize::from(s) * size_of::<libc::sockaddr_storage>())
            .cast()
    }

    /// Queues the send of slot `s` (written before): a `Send` with the
    /// slot's address as its destination (`sendto`; none on a connected
    /// socket). It costs the kernel less than a `SendMsg`, which copies
    /// and checks a message header and an iovec first (measured: about 3%
    /// more packets a second over veth).
    fn queue_send(&mut self, s: u16) {
        let i = usize::from(s);
        let namelen = self.tx_namelen[i];
        let name: *const libc::sockaddr = if namelen == 0 {
            ptr::null()
        } else {
            self.tx_name(s).cast()
        };
        let e = opcode::Send::new(types::Fixed(0), self.tx_buf(s), self.tx_len[i])
            .dest_addr(name)
            .dest_addr_len(namelen)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(u64::from(s));
        self.push(&e);
        self.tx_queued[self.tx_nqueued] = s;
        self.tx_nqueued += 1;
    }

    /// Enables the ring on first use, from the calling thread.
    fn enable(&mut self) -> bool {
        if !self.enabled {
            match self.ring.submitter().register_enable_rings() {
                Ok(()) => self.enabled = true,
                Err(e) => {
                    self.enter_errors += 1;
                    self.last_enter_errno = e.raw_os_error().unwrap_or(0);
                    return false;
                }
            }
        }
        true
    }

    /// One `io_uring_enter`: submits what is queued and runs the deferred
    /// completion work; then reaps. If reaping queued sends again (an
    /// error that may have been about an earlier datagram, a full socket
    /// buffer), one more enter tries them at once. `tx` says which counter
    /// the calls go to.
    pub(super) fn submit(&mut self, stats: &mut UdpStats, tx: bool) {
        if !self.enable() {
            return;
        }
        for _ in 0..2 {
            self.enter_once(stats, tx);
            self.reap(stats);
            if self.tx_nqueued == 0 {
                break;
            }
        }
    }

    fn enter_once(&mut self, stats: &mut UdpStats, tx: bool) {
        if self.tx_nqueued > 0 {
            let now = mono_ns();
            for k in 0..self.tx_nqueued {
                self.tx_ts[usize::from(self.tx_queued[k])] = now;
            }
            self.tx_in_flight += self.tx_nqueued;
            self.tx_nqueued = 0;
        }
        if tx {
            stats.tx_send_calls += 1;
        } else {
            stats.rx_recv_calls += 1;
        }
        loop {
            let rc = if self.sqpoll {
                self.ring.submit()
            } else {
                let n = self.ring.submission().len() as u32;
                // SAFETY: a plain io_uring_enter with no argument struct.
                unsafe {
                    self.ring
                        .submitter()
                        .enter::<libc::sigset_t>(n, 0, ENTER_GETEVENTS, None)
                }
            };
            match rc {
                Ok(_) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EBUSY / EAGAIN: the entries stay queued for the next
                    // enter. Anything else is counted too; nothing is lost.
                    self.enter_errors += 1;
                    self.last_enter_errno = e.raw_os_error().unwrap_or(0);
                    return;
                }
            }
        }
    }

    /// Processes every completion in the ring.
    pub(super) fn reap(&mut self, stats: &mut UdpStats) {
        loop {
            let mut got = [(0u64, 0i32, 0u32); REAP_CHUNK];
            let mut n = 0;
            for cqe in self.ring.completion().take(REAP_CHUNK) {
                got[n] = (cqe.user_data(), cqe.result(), cqe.flags());
                n += 1;
            }
            if n == 0 {
                return;
            }
            let mut now = 0;
            for &(ud, res, flags) in &got[..n] {
                if ud & TAG_MULTISHOT != 0 {
                    self.on_multishot(res, flags, stats);
                } else if ud & TAG_FIXED != 0 {
                    self.on_fixed((ud & 0xffff) as u16, res, stats);
                } else {
                    if now == 0 {
                        now = mono_ns();
                    }
                    self.on_send(ud as u16, res, now, stats);
                }
            }
        }
    }

    fn on_send(&mut self, s: u16, res: i32, now: u64, stats: &mut UdpStats) {
        let i = usize::from(s);
        self.tx_in_flight -= 1;
        if res >= 0 {
            stats.tx_pkts += 1;
            stats.tx_bytes += u64::from(self.tx_len[i]);
            let ns = now.saturating_sub(self.tx_ts[i]);
            self.hist.record(ns);
            if let Some(a) = self.aimd.as_mut() {
                a.record(ns);
            }
            self.free_slot(s);
            return;
        }
        let err = -res;
        if err == libc::EAGAIN || err == libc::ENOBUFS {
            stats.tx_would_block += 1;
            self.queue_send(s);
            return;
        }
        stats.tx_errors.count(&io::Error::from_raw_os_error(err));
        if self.tx_failed[i] || err == libc::EMSGSIZE {
            stats.tx_dropped += 1;
            self.free_slot(s);
        } else {
            self.tx_failed[i] = true;
            self.queue_send(s);
        }
    }

    fn free_slot(&mut self, s: u16) {
        self.tx_free[self.tx_nfree] = s;
        self.tx_nfree += 1;
    }
}
