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
//! `take` copies a packet into a free slot, writes its `msghdr` (address
//! per packet) and queues a `SendMsg` on the registered socket (a fixed
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

use io_uring::{cqueue, opcode, types, IoUring};
use tilewire_shmem::clock::mono_ns;
use tilewire_shmem::hist::{HistSnapshot, LocalHist};

use super::aimd::Aimd;
use super::config::{UdpConfig, UringRecv};
use super::stats::UdpStats;
use super::sys::{decode, encode_into};

/// `IORING_ENTER_GETEVENTS`: also run deferred completion work.
const ENTER_GETEVENTS: u32 = 1;
/// user_data of the multishot receive.
const TAG_MULTISHOT: u64 = 1 << 62;
/// user_data of a fixed receive: this bit and the buffer id.
const TAG_FIXED: u64 = 1 << 61;
/// user_data of a cancel (its completion is ignored).
const TAG_CANCEL: u64 = 1 << 60;
/// The provided-buffer group id.
const BGID: u16 = 0;
/// Bytes of `io_uring_recvmsg_out` at the start of a multishot buffer.
const OUT_LEN: usize = 16;
/// Bytes reserved for the source address (a `sockaddr_in6`; a
/// `sockaddr_in` is shorter).
const NAME_LEN: usize = size_of::<libc::sockaddr_in6>();
/// Completions copied out of the ring per pass.
const REAP_CHUNK: usize = 32;

const fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// The mapping the kernel shares with us; unmapped on drop.
struct Mapping {
    base: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Mapping> {
        // SAFETY: an anonymous private mapping of `len` bytes, no address
        // hint; the result is checked.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            base: p.cast(),
            len,
        })
    }

    /// A pointer `off` bytes in.
    ///
    /// # Panics
    /// If `off` is past the end.
    fn at(&self, off: usize) -> *mut u8 {
        assert!(off <= self.len);
        self.base.wrapping_add(off)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; the ring that
        // shared it was dropped before (see the module documentation).
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// Where each part lives in the mapping.
#[derive(Debug, Clone, Copy)]
struct Layout {
    ring: usize,
    rx_bufs: usize,
    rx_stride: usize,
    rx_hdrs: usize,
    rx_iovs: usize,
    rx_names: usize,
    tx_bufs: usize,
    tx_stride: usize,
    tx_hdrs: usize,
    tx_iovs: usize,
    tx_names: usize,
    len: usize,
}

impl Layout {
    fn new(n_rx: usize, rx_buf_len: usize, n_tx: usize, tx_pkt_max: usize) -> Layout {
        let page = 4096;
        let ring = 0;
        let rx_bufs = round_up(n_rx * size_of::<types::BufRingEntry>(), page);
        let rx_stride = round_up(OUT_LEN + NAME_LEN + rx_buf_len, 64);
        let rx_hdrs = rx_bufs + n_rx * rx_stride;
        let rx_iovs = round_up(rx_hdrs + n_rx * size_of::<libc::msghdr>(), 64);
        let rx_names = round_up(rx_iovs + n_rx * size_of::<libc::iovec>(), 64);
        let tx_bufs = round_up(rx_names + n_rx * size_of::<libc::sockaddr_storage>(), page);
        let tx_stride = round_up(tx_pkt_max.max(1), 64);
        let tx_hdrs = tx_bufs + n_tx * tx_stride;
        let tx_iovs = round_up(tx_hdrs + n_tx * size_of::<libc::msghdr>(), 64);
        let tx_names = round_up(tx_iovs + n_tx * size_of::<libc::iovec>(), 64);
        let len = round_up(tx_names + n_tx * size_of::<libc::sockaddr_storage>(), page);
        Layout {
            ring,
            rx_bufs,
            rx_stride,
            rx_hdrs,
            rx_iovs,
            rx_names,
            tx_bufs,
            tx_stride,
            tx_hdrs,
            tx_iovs,
            tx_names,
            len,
        }
    }
}

/// How receives are posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RxMode {
    /// One multishot RecvMsg on the provided-buffer ring; `armed` while
    /// the kernel has it.
    Multishot { armed: bool, tail: u16 },
    /// One RecvMsg per buffer.
    Fixed,
}

/// A received packet ready for the downstream: its buffer, where its
/// payload starts, its length, and its source.
#[derive(Debug, Clone, Copy)]
struct Ready {
    buf: u16,
    off: u16,
    len: u32,
    src: Option<SocketAddr>,
}

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
    /// Operations submitted whose completion was not reaped, and entries
    /// queued in the submission ring.
    tx_len: Box<[u32]>,
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
    /// Fixed receives posted and not completed.
    rx_posted: usize,
    hist: LocalHist,
    aimd: Option<Aimd>,
    /// `enter` calls that failed (other than `EINTR`), by the last errno.
    pub enter_errors: u64,
    pub last_enter_errno: i32,
}

// SAFETY: the raw pointer of `mem` names memory this struct owns; moving
// the engine moves its ownership. The ring itself is Send.
unsafe impl Send for Mapping {}

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
    pub fn new(fd: RawFd, config: &UdpConfig) -> Result<Uring, (&'static str, io::Error)> {
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
            rx_posted: 0,
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

    /// Registers the provided-buffer ring and fills it with every buffer.
    fn register_buf_ring(&mut self) -> io::Result<()> {
        let n = u16::try_from(self.n_rx).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let addr = self.mem.at(self.lay.ring) as u64;
        // SAFETY: `n` entries of the ring live at `addr`, page aligned, in
        // `mem`, which outlives the ring (dropped after it).
        unsafe {
            self.ring
                .submitter()
                .register_buf_ring_with_flags(addr, n, BGID, 0)?;
        }
        for b in 0..self.n_rx {
            self.ring_put(b as u16, b as u16);
        }
        self.ring_publish(n);
        self.rx_mode = RxMode::Multishot {
            armed: false,
            tail: n,
        };
        Ok(())
    }

    fn rx_buf(&self, b: u16) -> *mut u8 {
        self.mem
            .at(self.lay.rx_bufs + usize::from(b) * self.lay.rx_stride)
    }

    fn tx_buf(&self, s: u16) -> *mut u8 {
        self.mem
            .at(self.lay.tx_bufs + usize::from(s) * self.lay.tx_stride)
    }

    /// Writes buffer `b` into ring entry `pos` (not yet visible).
    fn ring_put(&mut self, pos: u16, b: u16) {
        let mask = self.n_rx - 1;
        let entry = self
            .mem
            .at(self.lay.ring + (usize::from(pos) & mask) * size_of::<types::BufRingEntry>())
            .cast::<types::BufRingEntry>();
        let len = (OUT_LEN + NAME_LEN + self.rx_buf_len) as u32;
        let addr = self.rx_buf(b) as u64;
        // SAFETY: entry `pos & mask` is one of the ring's entries in
        // `mem`, aligned (16-byte entries from a page boundary); the kernel
        // reads an entry only once the tail moved past it, which happens
        // after this write (`ring_publish`, a release store). Writing the
        // fields one by one leaves entry 0's `resv`, the tail, alone.
        unsafe {
            (*entry).set_addr(addr);
            (*entry).set_len(len);
            (*entry).set_bid(b);
        }
    }

    /// Makes the entries before `tail` visible to the kernel.
    fn ring_publish(&mut self, tail: u16) {
        let base = self.mem.at(self.lay.ring).cast::<types::BufRingEntry>();
        // SAFETY: the tail is the u16 at offset 14 of entry 0, which the
        // kernel reads with acquire semantics; a release store publishes
        // the entries written before it.
        unsafe {
            let t = types::BufRingEntry::tail(base).cast_mut();
            (*t.cast::<core::sync::atomic::AtomicU16>())
                .store(tail, core::sync::atomic::Ordering::Release);
        }
    }

    /// Posts a one-shot receive into buffer `b` (fixed mode).
    fn post_fixed(&mut self, b: u16) {
        let i = usize::from(b);
        let hdr = self
            .mem
            .at(self.lay.rx_hdrs + i * size_of::<libc::msghdr>())
            .cast::<libc::msghdr>();
        let iov = self
            .mem
            .at(self.lay.rx_iovs + i * size_of::<libc::iovec>())
            .cast::<libc::iovec>();
        let name = self
            .mem
            .at(self.lay.rx_names + i * size_of::<libc::sockaddr_storage>());
        // SAFETY: buffer `b` and its header, iovec and name are ours (its
        // last receive completed and was taken, or it was never posted);
        // all lie in `mem` at aligned offsets. The kernel writes them from
        // the submission until the completion, and we touch them again
        // only after reaping it.
        unsafe {
            iov.write(libc::iovec {
                iov_base: self.rx_buf(b).cast(),
                iov_len: self.rx_buf_len,
            });
            let mut h: libc::msghdr = core::mem::zeroed();
            h.msg_name = name.cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = iov;
            h.msg_iovlen = 1;
            hdr.write(h);
        }
        let e = opcode::RecvMsg::new(types::Fixed(0), hdr)
            .build()
            .user_data(TAG_FIXED | u64::from(b));
        self.push(&e);
        self.rx_posted += 1;
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
    pub fn tx_pending(&self) -> usize {
        self.tx_len.len() - self.tx_nfree
    }

    /// Sends submitted whose completion was not reaped.
    pub fn in_flight(&self) -> usize {
        self.tx_in_flight
    }

    /// The AIMD limit now (the number of slots when there is none).
    pub fn limit(&self) -> usize {
        self.aimd.as_ref().map_or(self.tx_len.len(), Aimd::limit)
    }

    /// Times the AIMD limit was halved.
    pub fn limit_decreases(&self) -> u64 {
        self.aimd.as_ref().map_or(0, Aimd::decreases)
    }

    /// The send latency histogram (allocates the copy).
    pub fn latency(&self) -> HistSnapshot {
        self.hist.snapshot()
    }

    /// How receives are posted, for the engine note.
    pub fn multishot(&self) -> bool {
        matches!(self.rx_mode, RxMode::Multishot { .. })
    }

    /// A flush: submits the queued sends with one enter. With none queued
    /// but some in flight (the kernel waits for room in the socket buffer;
    /// their completions are deferred work that only an enter runs), one
    /// enter too; with neither, only reaps (no system call).
    pub fn flush(&mut self, stats: &mut UdpStats) {
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
    pub fn take(&mut self, bytes: &[u8], dest: Option<&SocketAddr>, stats: &mut UdpStats) -> bool {
        if !self.can_take() {
            self.flush(stats);
            if !self.can_take() {
                return false;
            }
        }
        self.tx_nfree -= 1;
        let s = self.tx_free[self.tx_nfree];
        let i = usize::from(s);
        let hdr = self
            .mem
            .at(self.lay.tx_hdrs + i * size_of::<libc::msghdr>())
            .cast::<libc::msghdr>();
        let iov = self
            .mem
            .at(self.lay.tx_iovs + i * size_of::<libc::iovec>())
            .cast::<libc::iovec>();
        let name = self
            .mem
            .at(self.lay.tx_names + i * size_of::<libc::sockaddr_storage>())
            .cast::<libc::sockaddr_storage>();
        // SAFETY: slot `s` came off the free list, so the kernel holds no
        // operation on it; its buffer (`tx_stride >= tx_pkt_max >=
        // bytes.len()`, checked by the caller), header, iovec and name lie
        // in `mem` at aligned offsets, and `bytes` is the caller's memory,
        // not ours.
        unsafe {
            ptr::copy_nonoverlapping(bytes.as_ptr(), self.tx_buf(s), bytes.len());
            let namelen = match dest {
                Some(a) => encode_into(a, &mut *name),
                None => 0,
            };
            iov.write(libc::iovec {
                iov_base: self.tx_buf(s).cast(),
                iov_len: bytes.len(),
            });
            let mut h: libc::msghdr = core::mem::zeroed();
            if namelen > 0 {
                h.msg_name = name.cast();
                h.msg_namelen = namelen;
            }
            h.msg_iov = iov;
            h.msg_iovlen = 1;
            hdr.write(h);
        }
        self.tx_len[i] = bytes.len() as u32;
        self.tx_failed[i] = false;
        self.queue_send(s);
        if self.tx_nqueued >= self.batch {
            self.submit(stats, true);
        }
        true
    }

    /// Queues the send of slot `s` (written before).
    fn queue_send(&mut self, s: u16) {
        let hdr = self
            .mem
            .at(self.lay.tx_hdrs + usize::from(s) * size_of::<libc::msghdr>())
            .cast::<libc::msghdr>();
        let e = opcode::SendMsg::new(types::Fixed(0), hdr)
            .flags(libc::MSG_NOSIGNAL as u32)
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
    pub fn submit(&mut self, stats: &mut UdpStats, tx: bool) {
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
    pub fn reap(&mut self, stats: &mut UdpStats) {
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
                } else if ud & TAG_CANCEL == 0 {
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

    fn on_multishot(&mut self, res: i32, flags: u32, stats: &mut UdpStats) {
        if !cqueue::more(flags) {
            if let RxMode::Multishot { armed, .. } = &mut self.rx_mode {
                *armed = false;
            }
        }
        let Some(b) = cqueue::buffer_select(flags) else {
            if res == -libc::ENOBUFS {
                stats.rx_no_buffers += 1;
            } else if res < 0 && res != -libc::ECANCELED {
                stats.rx_errors += 1;
            }
            return;
        };
        if res < 0 {
            stats.rx_errors += 1;
            self.give_back(b);
            return;
        }
        let base = self.rx_buf(b);
        // SAFETY: the completion hands buffer `b` to us: the kernel wrote
        // its io_uring_recvmsg_out header (four u32) and the name area,
        // both inside the buffer, and will not touch it until it is back
        // on the ring.
        let (namelen, payloadlen, mflags, name) = unsafe {
            let out = base.cast::<[u32; 4]>().read_unaligned();
            let mut name: libc::sockaddr_storage = core::mem::zeroed();
            let nl = (out[0] as usize).min(NAME_LEN);
            ptr::copy_nonoverlapping(base.add(OUT_LEN), ptr::addr_of_mut!(name).cast::<u8>(), nl);
            (nl, out[2], out[3], name)
        };
        if mflags & libc::MSG_TRUNC as u32 != 0 || payloadlen as usize > self.rx_buf_len {
            stats.rx_truncated += 1;
            self.give_back(b);
            return;
        }
        let src = decode(&name, namelen as libc::socklen_t);
        self.push_ready(
            Ready {
                buf: b,
                off: (OUT_LEN + NAME_LEN) as u16,
                len: payloadlen,
                src,
            },
            stats,
        );
    }

    fn on_fixed(&mut self, b: u16, res: i32, stats: &mut UdpStats) {
        self.rx_posted -= 1;
        if res < 0 {
            if res != -libc::ECANCELED {
                stats.rx_errors += 1;
                self.post_fixed(b);
            }
            return;
        }
        let i = usize::from(b);
        let hdr = self
            .mem
            .at(self.lay.rx_hdrs + i * size_of::<libc::msghdr>())
            .cast::<libc::msghdr>();
        let name = self
            .mem
            .at(self.lay.rx_names + i * size_of::<libc::sockaddr_storage>())
            .cast::<libc::sockaddr_storage>();
        // SAFETY: the completion of buffer `b`'s receive was reaped, so
        // the kernel is done writing its header and name.
        let (h, src) = unsafe {
            let h = hdr.read();
            (h, decode(&*name, h.msg_namelen))
        };
        if h.msg_flags & libc::MSG_TRUNC != 0 {
            stats.rx_truncated += 1;
            self.post_fixed(b);
            return;
        }
        self.push_ready(
            Ready {
                buf: b,
                off: 0,
                len: res as u32,
                src,
            },
            stats,
        );
    }

    fn push_ready(&mut self, r: Ready, stats: &mut UdpStats) {
        stats.rx_pkts += 1;
        stats.rx_bytes += u64::from(r.len);
        // Each buffer is in the ready ring at most once, and the ring has
        // a place for every buffer.
        let pos = (self.ready_head + self.ready_len) % self.n_rx;
        self.ready[pos] = r;
        self.ready_len += 1;
    }

    /// Packets received and not yet taken.
    pub fn ready_len(&self) -> usize {
        self.ready_len
    }

    /// The `j`-th packet not yet taken: payload and source.
    pub fn ready(&self, j: usize) -> (&[u8], Option<SocketAddr>) {
        assert!(j < self.ready_len);
        let r = self.ready[(self.ready_head + j) % self.n_rx];
        let p = self.rx_buf(r.buf).wrapping_add(usize::from(r.off));
        // SAFETY: buffer `r.buf` is ours until `consume` gives it back (the
        // kernel handed it over with the completion), and `len` bytes from
        // `off` lie inside it (`off + len <= OUT_LEN + NAME_LEN +
        // rx_buf_len <= rx_stride`). The slice borrows `self`, so it cannot
        // outlive that.
        let bytes = unsafe { core::slice::from_raw_parts(p, r.len as usize) };
        (bytes, r.src)
    }

    /// Gives the first `k` ready packets' buffers back to the kernel.
    pub fn consume(&mut self, k: usize) {
        assert!(k <= self.ready_len);
        for _ in 0..k {
            let b = self.ready[self.ready_head].buf;
            self.ready_head = (self.ready_head + 1) % self.n_rx;
            self.ready_len -= 1;
            self.give_back(b);
        }
        if self.ready_len == 0 {
            self.ready_head = 0;
        }
    }

    fn give_back(&mut self, b: u16) {
        match self.rx_mode {
            RxMode::Multishot { armed, tail } => {
                self.ring_put(tail, b);
                let tail = tail.wrapping_add(1);
                self.ring_publish(tail);
                self.rx_mode = RxMode::Multishot { armed, tail };
            }
            RxMode::Fixed => self.post_fixed(b),
        }
    }

    /// Receives: reaps what completed; if nothing is ready, arms the
    /// multishot receive when it is not, and enters the kernel once to run
    /// the completion work, then reaps again.
    pub fn recv(&mut self, stats: &mut UdpStats) {
        self.reap(stats);
        if self.ready_len > 0 {
            return;
        }
        if let RxMode::Multishot { armed: false, tail } = self.rx_mode {
            let hdr = self.mem.at(self.lay.rx_hdrs).cast::<libc::msghdr>();
            // SAFETY: header 0 is not used by multishot receives otherwise;
            // the kernel reads its name and control lengths at submission.
            unsafe {
                let mut h: libc::msghdr = core::mem::zeroed();
                h.msg_namelen = NAME_LEN as libc::socklen_t;
                hdr.write(h);
            }
            let e = opcode::RecvMsgMulti::new(types::Fixed(0), hdr, BGID)
                .build()
                .user_data(TAG_MULTISHOT);
            self.push(&e);
            self.rx_mode = RxMode::Multishot { armed: true, tail };
            stats.rx_arms += 1;
        }
        self.submit(stats, false);
    }
}
