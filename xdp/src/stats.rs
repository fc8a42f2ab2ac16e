//! What an AF_XDP socket counts, and what the kernel counts for it.

/// Counters kept by [`crate::Xsk`]. Plain integers, updated by the one
/// thread that drives the socket; a tile copies them into its metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Packets taken off the rx ring and delivered downstream.
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Rx descriptors that did not fit the UMEM (outside it, or longer than
    /// the rest of their frame) or carried flags tilewire never asked for:
    /// dropped without being followed.
    pub rx_bad_desc: u64,
    /// Polls that stopped because the downstream refused a packet (it
    /// stays on the rx ring for the next poll).
    pub rx_backpressure: u64,
    /// Packets the downstream aio refused with `Inval`: dropped.
    pub rx_refused: u64,
    /// Polls that found the fill ring empty: every receive frame was on
    /// the rx ring or held downstream, so the kernel had nowhere to put a
    /// packet (it counts the drops in [`KernelStats::rx_fill_ring_empty_descs`]).
    pub fill_empty: u64,
    /// Frames that did not fit on the fill ring and wait in a spill list
    /// (never happens when the fill ring is sized as bind sizes it).
    pub fill_overflow: u64,
    /// Wakeups of the receive side (`recvfrom`) for need_wakeup or busy
    /// polling.
    pub rx_wakeups: u64,
    /// Packets queued for transmit.
    pub tx_packets: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Transmit frames the kernel handed back on the completion ring.
    pub tx_completed: u64,
    /// Packets queued in place ([`crate::Xsk::send_in_place`]; also in
    /// `tx_packets`): sent from where they lay, no copy.
    pub tx_in_place: u64,
    /// In-place sends the kernel completed (not in `tx_completed`, which
    /// counts pool frames).
    pub tx_in_place_completed: u64,
    /// Zero-length packets: taken (the aio contract) but not sent, as an
    /// empty Ethernet frame cannot go on the wire.
    pub tx_empty: u64,
    /// Packets refused with `Inval` (shorter than an Ethernet header or
    /// longer than the interface takes).
    pub tx_inval: u64,
    /// Sends answered `Again`: no free transmit frame or ring slot.
    pub tx_full: u64,
    /// Wakeups of the transmit side (`sendto`).
    pub tx_wakeups: u64,
    /// Wakeups that failed with an error other than "busy, try later".
    pub tx_wakeup_errors: u64,
    /// The errno of the last such failure (0 if none).
    pub tx_wakeup_last_errno: i32,
    /// Completion entries that named no frame of the UMEM: dropped.
    pub tx_bad_completion: u64,
}

/// The kernel's drop counters for the socket (`XDP_STATISTICS`, read with
/// the full six-field struct, so `rx_ring_full` is reported on its own
/// rather than folded into `rx_dropped` as the kernel does for callers of
/// the older three-field one).
///
/// # Which counter a lost packet lands in
///
/// On receive the kernel first takes a frame from the fill ring, then a
/// slot on the rx ring (copy mode: it copies the packet in between):
///
/// - **no frame on the fill ring**: the packet is dropped and counted in
///   `rx_dropped` *and* in `rx_fill_ring_empty_descs` (the latter counts
///   every time the kernel found the fill ring empty, which in zero-copy
///   mode also happens when a driver refills its own ring, without a
///   drop);
/// - **a frame but no rx slot**: dropped and counted in `rx_ring_full`
///   only (the frame goes back to the kernel's free list, not to us);
/// - a packet longer than a frame: `rx_dropped`.
///
/// So the packets lost at the socket are [`KernelStats::rx_lost`] =
/// `rx_dropped + rx_ring_full`. A socket whose fill ring holds as many
/// frames as its rx ring has slots (what [`crate::XskConfig`] does by
/// default) never fills the rx ring first: every drop of a receiver that
/// falls behind shows as an empty fill ring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Packets dropped because the fill ring was empty (or longer than a
    /// frame).
    pub rx_dropped: u64,
    /// Fill-ring entries the kernel found invalid.
    pub rx_invalid_descs: u64,
    /// Tx descriptors the kernel found invalid.
    pub tx_invalid_descs: u64,
    /// Packets dropped because the rx ring was full.
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty (each such drop is also
    /// in `rx_dropped`).
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found the tx ring empty when woken.
    pub tx_ring_empty_descs: u64,
}

impl KernelStats {
    /// Received packets the kernel dropped at the socket, whatever the
    /// cause: `rx_dropped + rx_ring_full` (see the type's docs).
    pub fn rx_lost(&self) -> u64 {
        self.rx_dropped + self.rx_ring_full
    }

    /// What was counted between `self` (earlier) and `later`.
    pub fn since(&self, later: &KernelStats) -> KernelStats {
        KernelStats {
            rx_dropped: later.rx_dropped.saturating_sub(self.rx_dropped),
            rx_invalid_descs: later.rx_invalid_descs.saturating_sub(self.rx_invalid_descs),
            tx_invalid_descs: later.tx_invalid_descs.saturating_sub(self.tx_invalid_descs),
            rx_ring_full: later.rx_ring_full.saturating_sub(self.rx_ring_full),
            rx_fill_ring_empty_descs: later
                .rx_fill_ring_empty_descs
                .saturating_sub(self.rx_fill_ring_empty_descs),
            tx_ring_empty_descs: later
                .tx_ring_empty_descs
                .saturating_sub(self.tx_ring_empty_descs),
        }
    }
}

impl From<libc::xdp_statistics> for KernelStats {
    fn from(s: libc::xdp_statistics) -> Self {
        KernelStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::KernelStats;

    #[test]
    fn since_subtracts_field_by_field_and_rx_lost_adds_the_two_causes() {
        let a = KernelStats {
            rx_dropped: 5,
            rx_ring_full: 2,
            rx_fill_ring_empty_descs: 5,
            ..KernelStats::default()
        };
        let b = KernelStats {
            rx_dropped: 9,
            rx_ring_full: 3,
            rx_fill_ring_empty_descs: 9,
            tx_ring_empty_descs: 4,
            ..KernelStats::default()
        };
        let d = a.since(&b);
        assert_eq!((d.rx_dropped, d.rx_ring_full, d.rx_lost()), (4, 1, 5));
        assert_eq!(d.tx_ring_empty_descs, 4);
        assert_eq!(b.since(&a), KernelStats::default(), "never below zero");
    }
}
