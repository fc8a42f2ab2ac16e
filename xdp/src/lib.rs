#![deny(unsafe_code)]
#![doc = include_str!("../README.md")]
//!
//! tilewire-xdp: the AF_XDP backend.
//!
//! AF_XDP gives a user process the packets of one NIC queue without the
//! kernel's network stack: the NIC (or the kernel, in copy mode) writes
//! each packet into a *frame* of a memory area the process registered, the
//! *UMEM*, and the two sides pass frames back and forth on four
//! single-producer single-consumer rings. An XDP program, run by the driver
//! on every packet, picks which packets go to the socket; the rest continue
//! into the kernel as if nothing happened.
//!
//! ```text
//!              fill ring (free frames)        tx ring (frames to send)
//!   user  ───────────────────────────▶ kernel ◀─────────────────────── user
//!         ◀─────────────────────────── kernel ────────────────────────▶
//!              rx ring (received)             completion ring (sent)
//! ```
//!
//! This crate owns that path end to end, on `libc` system calls (the XDP
//! program is loaded and attached through libbpf, see [`bpf`]):
//!
//! - [`umem`]: the UMEM, placed inside a workspace (a link's dcache data
//!   region) so tiles in other processes read received packets in place;
//!   who owns each frame when;
//! - [`ring`]: the four rings with cached indices and explicit
//!   Acquire/Release on the shared ones, plus mock rings in plain memory;
//! - [`socket`]: making the socket: UMEM registration, ring mappings,
//!   bind (copy or zero-copy, need_wakeup, busy polling) and errors that
//!   name their fix;
//! - [`xsk`]: the data path: receive into an [`RxSink`] (zero-copy into a
//!   link, or copied into any [`tilewire_aio::Aio`]), and transmit as an
//!   aio with batched wakeups;
//! - [`bpf`]: the XDP program, generated as eBPF bytecode in Rust, that
//!   sends IPv4 UDP for chosen ports to the sockets and passes the rest;
//! - `mock` (feature `test-support`): a hand-driven kernel over mock rings, for tests without
//!   privileges;
//! - [`frame`]: Ethernet/IPv4/UDP views and a builder.
//!
//! xsk-rs is not used for the data path because it allocates its UMEM as
//! an anonymous mapping no other process can join; it serves as the
//! interop peer and benchmark baseline (`xskrs_peer`, feature
//! `xsk-rs-peer`).
//!
//! The crate denies `unsafe` but in the modules that talk to the kernel or
//! to memory it maps, each of which allows it and says at every use why it
//! is sound: `sys` (system calls), [`socket`] (socket options, ring and
//! UMEM registration, the mappings), [`ring`] (pointers into the ring
//! mappings), [`umem`] (frame bytes), [`xsk`] (descriptors and frame
//! bytes on the data path), `mock` (rings in plain memory), [`bpf`]'s
//! loader (libbpf) and `xskrs_peer` (xsk-rs's frame buffers).
#![warn(missing_docs)]

pub mod bpf;
mod inplace;
/// The Ethernet/IPv4/UDP frame views and the fixture loader live in
/// `tilewire-aio` (every backend and tile kind uses them); re-exported here
/// for the AF_XDP code and its users.
pub use tilewire_aio::{fixture, frame};
#[cfg(any(test, feature = "test-support"))]
pub mod mock;
pub mod ring;
pub mod socket;
pub mod stats;
mod sys;
pub mod umem;
pub mod xsk;
#[cfg(feature = "xsk-rs-peer")]
pub mod xskrs_peer;

pub use socket::{if_index, BindMode, BusyPoll, XskConfig, XskError};
pub use stats::{KernelStats, XskStats};
pub use umem::{Umem, UmemError, FRAME_SIZE};
pub use xsk::{FrameCounts, InPlaceError, RxPacket, RxRefused, RxSink, Xsk};
