//! tilewire-tile: links between tiles, and the tile run loop.
#![forbid(unsafe_code)]

pub mod dcache;
pub mod frag;
pub mod heap;
pub mod mcache;
