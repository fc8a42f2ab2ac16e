//! The sink tile (to be written).
