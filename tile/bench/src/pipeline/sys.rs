//! The system calls of the Agave-style peer, made the way Agave's
//! streamer makes them (`libc` straight, no wrapper crate): `recvmmsg`
//! into fixed packet buffers with `MSG_WAITFORONE`, `sendmmsg` of a
//! batch to one address, the socket buffer sizes. With the harness's
//! process CPU clock, the only module of the binary that talks to the
//! kernel through raw pointers.
#![allow(unsafe_code)] // each call says why it is sound

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::RawFd;

use super::packet::{Packet, PACKETS_PER_BATCH, PACKET_DATA_SIZE};

/// Sets `SO_RCVBUF` and `SO_SNDBUF` of `fd` to `bytes` (the kernel caps
/// them at `net.core.[rw]mem_max` and doubles them), as the net-udp tile
/// asks for its socket.
pub(super) fn set_buffers(fd: RawFd, bytes: usize) -> io::Result<()> {
    let n = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: `n` is a live c_int of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                std::ptr::addr_of!(n).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// One `recvmmsg(2)` of up to [`PACKETS_PER_BATCH`] datagrams into
/// `packets`, with `MSG_WAITFORONE`: on a blocking socket it waits for
/// the first datagram, then takes what is there without waiting more.
/// Each packet's `meta.size` and `meta.addr` are set; returns how many.
///
/// # Errors
/// The call's error (`WouldBlock` on a non-blocking socket with nothing
/// queued, or when the socket's read timeout passed).
pub(super) fn recv_mmsg(fd: RawFd, packets: &mut [Packet]) -> io::Result<usize> {
    let count = packets.len().min(PACKETS_PER_BATCH);
    // SAFETY: all-zero is a valid value of these plain C structs.
    let mut hdrs: [libc::mmsghdr; PACKETS_PER_BATCH] = unsafe { zeroed() };
    // SAFETY: as above.
    let mut addrs: [libc::sockaddr_in; PACKETS_PER_BATCH] = unsafe { zeroed() };
    let mut iovs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; PACKETS_PER_BATCH];
    for (i, p) in packets[..count].iter_mut().enumerate() {
        iovs[i].iov_base = p.buffer.as_mut_ptr().cast();
        iovs[i].iov_len = PACKET_DATA_SIZE;
        hdrs[i].msg_hdr.msg_name = std::ptr::addr_of_mut!(addrs[i]).cast();
        hdrs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        hdrs[i].msg_hdr.msg_iov = std::ptr::addr_of_mut!(iovs[i]);
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the first `count` headers point at live iovecs and address
    // buffers of the sizes they give, and each iovec at its packet's
    // buffer of PACKET_DATA_SIZE bytes; all of them outlive the call,
    // which writes nothing else.
    let n = unsafe {
        libc::recvmmsg(
            fd,
            hdrs.as_mut_ptr(),
            count as libc::c_uint,
            libc::MSG_WAITFORONE,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    for (i, p) in packets[..n].iter_mut().enumerate() {
        p.meta.size = (hdrs[i].msg_len as usize).min(PACKET_DATA_SIZE);
        let a = &addrs[i];
        p.meta.addr = SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
            u16::from_be(a.sin_port),
        );
    }
    Ok(n)
}

/// Sends `payloads` to `dest` with as many `sendmmsg(2)` calls as it
/// takes (at most [`PACKETS_PER_BATCH`] at a time); returns how many the
/// kernel took. A datagram the kernel refuses is skipped and counted in
/// the second value, as Agave's `batch_send` reports its failures.
pub(super) fn send_mmsg(fd: RawFd, payloads: &[&[u8]], dest: SocketAddrV4) -> (u64, u64) {
    // SAFETY: all-zero is a valid sockaddr_in.
    let mut addr: libc::sockaddr_in = unsafe { zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_port = dest.port().to_be();
    addr.sin_addr.s_addr = u32::from(*dest.ip()).to_be();
    let (mut sent, mut failed) = (0u64, 0u64);
    for chunk in payloads.chunks(PACKETS_PER_BATCH) {
        // SAFETY: all-zero is a valid value of these plain C structs.
        let mut hdrs: [libc::mmsghdr; PACKETS_PER_BATCH] = unsafe { zeroed() };
        let mut iovs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; PACKETS_PER_BATCH];
        for (i, p) in chunk.iter().enumerate() {
            // The kernel only reads through iov_base for a send.
            iovs[i].iov_base = p.as_ptr() as *mut libc::c_void;
            iovs[i].iov_len = p.len();
            hdrs[i].msg_hdr.msg_name = std::ptr::addr_of_mut!(addr).cast();
            hdrs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            hdrs[i].msg_hdr.msg_iov = std::ptr::addr_of_mut!(iovs[i]);
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        let mut at = 0usize;
        while at < chunk.len() {
            // SAFETY: headers `at..chunk.len()` point at the live address
            // and at iovecs over the caller's payloads, all of which
            // outlive the call; the kernel reads them and writes only
            // msg_len.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    hdrs[at..].as_mut_ptr(),
                    (chunk.len() - at) as libc::c_uint,
                    0,
                )
            };
            if n > 0 {
                at += n as usize;
                sent += n as u64;
            } else {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The datagram at `at` failed: skip it, as batch_send does.
                at += 1;
                failed += 1;
            }
        }
    }
    (sent, failed)
}
