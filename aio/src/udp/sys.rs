//! The platform edge of [`crate::udp`]: the only module of the backend with
//! `unsafe` code.
//!
//! Two things live here. [`Socket`] makes, configures and owns the UDP file
//! descriptor (socket, setsockopt, bind, connect, getsockname). [`MsgSlots`]
//! is a preallocated array of packet slots (a buffer, a length, a socket
//! address and its length, the kernel's message flags) with the `mmsghdr`
//! and `iovec` arrays that describe them to `sendmmsg(2)` and
//! `recvmmsg(2)`.
//!
//! The unsafe line is where the kernel takes a pointer. Every pointer of an
//! `mmsghdr` or `iovec` is written immediately before the system call, from
//! a `&mut MsgSlots` that borrows all the memory named, and the kernel
//! forgets the pointers when the call returns: nothing here is in flight
//! across calls (unlike the io_uring engine, where the kernel keeps
//! pointers until completion). Everything else is safe code on plain
//! arrays.
#![allow(unsafe_code)]

use core::mem::{size_of, zeroed};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Options applied to a socket before it is bound.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SocketOpts {
    pub reuse_port: bool,
    pub send_buf: Option<usize>,
    pub recv_buf: Option<usize>,
}

/// A nonblocking, close-on-exec UDP socket.
#[derive(Debug)]
pub(crate) struct Socket {
    fd: OwnedFd,
}

/// Which system call failed while making a socket.
pub(crate) type Step = &'static str;

impl Socket {
    /// Makes a UDP socket of `bind`'s family, applies `opts`, binds it to
    /// `bind` and connects it to `connect` if given.
    ///
    /// # Errors
    /// The step that failed and the OS error.
    pub(super) fn open(
        bind: SocketAddr,
        connect: Option<SocketAddr>,
        opts: SocketOpts,
    ) -> Result<Socket, (Step, io::Error)> {
        let family = match bind {
            SocketAddr::V4(_) => libc::AF_INET,
            SocketAddr::V6(_) => libc::AF_INET6,
        };
        let ty = libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: socket(2) takes no pointers.
        let raw = unsafe { libc::socket(family, ty, libc::IPPROTO_UDP) };
        if raw < 0 {
            return Err(("socket", io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a descriptor socket(2) just returned to us and
        // nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sock = Socket { fd };
        if opts.reuse_port {
            sock.set_int(libc::SO_REUSEPORT, 1)
                .map_err(|e| ("setsockopt(SO_REUSEPORT)", e))?;
        }
        if let Some(n) = opts.send_buf {
            let n = i32::try_from(n).unwrap_or(i32::MAX);
            sock.set_int(libc::SO_SNDBUF, n)
                .map_err(|e| ("setsockopt(SO_SNDBUF)", e))?;
        }
        if let Some(n) = opts.recv_buf {
            let n = i32::try_from(n).unwrap_or(i32::MAX);
            sock.set_int(libc::SO_RCVBUF, n)
                .map_err(|e| ("setsockopt(SO_RCVBUF)", e))?;
        }
        let (name, len) = encode(&bind);
        // SAFETY: `name` is a sockaddr_storage holding a valid address of
        // `len` bytes, live for the call.
        let rc = unsafe { libc::bind(sock.raw(), core::ptr::addr_of!(name).cast(), len) };
        if rc != 0 {
            return Err(("bind", io::Error::last_os_error()));
        }
        if let Some(peer) = connect {
            let (name, len) = encode(&peer);
            // SAFETY: as for bind.
            let rc = unsafe { libc::connect(sock.raw(), core::ptr::addr_of!(name).cast(), len) };
            if rc != 0 {
                return Err(("connect", io::Error::last_os_error()));
            }
        }
        Ok(sock)
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn set_int(&self, opt: libc::c_int, val: libc::c_int) -> io::Result<()> {
        // SAFETY: the option value is a c_int that lives for the call and
        // its size is passed with it.
        let rc = unsafe {
            libc::setsockopt(
                self.raw(),
                libc::SOL_SOCKET,
                opt,
                core::ptr::addr_of!(val).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// A SOL_SOCKET integer option (the kernel doubles SO_SNDBUF and
    /// SO_RCVBUF for its bookkeeping; this returns what it reports).
    pub(super) fn get_int(&self, opt: libc::c_int) -> io::Result<usize> {
        let mut val: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `val` and `len` are live locals of the sizes passed.
        let rc = unsafe {
            libc::getsockopt(
                self.raw(),
                libc::SOL_SOCKET,
                opt,
                core::ptr::addr_of_mut!(val).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            Ok(usize::try_from(val).unwrap_or(0))
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The address the socket is bound to (with the port the kernel chose
    /// when bound to port 0).
    pub(super) fn local_addr(&self) -> io::Result<SocketAddr> {
        // SAFETY: all-zero bytes are a valid sockaddr_storage.
        let mut name: libc::sockaddr_storage = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: `name` and `len` are live locals; the kernel writes at
        // most `len` bytes.
        let rc = unsafe {
            libc::getsockname(self.raw(), core::ptr::addr_of_mut!(name).cast(), &mut len)
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        decode(&name, len).ok_or_else(|| io::Error::other("getsockname: not an IP address"))
    }
}

/// A SocketAddr as the kernel's sockaddr, in a sockaddr_storage.
fn encode(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let len = encode_into(addr, &mut storage);
    (storage, len)
}

/// Writes `addr` into `storage`; returns its length.
pub(crate) fn encode_into(
    addr: &SocketAddr,
    storage: &mut libc::sockaddr_storage,
) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned at least
            // as strictly as sockaddr_in (that is its purpose).
            unsafe {
                (storage as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in>()
                    .write(sin)
            };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                // As std does: the flow label is kept in the order the
                // kernel uses, so it round-trips with std's addresses.
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe {
                (storage as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in6>()
                    .write(sin6)
            };
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// The SocketAddr in a sockaddr the kernel wrote, if it is an IP address.
/// An IPv4-mapped IPv6 address (a v4 peer of a dual-stack socket) is
/// given back as the IPv4 address it maps.
pub(crate) fn decode(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, of
            // which `len` bytes were written; the storage is aligned for it.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            Some(match ip.to_ipv4_mapped() {
                Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
                None => SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    port,
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )),
            })
        }
        _ => None,
    }
}

/// A preallocated array of packet slots and the message headers that
/// describe them to the kernel.
///
/// Slot `i` owns bytes `[i * slot_len, (i + 1) * slot_len)` of one
/// buffer, a length, a socket address and the flags the kernel returned.
/// Nothing is allocated after [`MsgSlots::new`].
pub(crate) struct MsgSlots {
    slot_len: usize,
    bufs: Box<[u8]>,
    lens: Box<[usize]>,
    names: Box<[libc::sockaddr_storage]>,
    namelens: Box<[libc::socklen_t]>,
    flags: Box<[libc::c_int]>,
    /// Scratch for the system calls: written just before each one.
    iovecs: Box<[libc::iovec]>,
    /// Scratch for the system calls: written just before each one.
    hdrs: Box<[libc::mmsghdr]>,
}

// SAFETY: the raw pointers inside `iovecs` and `hdrs` only ever point into
// this struct's own boxed arrays, are rewritten before every use, and are
// never dereferenced by Rust code; moving the struct to another thread
// moves the memory they name with it.
unsafe impl Send for MsgSlots {}

impl core::fmt::Debug for MsgSlots {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MsgSlots")
            .field("slots", &self.lens.len())
            .field("slot_len", &self.slot_len)
            .finish()
    }
}

impl MsgSlots {
    /// `n` slots of `slot_len` bytes each.
    pub(super) fn new(n: usize, slot_len: usize) -> MsgSlots {
        // SAFETY: all-zero bytes are valid for these plain C structs (null
        // pointers, zero lengths).
        let (name, iov, hdr) = unsafe {
            (
                zeroed::<libc::sockaddr_storage>(),
                zeroed::<libc::iovec>(),
                zeroed::<libc::mmsghdr>(),
            )
        };
        MsgSlots {
            slot_len,
            bufs: vec![0u8; n * slot_len].into_boxed_slice(),
            lens: vec![0; n].into_boxed_slice(),
            names: vec![name; n].into_boxed_slice(),
            namelens: vec![0; n].into_boxed_slice(),
            flags: vec![0; n].into_boxed_slice(),
            iovecs: vec![iov; n].into_boxed_slice(),
            hdrs: vec![hdr; n].into_boxed_slice(),
        }
    }

    /// Number of slots.
    pub(super) fn len(&self) -> usize {
        self.lens.len()
    }

    /// Copies `bytes` into slot `i` addressed to `dest` (`None`: the
    /// connected peer).
    ///
    /// # Panics
    /// If `i` is out of range or `bytes` is longer than a slot; callers
    /// check both.
    pub(super) fn write(&mut self, i: usize, bytes: &[u8], dest: Option<&SocketAddr>) {
        let off = i * self.slot_len;
        self.bufs[off..off + bytes.len()].copy_from_slice(bytes);
        self.lens[i] = bytes.len();
        self.namelens[i] = match dest {
            Some(addr) => encode_into(addr, &mut self.names[i]),
            None => 0,
        };
    }

    /// Length of the packet in slot `i`.
    pub(super) fn pkt_len(&self, i: usize) -> usize {
        self.lens[i]
    }

    /// The packet received into slot `i`: its bytes (as many as fitted),
    /// its source address, and whether the kernel truncated it.
    pub(super) fn received(&self, i: usize) -> (&[u8], Option<SocketAddr>, bool) {
        let off = i * self.slot_len;
        let len = self.lens[i].min(self.slot_len);
        let truncated = self.flags[i] & libc::MSG_TRUNC != 0;
        let src = decode(&self.names[i], self.namelens[i]);
        (&self.bufs[off..off + len], src, truncated)
    }

    /// Points header `i` at slot `i`'s buffer (`len` bytes) and address
    /// (`namelen` bytes; 0 for none).
    fn point(&mut self, i: usize, len: usize, namelen: libc::socklen_t) {
        let base = self.bufs.as_mut_ptr();
        let iov = &mut self.iovecs[i];
        // `wrapping_add` keeps this safe code: the offset is in bounds
        // because `i < n` and the buffer is `n * slot_len` bytes.
        iov.iov_base = base.wrapping_add(i * self.slot_len).cast();
        iov.iov_len = len;
        let iov_ptr: *mut libc::iovec = iov;
        let name_ptr: *mut libc::sockaddr_storage = &mut self.names[i];
        let hdr = &mut self.hdrs[i];
        hdr.msg_hdr.msg_name = if namelen == 0 {
            core::ptr::null_mut()
        } else {
            name_ptr.cast()
        };
        hdr.msg_hdr.msg_namelen = namelen;
        hdr.msg_hdr.msg_iov = iov_ptr;
        hdr.msg_hdr.msg_iovlen = 1;
        hdr.msg_hdr.msg_control = core::ptr::null_mut();
        hdr.msg_hdr.msg_controllen = 0;
        hdr.msg_hdr.msg_flags = 0;
        hdr.msg_len = 0;
    }

    /// `sendmmsg(2)` of slots `[start, start + count)` on `sock`, without
    /// blocking. Returns how many the kernel took (at least 1), in order.
    ///
    /// # Errors
    /// The OS error of the first message when the kernel took none
    /// (`WouldBlock` when the socket buffer is full). `Interrupted` is
    /// retried here.
    ///
    /// # Panics
    /// If the range is out of bounds.
    pub(super) fn sendmmsg(
        &mut self,
        sock: &Socket,
        start: usize,
        count: usize,
    ) -> io::Result<usize> {
        assert!(start + count <= self.len() && count > 0);
        for i in start..start + count {
            self.point(i, self.lens[i], self.namelens[i]);
        }
        let vlen = libc::c_uint::try_from(count).unwrap_or(libc::c_uint::MAX);
        loop {
            // SAFETY: headers [start, start + count) were just pointed at
            // slots of `self`, which `&mut self` keeps alive and unaliased
            // for the call; the kernel only reads them (and writes each
            // header's msg_len) and keeps no pointer after returning.
            let rc = unsafe {
                libc::sendmmsg(
                    sock.raw(),
                    self.hdrs.as_mut_ptr().add(start),
                    vlen,
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if rc >= 0 {
                return Ok(rc as usize);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// `recvmmsg(2)` into slots `[0, count)` without blocking. Returns how
    /// many datagrams arrived; their lengths, sources and flags are read
    /// back with [`MsgSlots::received`].
    ///
    /// # Errors
    /// The OS error when nothing was received (`WouldBlock` when the
    /// socket is empty; a pending asynchronous error such as
    /// `ConnectionRefused` on a connected socket). `Interrupted` is retried
    /// here.
    ///
    /// # Panics
    /// If `count` is 0 or more than the slots.
    pub(super) fn recvmmsg(&mut self, sock: &Socket, count: usize) -> io::Result<usize> {
        assert!(count > 0 && count <= self.len());
        let namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        for i in 0..count {
            self.point(i, self.slot_len, namelen);
        }
        let vlen = libc::c_uint::try_from(count).unwrap_or(libc::c_uint::MAX);
        let n = loop {
            // SAFETY: headers [0, count) were just pointed at slots of
            // `self` (each iovec spans exactly its slot's buffer, each name
            // its sockaddr_storage), which `&mut self` keeps alive and
            // unaliased; the kernel writes only within them and keeps no
            // pointer after returning. A null timeout means none.
            let rc = unsafe {
                libc::recvmmsg(
                    sock.raw(),
                    self.hdrs.as_mut_ptr(),
                    vlen,
                    libc::MSG_DONTWAIT,
                    core::ptr::null_mut(),
                )
            };
            if rc >= 0 {
                break rc as usize;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        };
        for i in 0..n {
            let hdr = &self.hdrs[i];
            self.lens[i] = hdr.msg_len as usize;
            self.namelens[i] = hdr.msg_hdr.msg_namelen;
            self.flags[i] = hdr.msg_hdr.msg_flags;
        }
        Ok(n)
    }
}

/// Asks the kernel for a one-entry io_uring and closes it at once: `Ok` if
/// this process may use io_uring, else the errno (`ENOSYS`: no io_uring in
/// the kernel; `EPERM`: refused by the `io_uring_disabled` sysctl or a
/// seccomp filter). Makes no allocation, so a forked child may call it.
pub(crate) fn uring_setup_probe() -> Result<(), i32> {
    // io_uring_params, all zeroes: the defaults.
    let mut params: [u8; 120] = [0; 120];
    // SAFETY: io_uring_setup(2) with one entry and a zeroed, writable
    // io_uring_params (120 bytes in every kernel that has the call); the
    // kernel writes only within it. A returned fd is ours, closed below.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    // SAFETY: fd was just returned to us by the kernel and nothing else
    // holds it; OwnedFd closes it on drop.
    drop(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_sockaddr() {
        let addrs: [SocketAddr; 4] = [
            "127.0.0.1:9".parse().unwrap(),
            "10.1.2.3:65535".parse().unwrap(),
            "[::1]:8001".parse().unwrap(),
            "[fe80::1%3]:53".parse().unwrap(),
        ];
        for a in addrs {
            let (s, len) = encode(&a);
            assert_eq!(decode(&s, len), Some(a));
        }
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:7".parse().unwrap();
        let (s, len) = encode(&mapped);
        assert_eq!(decode(&s, len), Some("127.0.0.1:7".parse().unwrap()));
        assert_eq!(decode(&s, 4), None, "short length");
    }
}
