//! The peer: the same path written the way Agave's streamer and
//! sigverify stage do it today.
//!
//! - **Receive**: one thread per socket, a `std` UDP socket with the
//!   net-udp tile's buffer sizes. It blocks for the first datagram,
//!   then reads without blocking until it has [`PACKETS_PER_BATCH`] or
//!   [`COALESCE`] passed (`recvmmsg` with `MSG_WAITFORONE` into a
//!   batch resized to 64 default packets, as Agave's `recv_from` does),
//!   and sends the [`PacketBatch`] over a crossbeam channel. Batches
//!   come from a recycler (a pool the last stage gives them back to),
//!   as Agave's `PacketBatchRecycler` does.
//! - **Dedup**: a thread that hashes each packet's data (xxh3-64, the
//!   dedup tile's hash) and marks the repeats `discard`, keeping the
//!   batch whole (Agave's dedup marks, it does not remove). The filter
//!   is exact and remembers the last 65 536 distinct hashes, the dedup
//!   tile's depth: Agave's `Deduper` is a probabilistic bit filter that
//!   also drops a few first sights; an exact one drops exactly what the
//!   dedup tile drops, so the two pipelines' counts can be checked.
//! - **Verify**: a thread that computes [`payload_digest`] over every
//!   kept packet (the verify tile's work) and passes the batch on.
//! - **Send**: a thread that sends the kept packets of each batch to the
//!   collector with `sendmmsg` (Agave's `batch_send`) from a socket of
//!   its own, then gives the batch back to the recycler. In memory, the
//!   last thread is the collector instead.
//!
//! In memory a generator thread takes the receiver's place: it fills
//! batches from the list (the `gen` tile's order and passes) and sends
//! them on the first channel.
//!
//! Channels are bounded to [`CHANNEL_BATCHES`] batches (4 096 packets
//! when full, the depth of tilewire's links) and a full one blocks its
//! sender, like a reliable link. Agave's are unbounded and its
//! sigverify sheds what piles up; an unbounded queue under a saturating
//! load only grows (memory, latency), which would measure the queue.
//! Threads are not pinned (Agave does not pin its streamer threads).

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use tilewire_pipeline::kinds::verify::payload_digest;
use tilewire_shmem::clock::mono_ns;
use xxhash_rust::xxh3::xxh3_64;

use super::collect::Collector;
use super::packet::{Packet, PacketBatch, PACKETS_PER_BATCH};
use super::source::RateLimit;
use super::sys;
use super::traffic::{Sequence, Traffic};

/// How long the receiver gathers a batch after its first packet.
pub(super) const COALESCE: Duration = Duration::from_millis(1);
/// Batches a channel holds.
pub(super) const CHANNEL_BATCHES: usize = 64;
/// Distinct hashes the dedup remembers (the dedup tile's default depth).
const DEDUP_DEPTH: usize = 65_536;
/// The receive socket's read timeout: how soon the receiver notices the
/// end of the run when nothing comes.
const READ_TIMEOUT: Duration = Duration::from_millis(50);
/// Socket buffer sizes, as the net-udp tile asks.
pub(super) const SOCK_BUF: usize = 4 << 20;

/// The pool of empty batches.
#[derive(Debug, Clone)]
struct Recycler {
    put: Sender<PacketBatch>,
    get: Receiver<PacketBatch>,
}

impl Recycler {
    fn new() -> Recycler {
        let (put, get) = bounded(4 * CHANNEL_BATCHES);
        Recycler { put, get }
    }

    fn allocate(&self) -> PacketBatch {
        self.get
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(PACKETS_PER_BATCH))
    }

    fn recycle(&self, mut batch: PacketBatch) {
        batch.clear();
        let _ = self.put.try_send(batch);
    }
}

/// The peer's counts, shared with the main thread.
#[derive(Debug, Default)]
pub(super) struct PeerCounts {
    /// Packets the receiver (or the generator) put into batches.
    pub received: AtomicU64,
    /// Duplicates the dedup marked.
    pub dups: AtomicU64,
    /// Packets verified.
    pub verified: AtomicU64,
    /// Wrapping sum of their digests.
    pub digest: AtomicU64,
    /// Packets the kernel took from the sender.
    pub sent: AtomicU64,
    /// Packets the kernel refused.
    pub send_errors: AtomicU64,
    /// The generator's packets handed out (in memory).
    pub generated: AtomicU64,
}

/// Relaxed add for a counter only this thread writes.
#[inline]
fn bump(c: &AtomicU64, n: u64) {
    // SYNC: Relaxed; single-writer counters the main thread samples.
    c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

/// Where the peer's packets come from and go.
pub(super) enum Ends {
    /// Receive on `sock`, send from `tx_sock` to `dest`.
    Udp {
        sock: UdpSocket,
        tx_sock: UdpSocket,
        dest: SocketAddrV4,
    },
    /// The list played by a generator thread; the collector is the last
    /// stage.
    Memory {
        traffic: Arc<Traffic>,
        rate: RateLimit,
        collector: Collector,
    },
}

/// A UDP socket as the peer's receiver and sender use it.
///
/// # Errors
/// Bind or setsockopt failed.
pub(super) fn socket(addr: SocketAddrV4) -> Result<UdpSocket, String> {
    let s = UdpSocket::bind(addr).map_err(|e| format!("peer socket {addr}: {e}"))?;
    sys::set_buffers(s.as_raw_fd(), SOCK_BUF).map_err(|e| format!("peer socket buffers: {e}"))?;
    Ok(s)
}

/// The body of one of the peer's threads.
type Stage = Box<dyn FnOnce() -> Option<Collector> + Send>;

/// The running peer.
pub(super) struct Peer {
    pub counts: Arc<PeerCounts>,
    exit: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Option<Collector>>>,
}

impl Peer {
    /// Starts the four threads; `netns`, if any, is entered by each
    /// first.
    pub(super) fn start(ends: Ends, netns: Option<String>) -> Peer {
        let counts = Arc::new(PeerCounts::default());
        let exit = Arc::new(AtomicBool::new(false));
        let recycler = Recycler::new();
        let (to_dedup, dedup_in) = bounded::<PacketBatch>(CHANNEL_BATCHES);
        let (to_verify, verify_in) = bounded::<PacketBatch>(CHANNEL_BATCHES);
        let (to_last, last_in) = bounded::<PacketBatch>(CHANNEL_BATCHES);
        let mut threads = Vec::new();
        let spawn = |name: &str, f: Stage| {
            let ns = netns.clone();
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || {
                    if let Some(ns) = ns {
                        if tilewire_aio::netns::enter_thread(&ns).is_err() {
                            return None;
                        }
                    }
                    f()
                })
                .expect("spawning a peer thread")
        };
        let (first, last): (Stage, Stage) = match ends {
            Ends::Udp {
                sock,
                tx_sock,
                dest,
            } => {
                let (c, e, r) = (counts.clone(), exit.clone(), recycler.clone());
                let recv = Box::new(move || {
                    receiver(&sock, &to_dedup, &r, &c, &e);
                    None
                });
                let (c, r) = (counts.clone(), recycler.clone());
                let send = Box::new(move || {
                    sender(&tx_sock, dest, &last_in, &r, &c);
                    None
                });
                (recv, send)
            }
            Ends::Memory {
                traffic,
                rate,
                mut collector,
            } => {
                let (c, e, r) = (counts.clone(), exit.clone(), recycler.clone());
                let gen = Box::new(move || {
                    generator(&traffic, rate, &to_dedup, &r, &c, &e);
                    None
                });
                let r = recycler.clone();
                let sink = Box::new(move || {
                    for batch in last_in.iter() {
                        let w = collector.window();
                        let now = mono_ns();
                        for p in batch.iter().filter(|p| !p.meta.discard) {
                            collector.packet(p.data(), now.saturating_sub(p.meta.sent_ns), w);
                        }
                        collector.publish();
                        r.recycle(batch);
                    }
                    Some(collector)
                });
                (gen, sink)
            }
        };
        threads.push(spawn("peer-recv", first));
        let c = counts.clone();
        threads.push(spawn(
            "peer-dedup",
            Box::new(move || {
                dedup(&dedup_in, &to_verify, &c);
                None
            }),
        ));
        let c = counts.clone();
        threads.push(spawn(
            "peer-verify",
            Box::new(move || {
                verify(&verify_in, &to_last, &c);
                None
            }),
        ));
        threads.push(spawn("peer-send", last));
        Peer {
            counts,
            exit,
            threads,
        }
    }

    /// Stops the receiver (or generator); the others end as their input
    /// channel empties and closes. Returns the collector, in memory.
    pub(super) fn stop(self) -> Option<Collector> {
        // SYNC: Relaxed; the first thread polls it, no data rides on it.
        self.exit.store(true, Ordering::Relaxed);
        let mut col = None;
        for t in self.threads {
            if let Ok(Some(c)) = t.join() {
                col = Some(c);
            }
        }
        col
    }
}

/// Agave's `recv_from`: a batch of up to 64, the first datagram waited
/// for, the rest taken until the batch is full or [`COALESCE`] passed.
fn recv_from(batch: &mut PacketBatch, sock: &UdpSocket) -> std::io::Result<usize> {
    let fd = sock.as_raw_fd();
    let mut i = 0;
    sock.set_nonblocking(false)?;
    let start = Instant::now();
    loop {
        batch.resize(PACKETS_PER_BATCH, Packet::default());
        match sys::recv_mmsg(fd, &mut batch[i..]) {
            Err(_) if i > 0 => {
                if start.elapsed() > COALESCE {
                    break;
                }
            }
            Err(e) => {
                batch.clear();
                return Err(e);
            }
            Ok(n) => {
                if i == 0 {
                    sock.set_nonblocking(true)?;
                }
                i += n;
                if start.elapsed() > COALESCE || i >= PACKETS_PER_BATCH {
                    break;
                }
            }
        }
    }
    batch.truncate(i);
    Ok(i)
}

fn receiver(
    sock: &UdpSocket,
    out: &Sender<PacketBatch>,
    recycler: &Recycler,
    counts: &PeerCounts,
    exit: &AtomicBool,
) {
    let _ = sock.set_read_timeout(Some(READ_TIMEOUT));
    // SYNC: Relaxed; see Peer::stop.
    while !exit.load(Ordering::Relaxed) {
        let mut batch = recycler.allocate();
        match recv_from(&mut batch, sock) {
            Ok(n) if n > 0 => {
                bump(&counts.received, n as u64);
                if out.send(batch).is_err() {
                    return;
                }
            }
            _ => recycler.recycle(batch),
        }
    }
}

fn generator(
    traffic: &Traffic,
    mut rate: RateLimit,
    out: &Sender<PacketBatch>,
    recycler: &Recycler,
    counts: &PeerCounts,
    exit: &AtomicBool,
) {
    let mut seq = Sequence::default();
    // SYNC: Relaxed; see Peer::stop.
    while !exit.load(Ordering::Relaxed) {
        let n = rate.wait(PACKETS_PER_BATCH);
        if n == 0 {
            continue;
        }
        let mut batch = recycler.allocate();
        batch.resize(n, Packet::default());
        let now = mono_ns();
        for p in batch.iter_mut() {
            // No time in the payload: the gen tile writes none either.
            p.meta.size = seq.fill(traffic, &mut p.buffer, 0);
            p.meta.sent_ns = now;
            p.meta.discard = false;
        }
        bump(&counts.received, n as u64);
        if out.send(batch).is_err() {
            return;
        }
        // SYNC: Relaxed; a progress count.
        counts.generated.store(seq.taken, Ordering::Relaxed);
    }
}

/// A hasher that passes a u64 through: the keys are hashes already.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The last [`DEDUP_DEPTH`] distinct hashes.
struct Recent {
    set: HashSet<u64, BuildHasherDefault<PassThrough>>,
    ring: Vec<u64>,
    next: usize,
}

impl Recent {
    fn new() -> Recent {
        Recent {
            set: HashSet::with_capacity_and_hasher(2 * DEDUP_DEPTH, Default::default()),
            ring: Vec::with_capacity(DEDUP_DEPTH),
            next: 0,
        }
    }

    /// True for a first sight (remembered now), false for a repeat.
    fn insert(&mut self, h: u64) -> bool {
        if !self.set.insert(h) {
            return false;
        }
        if self.ring.len() < DEDUP_DEPTH {
            self.ring.push(h);
        } else {
            let old = std::mem::replace(&mut self.ring[self.next], h);
            self.set.remove(&old);
            self.next = (self.next + 1) % DEDUP_DEPTH;
        }
        true
    }
}

fn dedup(input: &Receiver<PacketBatch>, out: &Sender<PacketBatch>, counts: &PeerCounts) {
    let mut recent = Recent::new();
    loop {
        let mut batch = match input.recv_timeout(Duration::from_millis(100)) {
            Ok(b) => b,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut dups = 0;
        for p in batch.iter_mut() {
            if !recent.insert(xxh3_64(p.data())) {
                p.meta.discard = true;
                dups += 1;
            }
        }
        bump(&counts.dups, dups);
        if out.send(batch).is_err() {
            return;
        }
    }
}

fn verify(input: &Receiver<PacketBatch>, out: &Sender<PacketBatch>, counts: &PeerCounts) {
    let mut digest = 0u64;
    for batch in input.iter() {
        let mut n = 0;
        for p in batch.iter().filter(|p| !p.meta.discard) {
            digest = digest.wrapping_add(payload_digest(p.data()));
            n += 1;
        }
        bump(&counts.verified, n);
        // SYNC: Relaxed; see bump.
        counts.digest.store(digest, Ordering::Relaxed);
        if out.send(batch).is_err() {
            return;
        }
    }
}

fn sender(
    sock: &UdpSocket,
    dest: SocketAddrV4,
    input: &Receiver<PacketBatch>,
    recycler: &Recycler,
    counts: &PeerCounts,
) {
    let fd = sock.as_raw_fd();
    for batch in input.iter() {
        let payloads: Vec<&[u8]> = batch
            .iter()
            .filter(|p| !p.meta.discard)
            .map(Packet::data)
            .collect();
        let (sent, failed) = sys::send_mmsg(fd, &payloads, dest);
        drop(payloads);
        bump(&counts.sent, sent);
        bump(&counts.send_errors, failed);
        recycler.recycle(batch);
    }
}
