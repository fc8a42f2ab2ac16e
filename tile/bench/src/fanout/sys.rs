//! The kernel calls of the two peers of `fanout`, the one module of the
//! bench that hands them raw pointers:
//!
//! - `sendmmsg(2)` of one payload to many addresses, one `mmsghdr` per
//!   destination over the same iovec, as `solana-streamer`'s
//!   `batch_send` builds them (libc straight, as the streamer calls it);
//! - an AF_XDP transmit socket with its own UMEM, made with xsk-rs (the
//!   ring library the bench already runs as a peer): the frame writes,
//!   the TX ring's produce and the completion ring's consume, which
//!   xsk-rs marks `unsafe`. agave-xdp keeps its rings on libc; the loop
//!   around them (`super::peers`) is written as agave-xdp writes its own.
//!   Bound with `XDP_USE_SG` it also sends multi-buffer packets: a header
//!   frame chained (`XDP_PKT_CONTD`) to a payload frame that many packets
//!   share, freed when its last completion returns.
#![allow(unsafe_code)] // each call says why it is sound

use std::io::{self, Write};
use std::mem::{size_of, zeroed};
use std::net::SocketAddrV4;
use std::num::NonZeroU32;
use std::os::fd::RawFd;

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

/// Destinations as the kernel takes them: one `sockaddr_in` each.
pub(super) struct SockAddrs(Vec<libc::sockaddr_in>);

impl SockAddrs {
    pub(super) fn new(dests: &[SocketAddrV4]) -> SockAddrs {
        SockAddrs(
            dests
                .iter()
                .map(|d| {
                    // SAFETY: all-zero is a valid sockaddr_in.
                    let mut a: libc::sockaddr_in = unsafe { zeroed() };
                    a.sin_family = libc::AF_INET as libc::sa_family_t;
                    a.sin_port = d.port().to_be();
                    a.sin_addr.s_addr = u32::from(*d.ip()).to_be();
                    a
                })
                .collect(),
        )
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}

/// The message headers of one `batch_send`: one per destination, every
/// one pointing at the same payload.
pub(super) struct MmsgBatch {
    hdrs: Vec<libc::mmsghdr>,
}

impl MmsgBatch {
    /// Room for `n` destinations.
    pub(super) fn new(n: usize) -> MmsgBatch {
        // SAFETY: all-zero is a valid mmsghdr (null pointers, zero lengths).
        let hdr: libc::mmsghdr = unsafe { zeroed() };
        MmsgBatch { hdrs: vec![hdr; n] }
    }

    /// Sends `payload` to every address of `dests` with as many
    /// `sendmmsg(2)` calls as the kernel needs, on a blocking socket;
    /// adds 1 to `sent[i]` for each destination `i` the kernel took. A
    /// destination the kernel refuses is skipped and counted in the
    /// second value, as `batch_send` reports its failures. Returns (sent,
    /// failed, calls).
    pub(super) fn send(
        &mut self,
        fd: RawFd,
        payload: &[u8],
        dests: &mut SockAddrs,
        sent: &mut [u64],
    ) -> (u64, u64, u64) {
        let n = dests.0.len().min(self.hdrs.len());
        let mut iov = libc::iovec {
            // The kernel only reads through iov_base for a send.
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: payload.len(),
        };
        for (h, a) in self.hdrs.iter_mut().zip(dests.0.iter_mut()) {
            h.msg_hdr.msg_name = std::ptr::addr_of_mut!(*a).cast();
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_hdr.msg_iov = std::ptr::addr_of_mut!(iov);
            h.msg_hdr.msg_iovlen = 1;
        }
        let (mut ok, mut failed, mut calls) = (0u64, 0u64, 0u64);
        let mut at = 0usize;
        while at < n {
            calls += 1;
            // SAFETY: headers `at..n` point at live addresses of `dests`
            // and at `iov`, which points at the caller's payload; all of
            // them outlive the call, which reads them and writes only
            // msg_len.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs[at..n].as_mut_ptr(),
                    (n - at) as libc::c_uint,
                    0,
                )
            };
            if r > 0 {
                for s in &mut sent[at..at + r as usize] {
                    *s += 1;
                }
                at += r as usize;
                ok += r as u64;
            } else {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The datagram at `at` failed: skip it, as batch_send does.
                at += 1;
                failed += 1;
            }
        }
        (ok, failed, calls)
    }
}

/// Sets `SO_SNDBUF` of `fd` to `bytes` (the kernel caps it at
/// `net.core.wmem_max` and doubles it).
pub(super) fn set_send_buffer(fd: RawFd, bytes: usize) -> io::Result<()> {
    let n = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: `n` is a live c_int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            std::ptr::addr_of!(n).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An AF_XDP socket that only transmits, with a UMEM of its own: copy
/// mode, `XDP_USE_NEED_WAKEUP`, and no XDP program (a socket that only
/// sends needs none; libxdp is told not to load one).
///
/// # Who owns which frame
///
/// A frame is free (on `free`), written and waiting for the next
/// [`XdpTx::commit`] (on `pending`), or the kernel's from the commit until
/// the completion ring hands it back ([`XdpTx::reap`]). Only a free frame
/// is written.
pub(super) struct XdpTx {
    umem: Umem,
    tx: TxQueue,
    cq: CompQueue,
    _rx: RxQueue,
    free: Vec<FrameDesc>,
    pending: Vec<FrameDesc>,
    done: Vec<FrameDesc>,
    in_flight: usize,
    mtu: usize,
    frame_size: usize,
    /// Per frame: descriptors of it in flight plus one while its writer
    /// still chains packets to it (shared payload frames only; 0 for
    /// every other frame).
    refs: Vec<u32>,
}

/// `XDP_PKT_CONTD`: the packet goes on in the next descriptor.
const PKT_CONTD: u32 = 1;

impl XdpTx {
    /// Binds queue `queue` of `ifname` (in the calling thread's network
    /// namespace) with a TX and completion ring of `ring` entries and
    /// `frames` frames of `frame_size` bytes, in hugepages if the machine
    /// has them, else in normal pages (agave-xdp's fallback); with
    /// `multi_buffer`, bound with `XDP_USE_SG` for [`XdpTx::write_chained`].
    ///
    /// # Errors
    /// What xsk-rs or libxdp reported, as text.
    pub(super) fn bind(
        ifname: &str,
        queue: u32,
        ring: u32,
        frames: u32,
        frame_size: u32,
        multi_buffer: bool,
    ) -> Result<XdpTx, String> {
        let interface: Interface = ifname
            .parse()
            .map_err(|_| format!("bad interface name {ifname:?}"))?;
        let q = |n: u32| QueueSize::new(n).map_err(|e| format!("ring of {n}: {e}"));
        let umem_config = UmemConfig::builder()
            .frame_size(FrameSize::new(frame_size).map_err(|e| e.to_string())?)
            .fill_queue_size(q(64)?)
            .comp_queue_size(q(ring)?)
            .build()
            .map_err(|e| e.to_string())?;
        let mtu = umem_config.mtu() as usize;
        let count = NonZeroU32::new(frames).ok_or("no frames")?;
        let (umem, descs) = match Umem::new(umem_config, count, true) {
            Ok(u) => u,
            Err(_) => Umem::new(umem_config, count, false).map_err(|e| format!("UMEM: {e}"))?,
        };
        let config = SocketConfig::builder()
            .rx_queue_size(q(64)?)
            .tx_queue_size(q(ring)?)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(if multi_buffer {
                BindFlags::XDP_COPY | BindFlags::XDP_USE_NEED_WAKEUP | BindFlags::XDP_USE_SG
            } else {
                BindFlags::XDP_COPY | BindFlags::XDP_USE_NEED_WAKEUP
            })
            .build();
        // SAFETY: the contract of `Socket::new` concerns a UMEM shared
        // with a socket already bound; this UMEM was made just above and
        // serves this socket only.
        let (tx, rx, rings) = unsafe { Socket::new(config, &umem, &interface, queue) }
            .map_err(|e| format!("AF_XDP socket on {ifname} queue {queue}: {e}"))?;
        let (_fill, cq) = rings.ok_or("the socket came without a completion ring")?;
        Ok(XdpTx {
            umem,
            tx,
            cq,
            _rx: rx,
            pending: Vec::with_capacity(descs.len()),
            done: vec![FrameDesc::default(); ring as usize],
            free: descs,
            in_flight: 0,
            mtu,
            frame_size: frame_size as usize,
            refs: vec![0; frames as usize],
        })
    }

    /// Whether a frame is free and the TX ring shows room for `descs`
    /// descriptors besides those waiting to be committed.
    pub(super) fn has_room_for(&mut self, descs: u32) -> bool {
        let want = self.pending.len() as u32 + descs;
        !self.free.is_empty() && self.tx.nb_free(want) >= want
    }

    /// Writes `payload` into a free frame that packets will share (see
    /// [`write_chained`](Self::write_chained)); `None` if no frame is free
    /// or it does not fit. The frame is held until
    /// [`release_shared`](Self::release_shared) and the completions of
    /// every packet chained to it.
    pub(super) fn write_shared(&mut self, payload: &[u8]) -> Option<FrameDesc> {
        if payload.len() > self.mtu {
            return None;
        }
        let mut desc = self.free.pop()?;
        desc.set_options(0);
        self.fill(&mut desc, &[payload]);
        self.refs[desc.addr() / self.frame_size] = 1;
        Some(desc)
    }

    /// A multi-buffer packet: `header` in a free frame of its own,
    /// continued (`XDP_PKT_CONTD`) by the shared frame `payload` from
    /// [`write_shared`](Self::write_shared); both descriptors go with the
    /// next [`commit`](Self::commit). False (nothing written) if no frame
    /// is free. Needs a socket bound with `multi_buffer`.
    pub(super) fn write_chained(&mut self, header: &[u8], payload: &FrameDesc) -> bool {
        let Some(mut desc) = self.free.pop() else {
            return false;
        };
        self.fill(&mut desc, &[header]);
        desc.set_options(PKT_CONTD);
        self.pending.push(desc);
        self.pending.push(*payload);
        self.refs[payload.addr() / self.frame_size] += 1;
        true
    }

    /// The writer is done chaining packets to `payload`: the frame is
    /// free once their completions are all back.
    pub(super) fn release_shared(&mut self, payload: FrameDesc) {
        self.unref(payload);
    }

    /// Drops one reference to a shared frame, freeing it at the last.
    fn unref(&mut self, desc: FrameDesc) {
        let r = &mut self.refs[desc.addr() / self.frame_size];
        *r -= 1;
        if *r == 0 {
            self.free.push(desc);
        }
    }

    /// Writes `parts` (concatenated) at the start of the free frame `desc`.
    fn fill(&mut self, desc: &mut FrameDesc, parts: &[&[u8]]) {
        // SAFETY: `desc` came off the free list: a frame of this UMEM on no
        // ring, which the kernel neither reads nor writes until it is
        // committed; nothing else holds its bytes.
        let mut data = unsafe { self.umem.data_mut(desc) };
        let mut cursor = data.cursor();
        cursor.set_pos(0);
        for p in parts {
            let written = cursor.write_all(p);
            debug_assert!(written.is_ok(), "checked against the mtu");
        }
    }

    /// Writes the frame `parts` (concatenated) into a free frame, to go
    /// with the next [`commit`](Self::commit). False (nothing written) if
    /// no frame is free or it is longer than a frame holds.
    pub(super) fn write(&mut self, parts: &[&[u8]]) -> bool {
        if parts.iter().map(|p| p.len()).sum::<usize>() > self.mtu {
            return false;
        }
        let Some(mut desc) = self.free.pop() else {
            return false;
        };
        desc.set_options(0);
        self.fill(&mut desc, parts);
        self.pending.push(desc);
        true
    }

    /// Whether `n` or more written frames wait for a commit.
    pub(super) fn commit_due(&self, n: usize) -> bool {
        self.pending.len() >= n
    }

    /// Puts the written frames on the TX ring; returns how many.
    pub(super) fn commit(&mut self) -> usize {
        if self.pending.is_empty() {
            return 0;
        }
        // SAFETY: the pending frames are this UMEM's, written above and
        // owned by this socket alone; once produced they are not touched
        // until the completion ring returns them. `has_room` showed room
        // for each before it was written, and only this socket produces
        // on the ring, so all fit (`produce` submits all or none).
        let n = unsafe { self.tx.produce(&self.pending) };
        if n == self.pending.len() {
            self.in_flight += n;
            self.pending.clear();
        }
        n
    }

    /// Whether the kernel asks for a wakeup to transmit (in copy mode,
    /// always while frames wait on the ring).
    pub(super) fn needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }

    /// Wakes the kernel to transmit: one `sendto(2)` (in copy mode the
    /// kernel sends up to 32 frames in it).
    pub(super) fn kick(&self) {
        // The transient errors (ENOBUFS, EAGAIN, EBUSY, ENETDOWN) xsk-rs
        // swallows; any other leaves the frames on the ring for the next
        // kick.
        let _ = self.tx.wakeup();
    }

    /// Takes completed frames back; returns how many.
    pub(super) fn reap(&mut self) -> usize {
        // SAFETY: `consume` overwrites the scratch descriptors with the
        // addresses the kernel hands back on this UMEM's completion ring:
        // frames of this UMEM the kernel is done with.
        let n = unsafe { self.cq.consume(&mut self.done) };
        for i in 0..n {
            let d = self.done[i];
            if self.refs[d.addr() / self.frame_size] > 0 {
                self.unref(d);
            } else {
                self.free.push(d);
            }
        }
        self.in_flight -= n;
        n
    }

    /// Frames committed and not yet completed.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight
    }
}
