//! The XDP program: eBPF bytecode generated in Rust, loaded with libbpf.
//!
//! # What the program does
//!
//! Every frame a device receives runs through the program before the kernel
//! stack sees it. The program picks out the IPv4 UDP datagrams addressed to
//! a few configured destination ports (and, optionally, one destination
//! address) and hands them to the AF_XDP socket of the receive queue they
//! arrived on: `bpf_redirect_map(&xskmap, ctx->rx_queue_index, XDP_PASS)`.
//! Everything else goes on to the kernel stack (`XDP_PASS`), so ssh, ARP,
//! ICMP, IPv6 and every other port keep working on the same device.
//!
//! A frame is steered only when all of these hold; the first that fails
//! sends it to the stack:
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
//! Frames whose lengths lie (checks 6 and 7) go to the stack rather than to
//! a socket: the kernel counts and drops them, and the data path never sees
//! a datagram whose length fields it cannot trust.
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

use std::borrow::Borrow;
use std::net::Ipv4Addr;

mod error;
mod insn;
mod link;
mod load;
mod prog;

pub use error::BpfError;
pub use insn::{to_bytes, AluOp, Insn, JmpOp, Reg, Size, PSEUDO_MAP_FD};
pub use link::{AttachedProgram, XdpLink};
pub use load::{attached_program, XdpProgram, XskMap, TEST_RUN_FRAME_MAX, TEST_RUN_FRAME_MIN};
pub use prog::{generate, patch_map_fd, PROG_INSNS_MAX};

/// Most destination ports one program steers.
pub const PORTS_MAX: usize = 16;

/// What the program steers to the AF_XDP sockets; see the
/// [module documentation](self) for the exact rules.
///
/// The fields are public for reading and adjusting; [`FilterSpec::new`]
/// and [`FilterSpec::validate`] enforce the rules, and
/// [`XdpProgram::load`] validates again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterSpec {
    /// UDP destination ports (host byte order), 1 to [`PORTS_MAX`] of
    /// them, distinct, none 0.
    pub ports: Vec<u16>,
    /// If set, only datagrams to this IPv4 destination are steered.
    pub dst_addr: Option<Ipv4Addr>,
    /// What a matching frame gets when its queue's XSKMAP slot is empty
    /// (the flags of `bpf_redirect_map`): [`XdpAction::Pass`] by default,
    /// so it reaches the kernel stack. Any action but
    /// [`XdpAction::Redirect`]; tests use [`XdpAction::Drop`] to tell the
    /// redirect path from the pass path without a socket.
    pub miss_action: XdpAction,
}

impl FilterSpec {
    /// A filter for `ports` (any iterable of `u16` or `&u16`, in the order
    /// the program compares them), any destination address, missing sockets
    /// falling back to [`XdpAction::Pass`].
    ///
    /// Port 0 is refused: nothing sends to UDP port 0, and a 0 in a port
    /// list is nearly always a configuration value left unset.
    ///
    /// # Errors
    /// [`BpfError::NoPorts`], [`BpfError::TooManyPorts`] (more than
    /// [`PORTS_MAX`]), [`BpfError::DuplicatePort`], [`BpfError::PortZero`].
    pub fn new<I>(ports: I) -> Result<FilterSpec, BpfError>
    where
        I: IntoIterator,
        I::Item: Borrow<u16>,
    {
        let spec = FilterSpec {
            ports: ports.into_iter().map(|p| *p.borrow()).collect(),
            dst_addr: None,
            miss_action: XdpAction::Pass,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// The same filter, limited to datagrams addressed to `addr`.
    pub fn with_dst_addr(mut self, addr: Ipv4Addr) -> FilterSpec {
        self.dst_addr = Some(addr);
        self
    }

    /// The same filter with another [`miss_action`](Self::miss_action).
    pub fn with_miss_action(mut self, action: XdpAction) -> FilterSpec {
        self.miss_action = action;
        self
    }

    /// Checks the rules of [`FilterSpec::new`] and that the miss action is
    /// not [`XdpAction::Redirect`].
    ///
    /// # Errors
    /// Those of [`FilterSpec::new`], and [`BpfError::BadMissAction`].
    pub fn validate(&self) -> Result<(), BpfError> {
        if self.ports.is_empty() {
            return Err(BpfError::NoPorts);
        }
        if self.ports.len() > PORTS_MAX {
            return Err(BpfError::TooManyPorts {
                count: self.ports.len(),
            });
        }
        for (i, &port) in self.ports.iter().enumerate() {
            if port == 0 {
                return Err(BpfError::PortZero);
            }
            if self.ports[..i].contains(&port) {
                return Err(BpfError::DuplicatePort { port });
            }
        }
        if self.miss_action == XdpAction::Redirect {
            return Err(BpfError::BadMissAction {
                action: self.miss_action,
            });
        }
        Ok(())
    }
}

/// How the program is attached to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachMode {
    /// Generic XDP (`XDP_FLAGS_SKB_MODE`): runs after the socket buffer is
    /// made, works on every device, copy mode only for AF_XDP.
    Skb,
    /// Native XDP (`XDP_FLAGS_DRV_MODE`): runs in the driver, before any
    /// allocation; needs driver support, allows zero copy.
    Drv,
}

impl AttachMode {
    /// The `XDP_FLAGS_*` bit of this mode.
    pub const fn flags(self) -> u32 {
        match self {
            AttachMode::Skb => libbpf_sys::XDP_FLAGS_SKB_MODE,
            AttachMode::Drv => libbpf_sys::XDP_FLAGS_DRV_MODE,
        }
    }
}

/// The verdict of an XDP program (`enum xdp_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum XdpAction {
    /// `XDP_ABORTED` (0): dropped, with a tracepoint; a program error.
    Aborted = 0,
    /// `XDP_DROP` (1): dropped.
    Drop = 1,
    /// `XDP_PASS` (2): on to the kernel stack.
    Pass = 2,
    /// `XDP_TX` (3): sent back out of the device it came in on.
    Tx = 3,
    /// `XDP_REDIRECT` (4): to another device, CPU or AF_XDP socket.
    Redirect = 4,
}

impl XdpAction {
    /// The action with kernel value `value`; `None` for anything else.
    pub const fn from_u32(value: u32) -> Option<XdpAction> {
        match value {
            0 => Some(XdpAction::Aborted),
            1 => Some(XdpAction::Drop),
            2 => Some(XdpAction::Pass),
            3 => Some(XdpAction::Tx),
            4 => Some(XdpAction::Redirect),
            _ => None,
        }
    }

    /// The kernel value.
    pub const fn as_u32(self) -> u32 {
        self as u32
    }
}

impl TryFrom<u32> for XdpAction {
    /// The value that is no action.
    type Error = u32;

    fn try_from(value: u32) -> Result<XdpAction, u32> {
        XdpAction::from_u32(value).ok_or(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_validation() {
        assert!(FilterSpec::new([8001]).is_ok());
        assert!(FilterSpec::new(1..=16).is_ok());
        let from_config: &[u16] = &[7, 9];
        assert_eq!(FilterSpec::new(from_config).unwrap().ports, [7, 9]);
        assert!(matches!(
            FilterSpec::new(Vec::<u16>::new()),
            Err(BpfError::NoPorts)
        ));
        assert!(matches!(
            FilterSpec::new(1..=17),
            Err(BpfError::TooManyPorts { count: 17 })
        ));
        assert!(matches!(
            FilterSpec::new([5, 6, 5]),
            Err(BpfError::DuplicatePort { port: 5 })
        ));
        assert!(matches!(FilterSpec::new([1, 0]), Err(BpfError::PortZero)));
        let spec = FilterSpec::new([65535]).unwrap();
        assert_eq!(spec.miss_action, XdpAction::Pass);
        assert_eq!(spec.dst_addr, None);
        assert!(matches!(
            spec.with_miss_action(XdpAction::Redirect).validate(),
            Err(BpfError::BadMissAction { .. })
        ));
    }

    #[test]
    fn actions_round_trip() {
        for v in 0..5 {
            assert_eq!(XdpAction::from_u32(v).unwrap().as_u32(), v);
        }
        assert_eq!(XdpAction::try_from(5), Err(5));
        assert_eq!(XdpAction::Pass.as_u32(), libbpf_sys::XDP_PASS);
    }

    #[test]
    fn error_messages_name_the_fix() {
        let msg = BpfError::DrvModeUnsupported { ifindex: 3 }.to_string();
        assert!(msg.contains("AttachMode::Skb"), "{msg}");
        let msg = BpfError::Verifier {
            errno: libc::EACCES,
            log: "0: R1=ctx()\ninvalid access to packet\n\n".into(),
        }
        .to_string();
        assert!(msg.contains("invalid access to packet"), "{msg}");
        let msg = BpfError::NotPermitted { op: "loading" }.to_string();
        assert!(msg.contains("root"), "{msg}");
    }
}
