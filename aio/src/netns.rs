#![allow(unsafe_code)]
// talks to the kernel or to raw memory; each use says why it is sound
// The summary line of this module's documentation is on `pub mod netns`
// in lib.rs, whose scope rustdoc resolves the links below in: hence the
// `crate::netns::` paths.

//! # What a pair is
//!
//! [`VethPair::new`](crate::netns::VethPair::new) makes two network namespaces (`a` and `b`) and one
//! veth pair with an end in each, so packets sent in one namespace arrive
//! on a real (virtual) Ethernet interface in the other: ARP, IP and UDP run
//! as they would between two hosts, unlike loopback, which skips the
//! device layer. Each end has an IPv4 address in a /30 of `198.18.0.0/15`
//! (RFC 2544's benchmarking range, routed nowhere), is up, and knows the
//! other's MAC address as a permanent neighbour entry, so the first
//! datagram is not held back by ARP. `lo` is up in both namespaces.
//!
//! The names carry the process id, a per-process counter and the caller's
//! tag, so concurrent tests and runs never meet: `tw-<pid>-<n>-<tag>-a`
//! for a namespace, and `tw<pid>.<n><tag...>` cut to 15 bytes for an
//! interface. The /30 is chosen from the pid and counter too: unique for
//! the pairs of one process, and usually across processes (isolation does
//! not depend on it: each pair lives in namespaces of its own).
//!
//! Everything is done with `ip(8)` from iproute2; an error names the
//! command that failed and what it printed. If a step fails midway,
//! whatever was made so far is removed before the error is returned.
//!
//! # Using the namespaces
//!
//! A network namespace belongs to a thread, not to a process: `setns(2)`
//! moves only the calling thread. [`VethSide::run`](crate::netns::VethSide::run) runs a closure on a
//! scoped thread that entered the side's namespace and returns its result;
//! [`VethSide::spawn`](crate::netns::VethSide::spawn) starts a long-lived thread there (a pinned
//! benchmark loop) and returns its [`JoinHandle`](std::thread::JoinHandle).
//!
//! **A socket belongs to the namespace it was made in, for its whole
//! life**, whichever thread later uses it. So the usual pattern is to make
//! the sockets inside (`side.run(|| UdpSocket::bind(..))`) and then use
//! them from any thread of the process, without entering anything again.
//!
//! # Removal
//!
//! Dropping the [`VethPair`](crate::netns::VethPair) deletes both namespaces with
//! `ip netns delete`; the veth ends go with them, which removes the pair.
//! Drop also runs while a panic unwinds, so a failing test leaves nothing
//! behind. Errors of removal are printed to stderr, never panicked on.
//!
//! The kernel frees a namespace only when nothing refers to it any more:
//! a socket made in it, or a thread still inside it, keeps it (and its
//! veth end) alive, without a name, until closed or finished. Close the
//! sockets and join the threads before dropping the pair.
//!
//! # Privileges
//!
//! Making namespaces needs `CAP_SYS_ADMIN` and configuring them
//! `CAP_NET_ADMIN`: in practice, root. Without them [`VethPair::new`](crate::netns::VethPair::new)
//! fails with [`NetnsError::NotPermitted`](crate::netns::NetnsError::NotPermitted).

#![deny(unsafe_code)]

#[cfg(feature = "test-support")]
mod ipv6;

#[cfg(feature = "test-support")]
use std::fmt;
use std::fs::File;
use std::io;
#[cfg(feature = "test-support")]
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
#[cfg(feature = "test-support")]
use std::process::Command;
#[cfg(feature = "test-support")]
use std::sync::atomic::{AtomicU32, Ordering};
#[cfg(feature = "test-support")]
use std::sync::mpsc;
#[cfg(feature = "test-support")]
use std::thread::JoinHandle;

/// The benchmarking range every pair's addresses come from: 198.18.0.0/15.
#[cfg(feature = "test-support")]
pub const ADDR_RANGE: (Ipv4Addr, u8) = (Ipv4Addr::new(198, 18, 0, 0), 15);
/// Prefix length of each pair's subnet: a /30, two hosts.
#[cfg(feature = "test-support")]
pub const PREFIX_LEN: u8 = 30;
/// Longest tag [`VethPair::new`] accepts.
pub const TAG_MAX: usize = 32;
/// Longest interface name Linux accepts (`IFNAMSIZ - 1`).
#[cfg(feature = "test-support")]
const IFNAME_MAX: usize = 15;

/// Why making, entering or using a namespace failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    /// The kernel refused to make a namespace: the process lacks
    /// `CAP_SYS_ADMIN` / `CAP_NET_ADMIN` (run as root).
    #[error(
        "`{command}` was refused: needs CAP_NET_ADMIN and CAP_SYS_ADMIN (run as root): {stderr}"
    )]
    NotPermitted {
        /// The command that was refused.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The tag is empty, longer than [`TAG_MAX`], or holds a byte other
    /// than an ASCII letter, digit, `-` or `_`.
    #[error("bad tag {tag:?}: 1 to {TAG_MAX} of [A-Za-z0-9_-]")]
    BadTag {
        /// The tag given.
        tag: String,
    },
    /// `ip` could not be started (not installed, not on `PATH`).
    #[error("cannot run `{command}`: {source} (is iproute2 installed?)")]
    Spawn {
        /// The command line.
        command: String,
        /// What the OS said.
        source: io::Error,
    },
    /// An `ip` command exited with an error.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// An `ip` command printed something this module could not read.
    #[error("cannot read the output of `{command}`: {output:?}")]
    Parse {
        /// The command line.
        command: String,
        /// What it printed on stdout.
        output: String,
    },
    /// Opening `/run/netns/<name>` or `setns(2)` into it failed.
    #[error("cannot enter network namespace {netns}: {source}")]
    Enter {
        /// The namespace's name.
        netns: String,
        /// What the OS said.
        source: io::Error,
    },
    /// The thread to run in the namespace could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(#[source] io::Error),
    /// An interface's IPv6 addresses were still tentative (duplicate
    /// address detection) after the time allowed.
    #[error("the IPv6 addresses of {ifname} in {netns} are still tentative: {output}")]
    Tentative {
        /// The namespace.
        netns: String,
        /// The interface.
        ifname: String,
        /// What `ip -6 addr show tentative` printed last.
        output: String,
    },
}

/// One end of a [`VethPair`]: its namespace, interface and addresses.
#[cfg(feature = "test-support")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethSide {
    netns: String,
    ifname: String,
    ifindex: u32,
    addr: Ipv4Addr,
    mac: [u8; 6],
}

/// Two fresh network namespaces joined by a veth pair, removed on drop.
/// See the [module documentation](self).
#[cfg(feature = "test-support")]
#[derive(Debug)]
pub struct VethPair {
    a: VethSide,
    b: VethSide,
    /// Owns the namespaces; declared last so it drops after the sides.
    _made: Made,
}

/// Namespaces made so far, deleted on drop: the cleanup of a failed
/// [`VethPair::new`] and the removal of a finished pair alike.
#[cfg(feature = "test-support")]
#[derive(Debug, Default)]
struct Made(Vec<String>);

#[cfg(feature = "test-support")]
impl Drop for Made {
    fn drop(&mut self) {
        for ns in self.0.drain(..).rev() {
            if let Err(e) = ip(&["netns", "delete", &ns]) {
                eprintln!("tilewire netns: cannot remove namespace {ns}: {e}");
            }
        }
    }
}

/// Runs `ip` with `args`; its stdout on success.
#[cfg(feature = "test-support")]
fn ip(args: &[&str]) -> Result<String, NetnsError> {
    let command = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| NetnsError::Spawn {
            command: command.clone(),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if !out.status.success() {
        let lower = stderr.to_ascii_lowercase();
        if lower.contains("permission denied") || lower.contains("operation not permitted") {
            return Err(NetnsError::NotPermitted { command, stderr });
        }
        return Err(NetnsError::Command {
            command,
            status: out.status,
            stderr,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Reads the ifindex and MAC of `ifname` inside `netns` from
/// `ip -o link show`.
#[cfg(feature = "test-support")]
fn link_info(netns: &str, ifname: &str) -> Result<(u32, [u8; 6]), NetnsError> {
    let args = ["-n", netns, "-o", "link", "show", "dev", ifname];
    let out = ip(&args)?;
    parse_link_line(&out).ok_or_else(|| NetnsError::Parse {
        command: format!("ip {}", args.join(" ")),
        output: out.clone(),
    })
}

/// The ifindex and MAC of one line of `ip -o link show`:
/// `7: name@if6: <...> ... link/ether aa:bb:cc:dd:ee:ff brd ...`.
#[cfg(feature = "test-support")]
fn parse_link_line(out: &str) -> Option<(u32, [u8; 6])> {
    let ifindex = out.split(':').next()?.trim().parse().ok()?;
    let mut words = out.split_whitespace();
    words.find(|w| *w == "link/ether")?;
    let mut mac = [0u8; 6];
    let mut hex = words.next()?.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(hex.next()?, 16).ok()?;
    }
    Some((ifindex, mac))
}

/// The base address of pair `n` of process `pid`: a /30 inside
/// 198.18.0.0/15 (32768 of them). Distinct for the first 32768 pairs of
/// one process; spread over the range by pid across processes.
#[cfg(feature = "test-support")]
fn subnet(pid: u32, n: u32) -> Ipv4Addr {
    let index = (pid.wrapping_mul(40_503).wrapping_add(n)) % (1 << (PREFIX_LEN - ADDR_RANGE.1));
    Ipv4Addr::from(u32::from(ADDR_RANGE.0) + (index << (32 - PREFIX_LEN)))
}

#[cfg(feature = "test-support")]
fn mac_string(mac: &[u8; 6]) -> String {
    let hex: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    hex.join(":")
}

#[cfg(feature = "test-support")]
impl VethPair {
    /// [`VethPair::new`] for a test: `None`, after printing
    /// `skipped: needs CAP_NET_ADMIN` straight to stderr (the line CI
    /// counts), when the process lacks the privileges.
    ///
    /// # Panics
    /// On any other error, naming it.
    pub fn new_or_skip(tag: &str) -> Option<VethPair> {
        match VethPair::new(tag) {
            Ok(p) => Some(p),
            Err(NetnsError::NotPermitted { .. }) => {
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "\nskipped: needs CAP_NET_ADMIN");
                None
            }
            Err(e) => panic!("making a veth pair: {e}"),
        }
    }

    /// Makes two namespaces and a veth pair between them, as the
    /// [module documentation](self) describes. `tag` (1 to [`TAG_MAX`] of
    /// `[A-Za-z0-9_-]`) goes into the names, to tell in `ip netns list`
    /// which test made what.
    ///
    /// # Errors
    /// - [`NetnsError::BadTag`] for a tag outside the rules above;
    /// - [`NetnsError::NotPermitted`] without `CAP_NET_ADMIN` /
    ///   `CAP_SYS_ADMIN`;
    /// - [`NetnsError::Spawn`] when `ip` cannot be run;
    /// - [`NetnsError::Command`] or [`NetnsError::Parse`] naming the `ip`
    ///   command that failed.
    ///
    /// On every error, the namespaces made so far are deleted again.
    pub fn new(tag: &str) -> Result<VethPair, NetnsError> {
        VethPair::with_queues(tag, 1)
    }

    /// [`VethPair::new`], with `queues` receive and transmit queues on
    /// each end (flows spread over them; with an XDP program attached in
    /// DRV mode each packet carries the queue it came in on).
    ///
    /// # Errors
    /// As [`VethPair::new`].
    pub fn with_queues(tag: &str, queues: u32) -> Result<VethPair, NetnsError> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let ok_tag = !tag.is_empty()
            && tag.len() <= TAG_MAX
            && tag
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        if !ok_tag {
            return Err(NetnsError::BadTag {
                tag: tag.to_owned(),
            });
        }
        let pid = std::process::id();
        // SYNC: Relaxed; the counter only has to hand out distinct values.
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let ns = |side: char| format!("tw-{pid}-{n}-{tag}-{side}");
        let ifname = |side: char| {
            let base = format!("tw{pid}.{n}");
            let room = IFNAME_MAX.saturating_sub(base.len() + 1);
            let tag_part: String = tag.chars().take(room).collect();
            let mut name = format!("{base}{tag_part}{side}");
            // A pid and counter too long for the tag still leave the side
            // letter last, so the two names differ.
            if name.len() > IFNAME_MAX {
                name = format!("{}{side}", &base[..IFNAME_MAX - 1]);
            }
            name
        };
        let (ns_a, ns_b, if_a, if_b) = (ns('a'), ns('b'), ifname('a'), ifname('b'));
        let base = u32::from(subnet(pid, n));
        let (addr_a, addr_b) = (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));

        let mut made = Made::default();
        ip(&["netns", "add", &ns_a])?;
        made.0.push(ns_a.clone());
        ip(&["netns", "add", &ns_b])?;
        made.0.push(ns_b.clone());
        let q = queues.max(1).to_string();
        ip(&[
            "link",
            "add",
            &if_a,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "netns",
            &ns_a,
            "type",
            "veth",
            "peer",
            "name",
            &if_b,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "netns",
            &ns_b,
        ])?;
        for (ns, ifname, addr) in [(&ns_a, &if_a, addr_a), (&ns_b, &if_b, addr_b)] {
            let cidr = format!("{addr}/{PREFIX_LEN}");
            ip(&["-n", ns, "addr", "add", &cidr, "dev", ifname])?;
            ip(&["-n", ns, "link", "set", "dev", ifname, "up"])?;
            ip(&["-n", ns, "link", "set", "dev", "lo", "up"])?;
        }
        let (ifindex_a, mac_a) = link_info(&ns_a, &if_a)?;
        let (ifindex_b, mac_b) = link_info(&ns_b, &if_b)?;
        // Each end knows the other's MAC: no ARP before the first packet.
        for (ns, ifname, peer, mac) in
            [(&ns_a, &if_a, addr_b, mac_b), (&ns_b, &if_b, addr_a, mac_a)]
        {
            let (peer, mac) = (peer.to_string(), mac_string(&mac));
            ip(&[
                "-n",
                ns,
                "neigh",
                "replace",
                &peer,
                "lladdr",
                &mac,
                "dev",
                ifname,
                "nud",
                "permanent",
            ])?;
        }
        Ok(VethPair {
            a: VethSide {
                netns: ns_a,
                ifname: if_a,
                ifindex: ifindex_a,
                addr: addr_a,
                mac: mac_a,
            },
            b: VethSide {
                netns: ns_b,
                ifname: if_b,
                ifindex: ifindex_b,
                addr: addr_b,
                mac: mac_b,
            },
            _made: made,
        })
    }

    /// Side `a`.
    pub fn a(&self) -> &VethSide {
        &self.a
    }

    /// Side `b`.
    pub fn b(&self) -> &VethSide {
        &self.b
    }

    /// [`VethSide::run`] on side `a`.
    ///
    /// # Errors
    /// As [`VethSide::run`].
    pub fn in_a<F, R>(&self, f: F) -> Result<R, NetnsError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        self.a.run(f)
    }

    /// [`VethSide::run`] on side `b`.
    ///
    /// # Errors
    /// As [`VethSide::run`].
    pub fn in_b<F, R>(&self, f: F) -> Result<R, NetnsError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        self.b.run(f)
    }
}

/// Moves the calling thread into the network namespace named `netns` (as
/// `ip netns add` made it, under `/run/netns`), for good: the thread's
/// sockets from now on belong to it. Other threads are not affected. For a
/// thread of one's own (a tile's); for a short visit use
/// [`VethSide::run`].
///
/// # Errors
/// [`NetnsError::Enter`] if the namespace does not exist or cannot be
/// entered (without `CAP_SYS_ADMIN`, say); the thread is then where it
/// was.
pub fn enter_thread(netns: &str) -> Result<(), NetnsError> {
    let fail = |source| NetnsError::Enter {
        netns: netns.into(),
        source,
    };
    let ns = File::open(format!("/run/netns/{netns}")).map_err(fail)?;
    enter(&ns).map_err(fail)
}

/// Moves the calling thread into the network namespace `ns` refers to.
///
/// The only unsafe code of this module: std does not wrap `setns(2)`.
#[allow(unsafe_code)] // setns(2) through libc; nothing else in the module
fn enter(ns: &File) -> io::Result<()> {
    // SAFETY: setns takes two integers and touches no memory of ours; the
    // descriptor is open for the whole call because `ns` is borrowed.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(feature = "test-support")]
impl VethSide {
    /// The namespace's name (as in `ip netns list`, `ip -n <name> ...`).
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The veth end's interface name in that namespace (at most 15 bytes).
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The veth end's interface index, as read inside the namespace
    /// (indexes are per namespace: the same number may mean another
    /// interface outside it).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The veth end's IPv4 address (prefix length [`PREFIX_LEN`]).
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The veth end's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Opens the namespace's handle, `/run/netns/<name>`.
    fn open(&self) -> Result<File, NetnsError> {
        File::open(format!("/run/netns/{}", self.netns)).map_err(|source| NetnsError::Enter {
            netns: self.netns.clone(),
            source,
        })
    }

    /// Runs `f` on a new scoped thread that first entered this side's
    /// network namespace, waits for it, and returns what `f` returned.
    /// `f` may borrow from the caller. Sockets made by `f` stay in the
    /// namespace and may be returned and used from any thread.
    ///
    /// # Errors
    /// [`NetnsError::Enter`] if the namespace cannot be opened or entered
    /// (`f` is then not run); [`NetnsError::Thread`] if the thread cannot
    /// be started.
    ///
    /// # Panics
    /// If `f` panics, the panic is resumed on the calling thread (so a
    /// test's `catch_unwind` and the pair's drop see it as usual).
    pub fn run<F, R>(&self, f: F) -> Result<R, NetnsError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let ns = self.open()?;
        let result = std::thread::scope(|s| {
            let thread = std::thread::Builder::new()
                .name(format!("netns {}", self.netns))
                .spawn_scoped(s, move || {
                    enter(&ns)?;
                    drop(ns);
                    Ok(f())
                })
                .map_err(NetnsError::Thread)?;
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                .map_err(|source| NetnsError::Enter {
                    netns: self.netns.clone(),
                    source,
                })
        })?;
        Ok(result)
    }

    /// Starts a thread named `name` that enters this side's namespace and
    /// then runs `f`, like `std::thread::Builder::spawn`: for long-lived
    /// threads (a pinned benchmark loop), which may also pin themselves
    /// first thing in `f`. Returns once the thread is inside the
    /// namespace.
    ///
    /// Join the thread before dropping the [`VethPair`]: a thread inside
    /// keeps the namespace alive (nameless) until it finishes.
    ///
    /// # Errors
    /// [`NetnsError::Enter`] if the namespace cannot be opened or entered
    /// (the thread then ends without running `f`); [`NetnsError::Thread`]
    /// if the thread cannot be started.
    pub fn spawn<F, R>(&self, name: String, f: F) -> Result<JoinHandle<R>, NetnsError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let ns = self.open()?;
        let (entered_tx, entered_rx) = mpsc::sync_channel::<io::Result<()>>(1);
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let entered = enter(&ns);
                drop(ns);
                let ok = entered.is_ok();
                // The spawner waits for this message; it cannot be gone.
                let _ = entered_tx.send(entered);
                if !ok {
                    // Never run `f` outside the namespace it asked for.
                    std::panic::resume_unwind(Box::new("netns: setns failed"));
                }
                f()
            })
            .map_err(NetnsError::Thread)?;
        let entered = entered_rx.recv().unwrap_or_else(|_| {
            Err(io::Error::other(
                "the thread ended before entering the namespace",
            ))
        });
        match entered {
            Ok(()) => Ok(thread),
            Err(source) => {
                let _ = thread.join();
                Err(NetnsError::Enter {
                    netns: self.netns.clone(),
                    source,
                })
            }
        }
    }
}

#[cfg(feature = "test-support")]
impl fmt::Display for VethSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} in netns {} (ifindex {}, {}/{PREFIX_LEN}, {})",
            self.ifname,
            self.netns,
            self.ifindex,
            self.addr,
            mac_string(&self.mac)
        )
    }
}

#[cfg(all(test, feature = "test-support"))]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_distinct_aligned_and_in_range() {
        let (range, len) = ADDR_RANGE;
        let mask = !0u32 << (32 - len);
        let mut seen = std::collections::HashSet::new();
        for n in 0..4096 {
            let s = u32::from(subnet(4_194_303, n));
            assert_eq!(s & mask, u32::from(range), "{n}: outside 198.18.0.0/15");
            assert_eq!(s & 3, 0, "{n}: not a /30 boundary");
            assert!(seen.insert(s), "{n}: subnet used twice");
        }
    }

    #[test]
    fn link_line_is_parsed() {
        let line = "2: twpa@if2: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN \
                    mode DEFAULT group default qlen 1000\\    link/ether e6:3c:0c:de:b1:87 \
                    brd ff:ff:ff:ff:ff:ff link-netns tw-probe-b";
        assert_eq!(
            parse_link_line(line),
            Some((2, [0xe6, 0x3c, 0x0c, 0xde, 0xb1, 0x87]))
        );
        assert_eq!(parse_link_line("2: lo: <LOOPBACK> mtu 65536"), None);
        assert_eq!(
            mac_string(&[0xe6, 0x3c, 0x0c, 0xde, 0xb1, 0x87]),
            "e6:3c:0c:de:b1:87"
        );
    }
}
