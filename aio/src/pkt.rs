//! Packet descriptors: [`PktInfo`] for Rust callers, [`PktInfoC`] for the
//! C-shaped edge.
//!
//! A descriptor names bytes in the caller's address space; it never owns
//! them. A batch is a slice of descriptors, and a send borrows both the
//! slice and every buffer only for the duration of the call (see
//! [`crate::Aio`]). Because it is a plain borrow, the same buffer may appear
//! twice in a batch and two descriptors may name overlapping parts of one
//! buffer: nothing is ever written through a descriptor.
//!
//! [`PktInfo`] carries a [`PktMeta`] next to the bytes: the socket address
//! (destination on transmit, source on receive) for socket backends, and a
//! `user` word whose meaning each backend defines. Backends that do not use
//! the metadata ignore it.
//!
//! [`PktInfoC`] is the fd_aio `pkt_info` layout: a pointer and a 16-bit
//! size in 16 bytes, aligned to 16. It carries no metadata; anything that
//! crosses the C-shaped edge is bytes only.
#![allow(unsafe_code)] // talks to the kernel or to raw memory; each use says why it is sound

use core::fmt;
use std::net::SocketAddr;

/// Largest packet, in bytes, that a length-bounded backend accepts.
///
/// A backend that bounds packet length answers a longer packet with
/// [`crate::SendErrorKind::Inval`] at that packet's index. 4096 covers every
/// UDP payload of a Solana-class validator (transactions up to 1232 bytes,
/// shreds of 1228 bytes) with room for headers, and is one UMEM frame.
pub const BUF_MAX: usize = 4096;

/// Per-packet metadata that travels next to the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PktMeta {
    /// For socket backends: the destination on transmit, the source on
    /// receive. `None` where the backend has no use for an address (or on
    /// transmit, to use the backend's default peer).
    pub addr: Option<SocketAddr>,
    /// An opaque word whose meaning the backend defines (a link's `sig`, a
    /// flow id, a timestamp). Backends that do not define it ignore it and
    /// deliver zero.
    pub user: u64,
}

/// A packet: a borrowed byte slice and its metadata.
///
/// A `PktInfo` is a local descriptor; it is only valid in the address space
/// (and for the lifetime) of the buffer it borrows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PktInfo<'a> {
    /// The packet's bytes.
    pub buf: &'a [u8],
    /// Address and backend-defined word.
    pub meta: PktMeta,
}

impl<'a> PktInfo<'a> {
    /// A packet with default metadata (no address, `user` 0).
    pub const fn new(buf: &'a [u8]) -> PktInfo<'a> {
        PktInfo {
            buf,
            meta: PktMeta {
                addr: None,
                user: 0,
            },
        }
    }

    /// A packet addressed to (or received from) `addr`.
    pub const fn with_addr(buf: &'a [u8], addr: SocketAddr) -> PktInfo<'a> {
        PktInfo {
            buf,
            meta: PktMeta {
                addr: Some(addr),
                user: 0,
            },
        }
    }

    /// The same packet with `meta` replaced.
    #[must_use]
    pub const fn with_meta(self, meta: PktMeta) -> PktInfo<'a> {
        PktInfo {
            buf: self.buf,
            meta,
        }
    }

    /// Length of the packet in bytes.
    pub const fn len(&self) -> usize {
        self.buf.len()
    }

    /// True for a zero-length packet (which every backend accepts).
    pub const fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// A packet too long for [`PktInfoC`]'s 16-bit size field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("packet of {len} bytes does not fit a 16-bit size (max {max})", max = u16::MAX)]
pub struct PktTooLong {
    /// The packet's length.
    pub len: usize,
}

/// The C twin of [`PktInfo`]: fd_aio's `pkt_info` layout.
///
/// Exactly 16 bytes, aligned to 16: a pointer to the first byte and a 16-bit
/// size, then six bytes of padding reserved for backends. A `PktInfoC`
/// carries no lifetime: whoever builds one vouches that `buf..buf+buf_sz`
/// stays readable for as long as the descriptor is used (for a send, until
/// the send returns).
#[repr(C, align(16))]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PktInfoC {
    /// First byte of the packet (may be dangling or null when `buf_sz` is 0).
    pub buf: *const u8,
    /// Length of the packet in bytes.
    pub buf_sz: u16,
    _pad: [u8; 6],
}

const _: () = assert!(core::mem::size_of::<PktInfoC>() == 16);
const _: () = assert!(core::mem::align_of::<PktInfoC>() == 16);

impl fmt::Debug for PktInfoC {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PktInfoC")
            .field("buf", &self.buf)
            .field("buf_sz", &self.buf_sz)
            .finish()
    }
}

impl PktInfoC {
    /// A zero-length descriptor with a null pointer.
    pub const EMPTY: PktInfoC = PktInfoC::new(core::ptr::null(), 0);

    /// A descriptor of `buf_sz` bytes at `buf`. Building one is safe; reading
    /// through it is not (see [`PktInfoC::as_bytes`]).
    pub const fn new(buf: *const u8, buf_sz: u16) -> PktInfoC {
        PktInfoC {
            buf,
            buf_sz,
            _pad: [0; 6],
        }
    }

    /// The bytes this descriptor names.
    ///
    /// A zero-length descriptor gives an empty slice whatever its pointer
    /// (null included).
    ///
    /// # Safety
    /// If `buf_sz > 0`, `buf..buf+buf_sz` must be readable and not written
    /// by anyone for the lifetime `'a` the caller picks.
    pub unsafe fn as_bytes<'a>(&self) -> &'a [u8] {
        if self.buf_sz == 0 {
            return &[];
        }
        // SAFETY: the caller vouches that buf..buf+buf_sz is readable and
        // unchanging for 'a; buf_sz > 0 and a readable pointer is non-null,
        // and u8 has no alignment requirement.
        unsafe { core::slice::from_raw_parts(self.buf, usize::from(self.buf_sz)) }
    }
}

impl<'a> TryFrom<&PktInfo<'a>> for PktInfoC {
    type Error = PktTooLong;

    /// Describes `pkt`'s bytes. The metadata is dropped: the C layout has no
    /// room for it.
    ///
    /// # Errors
    /// [`PktTooLong`] if the packet is longer than `u16::MAX` bytes.
    fn try_from(pkt: &PktInfo<'a>) -> Result<PktInfoC, PktTooLong> {
        let len = pkt.buf.len();
        let buf_sz = u16::try_from(len).map_err(|_| PktTooLong { len })?;
        Ok(PktInfoC::new(pkt.buf.as_ptr(), buf_sz))
    }
}

impl<'a> TryFrom<PktInfo<'a>> for PktInfoC {
    type Error = PktTooLong;

    /// As for `&PktInfo`.
    ///
    /// # Errors
    /// [`PktTooLong`] if the packet is longer than `u16::MAX` bytes.
    fn try_from(pkt: PktInfo<'a>) -> Result<PktInfoC, PktTooLong> {
        PktInfoC::try_from(&pkt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn c_layout_is_pinned() {
        assert_eq!(size_of::<PktInfoC>(), 16);
        assert_eq!(align_of::<PktInfoC>(), 16);
        assert_eq!(offset_of!(PktInfoC, buf), 0);
        assert_eq!(offset_of!(PktInfoC, buf_sz), size_of::<*const u8>());
        assert_eq!(BUF_MAX, 4096);
    }

    #[test]
    fn conversion_keeps_pointer_and_length() {
        let bytes = [1u8, 2, 3, 4, 5];
        let pkt = PktInfo::new(&bytes[1..4]);
        let c = PktInfoC::try_from(&pkt).unwrap();
        assert_eq!(c.buf, bytes[1..].as_ptr());
        assert_eq!(c.buf_sz, 3);
        // SAFETY: `bytes` outlives the slice and is not written.
        assert_eq!(unsafe { c.as_bytes() }, &[2, 3, 4]);
    }

    #[test]
    fn conversion_refuses_lengths_over_u16() {
        let big = vec![0u8; usize::from(u16::MAX) + 1];
        assert_eq!(
            PktInfoC::try_from(PktInfo::new(&big)),
            Err(PktTooLong { len: big.len() })
        );
        let max = &big[..usize::from(u16::MAX)];
        assert_eq!(
            PktInfoC::try_from(PktInfo::new(max)).unwrap().buf_sz,
            u16::MAX
        );
    }

    #[test]
    fn empty_descriptors_read_as_empty_slices() {
        // SAFETY: a zero-length descriptor is never dereferenced.
        assert!(unsafe { PktInfoC::EMPTY.as_bytes() }.is_empty());
        let c = PktInfoC::try_from(PktInfo::new(&[])).unwrap();
        assert_eq!(c.buf_sz, 0);
    }

    #[test]
    fn constructors_set_metadata() {
        let addr: SocketAddr = "127.0.0.1:8001".parse().unwrap();
        let p = PktInfo::with_addr(b"hi", addr);
        assert_eq!(p.meta.addr, Some(addr));
        assert_eq!(p.meta.user, 0);
        assert_eq!(PktInfo::new(b"hi").meta, PktMeta::default());
        let q = p.with_meta(PktMeta {
            addr: None,
            user: 9,
        });
        assert_eq!((q.buf, q.meta.user, q.len()), (&b"hi"[..], 9, 2));
        assert!(PktInfo::new(&[]).is_empty());
    }
}
