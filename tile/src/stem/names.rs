//! The names of a tile's parts in the workspace (see [`crate::part`]):
//! its metrics, and one latency histogram per input.

/// Longest tile name (room for the `.latNN` suffix).
pub const TILE_NAME_MAX: usize = tilewire_shmem::NAME_MAX - 6;

/// The named allocation holding tile `tile`'s metrics.
pub fn metrics_name(tile: &str) -> String {
    format!("{tile}.tm")
}

/// The named allocation holding the latency histogram of tile `tile`'s
/// input `i`.
pub fn latency_name(tile: &str, i: usize) -> String {
    format!("{tile}.lat{i}")
}
