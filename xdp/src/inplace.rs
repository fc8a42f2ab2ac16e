//! The sends [`crate::Xsk::send_in_place`] queued and the kernel has not
//! yet completed, matched to completions by address.
//!
//! An in-place send names bytes the caller owns outside the UMEM's frame
//! pool, so its completion must go back to the caller, never onto a free
//! list. The kernel completes a socket's descriptors in the order it sent
//! them, but nothing here relies on it: a completion marks the oldest
//! in-flight send at its address done, and done sends leave from the
//! front, in submission order. So the caller sees its sends finish in the
//! order it made them (a send finished early waits for the older ones),
//! which lets it release what it held for them oldest first.

use std::collections::VecDeque;

/// Why [`crate::Xsk::send_in_place`] refused a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InPlaceError {
    /// The UMEM is not spanning: it has no memory outside its frames.
    #[error("in-place send on a UMEM that is not spanning (see Umem::spanning)")]
    NotSpanning,
    /// The bytes do not lie inside the registered span.
    #[error("in-place send of {len} bytes at {addr:#x} leaves the UMEM's span")]
    OutsideSpan {
        /// The UMEM address asked for.
        addr: u64,
        /// Its length.
        len: u32,
    },
    /// The bytes overlap the frame pool, whose frames the socket owns.
    #[error("in-place send of {len} bytes at {addr:#x} overlaps the UMEM's frame pool")]
    InPool {
        /// The UMEM address asked for.
        addr: u64,
        /// Its length.
        len: u32,
    },
    /// Shorter than an Ethernet header or longer than the interface takes.
    #[error("in-place send of {len} bytes: not between {min} and {max} bytes")]
    Length {
        /// Its length.
        len: u32,
        /// The shortest the socket sends (an Ethernet header).
        min: usize,
        /// The longest the socket sends.
        max: usize,
    },
    /// A zero-copy socket, and the bytes cross a page boundary: the kernel
    /// refuses such a descriptor when the two pages are not contiguous for
    /// the NIC, and sends no completion for it, so it is refused here.
    #[error("in-place send of {len} bytes at {addr:#x} crosses a page on a zero-copy socket")]
    CrossesPage {
        /// The UMEM address asked for.
        addr: u64,
        /// Its length.
        len: u32,
    },
    /// No tx ring slot, or too many in-place sends in flight: retry after
    /// completions.
    #[error("no room for an in-place send now: retry after completions")]
    Full,
}

/// In-flight in-place sends, oldest first.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    /// (address, completed) in submission order.
    sends: VecDeque<(u64, bool)>,
    /// Addresses of sends retired from the front, for the caller.
    done: Vec<u64>,
}

impl InFlight {
    /// Room for `cap` sends without reallocating.
    pub(crate) fn with_capacity(cap: usize) -> InFlight {
        InFlight {
            sends: VecDeque::with_capacity(cap),
            done: Vec::with_capacity(cap),
        }
    }

    /// Sends queued and not yet retired (completed ones behind an older
    /// incomplete one included).
    pub(crate) fn len(&self) -> usize {
        self.sends.len()
    }

    /// Records a send of the bytes at `addr`.
    pub(crate) fn push(&mut self, addr: u64) {
        self.sends.push_back((addr, false));
    }

    /// Marks the oldest incomplete send at `addr` complete, and retires
    /// the complete sends at the front. False if no send is in flight at
    /// `addr` (a completion the socket never asked for).
    pub(crate) fn complete(&mut self, addr: u64) -> bool {
        let Some(s) = self.sends.iter_mut().find(|s| s.0 == addr && !s.1) else {
            return false;
        };
        s.1 = true;
        while let Some(&(a, true)) = self.sends.front() {
            self.sends.pop_front();
            self.done.push(a);
        }
        true
    }

    /// The addresses of the sends retired since the last call, in
    /// submission order.
    pub(crate) fn drain(&mut self) -> std::vec::Drain<'_, u64> {
        self.done.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::InFlight;

    #[test]
    fn completions_out_of_order_retire_in_submission_order() {
        let mut f = InFlight::with_capacity(4);
        for a in [64, 128, 64, 192] {
            f.push(a);
        }
        assert!(f.complete(128), "the second send finished first");
        assert_eq!(f.drain().count(), 0, "it waits for the first");
        assert_eq!(f.len(), 4);
        assert!(f.complete(64), "the oldest send at 64");
        assert_eq!(f.drain().collect::<Vec<_>>(), [64, 128]);
        assert!(!f.complete(999), "never sent");
        assert!(f.complete(192));
        assert_eq!(f.len(), 2, "192 waits behind the second send at 64");
        assert!(f.complete(64));
        assert_eq!(f.drain().collect::<Vec<_>>(), [64, 192]);
        assert_eq!(f.len(), 0);
        assert!(!f.complete(64), "nothing left at 64");
    }
}
