//! The axes of the bench's tables: the direction and the payload sizes.

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
