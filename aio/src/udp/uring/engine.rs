//! [`Uring`]: the io_uring engine, its set-up, its transmit side and its
//! completion loop; the receive side is [`Rx`] (see the
//! [module documentation](super) for the design).
#![allow(unsafe_code)] // talks to the kernel or to raw memory; each use says why it is sound

use core::mem::size_of;
use core::ptr;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use io_uring::{opcode, types, IoUring};
use tilewire_shmem::clock::mono_ns;
use tilewire_shmem::hist::{HistSnapshot, LocalHist};

use super::mem::{Layout, Mapping};
use super::ring::{Ring, TAG_FIXED, TAG_MULTISHOT};
use super::rx::Rx;
use crate::udp::aimd::Aimd;
use crate::udp::config::{UdpConfig, UringRecv};
use crate::udp::stats::UdpStats;
use crate::udp::sys::encode_into;

/// `IORING_ENTER_GETEVENTS`: also run deferred completion work.
const ENTER_GETEVENTS: u32 = 1;
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
    ring: Ring,
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
    rx: Rx,
    hist: LocalHist,
    aimd: Option<Aimd>,
    /// `enter` calls that failed (other than `EINTR`), by the last errno.
    pub enter_errors: u64,
    pub last_enter_errno: i32,
}

impl core::fmt::Debug for Uring {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Uring")
            .field("rx", &self.rx)
            .field("tx_slots", &self.tx_len.len())
            .field("in_flight", &self.tx_in_flight)
            .finish()
    }
}
impl Uring {
    /// Makes the ring for `fd` (registered as fixed file 0), maps the
    /// slots and buffers, and registers the buffer ring (or falls back to
    /// fixed receives). The ring starts disabled: the first thread that
    /// sends or polls enables it and becomes its one submitter.
    pub(crate) fn new(fd: RawFd, config: &UdpConfig) -> Result<Uring, (&'static str, io::Error)> {
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
            ring: Ring {
                uring: ring,
                mem,
                lay,
            },
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
            rx: Rx::new(n_rx, config.rx_buf_len),
            hist: LocalHist::new(),
            aimd: config.aimd.map(|a| Aimd::new(a, n_tx)),
            enter_errors: 0,
            last_enter_errno: 0,
        };
        let want_ring = config.uring_recv != UringRecv::Fixed;
        if want_ring {
            match u.rx.register_buf_ring(&mut u.ring) {
                Ok(()) => {}
                Err(e) if config.uring_recv == UringRecv::Multishot => {
                    return Err(("io_uring_register(pbuf_ring)", e))
                }
                Err(_) => {}
            }
        }
        if !u.rx.multishot() {
            for b in 0..n_rx {
                u.rx.post_fixed(&mut u.ring, b as u16);
            }
        }
        Ok(u)
    }

    fn tx_buf(&self, s: u16) -> *mut u8 {
        self.ring
            .mem
            .at(self.ring.lay.tx_bufs + usize::from(s) * self.ring.lay.tx_stride)
    }

    /// Transmit slots taken (queued or in flight).
    pub(crate) fn tx_pending(&self) -> usize {
        self.tx_len.len() - self.tx_nfree
    }

    /// Sends submitted whose completion was not reaped.
    pub(crate) fn in_flight(&self) -> usize {
        self.tx_in_flight
    }

    /// The AIMD limit now (the number of slots when there is none).
    pub(crate) fn limit(&self) -> usize {
        self.aimd.as_ref().map_or(self.tx_len.len(), Aimd::limit)
    }

    /// Times the AIMD limit was halved.
    pub(crate) fn limit_decreases(&self) -> u64 {
        self.aimd.as_ref().map_or(0, Aimd::decreases)
    }

    /// The send latency histogram (allocates the copy).
    pub(crate) fn latency(&self) -> HistSnapshot {
        self.hist.snapshot()
    }

    /// How receives are posted, for the engine note.
    pub(crate) fn multishot(&self) -> bool {
        self.rx.multishot()
    }

    /// Packets received and not yet taken.
    pub(crate) fn ready_len(&self) -> usize {
        self.rx.ready_len()
    }

    /// The `j`-th packet not yet taken: payload and source.
    pub(crate) fn ready(&self, j: usize) -> (&[u8], Option<SocketAddr>) {
        self.rx.ready(&self.ring, j)
    }

    /// Gives the first `k` ready packets' buffers back to the kernel.
    pub(crate) fn consume(&mut self, k: usize) {
        self.rx.consume(&mut self.ring, k);
    }

    /// Receives: reaps what completed; if nothing is ready, arms the
    /// multishot receive when it is not, and enters the kernel once to run
    /// the completion work, then reaps again.
    pub(crate) fn recv(&mut self, stats: &mut UdpStats) {
        self.reap(stats);
        if self.rx.ready_len() > 0 {
            return;
        }
        self.rx.arm(&mut self.ring, stats);
        self.submit(stats, false);
    }

    /// A flush: submits the queued sends with one enter. With none queued
    /// but some in flight (the kernel waits for room in the socket buffer;
    /// their completions are deferred work that only an enter runs), one
    /// enter too; with neither, only reaps (no system call).
    pub(crate) fn flush(&mut self, stats: &mut UdpStats) {
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
    pub(crate) fn take(
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
        self.ring
            .mem
            .at(self.ring.lay.tx_names + usize::from(s) * size_of::<libc::sockaddr_storage>())
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
        self.ring.push(&e);
        self.tx_queued[self.tx_nqueued] = s;
        self.tx_nqueued += 1;
    }

    /// Enables the ring on first use, from the calling thread.
    fn enable(&mut self) -> bool {
        if !self.enabled {
            match self.ring.uring.submitter().register_enable_rings() {
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
    pub(crate) fn submit(&mut self, stats: &mut UdpStats, tx: bool) {
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
                self.ring.uring.submit()
            } else {
                let n = self.ring.uring.submission().len() as u32;
                // SAFETY: a plain io_uring_enter with no argument struct.
                unsafe {
                    self.ring
                        .uring
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
    pub(crate) fn reap(&mut self, stats: &mut UdpStats) {
        loop {
            let mut got = [(0u64, 0i32, 0u32); REAP_CHUNK];
            let mut n = 0;
            for cqe in self.ring.uring.completion().take(REAP_CHUNK) {
                got[n] = (cqe.user_data(), cqe.result(), cqe.flags());
                n += 1;
            }
            if n == 0 {
                return;
            }
            let mut now = 0;
            for &(ud, res, flags) in &got[..n] {
                if ud & TAG_MULTISHOT != 0 {
                    self.rx.on_multishot(&mut self.ring, res, flags, stats);
                } else if ud & TAG_FIXED != 0 {
                    self.rx
                        .on_fixed(&mut self.ring, (ud & 0xffff) as u16, res, stats);
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
