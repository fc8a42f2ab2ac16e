//! An AF_XDP socket made with xsk-rs: the interop peer and benchmark baseline.
//!
//! # Why it exists
//!
//! tilewire's own AF_XDP code (UMEM in a workspace, rings on `libc`) is
//! tested against something nobody on the team wrote: this peer, built
//! only from the public API of [xsk-rs] 0.11 and the libxdp it wraps. It
//! sends and receives raw Ethernet frames on one queue of one interface,
//! so a test can put it on one end of a veth pair and tilewire (or a
//! plain UDP socket) on the other. Its two loops, [`XskRsPeer::rx_loop`]
//! and [`XskRsPeer::tx_loop`], follow xsk-rs's `dev1_to_dev2` example and
//! are the baseline `tilewire bench` compares against.
//!
//! # Who owns which frame
//!
//! [`XskRsPeer::bind`] makes a UMEM of `frames` frames of 2048 bytes
//! (a power of two, at least 8) and splits it in two fixed halves:
//!
//! - **RX frames** live on the fill ring, on the RX ring, or in this
//!   peer's hands: for the moment between taking them off the RX ring and
//!   putting them back on the fill ring (their bytes are copied out or
//!   shown to a callback then, never kept), and on a *refill* list while
//!   the fill ring shows no room for them.
//! - **TX frames** are free (on this peer's list), on the TX ring, or in
//!   the kernel until the completion ring hands them back. A frame is
//!   written only while it is free.
//!
//! The RX and TX rings, the fill and completion rings all have
//! `frames / 2` entries: one per frame of the half that uses them. That
//! alone does not guarantee room: the kernel publishes how far it has
//! read the fill and TX rings lazily (when its cached view runs dry), so
//! user space may see a ring fuller than it is, and frames already on
//! the RX ring may still count as on the fill ring. So the peer asks the
//! ring how much room it shows and submits that much: RX frames wait on
//! the refill list (retried at every turn of every loop), and
//! [`XskRsPeer::send`] may queue fewer frames than are free.
//!
//! # The XDP program and where it may be bound
//!
//! The peer asks for no program of its own: xsk-rs leaves program
//! loading to libxdp, whose `xsk_socket__create` attaches its built-in
//! default program (`xsk_def_prog`, embedded in the library, so no file
//! is looked up) if the interface has none, and puts the socket into
//! that program's XSKMAP at the queue id. That program redirects every
//! packet arriving on a queue that has a socket to the socket, and passes
//! the rest to the stack. On deletion of the last socket libxdp detaches
//! it again.
//!
//! libxdp prefers to attach through its multi-program *dispatcher*, which
//! it pins under a bpffs (`/sys/fs/bpf`, or `$LIBXDP_BPFFS`). Where no
//! bpffs is mounted it prints `libxdp: No bpffs found at /sys/fs/bpf` and
//! `Falling back to loading single prog without dispatcher` on stderr and
//! attaches the program directly (the "legacy" single-program mode),
//! which is all this peer needs; its lock is then a directory under
//! `/run/xdp`. Nothing needs mounting or setting up. bpffs belongs to the
//! *mount* namespace, not the network namespace, so a fresh network
//! namespace entered with `setns` (as `tilewire_aio::netns` does) sees
//! whatever the host has. (On the 6.18 test VM, with a bpffs mounted in a
//! private mount namespace, libxdp's dispatcher check failed with EPERM
//! and it fell back the same way; `LIBXDP_SKIP_DISPATCHER=1` asks for the
//! direct attach outright.) libxdp also prints harmless notes on stderr:
//! libbpf's `skipping unrecognized data section`, and `No XDP dispatcher
//! found on ifindex N` when the socket is deleted.
#![allow(unsafe_code)] // talks to the kernel or to raw memory; each use says why it is sound

//! [`XskRsPeer::bind`] must run on a thread inside the network namespace
//! that owns the interface (the name is resolved there); the socket then
//! stays in that namespace and may be used from any thread.
//!
//! # Modes
//!
//! [`PeerMode::Skb`] attaches the program in generic (SKB) mode, which
//! every interface has; [`PeerMode::Drv`] in native mode, which needs
//! driver support (veth has it). Either way the socket binds without
//! asking for copy or zero-copy: the kernel uses zero-copy where the
//! driver supports it and copies otherwise (always, on veth). The socket
//! asks for `XDP_USE_NEED_WAKEUP`. In copy mode every transmit is a
//! `sendto(2)` that sends at most 32 frames, so the peer repeats the
//! wakeup while the TX ring holds frames (bounded).
//!
//! On a veth pair, both directions work in both modes with nothing on the
//! other end (no XDP program, no GRO): received frames come through the
//! program on this end (in DRV mode veth runs it in its own NAPI), and a
//! copy-mode socket transmits through the ordinary device path
//! (`sendto` -> direct transmit -> the peer's normal receive), not
//! through `ndo_xdp_xmit`, the path that needs a program or GRO on the
//! receiving veth. Frames a veth peer's stack sent carry
//! `CHECKSUM_PARTIAL` UDP checksums (veth offloads them): the field holds
//! only the pseudo header's sum, which is what this peer then sees.
//!
//! # Safety
//!
//! xsk-rs marks as `unsafe` every call that hands frames to the kernel or
//! takes them back, and every access to a frame's bytes: the caller must
//! use only descriptors of the same UMEM and must not touch a frame the
//! kernel owns. Each `unsafe` block below says why the ownership rules
//! above make that so.
//!
//! [xsk-rs]: https://docs.rs/xsk-rs/0.11.0

use std::error::Error as StdError;
use std::io::{self, Write};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, QueueSize, SocketConfig, UmemConfig, XdpFlags,
};
use xsk_rs::socket::XdpStatistics;
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

/// Size of one UMEM frame: the smallest the kernel allows, which leaves
/// [`XskRsPeer::mtu`] = 2048 - 256 (XDP headroom) bytes for a frame.
pub const FRAME_SIZE: u32 = 2048;
/// Most frames moved per ring operation in the loops (as in the example).
pub const BATCH: usize = 64;
/// Longest single `poll(2)` wait, in milliseconds: how late a loop may
/// notice `stop` or its deadline.
const POLL_MS: i32 = 10;
/// How long [`XskRsPeer::tx_loop`] waits for outstanding completions
/// after it stopped submitting.
const TX_DRAIN: Duration = Duration::from_millis(100);

/// How the XDP program is attached. See the [module documentation](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerMode {
    /// Generic XDP (`XDP_FLAGS_SKB_MODE`): works on any interface.
    Skb,
    /// Native XDP in the driver (`XDP_FLAGS_DRV_MODE`).
    Drv,
}

/// Why [`XskRsPeer::bind`] (or [`XskRsPeer::tx_loop`]) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// `frames` is not a power of two of at least 8.
    #[error("frames = {frames}: needs a power of two of at least 8")]
    BadFrameCount {
        /// The count given.
        frames: u32,
    },
    /// The interface name is empty, longer than 15 bytes or holds a NUL.
    #[error("bad interface name {ifname:?}")]
    BadIfname {
        /// The name given.
        ifname: String,
    },
    /// xsk-rs could not configure or make the UMEM (out of memory, or
    /// `RLIMIT_MEMLOCK` on old kernels).
    #[error("cannot make the UMEM: {}", chain(&**.source))]
    Umem {
        /// What xsk-rs reported.
        source: Box<dyn StdError + Send + Sync>,
    },
    /// libxdp could not load or attach the XDP program, or make or bind
    /// the socket: no such interface in this thread's network namespace,
    /// no native XDP in the driver ([`PeerMode::Drv`]), another program
    /// or socket already there, or no `CAP_NET_ADMIN` / `CAP_BPF`.
    #[error("cannot bind an AF_XDP socket to {ifname} queue {queue} ({mode:?}): {}", chain(.source))]
    Socket {
        /// The interface.
        ifname: String,
        /// The queue.
        queue: u32,
        /// The mode asked for.
        mode: PeerMode,
        /// What xsk-rs reported (its source is the OS error).
        source: xsk_rs::socket::SocketCreateError,
    },
    /// The socket came without fill and completion rings (only when a
    /// UMEM is shared, which this peer never does).
    #[error("the socket came without fill and completion rings")]
    NoFillRing,
    /// A frame to send is longer than a UMEM frame holds.
    #[error("a {len}-byte frame exceeds the {mtu} bytes of a UMEM frame")]
    FrameTooLong {
        /// The frame's length.
        len: usize,
        /// [`XskRsPeer::mtu`].
        mtu: usize,
    },
}

/// An error and its sources, `a: b: c`.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// What a loop did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCounts {
    /// Frames received ([`XskRsPeer::rx_loop`]) or completed by the
    /// kernel ([`XskRsPeer::tx_loop`]).
    pub packets: u64,
    /// Their bytes (Ethernet header to payload end).
    pub bytes: u64,
    /// Ring operations that moved at least one frame.
    pub batches: u64,
    /// Wakeup system calls made (`sendto` for TX, `poll` for the fill ring).
    pub wakeups: u64,
    /// Wall time of the loop.
    pub elapsed: Duration,
}

impl PeerCounts {
    /// Packets per second over [`elapsed`](Self::elapsed) (0 when no time
    /// passed).
    pub fn packets_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.packets as f64 / secs
        } else {
            0.0
        }
    }
}

/// One AF_XDP socket on one interface queue, with its own UMEM. See the
/// [module documentation](self).
#[derive(Debug)]
pub struct XskRsPeer {
    umem: Umem,
    fq: FillQueue,
    cq: CompQueue,
    tx_q: TxQueue,
    rx_q: RxQueue,
    /// TX frames this peer owns; any other TX frame is in flight.
    tx_free: Vec<FrameDesc>,
    /// TX frames on the TX ring or in the kernel.
    tx_in_flight: usize,
    /// RX frames taken off the RX ring that the fill ring had no room for
    /// yet; the peer owns them.
    refill: Vec<FrameDesc>,
    /// Scratch descriptors the RX and completion rings are read into.
    scratch: Vec<FrameDesc>,
    /// Entries of each ring: half the frames.
    ring_size: u32,
    /// TX frames the completion ring returned, over the peer's life.
    completions: u64,
    /// Wakeup system calls made, over the peer's life.
    wakeups: u64,
    mtu: usize,
    mode: PeerMode,
}

impl XskRsPeer {
    /// Makes a UMEM of `frames` frames and an AF_XDP socket bound to
    /// queue `queue` of `ifname` in `mode`, attaching libxdp's default XDP
    /// program if the interface has none, and puts all RX frames on the
    /// fill ring. Must be called on a thread inside the network namespace
    /// that owns `ifname`; see the [module documentation](self).
    ///
    /// # Errors
    /// [`PeerError::BadFrameCount`], [`PeerError::BadIfname`] for bad
    /// arguments; [`PeerError::Umem`], [`PeerError::Socket`],
    /// [`PeerError::NoFillRing`] as xsk-rs and libxdp report.
    pub fn bind(
        ifname: &str,
        queue: u32,
        mode: PeerMode,
        frames: u32,
    ) -> Result<XskRsPeer, PeerError> {
        if frames < 8 || !frames.is_power_of_two() {
            return Err(PeerError::BadFrameCount { frames });
        }
        let bad_name = || PeerError::BadIfname {
            ifname: ifname.to_owned(),
        };
        if ifname.is_empty() || ifname.len() > 15 {
            return Err(bad_name());
        }
        let interface: Interface = ifname.parse().map_err(|_| bad_name())?;
        let umem_err = |e: Box<dyn StdError + Send + Sync>| PeerError::Umem { source: e };
        let ring_size = frames / 2;
        let ring = QueueSize::new(ring_size).map_err(|e| umem_err(e.into()))?;
        let umem_config = UmemConfig::builder()
            .frame_size(FrameSize::new(FRAME_SIZE).map_err(|e| umem_err(e.into()))?)
            .fill_queue_size(ring)
            .comp_queue_size(ring)
            .build()
            .map_err(|e| umem_err(e.into()))?;
        let mtu = umem_config.mtu() as usize;
        let count = NonZeroU32::new(frames).ok_or(PeerError::BadFrameCount { frames })?;
        let (umem, mut descs) =
            Umem::new(umem_config, count, false).map_err(|e| umem_err(e.into()))?;

        let xdp_flags = match mode {
            PeerMode::Skb => XdpFlags::XDP_FLAGS_SKB_MODE,
            PeerMode::Drv => XdpFlags::XDP_FLAGS_DRV_MODE,
        };
        let socket_config = SocketConfig::builder()
            .rx_queue_size(ring)
            .tx_queue_size(ring)
            .xdp_flags(xdp_flags)
            .bind_flags(BindFlags::XDP_USE_NEED_WAKEUP)
            .build();
        // SAFETY: the contract of `Socket::new` concerns a UMEM shared
        // with a socket already bound to this interface and queue; this
        // UMEM was made just above and serves this socket only.
        let created = unsafe { Socket::new(socket_config, &umem, &interface, queue) };
        let (tx_q, rx_q, rings) = created.map_err(|source| PeerError::Socket {
            ifname: ifname.to_owned(),
            queue,
            mode,
            source,
        })?;
        let (mut fq, cq) = rings.ok_or(PeerError::NoFillRing)?;

        let tx_free = descs.split_off(ring_size as usize);
        let rx_frames = descs;
        // SAFETY: the descriptors are this UMEM's own (from `Umem::new`),
        // and no ring holds any of them yet: the kernel becomes the only
        // owner of the RX half here, and the peer keeps no reference to
        // their bytes. The fill ring is empty and has `ring_size` slots,
        // so all of them fit.
        let filled = unsafe { fq.produce(&rx_frames) };
        debug_assert_eq!(
            filled,
            rx_frames.len(),
            "the fill ring holds every RX frame"
        );

        Ok(XskRsPeer {
            umem,
            fq,
            cq,
            tx_q,
            rx_q,
            tx_free,
            tx_in_flight: 0,
            refill: Vec::with_capacity(ring_size as usize),
            scratch: vec![FrameDesc::default(); ring_size as usize],
            ring_size,
            completions: 0,
            wakeups: 0,
            mtu,
            mode,
        })
    }

    /// The longest frame one UMEM frame holds: [`FRAME_SIZE`] - 256.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The mode the program was attached in.
    pub fn mode(&self) -> PeerMode {
        self.mode
    }

    /// TX frames submitted and not yet handed back by the completion ring.
    pub fn tx_in_flight(&self) -> usize {
        self.tx_in_flight
    }

    /// The kernel's counters for this socket (`XDP_STATISTICS`): RX drops
    /// for a full RX ring or an empty fill ring, invalid descriptors.
    ///
    /// # Errors
    /// The `getsockopt(2)` error.
    pub fn xdp_statistics(&self) -> io::Result<XdpStatistics> {
        self.rx_q.fd().xdp_statistics()
    }

    /// Moves completed TX frames back to the free list; returns how many.
    fn reap(&mut self) -> usize {
        // SAFETY: `consume` overwrites the scratch descriptors with
        // addresses the kernel hands back on this UMEM's completion ring:
        // frames of this UMEM, which the kernel is done with.
        let n = unsafe { self.cq.consume(&mut self.scratch) };
        self.tx_free.extend_from_slice(&self.scratch[..n]);
        self.tx_in_flight -= n;
        self.completions += n as u64;
        n
    }

    /// Frames still on the TX ring, not yet taken by the kernel.
    fn tx_ring_pending(&mut self) -> bool {
        self.tx_q.nb_free_exact() < self.ring_size
    }

    /// Wakes the kernel to transmit while the TX ring holds frames (each
    /// copy-mode `sendto` sends at most 32), a bounded number of times.
    /// Returns the wakeups made (also added to `self.wakeups`).
    fn kick(&mut self) -> u64 {
        let mut wakeups = 0;
        let bound = u64::from(self.ring_size / 32 + 2);
        while wakeups < bound && self.tx_q.needs_wakeup() && self.tx_ring_pending() {
            // The errors xsk-rs passes on are not the transient ones
            // (ENOBUFS, EAGAIN, EBUSY, ENETDOWN, which it swallows); the
            // frames stay on the ring either way and the next call tries
            // again.
            let _ = self.tx_q.wakeup();
            wakeups += 1;
        }
        self.wakeups += wakeups;
        wakeups
    }

    /// Copies `frames` (raw Ethernet frames) into free TX frames in order,
    /// submits them, wakes the kernel as needed and reaps completions.
    /// Returns how many were queued: a prefix of `frames`, cut where free
    /// frames or the room the TX ring shows ran out, or at the first frame
    /// longer than [`mtu`](Self::mtu).
    /// Queued frames are transmitted without further calls (in copy mode,
    /// within this call as far as the kernel takes them; call
    /// [`flush`](Self::flush) to wait for every completion).
    pub fn send(&mut self, frames: &[&[u8]]) -> usize {
        self.reap();
        let fit = frames
            .iter()
            .take(self.tx_free.len())
            .take_while(|f| f.len() <= self.mtu)
            .count();
        // Room as the ring shows it (see "Who owns which frame").
        let n = fit.min(self.tx_q.nb_free(fit as u32) as usize);
        if n > 0 {
            let first = self.tx_free.len() - n;
            for (desc, frame) in self.tx_free[first..].iter_mut().zip(frames) {
                // SAFETY: `desc` is on the free list: a frame of this
                // UMEM on no ring, which the kernel neither reads nor
                // writes until it is submitted below.
                let mut data = unsafe { self.umem.data_mut(desc) };
                let mut cursor = data.cursor();
                cursor.set_pos(0);
                let written = cursor.write_all(frame);
                debug_assert!(written.is_ok(), "frame checked against the MTU");
            }
            // SAFETY: the frames are this UMEM's, written above and owned
            // by this peer alone; once submitted, they leave the free list
            // and are not touched until the completion ring returns them.
            // The ring showed room for all `n` just above and only this
            // peer produces on it, so they all fit (`produce` submits all
            // or none).
            let queued = unsafe { self.tx_q.produce(&self.tx_free[first..]) };
            if queued == n {
                self.tx_free.truncate(first);
                self.tx_in_flight += n;
            } else {
                debug_assert_eq!(queued, 0);
                return 0;
            }
        }
        self.kick();
        self.reap();
        n
    }

    /// Waits until every submitted frame completed, waking the kernel and
    /// reaping meanwhile, for at most `timeout`. True when none is left in
    /// flight.
    pub fn flush(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.reap();
            if self.tx_in_flight == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            if self.kick() == 0 {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }

    /// Puts the first `n` scratch descriptors (just taken off the RX ring)
    /// on the refill list, then as much of the list on the fill ring as it
    /// shows room for, waking the kernel if it asks. With `n == 0`, only
    /// retries the list.
    fn refill(&mut self, n: usize) {
        self.refill.extend_from_slice(&self.scratch[..n]);
        if self.refill.is_empty() {
            return;
        }
        let pending = self.refill.len();
        let room = (self.fq.nb_free(pending as u32) as usize).min(pending);
        if room > 0 {
            let first = pending - room;
            // SAFETY: the refill list holds RX frames of this UMEM that
            // the RX ring handed over; their bytes were copied or shown to
            // a callback and no reference to them is left. The fill ring
            // showed room for `room` of them just above and only this peer
            // produces on it, so all fit (`produce` submits all or none).
            let filled = unsafe { self.fq.produce(&self.refill[first..]) };
            if filled == room {
                self.refill.truncate(first);
            }
        }
        if self.fq.needs_wakeup() {
            self.wake_fill();
        }
    }

    /// Wakes the kernel to take frames off the fill ring: a `poll(2)`
    /// that does not wait (what xsk-rs's `FillQueue::wakeup` is).
    fn wake_fill(&mut self) {
        // An error only means this wakeup did not happen; the next one
        // tries again and the caller's deadline bounds the wait.
        let _ = self.fq.wakeup(self.rx_q.fd_mut(), 0);
        self.wakeups += 1;
    }

    /// Takes up to `want` frames off the RX ring into the scratch
    /// descriptors; their count.
    fn take_rx(&mut self, want: usize) -> usize {
        let want = want.min(self.scratch.len());
        // SAFETY: `consume` overwrites the scratch descriptors with the
        // kernel's RX descriptors of this UMEM; the frames they name are
        // this peer's until `refill` returns them.
        unsafe { self.rx_q.consume(&mut self.scratch[..want]) }
    }

    /// Receives frames until `max` arrived or `timeout` passed, whichever
    /// is first, copying each out and returning its frame to the fill ring
    /// at once. Waits in `poll(2)` while the RX ring is empty. Returns the
    /// frames in arrival order (fewer than `max` on timeout, possibly none).
    pub fn recv(&mut self, max: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < max {
            let n = self.take_rx(max - out.len());
            if n == 0 {
                self.refill(0);
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let ms = left.as_millis().clamp(1, POLL_MS as u128) as i32;
                // An error (EINTR aside, which xsk-rs maps to "nothing")
                // ends the wait early; the deadline still bounds the loop.
                let _ = self.rx_q.poll(ms);
                continue;
            }
            for desc in &self.scratch[..n] {
                // SAFETY: the frame was just taken off the RX ring: the
                // kernel is done writing it and it goes back to the fill
                // ring only in `refill` below, after this copy.
                let data = unsafe { self.umem.data(desc) };
                out.push(data.contents().to_vec());
            }
            self.refill(n);
        }
        out
    }

    /// The receive loop of the benchmark, after xsk-rs's `dev1_to_dev2`:
    /// take a batch off the RX ring, show each frame to `check`, put the
    /// batch back on the fill ring (waking the kernel if it asks); poll
    /// while the ring is empty. Unlike the example, which polls before
    /// every batch, it polls only when the ring is empty, so the baseline
    /// pays no system call per batch under load.
    ///
    /// Runs until `stop` is set or `deadline` passes (noticed within
    /// 10 ms even when no packet comes).
    pub fn rx_loop(
        &mut self,
        stop: &AtomicBool,
        deadline: Instant,
        mut check: impl FnMut(&[u8]),
    ) -> PeerCounts {
        let start = Instant::now();
        let wakeups = self.wakeups;
        let mut counts = PeerCounts::default();
        // SYNC: Relaxed: `stop` carries no data, only "finish soon"; the
        // results travel back through the return value (a join).
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let n = self.take_rx(BATCH);
            if n == 0 {
                self.refill(0);
                // Waits for the RX ring; an error ends this wait early.
                let _ = self.rx_q.poll(POLL_MS);
                continue;
            }
            for desc in &self.scratch[..n] {
                // SAFETY: as in `recv`: taken off the RX ring, returned to
                // the fill ring only after `check` returned (and `check`
                // cannot keep the slice: its lifetime ends with the call).
                let data = unsafe { self.umem.data(desc) };
                check(data.contents());
                counts.bytes += data.contents().len() as u64;
            }
            counts.packets += n as u64;
            counts.batches += 1;
            self.refill(n);
        }
        counts.wakeups = self.wakeups - wakeups;
        counts.elapsed = start.elapsed();
        counts
    }

    /// The transmit loop of the benchmark, after xsk-rs's `dev1_to_dev2`:
    /// reap completions, copy `template` into up to [`BATCH`] free frames
    /// (a copy per packet, as the example writes each packet), submit
    /// them, wake the kernel. Runs until `stop` is set or `deadline`
    /// passes, then waits up to 100 ms for the frames still in flight.
    /// Counts packets as the completion ring returns them.
    ///
    /// # Errors
    /// [`PeerError::FrameTooLong`] if `template` exceeds [`mtu`](Self::mtu)
    /// (nothing is sent).
    pub fn tx_loop(
        &mut self,
        template: &[u8],
        stop: &AtomicBool,
        deadline: Instant,
    ) -> Result<PeerCounts, PeerError> {
        if template.len() > self.mtu {
            return Err(PeerError::FrameTooLong {
                len: template.len(),
                mtu: self.mtu,
            });
        }
        let start = Instant::now();
        let (completions, wakeups) = (self.completions, self.wakeups);
        let mut counts = PeerCounts::default();
        let batch = [template; BATCH];
        // SYNC: Relaxed: as in `rx_loop`.
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            self.reap();
            if self.tx_free.is_empty() {
                self.kick();
                continue;
            }
            // Copies into free frames, submits, kicks and reaps again.
            let n = BATCH.min(self.tx_free.len());
            if self.send(&batch[..n]) > 0 {
                counts.batches += 1;
            }
        }
        self.flush(TX_DRAIN);
        counts.packets = self.completions - completions;
        counts.bytes = counts.packets * template.len() as u64;
        counts.wakeups = self.wakeups - wakeups;
        counts.elapsed = start.elapsed();
        Ok(counts)
    }
}
