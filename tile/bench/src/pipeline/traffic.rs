//! The traffic both pipelines get, and the check every delivered packet
//! passes.
//!
//! The list is the fixture mix ([`tilewire_aio::fixture::mix`]): 1024
//! datagrams of transactions, shreds, gossip and repair, some of them
//! duplicates of an earlier one, byte for byte. Each payload's first 24
//! bytes are the bench's own:
//!
//! ```text
//!  0..8   the pass over the list (little-endian), 0 for the first
//!  8..16  the index in the list of the packet (of its original, for a duplicate)
//! 16..24  when it was sent (CLOCK_MONOTONIC ns; UDP sources only)
//! ```
//!
//! so a duplicate stays a duplicate of its original within a pass, every
//! pass is new to a dedup, and the collector knows each packet: which it
//! is (pass and index), that it was sent, that it arrived only once,
//! that its length and last bytes are right, and how long it took. The
//! `gen` tile writes the pass the same way (it XORs the pass into the
//! first 8 payload bytes, which are 0 in the list it plays).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use tilewire_aio::fixture::{self, Fixture, FixtureFrame, FrameClass};
use tilewire_aio::frame::UdpFrame;

/// Bytes at the front of every payload the bench writes.
pub(super) const STAMP_LEN: usize = 24;

/// One datagram of the list.
#[derive(Debug, Clone)]
pub(super) struct Item {
    /// The UDP payload, the pass and time left 0.
    pub payload: Vec<u8>,
    /// The whole Ethernet frame around it, as the `gen` tile plays it.
    pub frame: Vec<u8>,
    /// A repeat of an earlier item.
    pub dup: bool,
    /// The item it repeats (itself, for an original).
    pub original: usize,
}

/// The list, and what a number of packets sent from it holds.
#[derive(Debug)]
pub(super) struct Traffic {
    pub items: Vec<Item>,
    /// Duplicates in one pass.
    pub dups_per_pass: u64,
}

impl Traffic {
    /// The fixture mix, stamped with each item's index.
    ///
    /// # Errors
    /// The embedded fixture does not parse, or a frame is too short.
    pub(super) fn mix() -> Result<Traffic, String> {
        let fx = fixture::mix();
        let mut items: Vec<Item> = Vec::with_capacity(fx.len());
        for (i, f) in fx.iter().enumerate() {
            if !f.class.is_well_formed_udp() {
                continue;
            }
            let mut frame = f.bytes.to_vec();
            let mut view = UdpFrame::new_checked(&mut frame[..]).map_err(|e| e.to_string())?;
            if view.payload().len() < STAMP_LEN {
                return Err(format!(
                    "fixture frame {i}: payload under {STAMP_LEN} bytes"
                ));
            }
            // Every frame of the mix is well-formed, so list and fixture
            // indices agree.
            let index = f.dup_of.unwrap_or(i);
            let p = view.payload_mut();
            p[..STAMP_LEN].fill(0);
            p[8..16].copy_from_slice(&(index as u64).to_le_bytes());
            view.fill_checksums();
            let payload = view.payload().to_vec();
            items.push(Item {
                payload,
                frame,
                dup: f.class == FrameClass::Dup,
                original: index,
            });
        }
        if items.len() != fx.len() {
            return Err("the mix holds frames that are not well-formed UDP".into());
        }
        let dups_per_pass = items.iter().filter(|i| i.dup).count() as u64;
        Ok(Traffic {
            items,
            dups_per_pass,
        })
    }

    /// Packets in the list.
    pub(super) fn len(&self) -> u64 {
        self.items.len() as u64
    }

    /// Of the first `sent` packets played from the list (round and
    /// round), how many are duplicates.
    pub(super) fn dups_in(&self, sent: u64) -> u64 {
        let n = self.len();
        let part = (sent % n) as usize;
        sent / n * self.dups_per_pass + self.items[..part].iter().filter(|i| i.dup).count() as u64
    }

    /// The list as a fixture file for the `gen` tile, written to a path
    /// of its own in the temporary directory (removed when the returned
    /// guard drops).
    ///
    /// # Errors
    /// The file cannot be written.
    pub(super) fn gen_file(&self) -> Result<TempFile, String> {
        let frames: Vec<FixtureFrame<'_>> = self
            .items
            .iter()
            .zip(fixture::mix().iter())
            .map(|(it, f)| FixtureFrame {
                class: f.class,
                dup_of: f.dup_of,
                bytes: &it.frame,
            })
            .collect();
        let fx = Fixture::from_frames(frames).map_err(|e| format!("the bench's fixture: {e}"))?;
        let path = std::env::temp_dir().join(format!(
            "tilewire-bench-pipeline-{}.bin",
            std::process::id()
        ));
        std::fs::write(&path, fx.encode()).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(TempFile(path))
    }
}

/// A file removed when dropped.
#[derive(Debug)]
pub(super) struct TempFile(pub PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Plays the list in order, round and round: which item goes next, in
/// which pass, with which send time. A duplicate carries its original's
/// send time (of the same pass), so that its payload is its original's,
/// byte for byte, as a dedup must see it.
#[derive(Debug, Default, Clone)]
pub(super) struct Sequence {
    next: usize,
    pass: u64,
    /// The send time of each item in the current pass.
    stamps: Vec<u64>,
    /// Packets handed out.
    pub taken: u64,
}

impl Sequence {
    /// Writes the next packet's payload into `buf` (pass and send time
    /// stamped) and returns its length.
    #[inline]
    pub(super) fn fill(&mut self, t: &Traffic, buf: &mut [u8], now_ns: u64) -> usize {
        let (i, pass, sent) = self.take(t, now_ns);
        let p = &t.items[i].payload;
        buf[..p.len()].copy_from_slice(p);
        stamp(&mut buf[..p.len()], pass, sent);
        p.len()
    }

    /// The next item: its index, pass and the send time to stamp (`now_ns`
    /// for an original, its original's for a duplicate). Moves on.
    #[inline]
    pub(super) fn take(&mut self, t: &Traffic, now_ns: u64) -> (usize, u64, u64) {
        if self.stamps.len() != t.items.len() {
            self.stamps = vec![0; t.items.len()];
        }
        let i = self.next;
        let sent = if t.items[i].dup {
            self.stamps[t.items[i].original]
        } else {
            self.stamps[i] = now_ns;
            now_ns
        };
        let r = (i, self.pass, sent);
        self.taken += 1;
        self.next += 1;
        if self.next == t.items.len() {
            self.next = 0;
            self.pass += 1;
        }
        r
    }
}

/// Writes `pass` and `sent_ns` into a payload of the list.
#[inline]
pub(super) fn stamp(payload: &mut [u8], pass: u64, sent_ns: u64) {
    payload[..8].copy_from_slice(&pass.to_le_bytes());
    payload[16..24].copy_from_slice(&sent_ns.to_le_bytes());
}

/// The send time stamped into a payload (0 if it is too short).
#[inline]
pub(super) fn sent_ns(payload: &[u8]) -> u64 {
    payload
        .get(16..24)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

/// Why a delivered packet failed its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bad {
    /// Shorter than the stamp, or an index past the list or of a
    /// duplicate (which cannot be delivered under its own index).
    NotOurs,
    /// Length or last bytes differ from the item's.
    Changed,
    /// The same pass and index came out twice: both dedups missed it.
    Twice,
}

/// Checks delivered packets (see the module docs) and keeps what it saw.
#[derive(Debug)]
pub(super) struct Check {
    seen: Vec<u64>,
    pub good: u64,
    pub not_ours: u64,
    pub changed: u64,
    pub twice: u64,
    /// Highest pass seen.
    pub max_pass: u64,
}

impl Check {
    pub(super) fn new() -> Check {
        Check {
            seen: Vec::with_capacity(1 << 16),
            good: 0,
            not_ours: 0,
            changed: 0,
            twice: 0,
            max_pass: 0,
        }
    }

    /// Checks one delivered payload.
    #[inline]
    pub(super) fn payload(&mut self, t: &Traffic, p: &[u8]) -> Result<(), Bad> {
        let r = self.classify(t, p);
        match r {
            Ok(()) => self.good += 1,
            Err(Bad::NotOurs) => self.not_ours += 1,
            Err(Bad::Changed) => self.changed += 1,
            Err(Bad::Twice) => self.twice += 1,
        }
        r
    }

    fn classify(&mut self, t: &Traffic, p: &[u8]) -> Result<(), Bad> {
        if p.len() < STAMP_LEN {
            return Err(Bad::NotOurs);
        }
        let word = |r: std::ops::Range<usize>| u64::from_le_bytes(p[r].try_into().expect("8"));
        let (pass, index) = (word(0..8), word(8..16));
        let item = t.items.get(index as usize).ok_or(Bad::NotOurs)?;
        if item.dup || pass > 1 << 24 {
            return Err(Bad::NotOurs);
        }
        let n = item.payload.len();
        if p.len() != n || p[n - 8..] != item.payload[n - 8..] {
            return Err(Bad::Changed);
        }
        let id = pass * t.len() + index;
        let (w, bit) = ((id / 64) as usize, id % 64);
        if w >= self.seen.len() {
            self.seen.resize((w + 1).next_power_of_two(), 0);
        }
        if self.seen[w] & (1 << bit) != 0 {
            return Err(Bad::Twice);
        }
        self.seen[w] |= 1 << bit;
        self.max_pass = self.max_pass.max(pass);
        Ok(())
    }

    /// Packets that failed.
    pub(super) fn bad(&self) -> u64 {
        self.not_ours + self.changed + self.twice
    }

    /// Delivered packets the source never sent: an id at or past
    /// `sent` positions of the list. Call once, after the run.
    pub(super) fn never_sent(&self, sent: u64) -> u64 {
        let first = sent / 64;
        let mut n = 0u64;
        for (w, word) in self.seen.iter().enumerate().skip(first as usize) {
            let mask = if w as u64 == first {
                !0u64 << (sent % 64)
            } else {
                !0
            };
            n += u64::from((word & mask).count_ones());
        }
        n
    }
}

/// The address a namespace-less run uses for everything: loopback.
pub(super) const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A socket address on `ip`, port 0 (any).
pub(super) fn any_port(ip: Ipv4Addr) -> SocketAddrV4 {
    SocketAddrV4::new(ip, 0)
}
