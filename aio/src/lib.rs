#![deny(unsafe_code)]
#![doc = include_str!("../README.md")]
//!
//! tilewire-aio: the batch send contract every edge of a tilewire pipeline
//! speaks, after Firedancer's fd_aio.
//!
//! # One verb
//!
//! A packet pipeline is a chain of stages, and every edge between two stages
//! is the same operation: *here is a batch of packets, take them*. This crate
//! names that operation [`Aio::send`]. A net tile's transmit side is an aio
//! (the packets leave on a socket or an AF_XDP ring); a link into the next
//! tile is an aio (the packets are published into shared memory); a test
//! double that just keeps the packets is an aio ([`MemAio`]); a capture that
//! copies the packets to a pcap file on their way to the next aio is an aio
//! ([`PcapTee`]).
//!
//! Receiving is the same verb seen from the other side. A backend's receive
//! side does not hand packets to a caller who asks for them; it *sends* them
//! to a downstream aio it was given, one batch per poll, with `flush` set at
//! the end of the poll burst. So a pipeline is built by handing each stage
//! the aio of the next one, and any stage can be swapped (a socket for
//! AF_XDP, a link for a [`MemAio`] in a test) without the others noticing.
//!
//! # The contract
//!
//! [`Aio::send`] documents it in full: best effort, in order; on error the
//! index of the first packet not sent; empty batches and empty packets are
//! fine; duplicate and overlapping buffers are fine; and the backend keeps
//! no interest in anything it was given once the call returns. That last
//! rule is what lets `send` take plain borrows and be safe Rust: a backend
//! that needs the bytes later (a ring waiting for the kernel, a socket with
//! a full buffer) copies them into memory it owns before returning.
//!
//! `conformance` (feature `test-support`) turns the contract into checks, written once and run
//! against every backend: this crate's own and those of later crates (link
//! transmit, io_uring and mmsg UDP, AF_XDP).
//!
//! # Packets and codes
//!
//! [`PktInfo`] describes a packet: a byte slice and a [`PktMeta`] (socket
//! address, backend-defined word). [`BUF_MAX`] bounds packet length for
//! backends that bound it. Errors are a [`SendError`] (kind and
//! `batch_idx`); the integer codes [`SUCCESS`], [`ERR_INVAL`], [`ERR_AGAIN`]
//! and [`strerror`] mirror fd_aio's for the C-shaped edge.
//!
//! # The C-shaped edge
//!
//! [`raw`] holds the fd_aio object itself: a context pointer and a send
//! function placed in caller memory with the new / join / leave / delete
//! lifecycle of `tilewire_shmem::object`, batches of 16-byte [`PktInfoC`]
//! descriptors, integer codes. It is how an aio is found by name in a
//! workspace and how one written in C plugs in. Because it holds a function
//! pointer it is only joinable inside the process that made it; the edge
//! between processes is a link, which carries bytes, never pointers.

#![warn(missing_docs)]

#[cfg(feature = "test-support")]
pub mod conformance;
mod contract;
pub mod error;
pub mod fixture;
pub mod frame;
pub mod mem;
/// Network namespaces: a thread entering one ([`netns::enter_thread`]), and
/// (feature `test-support`) test hosts, a veth pair between two fresh
/// namespaces, removed on drop (needs root).
pub mod netns;
pub mod pcap;
pub mod pkt;
pub mod raw;
pub mod udp;

pub use contract::Aio;
pub use error::{strerror, SendError, SendErrorKind, ERR_AGAIN, ERR_INVAL, SUCCESS};
pub use mem::{MemAio, MemAioStats};
pub use pcap::{LinkType, PcapConfig, PcapTee, TsResolution};
pub use pkt::{PktInfo, PktInfoC, PktMeta, PktTooLong, BUF_MAX};
pub use raw::{RawAio, RawAioHandle, SendFn};
pub use udp::{UdpAio, UdpConfig, UdpStats};
