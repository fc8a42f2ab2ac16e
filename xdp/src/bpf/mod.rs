//! The XDP program: eBPF bytecode generated in Rust, loaded with libbpf.
//!
//! # What the program does
//!
//! Every frame a device receives runs through the program before the kernel
//! stack sees it. The program picks out the IPv4 and IPv6 UDP datagrams
//! addressed to a few configured destination ports (and, optionally, one
//! IPv4 destination address) and hands them to the AF_XDP socket of the
//! receive queue they arrived on: `bpf_redirect_map(&xskmap,
//! ctx->rx_queue_index, XDP_PASS)`. Everything else goes on to the kernel
//! stack (`XDP_PASS`), so ssh, ARP, ICMP, neighbour discovery and every
//! other port keep working on the same device.
//!
//! An IPv4 frame is steered only when all of these hold; the first that
//! fails sends it to the stack:
//!
//! 1. the Ethernet and a minimal IPv4 header (34 bytes) are in the frame;
//! 2. the ethertype is 0x0800 (a VLAN tag, 0x8100, is not looked through);
//! 3. IP version 4, header length (IHL) at least 5 words; IP options are
//!    allowed, the UDP header is found at `14 + IHL * 4`;
//! 4. protocol 17 (UDP);
//! 5. not a fragment: MF clear and fragment offset 0 (a later fragment has
//!    no UDP header, a first one only part of the datagram);
//! 6. `tot_len >= IHL * 4 + 8`, and the IP packet (`14 + tot_len`) ends
//!    within the frame (Ethernet padding after it is fine);
//! 7. the 8-byte UDP header is within the frame, and the UDP length is
//!    at least 8 and no more than the IP payload (`tot_len - IHL * 4`);
//! 8. the destination address matches, if [`FilterSpec::dst_addr`] is set;
//! 9. the destination port is one of [`FilterSpec::ports`].
//!
//! An IPv6 frame (ethertype 0x86dd) is steered only when all of these hold:
//!
//! 1. the Ethernet header, the fixed 40-byte IPv6 header and a UDP header
//!    (62 bytes) are in the frame;
//! 2. IP version 6;
//! 3. the next header is UDP (17): a frame with extension headers (hop by
//!    hop, routing, fragment, destination options: a jumbogram too) goes
//!    to the stack, which parses them;
//! 4. the payload length is at least 8 and the packet (`54 +
//!    payload length`) ends within the frame;
//! 5. the UDP length is at least 8 and no more than the payload length;
//! 6. the UDP checksum is not zero (RFC 8200 forbids a zero checksum over
//!    IPv6; the stack drops such a datagram and counts it);
//! 7. no IPv4 [`FilterSpec::dst_addr`] is set (an address filter is
//!    IPv4's: with one, IPv6 goes to the stack);
//! 8. the destination port is one of [`FilterSpec::ports`].
//!
//! Frames whose lengths lie (IPv4 checks 6 and 7, IPv6 checks 4 and 5) go
//! to the stack rather than to a socket: the kernel counts and drops them,
//! and the data path never sees a datagram whose length fields it cannot
//! trust. The kernel's own counters (`nstat`: `Ip6InHdrErrors`,
//! `Udp6InErrors`, `Udp6NoPorts`, and IPv4's) count what it drops.
//!
//! When a queue's XSKMAP slot is empty, `bpf_redirect_map` returns its
//! flags' action instead of redirecting: [`FilterSpec::miss_action`],
//! [`XdpAction::Pass`] by default, so a queue without a socket still
//! delivers to the stack. Tests set it to [`XdpAction::Drop`] to observe
//! the redirect path without a socket.
//!
//! # How it is made
//!
//! [`generate`] writes the program as [`Insn`]s, the kernel's 8-byte
//! `struct bpf_insn`, with a placeholder where the XSKMAP's file descriptor
//! goes. Every packet access is bounds-checked against `data_end` first, as
//! the verifier insists; the one variable offset (the IP header length) is
//! masked to four bits and shifted, so the verifier can bound it. The
//! port set is an unrolled chain of at most [`PORTS_MAX`] compares, against
//! constants in network byte order, so no byte swap runs per packet. No
//! loops: the program is a straight line of under [`PROG_INSNS_MAX`]
//! instructions.
//!
//! [`XdpProgram::load`] makes the XSKMAP, patches its fd into the bytecode,
//! and loads the program through libbpf's `bpf_prog_load`. A rejection
//! comes back as [`BpfError::Verifier`] with the verifier's whole log.
//!
//! # Attaching
//!
//! [`XdpProgram::attach`] attaches through a BPF link (`bpf_link_create`,
//! `BPF_XDP`), not the older netlink attach: the link is a file descriptor,
//! owned by the returned [`XdpLink`], and the kernel detaches the program
//! when the last descriptor closes — on drop, and also when the process
//! dies. A crashed validator never leaves a stale program steering its
//! ports into sockets that no longer exist.
//!
//! Interface indexes belong to a network namespace, and the kernel resolves
//! them in the namespace of the *calling thread*: attach from a thread
//! inside the device's namespace.
//!
//! # Privileges
//!
//! Making the map and loading the program need `CAP_BPF` (or
//! `CAP_SYS_ADMIN`), attaching needs `CAP_NET_ADMIN`, and so does
//! `BPF_PROG_TEST_RUN`: in practice, root. Without them every operation
//! fails with [`BpfError::NotPermitted`]. [`generate`] and [`FilterSpec`]
//! need nothing.

mod action;
mod error;
mod insn;
mod limits;
mod link;
mod load;
mod mode;
mod prog;
mod spec;

pub use action::XdpAction;
pub use error::BpfError;
pub use insn::{to_bytes, AluOp, Insn, JmpOp, Reg, Size, PSEUDO_MAP_FD};
pub use limits::{PORTS_MAX, PROG_INSNS_MAX, TEST_RUN_FRAME_MAX, TEST_RUN_FRAME_MIN};
pub use link::{AttachedProgram, XdpLink};
pub use load::{attached_program, XdpProgram, XskMap};
pub use mode::AttachMode;
pub use prog::{generate, patch_map_fd};
pub use spec::FilterSpec;
