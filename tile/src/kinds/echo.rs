//! The echo tile (to be written).
