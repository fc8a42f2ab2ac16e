//! The memory the io_uring engine shares with the kernel: one anonymous
//! mapping ([`Mapping`]) and where each part lives in it ([`Layout`]).
#![allow(unsafe_code)] // talks to the kernel or to raw memory; each use says why it is sound

use core::mem::size_of;
use core::ptr;
use std::io;

use io_uring::types;

/// Bytes of `io_uring_recvmsg_out` at the start of a multishot buffer.
pub(super) const OUT_LEN: usize = 16;
/// Bytes reserved for the source address (a `sockaddr_in6`; a
/// `sockaddr_in` is shorter).
pub(super) const NAME_LEN: usize = size_of::<libc::sockaddr_in6>();

pub(super) const fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// The mapping the kernel shares with us; unmapped on drop.
pub(super) struct Mapping {
    base: *mut u8,
    len: usize,
}

impl Mapping {
    pub(super) fn new(len: usize) -> io::Result<Mapping> {
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
    pub(super) fn at(&self, off: usize) -> *mut u8 {
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
pub(super) struct Layout {
    pub ring: usize,
    pub rx_bufs: usize,
    pub rx_stride: usize,
    pub rx_hdrs: usize,
    pub rx_iovs: usize,
    pub rx_names: usize,
    pub tx_bufs: usize,
    pub tx_stride: usize,
    pub tx_names: usize,
    pub len: usize,
}

impl Layout {
    pub(super) fn new(n_rx: usize, rx_buf_len: usize, n_tx: usize, tx_pkt_max: usize) -> Layout {
        let page = 4096;
        let ring = 0;
        let rx_bufs = round_up(n_rx * size_of::<types::BufRingEntry>(), page);
        let rx_stride = round_up(OUT_LEN + NAME_LEN + rx_buf_len, 64);
        let rx_hdrs = rx_bufs + n_rx * rx_stride;
        let rx_iovs = round_up(rx_hdrs + n_rx * size_of::<libc::msghdr>(), 64);
        let rx_names = round_up(rx_iovs + n_rx * size_of::<libc::iovec>(), 64);
        let tx_bufs = round_up(rx_names + n_rx * size_of::<libc::sockaddr_storage>(), page);
        let tx_stride = round_up(tx_pkt_max.max(1), 64);
        let tx_names = round_up(tx_bufs + n_tx * tx_stride, 64);
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
            tx_names,
            len,
        }
    }
}

// SAFETY: the raw pointer names memory this struct owns; moving the
// mapping moves its ownership.
unsafe impl Send for Mapping {}
