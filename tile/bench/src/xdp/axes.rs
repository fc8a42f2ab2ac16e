//! The axes of the bench's tables: the direction, the payload sizes and
//! the IP family.

/// UDP payload sizes.
pub(super) const SIZES: [usize; 2] = [64, 1232];

/// Receive or transmit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    Rx,
    Tx,
}

impl Dir {
    pub(super) fn name(self) -> &'static str {
        match self {
            Dir::Rx => "rx",
            Dir::Tx => "tx",
        }
    }
}

/// The IP family of a cell's frames and sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    V4,
    V6,
}

impl Family {
    /// As the table and `--json` say it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
}
