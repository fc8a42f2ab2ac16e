//! [`Workspace::allocation_problems`]: the allocation table checked
//! against the workspace it describes.
//!
//! The table is shared memory like everything else: a stray write can put
//! an entry outside the data region, past the end of the file, or over
//! another live allocation. No allocator call makes such an entry (it
//! places every block inside `[data_off, size)` and between live blocks),
//! so each is corruption. The allocator already steps around entries
//! outside the data region when it places a new block; readers (a monitor,
//! `tilewire shmem ls`) call this to report them, each with its place and
//! the range expected, instead of reading an object that is not there.

use core::fmt;

use crate::alloc::AllocInfo;
use crate::workspace::Workspace;

/// An allocation table entry no allocator call can have written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocProblem {
    /// The entry, as read.
    pub entry: AllocInfo,
    /// What is wrong with it.
    pub why: AllocFault,
}

/// What is wrong with an allocation table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AllocFault {
    /// Its bytes leave the data region `[data_off, size)` (or it is empty).
    OutsideData {
        /// First byte of the data region.
        data_off: u64,
        /// One past its last byte (the workspace's size).
        size: u64,
    },
    /// Its bytes overlap those of another live allocation.
    Overlaps {
        /// The other allocation's name (`None`: unnamed).
        other: Option<String>,
        /// The other's first byte.
        other_gaddr: u64,
        /// The other's size.
        other_size: u64,
    },
}

fn label(name: &Option<String>) -> String {
    name.as_deref()
        .map_or_else(|| "(unnamed)".to_string(), |n| format!("{n:?}"))
}

impl fmt::Display for AllocProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.entry;
        let end = e.gaddr.saturating_add(e.size);
        write!(
            f,
            "allocation table entry {} at [{:#x}, {end:#x}) ({} bytes): ",
            label(&e.name),
            e.gaddr,
            e.size
        )?;
        match &self.why {
            AllocFault::OutsideData { data_off, size } => write!(
                f,
                "outside the data region [{data_off:#x}, {size:#x}) it must lie in"
            ),
            AllocFault::Overlaps {
                other,
                other_gaddr,
                other_size,
            } => write!(
                f,
                "overlaps allocation {} at [{other_gaddr:#x}, {:#x})",
                label(other),
                other_gaddr.saturating_add(*other_size)
            ),
        }
    }
}

/// The problems of `allocs` (sorted by gaddr, as
/// [`Workspace::allocations`] gives them) in a data region
/// `[data_off, size)`.
pub(crate) fn check(allocs: &[AllocInfo], data_off: u64, size: u64) -> Vec<AllocProblem> {
    let mut found = Vec::new();
    // The live block reaching furthest so far, among those inside the
    // data region: an entry starting before its end overlaps it.
    let mut reach: Option<&AllocInfo> = None;
    for a in allocs {
        let end = a.gaddr.checked_add(a.size);
        if a.size == 0 || a.gaddr < data_off || end.is_none_or(|e| e > size) {
            found.push(AllocProblem {
                entry: a.clone(),
                why: AllocFault::OutsideData { data_off, size },
            });
            continue;
        }
        let end = a.gaddr + a.size;
        if let Some(r) = reach {
            if a.gaddr < r.gaddr + r.size {
                // Which of the two was written over is unknown: both are
                // named, each pointing at the other.
                for (x, y) in [(a, r), (r, a)] {
                    if !found.iter().any(|p| p.entry == *x) {
                        found.push(AllocProblem {
                            entry: x.clone(),
                            why: AllocFault::Overlaps {
                                other: y.name.clone(),
                                other_gaddr: y.gaddr,
                                other_size: y.size,
                            },
                        });
                    }
                }
            }
        }
        if reach.is_none_or(|r| end > r.gaddr + r.size) {
            reach = Some(a);
        }
    }
    found
}

impl Workspace {
    /// Every allocation table entry no allocator call can have written:
    /// one outside the data region, or one overlapping another live
    /// allocation (see the [module docs](crate::audit)). Empty for a
    /// healthy workspace. Takes no lock (works on a read-only join).
    pub fn allocation_problems(&self) -> Vec<AllocProblem> {
        check(&self.allocations(), self.data_off(), self.size() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(name: &str, gaddr: u64, size: u64) -> AllocInfo {
        AllocInfo {
            gaddr,
            size,
            tag: 0,
            name: Some(name.into()),
            owner_pid: 1,
        }
    }

    #[test]
    fn healthy_tables_have_no_problems() {
        assert!(check(&[], 4096, 8192).is_empty());
        let ok = [a("x", 4096, 64), a("y", 4160, 64), a("z", 8000, 192)];
        assert!(check(&ok, 4096, 8192).is_empty());
    }

    #[test]
    fn entries_outside_the_data_region_or_overlapping_are_named() {
        let bad = [
            a("header", 0, 64),
            a("x", 4096, 1000),
            a("y", 4500, 64),
            a("z", 5000, 100),
            a("past", 8000, 1000),
            a("wraps", u64::MAX - 8, 64),
        ];
        let p = check(&bad, 4096, 8192);
        let names: Vec<_> = p.iter().map(|p| p.entry.name.as_deref().unwrap()).collect();
        assert_eq!(names, ["header", "y", "x", "z", "past", "wraps"]);
        assert!(matches!(
            p[0].why,
            AllocFault::OutsideData {
                data_off: 4096,
                size: 8192
            }
        ));
        let y = p[1].to_string();
        assert!(
            y.contains("\"y\" at [0x1194, 0x11d4)")
                && y.contains("overlaps allocation \"x\" at [0x1000, 0x13e8)"),
            "{y}"
        );
        assert!(p[2].to_string().contains("overlaps allocation \"y\""));
        assert!(p[4]
            .to_string()
            .contains("outside the data region [0x1000, 0x2000)"));
    }
}
