//! The built-in tile kinds a topology can name.

pub mod dedup;
pub mod echo;
pub mod forward;
pub mod gen;
pub mod net_udp;
#[cfg(feature = "xdp")]
pub mod net_xdp;
pub mod pcap;
pub mod sink;
