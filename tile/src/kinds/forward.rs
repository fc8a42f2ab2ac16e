//! The forward tile (to be written).
