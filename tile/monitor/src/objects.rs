//! What an allocation holds, told by the magic in its first eight bytes.
//!
//! Every shared object starts with a versioned magic (see
//! [`tilewire_shmem::object`]): seven bytes naming the kind, one the
//! layout version. `tilewire shmem info` shows each allocation's object
//! with [`identify`]; it reads one word and trusts nothing else.

use core::sync::atomic::Ordering;
use std::fmt;

use tilewire_shmem::object::{magic_kind, magic_version};
use tilewire_shmem::Region;

use tilewire_tile::hist::Hist;
use tilewire_tile::link::dcache::DCache;
use tilewire_tile::link::fseq::Fseq;
use tilewire_tile::link::mcache::MCache;
use tilewire_tile::stem::metrics::TileMetrics;
use tilewire_tile::tcache::Tcache;

/// The objects this build knows, by magic.
const KNOWN: [(u64, &str); 6] = [
    (MCache::MAGIC, "mcache"),
    (DCache::MAGIC, "dcache"),
    (Fseq::MAGIC, "fseq"),
    (TileMetrics::MAGIC, "tile metrics"),
    (Hist::MAGIC, "hist"),
    (Tcache::MAGIC, "tcache"),
];

/// What an allocation holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectKind {
    /// An object this build reads (`mcache`, `dcache`, `fseq`,
    /// `tile metrics`, `hist`, `tcache`).
    Known(&'static str),
    /// A known kind in a layout version this build does not read.
    OtherVersion {
        /// The kind.
        kind: &'static str,
        /// The version found.
        version: u8,
    },
    /// Some other tilewire object (its magic's tag starts with `tw.`).
    Tilewire {
        /// The seven-byte tag, NULs dropped.
        tag: String,
        /// Its layout version.
        version: u8,
    },
    /// Magic zero: not formatted yet (being made), or deleted.
    Empty,
    /// Anything else: raw memory such as a UMEM, or an unknown object.
    Other,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectKind::Known(k) => f.write_str(k),
            ObjectKind::OtherVersion { kind, version } => {
                write!(f, "{kind} (layout v{version}, not this build's)")
            }
            ObjectKind::Tilewire { tag, version } => write!(f, "{tag} v{version}"),
            ObjectKind::Empty => f.write_str("empty"),
            ObjectKind::Other => f.write_str("other"),
        }
    }
}

/// What `mem` (an allocation, 8-aligned) holds, from its magic.
pub fn identify(mem: &Region<'_>) -> ObjectKind {
    let Some(word) = mem.atomic_u64(0) else {
        return ObjectKind::Other;
    };
    // SYNC: Acquire; pairs with the Release store of the magic at the end
    // of every object's `new`. Only the kind is used, but it costs nothing.
    classify_magic(word.load(Ordering::Acquire))
}

fn classify_magic(m: u64) -> ObjectKind {
    if m == 0 {
        return ObjectKind::Empty;
    }
    for (magic, kind) in KNOWN {
        if m == magic {
            return ObjectKind::Known(kind);
        }
        if magic_kind(m) == magic_kind(magic) {
            return ObjectKind::OtherVersion {
                kind,
                version: magic_version(m),
            };
        }
    }
    let bytes = m.to_be_bytes();
    let tag = &bytes[..7];
    let printable = tag.iter().all(|&b| b == 0 || b.is_ascii_graphic());
    if tag.starts_with(b"tw.") && printable {
        let tag: String = tag
            .iter()
            .filter(|&&b| b != 0)
            .map(|&b| b as char)
            .collect();
        return ObjectKind::Tilewire {
            tag,
            version: magic_version(m),
        };
    }
    ObjectKind::Other
}

#[cfg(test)]
mod tests {
    use super::*;
    use tilewire_shmem::object::magic;
    use tilewire_tile::heap::HeapMem;

    #[test]
    fn objects_are_told_by_their_magic() {
        let mut m = HeapMem::new(Fseq::footprint());
        assert_eq!(identify(&m.region()), ObjectKind::Empty);
        Fseq::new(m.region(), 0, true).unwrap();
        assert_eq!(identify(&m.region()), ObjectKind::Known("fseq"));
        let mut m = HeapMem::new(Hist::footprint());
        Hist::new(m.region()).unwrap();
        assert_eq!(identify(&m.region()).to_string(), "hist");
    }

    #[test]
    fn versions_foreign_tags_and_garbage() {
        assert_eq!(
            classify_magic(magic(b"tw.mcch", 9)),
            ObjectKind::OtherVersion {
                kind: "mcache",
                version: 9
            }
        );
        assert_eq!(
            classify_magic(magic(b"tw.aio\0", 1)).to_string(),
            "tw.aio v1"
        );
        assert_eq!(classify_magic(0xdead_beef_0bad_f00d), ObjectKind::Other);
        assert_eq!(classify_magic(u64::MAX), ObjectKind::Other);
    }
}
