//! The two peers, each written the way its users write it at their best.
//!
//! - **sendmmsg** ([`mmsg`]): how Agave's retransmit stage sent before
//!   XDP. One thread, a plain UDP socket in namespace a bound to the
//!   source address; for each shred one `mmsghdr` per destination, every
//!   one over the same payload iovec with its own `sockaddr`, handed to
//!   `sendmmsg(2)` until the kernel took them all (a destination it
//!   refuses is skipped and counted): `solana-streamer`'s `batch_send`
//!   over the shred's whole destination list.
//! - **agave-xdp-style** ([`agave_xdp`]): how Agave sends now. The stage
//!   that has a shred and its destinations hands `(addresses, payload)` to
//!   the XDP sender over a bounded crossbeam channel (`XdpSender::try_send`
//!   does; here a blocking `send`, so a saturating producer waits instead
//!   of dropping, as tilewire's source waits for credits); one TX thread
//!   per queue, pinned, with its own AF_XDP socket and UMEM (page-size
//!   frames, hugepages when there are any; copy mode, NEED_WAKEUP always
//!   set, no XDP program), takes items until it has a batch of 64
//!   packets, writes each frame (Ethernet, IPv4 with its checksum, UDP,
//!   the payload) straight into a UMEM frame, commits to the TX ring every
//!   64 frames and kicks with `sendto` when the kernel asks; when the ring
//!   or the frames run out it reaps completions and kicks until there is
//!   room. With nothing to send it sleeps 1 µs, then kicks and reaps.
//!   The UDP checksum is left 0 (none, legal over IPv4): the cheaper
//!   choice, tilewire's retransmit tile computes it.
//!
//! Both count, per destination, what the kernel took from them.

use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, TryRecvError};

use super::peer::{shred, Net, SRC_PORT};
use super::sys::{set_send_buffer, MmsgBatch, SockAddrs, XdpTx};
use crate::harness::pin::{pin, Cores};

/// Packets in a TX batch of the agave-xdp-style sender.
const XDP_BATCH: usize = 64;
/// Its TX and completion ring entries.
const XDP_RING: u32 = 2048;
/// Its UMEM frames (twice the ring) and their size (a page, as agave-xdp).
const XDP_FRAMES: u32 = 4096;
const XDP_FRAME_SIZE: u32 = 4096;
/// Items its channel holds (each a shred and its 200 destinations).
const CHANNEL: usize = 64;
/// `SO_SNDBUF` of the sendmmsg socket.
const SOCK_BUF: usize = 4 << 20;

/// What a sender did over its whole run.
#[derive(Debug, Clone, Default)]
pub(super) struct Sent {
    /// Packets the kernel took, per destination.
    pub per_dest: Vec<u64>,
    /// Packets refused (sendmmsg errors, frames that would not fit).
    pub failed: u64,
    /// System calls made (sendmmsg calls, or kicks).
    pub calls: u64,
    /// Shreds sent.
    pub shreds: u64,
    /// Of `failed`, those `per_dest` still counts (tilewire: a skipped
    /// destination is not placed).
    pub unplaced: u64,
    /// What the failures were, by counter (`"rt.busy 200"`), if any.
    pub why: String,
}

/// The sendmmsg sender: sends shreds to every destination until `stop`.
/// `sent` counts packets as it goes.
///
/// # Errors
/// The socket could not be made in namespace a.
pub(super) fn mmsg(
    net: &Net,
    cores: &Cores,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> Result<Sent, String> {
    let a = net.pair.a();
    let src = SocketAddrV4::new(a.addr(), SRC_PORT);
    let sock = a
        .run(|| UdpSocket::bind(src))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("binding {src} in {}: {e}", a.netns()))?;
    set_send_buffer(sock.as_raw_fd(), SOCK_BUF).map_err(|e| format!("SO_SNDBUF: {e}"))?;
    pin(cores.first);
    let mut addrs = SockAddrs::new(&net.dests);
    let mut batch = MmsgBatch::new(addrs.len());
    let mut out = Sent {
        per_dest: vec![0; addrs.len()],
        ..Sent::default()
    };
    let mut payload = shred(0);
    // SYNC: Relaxed throughout: a flag and a progress count, no data
    // rides on them.
    while !stop.load(Ordering::Relaxed) {
        payload[..8].copy_from_slice(&out.shreds.to_le_bytes());
        let (ok, failed, calls) =
            batch.send(sock.as_raw_fd(), &payload, &mut addrs, &mut out.per_dest);
        out.failed += failed;
        out.calls += calls;
        out.shreds += 1;
        sent.fetch_add(ok, Ordering::Relaxed);
    }
    Ok(out)
}

/// One item of the agave-xdp-style sender's channel: a shred and where
/// it goes.
type Item = (Arc<Vec<SocketAddrV4>>, Arc<Vec<u8>>);

/// The agave-xdp-style sender: a producer (this thread) hands shreds to
/// the TX thread over a channel until `stop`; the TX thread sends them
/// on queue 0 of a's veth end.
///
/// # Errors
/// The socket could not be made in namespace a, or a thread failed.
pub(super) fn agave_xdp(
    net: &Net,
    cores: &Cores,
    stop: &AtomicBool,
    sent: &AtomicU64,
    multi_buffer: bool,
) -> Result<Sent, String> {
    let a = net.pair.a();
    let ifname = a.ifname().to_string();
    let headers = Headers {
        src_mac: a.mac(),
        dst_mac: net.pair.b().mac(),
        src: SocketAddrV4::new(a.addr(), SRC_PORT),
    };
    let dests = Arc::new(net.dests.clone());
    let (tx, rx) = bounded::<Item>(CHANNEL);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    std::thread::scope(|s| {
        let core = cores.first;
        let ns = a.netns().to_string();
        let loop_thread = s.spawn(move || {
            let bound = tilewire_aio::netns::enter_thread(&ns)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    XdpTx::bind(
                        &ifname,
                        0,
                        XDP_RING,
                        XDP_FRAMES,
                        XDP_FRAME_SIZE,
                        multi_buffer,
                    )
                });
            match bound {
                Ok(xsk) => {
                    let _ = ready_tx.send(Ok(()));
                    pin(core);
                    Ok(tx_loop(xsk, &rx, &headers, sent, multi_buffer))
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.clone()));
                    Err(e)
                }
            }
        });
        let ready = ready_rx
            .recv()
            .map_err(|_| "the TX thread ended".to_string())
            .and_then(|r| r);
        let mut shreds = 0u64;
        if ready.is_ok() {
            // SYNC: Relaxed; a flag.
            while !stop.load(Ordering::Relaxed) {
                let mut payload = shred(shreds);
                payload.shrink_to_fit();
                if tx.send((dests.clone(), Arc::new(payload))).is_err() {
                    break;
                }
                shreds += 1;
            }
        }
        drop(tx);
        let mut out = loop_thread
            .join()
            .map_err(|_| "the TX thread panicked".to_string())??;
        out.shreds = shreds;
        Ok(out)
    })
}

/// What every frame of the agave-xdp-style sender starts with.
struct Headers {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddrV4,
}

impl Headers {
    /// Ethernet, IPv4 (with its checksum) and UDP (checksum 0) for
    /// `len` payload bytes to `dst`.
    fn write(&self, h: &mut [u8; 42], dst: SocketAddrV4, len: usize) {
        h[..6].copy_from_slice(&self.dst_mac);
        h[6..12].copy_from_slice(&self.src_mac);
        h[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip_len = (20 + 8 + len) as u16;
        h[14..16].copy_from_slice(&[0x45, 0]);
        h[16..18].copy_from_slice(&ip_len.to_be_bytes());
        h[18..22].copy_from_slice(&[0, 0, 0x40, 0]);
        h[22..24].copy_from_slice(&[64, 17]);
        h[24..26].fill(0);
        h[26..30].copy_from_slice(&self.src.ip().octets());
        h[30..34].copy_from_slice(&dst.ip().octets());
        let mut sum: u32 = h[14..34]
            .chunks_exact(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        h[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        h[34..36].copy_from_slice(&self.src.port().to_be_bytes());
        h[36..38].copy_from_slice(&dst.port().to_be_bytes());
        h[38..40].copy_from_slice(&((8 + len) as u16).to_be_bytes());
        h[40..42].fill(0);
    }
}

/// The TX thread: see the [module docs](self). Ends when the channel is
/// closed and empty, after the frames in flight completed (or 100 ms).
/// With `multi_buffer` each shred's payload is written once, into a frame
/// every packet of it chains to after its own header frame.
fn tx_loop(
    mut xsk: XdpTx,
    rx: &Receiver<Item>,
    hdrs: &Headers,
    sent: &AtomicU64,
    multi_buffer: bool,
) -> Sent {
    let mut out = Sent::default();
    let mut batch: Vec<Item> = Vec::with_capacity(XDP_BATCH);
    let mut batched = 0usize;
    let mut hdr = [0u8; 42];
    let mut closed = false;
    loop {
        match rx.try_recv() {
            Ok(item) => {
                batched += item.0.len();
                batch.push(item);
                if batched < XDP_BATCH {
                    continue;
                }
            }
            Err(TryRecvError::Empty) if batch.is_empty() => {
                std::thread::sleep(Duration::from_micros(1));
                if xsk.needs_wakeup() && xsk.in_flight() > 0 {
                    xsk.kick();
                    out.calls += 1;
                }
                xsk.reap();
                continue;
            }
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => closed = true,
        }
        for (dests, payload) in batch.drain(..) {
            if out.per_dest.len() < dests.len() {
                out.per_dest.resize(dests.len(), 0);
            }
            let descs = if multi_buffer { 2 } else { 1 };
            let shared = if multi_buffer {
                wait_room(&mut xsk, 1, &mut out);
                xsk.write_shared(&payload)
            } else {
                None
            };
            for (i, &d) in dests.iter().enumerate() {
                wait_room(&mut xsk, descs, &mut out);
                hdrs.write(&mut hdr, d, payload.len());
                let written = match &shared {
                    Some(p) => xsk.write_chained(&hdr, p),
                    None if multi_buffer => false,
                    None => xsk.write(&[&hdr, &payload]),
                };
                if written {
                    out.per_dest[i] += 1;
                } else {
                    out.failed += 1;
                }
                if xsk.commit_due(XDP_BATCH) {
                    xsk.commit();
                    if xsk.needs_wakeup() {
                        xsk.kick();
                        out.calls += 1;
                    }
                }
            }
            if let Some(p) = shared {
                xsk.release_shared(p);
            }
            // SYNC: Relaxed; a progress count.
            sent.fetch_add(dests.len() as u64, Ordering::Relaxed);
        }
        batched = 0;
        xsk.commit();
        if xsk.needs_wakeup() {
            xsk.kick();
            out.calls += 1;
        }
        xsk.reap();
        if closed {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_millis(100);
    while xsk.in_flight() > 0 && Instant::now() < deadline {
        xsk.kick();
        out.calls += 1;
        if xsk.reap() == 0 {
            std::thread::sleep(Duration::from_micros(10));
        }
    }
    out
}

/// Commits, reaps and kicks until a frame is free and the TX ring has
/// room for `descs` more descriptors.
fn wait_room(xsk: &mut XdpTx, descs: u32, out: &mut Sent) {
    while !xsk.has_room_for(descs) {
        xsk.commit();
        if xsk.reap() > 0 && xsk.has_room_for(descs) {
            break;
        }
        if xsk.needs_wakeup() {
            xsk.kick();
            out.calls += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_headers_are_ipv4_udp_with_a_valid_header_checksum() {
        let h = Headers {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: "198.18.0.1:8000".parse().unwrap(),
        };
        let mut hdr = [0u8; 42];
        h.write(&mut hdr, "198.19.250.7:9000".parse().unwrap(), 1228);
        assert_eq!(hdr[..6], [2, 0, 0, 0, 0, 2]);
        assert_eq!(hdr[12..14], [0x08, 0x00]);
        assert_eq!(u16::from_be_bytes([hdr[16], hdr[17]]), 20 + 8 + 1228);
        assert_eq!(hdr[30..34], [198, 19, 250, 7]);
        assert_eq!(u16::from_be_bytes([hdr[36], hdr[37]]), 9000);
        assert_eq!(u16::from_be_bytes([hdr[38], hdr[39]]), 8 + 1228);
        // A header with its checksum in place sums to 0xffff.
        let mut sum: u32 = hdr[14..34]
            .chunks_exact(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
    }
}
