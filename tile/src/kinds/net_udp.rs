//! The net_udp tile (to be written).
