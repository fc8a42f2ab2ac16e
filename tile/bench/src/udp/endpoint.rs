//! The implementations under test behind one small API: make a socket,
//! send a run of packets, receive a burst into a callback. Plus the
//! payload every packet carries and the checker every receiver runs.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr, UdpSocket};

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState, BATCH_SIZE};
use tilewire_aio::udp::{Engine, UdpAio, UdpConfig};
use tilewire_aio::{Aio, PktInfo, SendError, SendErrorKind};

/// Packets per send call: the mmsg batch, and the most a sender writes
/// before looking at the clock again.
pub(super) const BURST: usize = 64;
/// `SO_SNDBUF` / `SO_RCVBUF` asked for (the kernel caps it at
/// `net.core.wmem_max` / `rmem_max` and doubles it).
pub(super) const SOCK_BUF: usize = 4 << 20;
/// Receive buffer per quinn-udp slot: room for a GRO-coalesced datagram.
const QUINN_RX_BUF: usize = 65_536;
/// Largest GSO transmit: its segments together must fit one UDP datagram.
const GSO_BYTES_MAX: usize = 65_000;

/// An implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Impl {
    /// `UdpAio` with the io_uring engine.
    Uring,
    /// `UdpAio` with sendmmsg/recvmmsg batches.
    Mmsg,
    /// quinn-udp, one datagram per `sendmsg`.
    Quinn,
    /// quinn-udp with GSO: up to [`BURST`] segments per `sendmsg`.
    QuinnGso,
}

impl Impl {
    pub(super) const ALL: [Impl; 4] = [Impl::Uring, Impl::Mmsg, Impl::Quinn, Impl::QuinnGso];

    pub(super) fn name(self) -> &'static str {
        match self {
            Impl::Uring => "tilewire-uring",
            Impl::Mmsg => "tilewire-mmsg",
            Impl::Quinn => "quinn-udp",
            Impl::QuinnGso => "quinn-udp-gso",
        }
    }

    /// GSO changes only the send path: receive and ping-pong of
    /// quinn-udp-gso would repeat quinn-udp's rows.
    pub(super) fn receives(self) -> bool {
        self != Impl::QuinnGso
    }
}

/// One socket of one implementation.
pub(super) enum Endpoint {
    Aio(Box<UdpAio>),
    Quinn(Box<QuinnEndpoint>),
}

/// A std socket driven through quinn-udp, with its receive slots.
pub(super) struct QuinnEndpoint {
    sock: UdpSocket,
    state: UdpSocketState,
    /// Segments per transmit; 1 = GSO off.
    segments: usize,
    sent: u64,
    errors: u64,
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
}

/// Why an implementation has no row: it cannot be made on this host.
pub(super) type Unavailable = String;

impl Endpoint {
    /// A socket of `imp` bound to `ip:0`, with large socket buffers.
    ///
    /// # Errors
    /// Why `imp` cannot be used here (engine not built, GSO missing, bind
    /// refused), as a note for the output.
    pub(super) fn bind(imp: Impl, ip: IpAddr, sz: usize) -> Result<Endpoint, Unavailable> {
        let bind = SocketAddr::new(ip, 0);
        let engine = match imp {
            Impl::Uring => Engine::Uring,
            Impl::Mmsg => Engine::Mmsg,
            Impl::Quinn | Impl::QuinnGso => return QuinnEndpoint::bind(imp, bind, sz),
        };
        let config = UdpConfig {
            engine,
            send_buf: Some(SOCK_BUF),
            recv_buf: Some(SOCK_BUF),
            ..UdpConfig::new(bind)
        };
        match UdpAio::bind(&config) {
            Ok(aio) => Ok(Endpoint::Aio(Box::new(aio))),
            // While the io_uring engine was not built, this was its
            // `EngineNotBuilt`; where io_uring is denied it is the failing
            // setup step. Either way: a note, and no row.
            Err(e) => Err(format!(
                "{}: UdpAio::bind failed: {e}; row left out",
                imp.name()
            )),
        }
    }

    pub(super) fn local_addr(&self) -> SocketAddr {
        match self {
            Endpoint::Aio(a) => a.local_addr(),
            Endpoint::Quinn(q) => q.sock.local_addr().expect("bound socket"),
        }
    }

    /// Packets per [`send_run`](Self::send_run) that suit this endpoint:
    /// one full GSO transmit for quinn-udp-gso (so no run ends in a short
    /// one), [`BURST`] otherwise.
    pub(super) fn send_burst(&self) -> usize {
        match self {
            Endpoint::Quinn(q) if q.segments > 1 => q.segments,
            _ => BURST,
        }
    }

    /// Offers packets `i` of `bufs` (consecutive `sz`-byte chunks, `count`
    /// of them) to `dest`, in order; returns how many the implementation
    /// took (stops at the first it refused for lack of room).
    pub(super) fn send_run(
        &mut self,
        bufs: &[u8],
        sz: usize,
        count: usize,
        dest: SocketAddr,
    ) -> usize {
        match self {
            Endpoint::Aio(aio) => {
                let mut pkts = [PktInfo::new(&[]); BURST];
                for (i, pkt) in pkts[..count].iter_mut().enumerate() {
                    *pkt = PktInfo::new(&bufs[i * sz..(i + 1) * sz]);
                    pkt.meta.addr = Some(dest);
                }
                match aio.send(&pkts[..count], true) {
                    Ok(()) => count,
                    Err(SendError {
                        kind: SendErrorKind::Again,
                        batch_idx,
                        ..
                    }) => batch_idx,
                    // Inval: a bug of the bench (length, address); the
                    // packet is counted by the aio's stats as tx_inval.
                    Err(e) => e.batch_idx + 1,
                }
            }
            Endpoint::Quinn(q) => q.send_run(bufs, sz, count, dest),
        }
    }

    /// Pushes out whatever an aio still holds, for at most `budget`
    /// attempts; true when nothing is left.
    pub(super) fn flush(&mut self, budget: usize) -> bool {
        match self {
            Endpoint::Aio(aio) => {
                for _ in 0..budget {
                    if aio.tx_pending() == 0 {
                        return true;
                    }
                    let _ = aio.send(&[], true);
                    std::hint::spin_loop();
                }
                aio.tx_pending() == 0
            }
            Endpoint::Quinn(_) => true,
        }
    }

    /// Packets the kernel took for transmission, and packets lost to
    /// errors (kernel errors, refused packets), since bind.
    pub(super) fn tx_counts(&self) -> (u64, u64) {
        match self {
            Endpoint::Aio(aio) => {
                let s = aio.stats();
                (s.tx_pkts, s.tx_dropped + s.tx_inval)
            }
            Endpoint::Quinn(q) => (q.sent, q.errors),
        }
    }

    /// Receives one burst without blocking and hands each datagram to
    /// `each(bytes, source)`; returns how many.
    pub(super) fn recv_burst(&mut self, each: &mut dyn FnMut(&[u8], Option<SocketAddr>)) -> usize {
        match self {
            Endpoint::Aio(aio) => aio.poll(&mut Visit(each)),
            Endpoint::Quinn(q) => q.recv_burst(each),
        }
    }
}

/// An aio that shows each packet to a callback and takes it.
struct Visit<'a>(&'a mut dyn FnMut(&[u8], Option<SocketAddr>));

impl Aio for Visit<'_> {
    fn send(&mut self, batch: &[PktInfo<'_>], _flush: bool) -> Result<(), SendError> {
        for pkt in batch {
            (self.0)(pkt.buf, pkt.meta.addr);
        }
        Ok(())
    }
}

impl QuinnEndpoint {
    fn bind(imp: Impl, bind: SocketAddr, sz: usize) -> Result<Endpoint, Unavailable> {
        let fail = |what: &str, e: io::Error| format!("{}: {what}: {e}; row left out", imp.name());
        let sock = UdpSocket::bind(bind).map_err(|e| fail("bind", e))?;
        let state = UdpSocketState::new(UdpSockRef::from(&sock))
            .map_err(|e| fail("UdpSocketState::new", e))?;
        let (r, s) = (UdpSockRef::from(&sock), UdpSockRef::from(&sock));
        state
            .set_send_buffer_size(s, SOCK_BUF)
            .map_err(|e| fail("SO_SNDBUF", e))?;
        state
            .set_recv_buffer_size(r, SOCK_BUF)
            .map_err(|e| fail("SO_RCVBUF", e))?;
        let segments = if imp == Impl::QuinnGso {
            let max = state.max_gso_segments();
            if max < 2 {
                return Err(format!(
                    "{}: max_gso_segments() is {max}: no GSO on this host; row left out",
                    imp.name()
                ));
            }
            BURST.min(max).min(GSO_BYTES_MAX / sz.max(1))
        } else {
            1
        };
        Ok(Endpoint::Quinn(Box::new(QuinnEndpoint {
            sock,
            state,
            segments,
            sent: 0,
            errors: 0,
            bufs: vec![vec![0u8; QUINN_RX_BUF]; BATCH_SIZE],
            meta: vec![RecvMeta::default(); BATCH_SIZE],
        })))
    }

    fn send_run(&mut self, bufs: &[u8], sz: usize, count: usize, dest: SocketAddr) -> usize {
        let mut taken = 0;
        while taken < count {
            let k = self.segments.min(count - taken);
            let transmit = Transmit {
                destination: dest,
                ecn: None,
                contents: &bufs[taken * sz..(taken + k) * sz],
                segment_size: (self.segments > 1).then_some(sz),
                src_ip: None,
            };
            match self.state.try_send(UdpSockRef::from(&self.sock), &transmit) {
                Ok(()) => self.sent += k as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // What quinn-udp's `send` would log and swallow: counted.
                Err(_) => self.errors += k as u64,
            }
            taken += k;
        }
        taken
    }

    fn recv_burst(&mut self, each: &mut dyn FnMut(&[u8], Option<SocketAddr>)) -> usize {
        let mut slices: [IoSliceMut<'_>; BATCH_SIZE] = {
            let mut it = self.bufs.iter_mut();
            std::array::from_fn(|_| IoSliceMut::new(it.next().expect("BATCH_SIZE bufs")))
        };
        let n = match self
            .state
            .recv(UdpSockRef::from(&self.sock), &mut slices, &mut self.meta)
        {
            Ok(n) => n,
            Err(_) => return 0,
        };
        let mut pkts = 0;
        for (meta, buf) in self.meta[..n].iter().zip(&slices[..n]) {
            // A GRO-coalesced datagram holds `len / stride` packets.
            let stride = meta.stride.max(1);
            for pkt in buf[..meta.len].chunks(stride) {
                each(pkt, Some(meta.addr));
                pkts += 1;
            }
        }
        pkts
    }
}

/// The payload: the sequence number in the first 8 bytes (little endian),
/// then a fixed pattern that depends on the length, so a shifted, torn or
/// truncated packet shows.
pub(super) fn pattern(sz: usize) -> Vec<u8> {
    (0..sz)
        .map(|j| (j as u8).wrapping_mul(167).wrapping_add(sz as u8 ^ 0x5a))
        .collect()
}

/// `count` packets of `sz` bytes with sequence numbers `seq..`, written
/// into `bufs` (already holding the pattern: only the numbers change).
pub(super) fn stamp(bufs: &mut [u8], sz: usize, seq: u64, count: usize) {
    for (i, pkt) in bufs.chunks_exact_mut(sz).take(count).enumerate() {
        pkt[..8].copy_from_slice(&(seq + i as u64).to_le_bytes());
    }
}

/// Checks every packet a receiver got: length, pattern, source, and that
/// no sequence number arrives twice (a bitmap, so reordering is fine).
pub(super) struct Checker {
    template: Vec<u8>,
    source: Option<SocketAddr>,
    seen: Vec<u64>,
    pub received: u64,
    pub errors: u64,
    /// The first few errors, described.
    pub notes: Vec<String>,
}

/// Sequence numbers above this are counted as corrupt rather than grown
/// into the bitmap.
const SEQ_LIMIT: u64 = 1 << 32;

impl Checker {
    pub(super) fn new(sz: usize, source: Option<SocketAddr>) -> Checker {
        Checker {
            template: pattern(sz),
            source,
            seen: Vec::with_capacity(1 << 16),
            received: 0,
            errors: 0,
            notes: Vec::new(),
        }
    }

    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.notes.len() < 8 {
            self.notes.push(what);
        }
    }

    /// Checks one packet; returns its sequence number when it is good.
    pub(super) fn check(&mut self, pkt: &[u8], src: Option<SocketAddr>) -> Option<u64> {
        self.received += 1;
        if pkt.len() != self.template.len() {
            let want = self.template.len();
            self.error(format!("packet of {} bytes, want {want}", pkt.len()));
            return None;
        }
        if self.source.is_some() && src != self.source {
            self.error(format!("packet from {src:?}, want {:?}", self.source));
            return None;
        }
        if pkt.len() < 8 || pkt[8..] != self.template[8..] {
            self.error("payload pattern differs".to_string());
            return None;
        }
        let seq = u64::from_le_bytes(pkt[..8].try_into().expect("8 bytes"));
        if seq >= SEQ_LIMIT {
            self.error(format!("sequence number {seq} out of range"));
            return None;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.seen.len() {
            self.seen.resize((word + 1).next_power_of_two(), 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.error(format!("sequence number {seq} received twice"));
            return None;
        }
        self.seen[word] |= 1 << bit;
        Some(seq)
    }

    /// After the run: numbers at or past `sent` were never sent.
    pub(super) fn finish(&mut self, sent: u64) {
        let first_word = (sent / 64) as usize;
        let mut bogus = 0u64;
        for (w, word) in self.seen.iter().enumerate().skip(first_word) {
            let mask = if w == first_word {
                !0u64 << (sent % 64)
            } else {
                !0
            };
            bogus += u64::from((word & mask).count_ones());
        }
        if bogus > 0 {
            self.error(format!(
                "{bogus} sequence numbers at or past {sent}, never sent"
            ));
            self.errors += bogus - 1;
        }
    }
}
