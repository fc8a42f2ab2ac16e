//! The Agave-style peer's packet: a fixed-size buffer and its meta, in
//! batches, as Agave's streamer moves them between its threads.

use std::net::SocketAddrV4;

/// Bytes of a packet buffer: the largest datagram Solana takes.
pub(super) const PACKET_DATA_SIZE: usize = 1232;
/// Packets per batch.
pub(super) const PACKETS_PER_BATCH: usize = 64;
/// What travels with a packet.
#[derive(Debug, Clone, Copy)]
pub(super) struct Meta {
    pub size: usize,
    pub addr: SocketAddrV4,
    pub discard: bool,
    /// In memory: when the generator made it (CLOCK_MONOTONIC ns).
    pub sent_ns: u64,
}

/// A fixed-size packet buffer and its meta.
#[derive(Debug, Clone)]
pub(super) struct Packet {
    pub buffer: [u8; PACKET_DATA_SIZE],
    pub meta: Meta,
}

impl Default for Packet {
    fn default() -> Packet {
        Packet {
            buffer: [0; PACKET_DATA_SIZE],
            meta: Meta {
                size: 0,
                addr: SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0),
                discard: false,
                sent_ns: 0,
            },
        }
    }
}

impl Packet {
    #[inline]
    pub(super) fn data(&self) -> &[u8] {
        &self.buffer[..self.meta.size]
    }
}

/// A batch of packets, as the streamer sends them down its channels.
pub(super) type PacketBatch = Vec<Packet>;
