//! Making an AF_XDP socket: the configuration, the bind sequence and the
//! errors that name their fix.
//!
//! # The sequence
//!
//! 1. `socket(AF_XDP)`;
//! 2. register the UMEM (`XDP_UMEM_REG`) over the caller's memory, in
//!    [`FRAME_SIZE`]-byte frames;
//! 3. size the four rings, read where the kernel put their words
//!    (`XDP_MMAP_OFFSETS`) and map them;
//! 4. optionally turn on busy polling;
//! 5. bind to the interface's queue, zero-copy or copy, with need_wakeup;
//!    a queue still held by a socket that is being torn down answers EBUSY
//!    for a moment, so bind retries that for up to [`BIND_RETRY`];
//! 6. hand out the frames: the caller's link lines, the fill ring, the
//!    transmit free list.
//!
//! Steering packets to the socket is the XDP program's job
//! ([`crate::bpf`]): put [`Xsk::raw_fd`] in its XSKMAP at the queue.
#![allow(unsafe_code)] // talks to the kernel or to raw memory; each use says why it is sound

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ring::{kernel_cons, kernel_prod, map_len, Desc};
use crate::sys::{self, Mmap};
use crate::umem::{Umem, FRAME_SIZE};
use crate::xsk::{Rings, TxTuning, Xsk, ETH_HLEN};

/// How long bind retries a queue that answers EBUSY.
pub const BIND_RETRY: Duration = Duration::from_secs(2);

/// Largest ring tilewire asks for.
pub const RING_MAX: u32 = 1 << 16;

/// Copy or zero-copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Zero-copy if the driver has it, else copy.
    #[default]
    Auto,
    /// The kernel copies packets between the NIC's buffers and the UMEM
    /// (every driver; the only mode for SKB-mode XDP).
    Copy,
    /// The NIC reads and writes the UMEM itself (drivers with AF_XDP
    /// zero-copy support, DRV-mode XDP).
    ZeroCopy,
}

/// Busy polling: the socket's `recvfrom`/`sendto` run the driver's NAPI
/// loop instead of waiting for an interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPoll {
    /// `SO_BUSY_POLL`: microseconds to busy-poll per call.
    pub usecs: u32,
    /// `SO_BUSY_POLL_BUDGET`: packets per busy-poll round.
    pub budget: u32,
}

/// What [`Xsk::bind`] makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XskConfig {
    /// The interface, in the calling thread's network namespace.
    pub ifname: String,
    /// Its receive queue.
    pub queue: u32,
    /// Copy or zero-copy.
    pub bind: BindMode,
    /// Ask the kernel to say when it needs a wakeup (`XDP_USE_NEED_WAKEUP`),
    /// so the data path makes a system call only then.
    pub need_wakeup: bool,
    /// Entries of the rx ring (a power of two).
    pub rx_size: u32,
    /// Entries of the fill ring, and frames put on it at bind (a power of
    /// two).
    pub fill_size: u32,
    /// Entries of the tx ring, of the completion ring, and transmit frames
    /// (a power of two).
    pub tx_size: u32,
    /// Frames kept back for the lines of a link that receives zero-copy
    /// (its depth); 0 when packets are copied out.
    pub lines: u32,
    /// Busy polling, off by default.
    pub busy_poll: Option<BusyPoll>,
    /// Queued transmit descriptors that trigger a publish and wakeup
    /// without waiting for a flush.
    pub tx_high_water: u32,
    /// Longest a queued transmit descriptor waits for a flush before
    /// [`Xsk::service`] publishes it.
    pub tx_flush_ns: u64,
}

impl Default for XskConfig {
    fn default() -> Self {
        XskConfig {
            ifname: String::new(),
            queue: 0,
            bind: BindMode::Auto,
            need_wakeup: true,
            rx_size: 2048,
            fill_size: 2048,
            tx_size: 2048,
            lines: 0,
            busy_poll: None,
            tx_high_water: 64,
            tx_flush_ns: 20_000,
        }
    }
}

impl XskConfig {
    /// Frames the UMEM needs: lines + fill + transmit.
    pub fn frames_needed(&self) -> u64 {
        u64::from(self.lines) + u64::from(self.fill_size) + u64::from(self.tx_size)
    }
}

/// The index of interface `ifname` in the calling thread's network
/// namespace, or `None` if there is no such interface. What an XDP program
/// is attached to ([`crate::bpf::XdpProgram::attach`]).
pub fn if_index(ifname: &str) -> Option<u32> {
    sys::if_index(ifname)
}

/// Why [`Xsk::bind`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XskError {
    /// The process lacks the privileges.
    #[error("{op}: not permitted: AF_XDP needs CAP_NET_RAW and CAP_NET_ADMIN (run as root)")]
    NotPermitted {
        /// The step that was refused.
        op: &'static str,
    },
    /// No interface of that name in this network namespace.
    #[error("no interface {ifname:?} in this network namespace (see `ip link`)")]
    NoSuchInterface {
        /// The name.
        ifname: String,
    },
    /// The interface has no such receive queue.
    #[error(
        "interface {ifname:?} has no rx queue {queue}{}: pick a queue below that \
         (see `ethtool -l {ifname}`)",
        match .queues { Some(n) => format!(" (it has {n})"), None => String::new() }
    )]
    NoSuchQueue {
        /// The interface.
        ifname: String,
        /// The queue asked for.
        queue: u32,
        /// How many it has, if the driver said.
        queues: Option<u32>,
    },
    /// The interface is down.
    #[error("interface {ifname:?} is down: `ip link set {ifname} up`")]
    InterfaceDown {
        /// The interface.
        ifname: String,
    },
    /// A ring size is not a power of two in 1..=[`RING_MAX`].
    #[error("{ring} ring size {size} must be a power of two from 1 to {RING_MAX}")]
    RingSize {
        /// Which ring.
        ring: &'static str,
        /// The size asked for.
        size: u32,
    },
    /// The UMEM does not suit.
    #[error(transparent)]
    Umem(#[from] crate::umem::UmemError),
    /// The kernel would not pin the UMEM.
    #[error(
        "registering the UMEM ({len} bytes): {source}; ENOMEM: raise the locked-memory \
         limit (`ulimit -l`) or use a smaller UMEM; EFAULT: the kernel cannot pin this \
         memory, put the workspace on tmpfs (/dev/shm) or hugetlbfs, not a disk file system"
    )]
    UmemReg {
        /// Its length.
        len: usize,
        /// The kernel's answer.
        source: io::Error,
    },
    /// Zero-copy was asked for and the driver has none.
    #[error(
        "interface {ifname:?} has no AF_XDP zero-copy in this mode: use BindMode::Copy \
         (or Auto)"
    )]
    ZeroCopyUnsupported {
        /// The interface.
        ifname: String,
    },
    /// Another AF_XDP socket holds the queue.
    #[error(
        "queue {queue} of {ifname:?} is taken by another AF_XDP socket (still busy after \
         {BIND_RETRY:?} of retries)"
    )]
    Busy {
        /// The interface.
        ifname: String,
        /// The queue.
        queue: u32,
    },
    /// Any other failing step.
    #[error("{op}: {source}")]
    Os {
        /// The step.
        op: &'static str,
        /// The kernel's answer.
        source: io::Error,
    },
}

fn os(op: &'static str) -> impl FnOnce(io::Error) -> XskError {
    move |source| match source.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => XskError::NotPermitted { op },
        _ => XskError::Os { op, source },
    }
}

fn check_ring(ring: &'static str, size: u32) -> Result<(), XskError> {
    if size.is_power_of_two() && size <= RING_MAX {
        Ok(())
    } else {
        Err(XskError::RingSize { ring, size })
    }
}

impl<'a> Xsk<'a> {
    /// Makes an AF_XDP socket on `cfg.ifname` queue `cfg.queue` over
    /// `umem`, following the [module docs](self). Returns the socket and
    /// the `cfg.lines` frames kept back for the caller's link lines (line
    /// `i` owns the `i`-th).
    ///
    /// Call it in the network namespace that owns the interface; the
    /// socket may then be used from any thread.
    ///
    /// # Errors
    /// Each [`XskError`] names its fix: missing privileges, an unknown
    /// interface or queue, an interface that is down, ring sizes that are
    /// not powers of two, a UMEM too small for `cfg.frames_needed()`,
    /// zero-copy on a driver without it, a queue another socket holds.
    pub fn bind(umem: Umem<'a>, cfg: &XskConfig) -> Result<(Xsk<'a>, Vec<u64>), XskError> {
        check_ring("rx", cfg.rx_size)?;
        check_ring("fill", cfg.fill_size)?;
        check_ring("tx", cfg.tx_size)?;
        let need = cfg.frames_needed();
        if need > u64::from(umem.frames()) {
            return Err(crate::umem::UmemError::TooSmall {
                len: umem.len(),
                have: umem.frames(),
                need: u32::try_from(need).unwrap_or(u32::MAX),
            }
            .into());
        }
        let ifindex = sys::if_index(&cfg.ifname).ok_or_else(|| XskError::NoSuchInterface {
            ifname: cfg.ifname.clone(),
        })?;
        let queues = sys::rx_queues(&cfg.ifname);
        if queues.is_some_and(|n| cfg.queue >= n) {
            return Err(XskError::NoSuchQueue {
                ifname: cfg.ifname.clone(),
                queue: cfg.queue,
                queues,
            });
        }
        let fd = sys::xsk_socket().map_err(os("socket(AF_XDP)"))?;
        // SAFETY: the UMEM borrows its memory for 'a, and the socket lives
        // inside the Xsk<'a> made below, which also holds the Umem: the
        // memory outlives the registration.
        unsafe {
            sys::umem_reg(
                &fd,
                umem.region().as_ptr(),
                umem.len(),
                FRAME_SIZE,
                umem.is_unaligned(),
            )
        }
        .map_err(|source| match source.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => XskError::NotPermitted { op: "XDP_UMEM_REG" },
            _ => XskError::UmemReg {
                len: umem.len(),
                source,
            },
        })?;
        let sizes = [
            (libc::XDP_RX_RING, cfg.rx_size, "XDP_RX_RING"),
            (libc::XDP_TX_RING, cfg.tx_size, "XDP_TX_RING"),
            (
                libc::XDP_UMEM_FILL_RING,
                cfg.fill_size,
                "XDP_UMEM_FILL_RING",
            ),
            (
                libc::XDP_UMEM_COMPLETION_RING,
                cfg.tx_size,
                "XDP_UMEM_COMPLETION_RING",
            ),
        ];
        for (which, size, op) in sizes {
            sys::ring_size(&fd, which, size).map_err(os(op))?;
        }
        let off = sys::mmap_offsets(&fd).map_err(os("XDP_MMAP_OFFSETS"))?;
        let map = |pgoff: u64, len: usize| {
            Mmap::ring(&fd, pgoff, len)
                .map(Arc::new)
                .map_err(os("mmap ring"))
        };
        let rx_map = map(
            libc::XDP_PGOFF_RX_RING as u64,
            map_len::<Desc>(&off.rx, cfg.rx_size),
        )?;
        let tx_map = map(
            libc::XDP_PGOFF_TX_RING as u64,
            map_len::<Desc>(&off.tx, cfg.tx_size),
        )?;
        let fill_map = map(
            libc::XDP_UMEM_PGOFF_FILL_RING,
            map_len::<u64>(&off.fr, cfg.fill_size),
        )?;
        let comp_map = map(
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
            map_len::<u64>(&off.cr, cfg.tx_size),
        )?;
        // SAFETY: each mapping is the socket's ring at the offsets the
        // kernel reported, sized for the entries set above.
        let rings = unsafe {
            Rings {
                rx: kernel_cons(rx_map, &off.rx, cfg.rx_size),
                tx: kernel_prod(tx_map, &off.tx, cfg.tx_size),
                fill: kernel_prod(fill_map, &off.fr, cfg.fill_size),
                comp: kernel_cons(comp_map, &off.cr, cfg.tx_size),
            }
        };
        if let Some(bp) = cfg.busy_poll {
            sys::busy_poll(&fd, bp.usecs, bp.budget).map_err(os("busy poll socket options"))?;
        }
        bind_retrying(&fd, ifindex, cfg, queues)?;
        let zero_copy = sys::is_zero_copy(&fd).map_err(os("XDP_OPTIONS"))?;
        let mtu_frame =
            sys::if_mtu(&cfg.ifname).map_or(FRAME_SIZE as usize, |m| m as usize + ETH_HLEN);
        let tune = TxTuning {
            max_len: mtu_frame.min(FRAME_SIZE as usize),
            high_water: cfg.tx_high_water.clamp(1, cfg.tx_size),
            flush_ns: cfg.tx_flush_ns,
            need_wakeup: cfg.need_wakeup,
            busy_poll: cfg.busy_poll.is_some(),
        };
        Ok(Xsk::assemble(
            umem,
            Some(fd),
            rings,
            (cfg.lines, cfg.fill_size, cfg.tx_size),
            tune,
            zero_copy,
        ))
    }
}

/// Binds, trying zero-copy first under [`BindMode::Auto`], and retrying
/// EBUSY for up to [`BIND_RETRY`].
fn bind_retrying(
    fd: &std::os::fd::OwnedFd,
    ifindex: u32,
    cfg: &XskConfig,
    queues: Option<u32>,
) -> Result<(), XskError> {
    let wake = if cfg.need_wakeup {
        libc::XDP_USE_NEED_WAKEUP
    } else {
        0
    };
    let mut mode = cfg.bind;
    let deadline = Instant::now() + BIND_RETRY;
    loop {
        let flags = wake
            | match mode {
                BindMode::Copy => libc::XDP_COPY,
                BindMode::ZeroCopy | BindMode::Auto => libc::XDP_ZEROCOPY,
            };
        let Err(e) = sys::bind(fd, ifindex, cfg.queue, flags) else {
            return Ok(());
        };
        match e.raw_os_error() {
            Some(libc::EOPNOTSUPP | libc::EPROTONOSUPPORT) if mode == BindMode::Auto => {
                mode = BindMode::Copy;
            }
            Some(libc::EOPNOTSUPP | libc::EPROTONOSUPPORT) if mode == BindMode::ZeroCopy => {
                return Err(XskError::ZeroCopyUnsupported {
                    ifname: cfg.ifname.clone(),
                })
            }
            Some(libc::EBUSY) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Some(libc::EBUSY) => {
                return Err(XskError::Busy {
                    ifname: cfg.ifname.clone(),
                    queue: cfg.queue,
                })
            }
            Some(libc::EINVAL) if queues.is_none() => {
                return Err(XskError::NoSuchQueue {
                    ifname: cfg.ifname.clone(),
                    queue: cfg.queue,
                    queues,
                })
            }
            Some(libc::ENETDOWN) => {
                return Err(XskError::InterfaceDown {
                    ifname: cfg.ifname.clone(),
                })
            }
            _ => return Err(os("bind")(e)),
        }
    }
}
