//! [`XdpLink`]: the program attached to a device, and [`AttachedProgram`],
//! what a device reports it runs.
//!
//! A BPF link is a file descriptor that holds the attachment: the kernel
//! detaches the program when the last descriptor of the link closes. Every
//! descriptor libbpf makes is close-on-exec, but between a `fork` and its
//! `exec` the child holds a copy; so right after a drop, while another
//! thread of the process spawns a command, the device may still be busy
//! for a moment. [`XdpProgram::attach`](super::XdpProgram::attach) waits
//! that out.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::mode::AttachMode;

/// The program attached to a device through a BPF link. Dropping it closes
/// the link, which detaches the program; so does the process's death.
#[derive(Debug)]
pub struct XdpLink {
    fd: OwnedFd,
    ifindex: u32,
    mode: AttachMode,
}

/// The XDP program a device runs, as `bpf_xdp_query` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedProgram {
    /// The program's kernel id.
    pub id: u32,
    /// Its name (empty if it could not be read).
    pub name: String,
    /// The mode it runs in; `None` for hardware offload or several at once.
    pub mode: Option<AttachMode>,
}

impl XdpLink {
    /// A link that owns descriptor `fd`.
    pub(super) fn new(fd: OwnedFd, ifindex: u32, mode: AttachMode) -> XdpLink {
        XdpLink { fd, ifindex, mode }
    }

    /// The device the program is attached to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The mode it is attached in.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// The link's file descriptor, owned by `self`.
    pub fn link_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
