//! [`BpfError`]: everything that can go wrong making, loading, attaching or
//! running the XDP program, each variant worded to name its fix.

use std::io;

use super::action::XdpAction;
use super::limits::PORTS_MAX;
use super::mode::AttachMode;

/// Why building, loading, attaching or test-running the XDP program failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BpfError {
    /// The filter names no port.
    #[error("the XDP filter has no ports: give 1 to {max} UDP destination ports", max = PORTS_MAX)]
    NoPorts,
    /// The filter names more ports than the program compares.
    #[error("the XDP filter has {count} ports; at most {max} are supported", max = PORTS_MAX)]
    TooManyPorts {
        /// How many were given.
        count: usize,
    },
    /// A port appears twice in the filter.
    #[error("UDP port {port} appears twice in the XDP filter: give each port once")]
    DuplicatePort {
        /// The repeated port.
        port: u16,
    },
    /// Port 0 is in the filter: no datagram is addressed to it, so it is
    /// almost certainly an unset configuration value.
    #[error("UDP port 0 in the XDP filter: no datagram is sent to port 0; set the real port")]
    PortZero,
    /// [`XdpAction::Redirect`] was given as the miss action.
    #[error(
        "{action:?} cannot be the XDP miss action: use Pass (the default), Drop, Aborted or Tx"
    )]
    BadMissAction {
        /// The action given.
        action: XdpAction,
    },
    /// The XSKMAP was asked for zero queues.
    #[error("an XSKMAP needs at least one queue; pass the device's rx queue count")]
    NoQueues,
    /// The kernel refused a BPF operation for lack of privilege.
    #[error(
        "{op} was refused (EPERM): needs CAP_BPF and CAP_NET_ADMIN (run as root); \
         on kernels before 5.11 also raise RLIMIT_MEMLOCK (ulimit -l unlimited)"
    )]
    NotPermitted {
        /// What was being done.
        op: &'static str,
    },
    /// Making the XSKMAP failed for another reason.
    #[error("cannot make the XSKMAP ({queues} entries): {source} (does the kernel have CONFIG_XDP_SOCKETS?)")]
    MapCreate {
        /// The entries asked for.
        queues: u32,
        /// What the kernel said.
        source: io::Error,
    },
    /// The verifier rejected the program; `log` holds its whole log.
    #[error(
        "the kernel verifier rejected the XDP program ({}): {}; the whole log is in BpfError::Verifier::log",
        io::Error::from_raw_os_error(*errno),
        log.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("(empty log)")
    )]
    Verifier {
        /// The errno of `BPF_PROG_LOAD`.
        errno: i32,
        /// The verifier's log, every line of it.
        log: String,
    },
    /// Loading the program failed without a verifier log to say why.
    #[error("cannot load the XDP program: {source} (the verifier left no log)")]
    ProgLoad {
        /// What the kernel said.
        source: io::Error,
    },
    /// No network device has this index in the calling thread's namespace.
    #[error(
        "no network device with ifindex {ifindex} in this network namespace: \
         check `ip link` (ifindexes are per namespace; attach from inside it)"
    )]
    NoSuchDevice {
        /// The index given.
        ifindex: u32,
    },
    /// The driver has no native XDP support.
    #[error("the driver of ifindex {ifindex} has no native XDP (EOPNOTSUPP): use AttachMode::Skb")]
    DrvModeUnsupported {
        /// The device.
        ifindex: u32,
    },
    /// Another XDP program is attached to the device.
    #[error(
        "another XDP program is attached to ifindex {ifindex}: id {prog_id} {prog_name:?}; \
         end the process that holds its link, or remove it with `ip link set dev <name> xdp off`"
    )]
    AlreadyAttached {
        /// The device.
        ifindex: u32,
        /// Kernel id of the attached program (`bpftool prog show id <id>`);
        /// 0 if it could not be found.
        prog_id: u32,
        /// Its name; empty if it could not be read.
        prog_name: String,
    },
    /// Attaching failed for another reason.
    #[error("cannot attach the XDP program to ifindex {ifindex} in {mode:?} mode: {source}")]
    Attach {
        /// The device.
        ifindex: u32,
        /// The mode asked for.
        mode: AttachMode,
        /// What the kernel said.
        source: io::Error,
    },
    /// The program attached to a device could not be opened, or is not
    /// tilewire's.
    #[error("cannot open the XSKMAP of the XDP program on ifindex {ifindex}: {why}")]
    Join {
        /// The device.
        ifindex: u32,
        /// Why.
        why: String,
    },
    /// A queue index beyond the XSKMAP.
    #[error(
        "queue {queue} is beyond the XSKMAP's {queues} entries: load the program with more queues"
    )]
    QueueOutOfRange {
        /// The queue given.
        queue: u32,
        /// The map's entries.
        queues: u32,
    },
    /// The descriptor is not an AF_XDP socket bound to a device queue.
    #[error(
        "fd {fd} cannot go into the XSKMAP at queue {queue} ({source}): \
         it must be an AF_XDP socket, bound (XDP_UMEM_REG, rings, bind) before it is registered"
    )]
    NotAnXskSocket {
        /// The queue given.
        queue: u32,
        /// The descriptor given.
        fd: i32,
        /// What the kernel said.
        source: io::Error,
    },
    /// Updating or clearing an XSKMAP entry failed for another reason.
    #[error("cannot update XSKMAP entry {queue}: {source}")]
    MapUpdate {
        /// The queue.
        queue: u32,
        /// What the kernel said.
        source: io::Error,
    },
    /// A test frame outside the sizes `BPF_PROG_TEST_RUN` accepts.
    #[error("a test-run frame must be {min} to {max} bytes, not {len}")]
    FrameSize {
        /// The frame's length.
        len: usize,
        /// Shortest accepted (an Ethernet header).
        min: usize,
        /// Longest accepted.
        max: usize,
    },
    /// A test run on a queue other than 0 without a device that has it.
    #[error(
        "a test run on rx queue {rx_queue} needs a device with that queue: \
         use XdpProgram::test_run_on with its ifindex, or queue 0"
    )]
    TestRunQueue {
        /// The queue asked for.
        rx_queue: u32,
    },
    /// `BPF_PROG_TEST_RUN` failed.
    #[error("BPF_PROG_TEST_RUN failed: {source}")]
    TestRun {
        /// What the kernel said.
        source: io::Error,
    },
    /// The program returned a value that is no XDP action (a bug in it).
    #[error("the XDP program returned {retval}, which is no XDP action")]
    UnknownAction {
        /// The value returned.
        retval: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

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
