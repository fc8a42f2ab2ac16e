//! The topology file (to be written).
