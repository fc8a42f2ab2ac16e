//! The pcap tile (to be written).
