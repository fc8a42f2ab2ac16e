//! The receive side of the io_uring engine: the provided-buffer ring and
//! its multishot receive, or the fixed one-shot receives, and the packets
//! ready for the downstream.
#![allow(unsafe_code)] // talks to the kernel or to raw memory; each use says why it is sound

use core::mem::size_of;
use core::ptr;
use std::io;
use std::net::SocketAddr;

use io_uring::{cqueue, opcode, types};

use super::mem::{NAME_LEN, OUT_LEN};
use super::ring::{Ring, BGID, TAG_FIXED, TAG_MULTISHOT};
use crate::udp::stats::UdpStats;
use crate::udp::sys::decode;

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

/// The receive side: how receives are posted, the receive buffers, and
/// the ring of packets received and not yet taken. The buffers live in
/// the [`Ring`]'s mapping, which every method is handed.
pub(super) struct Rx {
    rx_mode: RxMode,
    rx_buf_len: usize,
    n_rx: usize,
    /// Ring of packets received and not yet taken.
    ready: Box<[Ready]>,
    ready_head: usize,
    ready_len: usize,
}

impl core::fmt::Debug for Rx {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Rx")
            .field("rx_mode", &self.rx_mode)
            .field("rx_bufs", &self.n_rx)
            .finish()
    }
}

impl Rx {
    /// `n_rx` buffers of `rx_buf_len` payload bytes, in fixed mode until
    /// [`register_buf_ring`](Self::register_buf_ring) succeeds; nothing
    /// posted yet.
    pub(super) fn new(n_rx: usize, rx_buf_len: usize) -> Rx {
        Rx {
            rx_mode: RxMode::Fixed,
            rx_buf_len,
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
        }
    }

    /// Registers the provided-buffer ring and fills it with every buffer.
    pub(super) fn register_buf_ring(&mut self, ring: &mut Ring) -> io::Result<()> {
        let n = u16::try_from(self.n_rx).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let addr = ring.mem.at(ring.lay.ring) as u64;
        // SAFETY: `n` entries of the ring live at `addr`, page aligned, in
        // `mem`, which outlives the ring (dropped after it).
        unsafe {
            ring.uring
                .submitter()
                .register_buf_ring_with_flags(addr, n, BGID, 0)?;
        }
        for b in 0..self.n_rx {
            self.ring_put(ring, b as u16, b as u16);
        }
        Self::ring_publish(ring, n);
        self.rx_mode = RxMode::Multishot {
            armed: false,
            tail: n,
        };
        Ok(())
    }

    /// Whether receives go through the provided-buffer ring.
    pub(super) fn multishot(&self) -> bool {
        matches!(self.rx_mode, RxMode::Multishot { .. })
    }

    fn rx_buf(ring: &Ring, b: u16) -> *mut u8 {
        ring.mem
            .at(ring.lay.rx_bufs + usize::from(b) * ring.lay.rx_stride)
    }

    /// Writes buffer `b` into ring entry `pos` (not yet visible).
    fn ring_put(&self, ring: &mut Ring, pos: u16, b: u16) {
        let mask = self.n_rx - 1;
        let entry = ring
            .mem
            .at(ring.lay.ring + (usize::from(pos) & mask) * size_of::<types::BufRingEntry>())
            .cast::<types::BufRingEntry>();
        let len = (OUT_LEN + NAME_LEN + self.rx_buf_len) as u32;
        let addr = Self::rx_buf(ring, b) as u64;
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
    fn ring_publish(ring: &mut Ring, tail: u16) {
        let base = ring.mem.at(ring.lay.ring).cast::<types::BufRingEntry>();
        // SAFETY: the tail is the u16 at offset 14 of entry 0, which the
        // kernel reads with acquire semantics; a release store publishes
        // the entries written before it.
        unsafe {
            let t = types::BufRingEntry::tail(base).cast_mut();
            (*t.cast::<core::sync::atomic::AtomicU16>())
                .store(tail, core::sync::atomic::Ordering::Release);
        }
    }

    /// Buffer `b`'s message header (fixed mode; header 0 also serves the
    /// multishot receive).
    fn rx_hdr(ring: &Ring, b: u16) -> *mut libc::msghdr {
        ring.mem
            .at(ring.lay.rx_hdrs + usize::from(b) * size_of::<libc::msghdr>())
            .cast()
    }

    /// Buffer `b`'s source address (fixed mode).
    fn rx_name(ring: &Ring, b: u16) -> *mut libc::sockaddr_storage {
        ring.mem
            .at(ring.lay.rx_names + usize::from(b) * size_of::<libc::sockaddr_storage>())
            .cast()
    }

    /// Posts a one-shot receive into buffer `b` (fixed mode).
    pub(super) fn post_fixed(&self, ring: &mut Ring, b: u16) {
        let hdr = Self::rx_hdr(ring, b);
        let iov = ring
            .mem
            .at(ring.lay.rx_iovs + usize::from(b) * size_of::<libc::iovec>())
            .cast::<libc::iovec>();
        let name = Self::rx_name(ring, b);
        // SAFETY: buffer `b` and its header, iovec and name are ours (its
        // last receive completed and was taken, or it was never posted);
        // all lie in `mem` at aligned offsets. The kernel writes them from
        // the submission until the completion, and we touch them again
        // only after reaping it.
        unsafe {
            iov.write(libc::iovec {
                iov_base: Self::rx_buf(ring, b).cast(),
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
        ring.push(&e);
    }

    /// Takes the completion of the multishot receive.
    pub(super) fn on_multishot(
        &mut self,
        ring: &mut Ring,
        res: i32,
        flags: u32,
        stats: &mut UdpStats,
    ) {
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
            self.give_back(ring, b);
            return;
        }
        let base = Self::rx_buf(ring, b);
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
            self.give_back(ring, b);
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

    /// Takes the completion of buffer `b`'s one-shot receive.
    pub(super) fn on_fixed(&mut self, ring: &mut Ring, b: u16, res: i32, stats: &mut UdpStats) {
        if res < 0 {
            if res != -libc::ECANCELED {
                stats.rx_errors += 1;
                self.post_fixed(ring, b);
            }
            return;
        }
        let (hdr, name) = (Self::rx_hdr(ring, b), Self::rx_name(ring, b));
        // SAFETY: the completion of buffer `b`'s receive was reaped, so
        // the kernel is done writing its header and name.
        let (h, src) = unsafe {
            let h = hdr.read();
            (h, decode(&*name, h.msg_namelen))
        };
        if h.msg_flags & libc::MSG_TRUNC != 0 {
            stats.rx_truncated += 1;
            self.post_fixed(ring, b);
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
    pub(super) fn ready_len(&self) -> usize {
        self.ready_len
    }

    /// The `j`-th packet not yet taken: payload and source.
    pub(super) fn ready<'a>(&'a self, ring: &'a Ring, j: usize) -> (&'a [u8], Option<SocketAddr>) {
        assert!(j < self.ready_len);
        let r = self.ready[(self.ready_head + j) % self.n_rx];
        let p = Self::rx_buf(ring, r.buf).wrapping_add(usize::from(r.off));
        // SAFETY: buffer `r.buf` is ours until `consume` gives it back (the
        // kernel handed it over with the completion), and `len` bytes from
        // `off` lie inside it (`off + len <= OUT_LEN + NAME_LEN +
        // rx_buf_len <= rx_stride`). The slice borrows `self` and `ring`
        // (both fields of the engine), so it cannot outlive that.
        let bytes = unsafe { core::slice::from_raw_parts(p, r.len as usize) };
        (bytes, r.src)
    }

    /// Gives the first `k` ready packets' buffers back to the kernel.
    pub(super) fn consume(&mut self, ring: &mut Ring, k: usize) {
        assert!(k <= self.ready_len);
        for _ in 0..k {
            let b = self.ready[self.ready_head].buf;
            self.ready_head = (self.ready_head + 1) % self.n_rx;
            self.ready_len -= 1;
            self.give_back(ring, b);
        }
        if self.ready_len == 0 {
            self.ready_head = 0;
        }
    }

    fn give_back(&mut self, ring: &mut Ring, b: u16) {
        match self.rx_mode {
            RxMode::Multishot { armed, tail } => {
                self.ring_put(ring, tail, b);
                let tail = tail.wrapping_add(1);
                Self::ring_publish(ring, tail);
                self.rx_mode = RxMode::Multishot { armed, tail };
            }
            RxMode::Fixed => self.post_fixed(ring, b),
        }
    }

    /// Queues the multishot receive if the kernel does not hold it (it
    /// ended when the ring ran dry, or was never armed); fixed receives
    /// are always posted.
    pub(super) fn arm(&mut self, ring: &mut Ring, stats: &mut UdpStats) {
        if let RxMode::Multishot { armed: false, tail } = self.rx_mode {
            let hdr = Self::rx_hdr(ring, 0);
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
            ring.push(&e);
            self.rx_mode = RxMode::Multishot { armed: true, tail };
            stats.rx_arms += 1;
        }
    }
}
