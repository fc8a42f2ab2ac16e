//! Destination sets: a workspace object holding, for each set, the
//! addresses a retransmit tile sends each payload of that set to,
//! updatable at run time from any process.
//!
//! # Layout (words of 8 bytes)
//!
//! ```text
//! 0  magic   1  sets   2  most destinations a set holds
//! then per set: seq (odd while written), count, and `max` destinations of
//! 3 words (family and port, then the address's 16 bytes)
//! ```
//!
//! Each set has its own sequence lock: one writer per set at a time (an
//! updater), any number of readers (the retransmit tiles), who retry a
//! set being rewritten.

use core::sync::atomic::{fence, AtomicU64, Ordering};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tilewire_shmem::object::{
    check_join, check_new, magic, publish_magic, JoinError, NewError, ShmObject,
};
use tilewire_shmem::Region;

const KIND: &str = "destination sets";
const MAGIC: u64 = magic(b"tw.dest", 1);
const HDR_WORDS: usize = 3;
const DEST_WORDS: usize = 3;
/// Most sets an object holds.
pub const SETS_MAX: usize = 1 << 16;
/// Most destinations a set holds.
pub const DESTS_MAX: usize = 4096;
/// Times a reader tries a set being rewritten before it gives up.
const READ_TRIES: u32 = 64;

/// Destination sets: for each set, the addresses a retransmit tile sends
/// each payload of that set to, updatable at run time from any process
/// ([`DestSetsHandle::write`]). Each set has its own sequence lock: one
/// writer per set at a time, any number of readers, who retry a set
/// being rewritten.
#[derive(Debug)]
pub struct DestSets;

fn set_words(max: usize) -> usize {
    2 + max * DEST_WORDS
}

fn footprint(sets: usize, max: usize) -> Option<usize> {
    if sets == 0 || sets > SETS_MAX || max == 0 || max > DESTS_MAX {
        return None;
    }
    Some(8 * (HDR_WORDS + sets * set_words(max)))
}

impl ShmObject for DestSets {
    const KIND: &'static str = KIND;
    const MAGIC: u64 = MAGIC;
    const ALIGN: usize = 64;
    /// Sets, and the most destinations each holds.
    type Params = (usize, usize);

    fn footprint(&(sets, max): &(usize, usize)) -> Option<usize> {
        footprint(sets, max)
    }
}

/// Why a set could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DestError {
    /// No set of that number.
    #[error("there is no destination set {set} (sets 0 to {})", sets - 1)]
    NoSuchSet {
        /// The set asked for.
        set: usize,
        /// Sets the object holds.
        sets: usize,
    },
    /// More destinations than a set holds.
    #[error("{given} destinations, and a set holds at most {max}")]
    TooMany {
        /// Destinations given.
        given: usize,
        /// Most a set holds.
        max: usize,
    },
    /// The object is mapped read-only.
    #[error("the destination sets are mapped read-only")]
    ReadOnly,
}

impl DestSets {
    /// Formats `sets` empty sets of at most `max` destinations at `mem`.
    ///
    /// # Errors
    /// [`NewError::BadParams`] for sizes out of range, and what
    /// [`check_new`] finds.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(mem: Region<'_>, sets: usize, max: usize) -> Result<(), NewError> {
        let need = footprint(sets, max).ok_or(NewError::BadParams {
            what: "sets must be 1 to 65536 and destinations per set 1 to 4096",
        })?;
        check_new(&mem, Self::ALIGN, need)?;
        let words = mem.atomic_u64s(0, need / 8).ok_or(NewError::TooSmall {
            len: mem.len(),
            need,
        })?;
        publish_magic(&mem, 0);
        for w in &words[1..] {
            // SYNC: Relaxed; published by the Release store of the magic.
            w.store(0, Ordering::Relaxed);
        }
        // SYNC: as above.
        words[1].store(sets as u64, Ordering::Relaxed);
        // SYNC: as above.
        words[2].store(max as u64, Ordering::Relaxed);
        publish_magic(&mem, MAGIC);
        Ok(())
    }

    /// Joins the sets at `mem`.
    ///
    /// # Errors
    /// What [`check_join`] finds; [`JoinError::BadParams`] for stored
    /// sizes out of range or larger than `mem`.
    pub fn join(mem: Region<'_>) -> Result<DestSetsHandle<'_>, JoinError> {
        check_join(&mem, KIND, MAGIC, Self::ALIGN, HDR_WORDS * 8)?;
        let bad = |what| JoinError::BadParams { kind: KIND, what };
        let hdr = mem
            .atomic_u64s(0, HDR_WORDS)
            .ok_or(bad("header unreadable"))?;
        // SYNC: Relaxed; ordered by the Acquire load of the magic.
        let load = |i: usize| usize::try_from(hdr[i].load(Ordering::Relaxed)).unwrap_or(0);
        let (sets, max) = (load(1), load(2));
        let need = footprint(sets, max).ok_or(bad("sets or destinations out of range"))?;
        if mem.len() < need {
            return Err(JoinError::TooSmall {
                len: mem.len(),
                need,
            });
        }
        let words = mem
            .atomic_u64s(0, need / 8)
            .ok_or(bad("layout out of bounds"))?;
        Ok(DestSetsHandle {
            writable: mem.is_writable(),
            words,
            sets,
            max,
        })
    }
}

/// A joined [`DestSets`].
#[derive(Debug)]
pub struct DestSetsHandle<'a> {
    writable: bool,
    words: &'a [AtomicU64],
    sets: usize,
    max: usize,
}

fn encode(a: &SocketAddr) -> [u64; DEST_WORDS] {
    let (v6, ip) = match a.ip() {
        IpAddr::V4(v4) => (0, v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => (1, v6),
    };
    let b = u128::from(ip);
    [
        1 | (v6 << 1) | (u64::from(a.port()) << 16),
        (b >> 64) as u64,
        b as u64,
    ]
}

fn decode(w: [u64; DEST_WORDS]) -> Option<SocketAddr> {
    if w[0] & 1 == 0 {
        return None;
    }
    let ip = Ipv6Addr::from((u128::from(w[1]) << 64) | u128::from(w[2]));
    let port = (w[0] >> 16) as u16;
    let ip = if w[0] & 2 != 0 {
        IpAddr::V6(ip)
    } else {
        IpAddr::V4(ip.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED))
    };
    Some(SocketAddr::new(ip, port))
}

impl DestSetsHandle<'_> {
    /// Sets held.
    pub fn sets(&self) -> usize {
        self.sets
    }

    /// Most destinations a set holds.
    pub fn max(&self) -> usize {
        self.max
    }

    fn set(&self, set: usize) -> &[AtomicU64] {
        let n = set_words(self.max);
        &self.words[HDR_WORDS + set * n..HDR_WORDS + (set + 1) * n]
    }

    /// Replaces set `set` with `dests` (one writer per set at a time).
    ///
    /// # Errors
    /// [`DestError::NoSuchSet`], [`DestError::TooMany`],
    /// [`DestError::ReadOnly`]; nothing is written then.
    pub fn write(&self, set: usize, dests: &[SocketAddr]) -> Result<(), DestError> {
        if set >= self.sets {
            return Err(DestError::NoSuchSet {
                set,
                sets: self.sets,
            });
        }
        if dests.len() > self.max {
            return Err(DestError::TooMany {
                given: dests.len(),
                max: self.max,
            });
        }
        if !self.writable {
            return Err(DestError::ReadOnly);
        }
        let w = self.set(set);
        // SYNC: Relaxed load by the one writer; the odd store is ordered
        // before the data stores by the Release fence.
        let s = w[0].load(Ordering::Relaxed);
        w[0].store(
            (s | 1).wrapping_add(if s & 1 == 1 { 2 } else { 0 }),
            Ordering::Relaxed,
        );
        fence(Ordering::Release);
        for (i, d) in dests.iter().enumerate() {
            for (k, v) in encode(d).into_iter().enumerate() {
                // SYNC: Relaxed; inside the write section.
                w[2 + i * DEST_WORDS + k].store(v, Ordering::Relaxed);
            }
        }
        // SYNC: Relaxed; inside the write section.
        w[1].store(dests.len() as u64, Ordering::Relaxed);
        // SYNC: Release; ends the write section (pairs with the reader's
        // Acquire load of seq).
        let now = w[0].load(Ordering::Relaxed);
        w[0].store(now.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Reads set `set` into `out` (cleared first): `false` if there is no
    /// such set or it was rewritten through every try (`out` is empty
    /// then). Entries no encoding gives (garbage) are left out.
    pub fn read(&self, set: usize, out: &mut Vec<SocketAddr>) -> bool {
        out.clear();
        if set >= self.sets {
            return false;
        }
        let w = self.set(set);
        for _ in 0..READ_TRIES {
            // SYNC: Acquire; pairs with the Release that ended a write.
            let s1 = w[0].load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            // SYNC: Relaxed; checked by the re-read of seq below.
            let n = usize::try_from(w[1].load(Ordering::Relaxed)).map_or(0, |n| n.min(self.max));
            out.clear();
            for i in 0..n {
                let base = 2 + i * DEST_WORDS;
                // SYNC: Relaxed; as above.
                let d = core::array::from_fn(|k| w[base + k].load(Ordering::Relaxed));
                out.extend(decode(d));
            }
            fence(Ordering::Acquire);
            // SYNC: Relaxed; ordered by the fence.
            if w[0].load(Ordering::Relaxed) == s1 {
                return true;
            }
        }
        out.clear();
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_reads_back_what_was_written_and_refuses_too_many() {
        let ws = tilewire_shmem::TempWorkspace::new("dests", 1 << 20).unwrap();
        let size = footprint(3, 4).unwrap();
        let at = ws.alloc(64, size, 1).unwrap();
        DestSets::new(ws.region(at, size).unwrap(), 3, 4).unwrap();
        let h = DestSets::join(ws.region(at, size).unwrap()).unwrap();
        let dests: Vec<SocketAddr> = vec![
            "198.18.0.1:8001".parse().unwrap(),
            "[2001:2::9]:8002".parse().unwrap(),
        ];
        h.write(1, &dests).unwrap();
        let mut out = Vec::new();
        assert!(h.read(1, &mut out));
        assert_eq!(out, dests);
        assert!(h.read(0, &mut out) && out.is_empty(), "set 0 is empty");
        assert!(!h.read(3, &mut out), "no set 3");
        let five = vec![dests[0]; 5];
        assert_eq!(
            h.write(2, &five),
            Err(DestError::TooMany { given: 5, max: 4 })
        );
        assert_eq!(
            h.write(3, &dests),
            Err(DestError::NoSuchSet { set: 3, sets: 3 })
        );
        let ro = DestSets::join(ws.region(at, size).unwrap().read_only()).unwrap();
        assert_eq!(ro.write(0, &dests), Err(DestError::ReadOnly));
    }
}
