//! The gen tile (to be written).
