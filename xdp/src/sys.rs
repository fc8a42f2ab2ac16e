//! The system calls of an AF_XDP socket, each in a small safe wrapper.
//!
//! This module and [`crate::ring`] are the only places of the socket side
//! that use `unsafe`: every `setsockopt`, `getsockopt`, `mmap` and `bind`
//! is here, with the reason each is sound next to it. Errors come back as
//! [`std::io::Error`] with the OS error code; [`crate::socket`] turns them
//! into errors that name the fix.
#![allow(unsafe_code)] // talks to the kernel or to raw memory; each use says why it is sound

use std::ffi::CString;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

/// `SO_BUSY_POLL` (linux/asm-generic/socket.h).
const SO_BUSY_POLL: libc::c_int = 46;
/// `SO_PREFER_BUSY_POLL`.
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
/// `SO_BUSY_POLL_BUDGET`.
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// The last OS error, as an [`io::Error`].
fn last() -> io::Error {
    io::Error::last_os_error()
}

/// A new AF_XDP socket (close-on-exec).
pub(crate) fn xsk_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; a non-negative result is a fresh
    // descriptor that nothing else owns.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(last());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by no one
    // else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(fd, level, name, value)` for a plain-old-data `value`.
pub(crate) fn set_opt<T: Copy>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points at `size_of::<T>()` readable bytes for the
    // duration of the call; the kernel copies them and keeps no pointer.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(last());
    }
    Ok(())
}

/// `getsockopt(fd, SOL_XDP, name)` into a zeroed `T`; also returns how many
/// bytes the kernel wrote (older kernels write shorter versions of some
/// structs).
///
/// # Safety
/// `T` must be a plain C struct for which every bit pattern (all zeroes
/// included) is valid: the kernel writes an arbitrary prefix of it.
unsafe fn get_xdp_opt<T: Copy>(fd: &OwnedFd, name: libc::c_int) -> io::Result<(T, usize)> {
    let mut value = MaybeUninit::<T>::zeroed();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` has room for `len` bytes and `len` is a valid
    // in/out length; the kernel writes at most `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            name,
            value.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(last());
    }
    // SAFETY: zeroed, then partly overwritten by the kernel; the caller
    // promised every bit pattern of T is valid.
    Ok((unsafe { value.assume_init() }, len as usize))
}

/// Where each ring's producer, consumer, flags and descriptors sit inside
/// its mapping. Kernels before 5.4 have no flags word: they are refused
/// (need_wakeup needs it, and tilewire needs need_wakeup's kernel).
pub(crate) fn mmap_offsets(fd: &OwnedFd) -> io::Result<libc::xdp_mmap_offsets> {
    // SAFETY: xdp_mmap_offsets is a struct of u64s; any bits are valid.
    let (off, len) = unsafe { get_xdp_opt::<libc::xdp_mmap_offsets>(fd, libc::XDP_MMAP_OFFSETS)? };
    if len < size_of::<libc::xdp_mmap_offsets>() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this kernel's AF_XDP rings have no flags word (Linux 5.4 or newer is needed)",
        ));
    }
    Ok(off)
}

/// The kernel's per-socket drop counters.
pub(crate) fn statistics(fd: &OwnedFd) -> io::Result<libc::xdp_statistics> {
    // SAFETY: xdp_statistics is a struct of u64s; a shorter (older) answer
    // leaves the rest zero.
    Ok(unsafe { get_xdp_opt::<libc::xdp_statistics>(fd, libc::XDP_STATISTICS)? }.0)
}

/// True if the bound socket runs in zero-copy mode.
pub(crate) fn is_zero_copy(fd: &OwnedFd) -> io::Result<bool> {
    // SAFETY: xdp_options is one u32; any bits are valid.
    let (opts, _) = unsafe { get_xdp_opt::<libc::xdp_options>(fd, libc::XDP_OPTIONS)? };
    Ok(opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0)
}

/// Registers `len` bytes at `addr` as the socket's UMEM, in frames of
/// `frame_size` bytes with no headroom; `unaligned` sets
/// `XDP_UMEM_UNALIGNED_CHUNK_FLAG` (descriptors at any address).
///
/// # Safety
/// `[addr, addr + len)` must stay mapped and writable for as long as the
/// socket (and any socket sharing its UMEM) exists: the kernel pins those
/// pages, writes received packets into the frames put on the fill ring
/// (which no one else may use meanwhile) and reads what the tx ring names.
pub(crate) unsafe fn umem_reg(
    fd: &OwnedFd,
    addr: *mut u8,
    len: usize,
    frame_size: u32,
    unaligned: bool,
) -> io::Result<()> {
    let reg = libc::xdp_umem_reg {
        addr: addr as u64,
        len: len as u64,
        chunk_size: frame_size,
        headroom: 0,
        flags: if unaligned {
            libc::XDP_UMEM_UNALIGNED_CHUNK_FLAG
        } else {
            0
        },
        tx_metadata_len: 0,
    };
    set_opt(fd, libc::SOL_XDP, libc::XDP_UMEM_REG, &reg)
}

/// Sets a ring's size (`XDP_RX_RING`, `XDP_TX_RING`, `XDP_UMEM_FILL_RING`,
/// `XDP_UMEM_COMPLETION_RING`).
pub(crate) fn ring_size(fd: &OwnedFd, which: libc::c_int, entries: u32) -> io::Result<()> {
    set_opt(fd, libc::SOL_XDP, which, &entries)
}

/// A shared mapping of one ring (or anything else), unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory; the types that hand out pointers
// into it (the rings) say who may touch what.
unsafe impl Send for Mmap {}
// SAFETY: as above; Mmap itself has no interior state.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// Maps `len` bytes of the socket at page offset `pgoff` (one of the
    /// XDP_PGOFF_* constants), read-write and shared with the kernel.
    pub(crate) fn ring(fd: &OwnedFd, pgoff: u64, len: usize) -> io::Result<Mmap> {
        // SAFETY: a fresh mapping at an address the kernel picks; nothing
        // of ours is overwritten. MAP_POPULATE pre-faults the ring so the
        // first packets do not take page faults.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(last());
        }
        Ok(Mmap {
            ptr: NonNull::new(p.cast()).expect("mmap does not return null on success"),
            len,
        })
    }

    /// The first byte.
    pub(crate) fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `ring` mapped; the rings that point
        // into it hold the Mmap and are dropped with or before it.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Binds the socket to `queue` of interface `ifindex` with `flags`
/// (XDP_COPY / XDP_ZEROCOPY / XDP_USE_NEED_WAKEUP).
pub(crate) fn bind(fd: &OwnedFd, ifindex: u32, queue: u32, flags: u16) -> io::Result<()> {
    let addr = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: flags,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: queue,
        sxdp_shared_umem_fd: 0,
    };
    // SAFETY: `addr` is a valid sockaddr_xdp for the call's duration.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_xdp).cast(),
            size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(last());
    }
    Ok(())
}

/// Tells the kernel there is work on the TX ring (a zero-length
/// non-blocking `sendto`). In copy mode this call is where the kernel
/// transmits, a bounded batch per call.
pub(crate) fn kick_tx(fd: RawFd) -> io::Result<()> {
    // SAFETY: a null buffer of length 0 and no address: the kernel reads
    // nothing from us.
    let r = unsafe {
        libc::sendto(
            fd,
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    if r < 0 {
        return Err(last());
    }
    Ok(())
}

/// Tells the kernel the fill ring has frames again (a zero-length
/// non-blocking `recvfrom`), as need_wakeup asks for.
pub(crate) fn kick_rx(fd: RawFd) -> io::Result<()> {
    // SAFETY: a null buffer of length 0 and no address: the kernel writes
    // nothing to us.
    let r = unsafe {
        libc::recvfrom(
            fd,
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if r < 0 {
        return Err(last());
    }
    Ok(())
}

/// Turns on busy polling for the socket: `SO_PREFER_BUSY_POLL`,
/// `SO_BUSY_POLL` (microseconds) and `SO_BUSY_POLL_BUDGET` (packets).
pub(crate) fn busy_poll(fd: &OwnedFd, usecs: u32, budget: u32) -> io::Result<()> {
    let one: libc::c_int = 1;
    set_opt(fd, libc::SOL_SOCKET, SO_PREFER_BUSY_POLL, &one)?;
    set_opt(fd, libc::SOL_SOCKET, SO_BUSY_POLL, &(usecs as libc::c_int))?;
    set_opt(
        fd,
        libc::SOL_SOCKET,
        SO_BUSY_POLL_BUDGET,
        &(budget as libc::c_int),
    )
}

/// The index of interface `name` in the calling thread's network
/// namespace, or `None` if there is none of that name.
pub(crate) fn if_index(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// `struct ethtool_channels` (linux/ethtool.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// An `ifreq` naming interface `name`, and a datagram socket to ask about
/// it with `ioctl`; `None` for a name that does not fit.
fn ifreq_for(name: &str) -> Option<(OwnedFd, libc::ifreq)> {
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor owned by no one else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; zeroed is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= ifr.ifr_name.len() {
        return None;
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Some((sock, ifr))
}

/// How many receive queues interface `name` has (rx + combined channels),
/// or `None` if its driver does not say (then bind finds out).
pub(crate) fn rx_queues(name: &str) -> Option<u32> {
    let (sock, mut ifr) = ifreq_for(name)?;
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    ifr.ifr_ifru.ifru_data = (&mut ch as *mut EthtoolChannels).cast();
    // SAFETY: SIOCETHTOOL reads `ifr` and writes through its data pointer
    // into `ch`, both alive for the call.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) };
    if r < 0 {
        return None;
    }
    Some(ch.rx_count + ch.combined_count)
}

/// The MTU of interface `name`, or `None` if it cannot be read.
pub(crate) fn if_mtu(name: &str) -> Option<u32> {
    let (sock, mut ifr) = ifreq_for(name)?;
    // SAFETY: SIOCGIFMTU reads the name and writes ifru_mtu inside `ifr`.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU as _, &mut ifr) };
    if r < 0 {
        return None;
    }
    // SAFETY: the ioctl succeeded, so the union holds the MTU.
    let mtu = unsafe { ifr.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).ok()
}
