//! The dedup tile (to be written).
