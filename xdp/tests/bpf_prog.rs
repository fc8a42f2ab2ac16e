//! The XDP program in the kernel: its verdicts through `BPF_PROG_TEST_RUN`
//! (every destination port, other protocols, IP options, truncations, lying
//! lengths, fragments, the address filter, edge frames against the rules
//! restated in Rust) and its attachment to veth and bridge devices in
//! fresh namespaces.
//!
//! Everything here needs root; without it each test prints
//! `skipped: needs CAP_NET_ADMIN` and passes.
//!
//! # Observing the redirect path
//!
//! `bpf_redirect_map` on an XSKMAP slot without a socket returns its flags'
//! action instead of `XDP_REDIRECT`. The checks below run against a
//! [`Harness`]: a loaded program plus the verdict a steered frame gets.
//! [`Harness::without_socket`] loads the program with miss action
//! [`XdpAction::Drop`], so the redirect path shows as `Drop` and every other
//! path as `Pass`. A harness whose queue 0 holds a bound AF_XDP socket
//! (verdict [`XdpAction::Redirect`]) runs the same checks with one more
//! `harness_tests!` invocation.

#[path = "support/frames.rs"]
mod frames;

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use frames::{Udp4, DST_ADDR};
use tilewire_aio::netns::VethPair;
use tilewire_shmem::{PageKind, Workspace};
use tilewire_xdp::bpf::{
    attached_program, generate, AttachMode, BpfError, FilterSpec, Insn, XdpAction, XdpProgram,
    TEST_RUN_FRAME_MIN,
};
use tilewire_xdp::{BindMode, Umem, Xsk, XskConfig};

/// True when root; otherwise says the test is skipped, as CI expects.
fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let _ = writeln!(std::io::stderr(), "\nskipped: needs CAP_NET_ADMIN");
    false
}

/// Sixteen ports, including both ends of the range.
const PORTS: [u16; 16] = [
    1, 2, 53, 1024, 8000, 8001, 8002, 8003, 8004, 8005, 8008, 8899, 9000, 20000, 65534, 65535,
];
/// The port most checks send to.
const PORT: u16 = 8001;

fn spec() -> FilterSpec {
    FilterSpec::new(PORTS).expect("valid ports")
}

/// A loaded program, and the verdict of a frame it steers.
struct Harness {
    prog: XdpProgram,
    steered: XdpAction,
    /// For [`Harness::with_socket`]: the socket in the map (dropped before
    /// the pair it is bound on).
    _socket: Option<(Xsk<'static>, VethPair)>,
}

impl Harness {
    /// The program with miss action `Drop` and no socket: steered frames
    /// come back `Drop`.
    fn without_socket(spec: &FilterSpec) -> Harness {
        let spec = spec.clone().with_miss_action(XdpAction::Drop);
        let prog = XdpProgram::load(&spec, 1).expect("load");
        Harness {
            prog,
            steered: XdpAction::Drop,
            _socket: None,
        }
    }

    /// The production program (miss action `Pass`) with a real AF_XDP
    /// socket bound on a veth and put in the map at queue 0: steered
    /// frames come back `Redirect`, the verdict the NIC path acts on.
    fn with_socket(spec: &FilterSpec) -> Harness {
        let prog = XdpProgram::load(spec, 1).expect("load");
        let pair = VethPair::new("bpfsock").expect("veth pair");
        // The workspace lives as long as the test process; its name is
        // removed at once, the mapping stays.
        let name = format!("tw-bpftest-{}-{}", std::process::id(), pair.a().ifindex());
        let ws: &'static Workspace = Box::leak(Box::new(
            Workspace::create(&name, 8 << 20, PageKind::Normal).unwrap(),
        ));
        let _ = Workspace::unlink(&name);
        let umem = Umem::alloc_named(ws, "umem", 256).unwrap();
        let cfg = XskConfig {
            ifname: pair.a().ifname().to_string(),
            bind: BindMode::Copy,
            rx_size: 64,
            fill_size: 64,
            tx_size: 64,
            ..XskConfig::default()
        };
        let xsk = pair
            .a()
            .run(|| Xsk::bind(umem, &cfg))
            .unwrap()
            .expect("bind")
            .0;
        prog.register_socket(0, xsk.raw_fd().unwrap())
            .expect("register");
        Harness {
            prog,
            steered: XdpAction::Redirect,
            _socket: Some((xsk, pair)),
        }
    }

    fn run(&self, frame: &[u8]) -> XdpAction {
        self.prog.test_run(frame, 0).expect("test run")
    }

    #[track_caller]
    fn expect_steered(&self, frame: &[u8], what: &str) {
        assert_eq!(self.run(frame), self.steered, "{what}");
    }

    #[track_caller]
    fn expect_pass(&self, frame: &[u8], what: &str) {
        assert_eq!(self.run(frame), XdpAction::Pass, "{what}");
    }
}

// ---- checks, each over any harness ----

/// Every destination port: steered exactly when configured.
fn check_all_ports(h: &Harness) {
    let configured = &h.prog.spec().ports;
    let mut udp = Udp4::new(0);
    let mut frame = udp.build();
    let port_at = 14 + 20 + 2;
    let start = Instant::now();
    let mut steered = 0;
    for port in 0..=u16::MAX {
        frame[port_at..port_at + 2].copy_from_slice(&port.to_be_bytes());
        let verdict = h.run(&frame);
        let want = if configured.contains(&port) {
            steered += 1;
            h.steered
        } else {
            XdpAction::Pass
        };
        assert_eq!(verdict, want, "port {port}");
    }
    let took = start.elapsed();
    assert_eq!(steered, configured.len());
    let _ = writeln!(std::io::stderr(), "65536 test runs in {took:?}");
    // The same through the frame builder, checksum and all.
    udp.dst_port = configured[0];
    h.expect_steered(&udp.build(), "builder frame");
}

/// Other protocols, other ethertypes, a VLAN tag: all to the stack, even
/// when the bytes where a UDP port would be hold a configured one.
fn check_other_protocols(h: &Harness) {
    h.expect_pass(&frames::tcp4(PORT), "tcp");
    h.expect_pass(&frames::arp_request(), "arp");
    h.expect_pass(&frames::icmp4_echo(PORT), "icmp");
    h.expect_pass(&frames::udp6(PORT), "ipv6 udp with a zero checksum");
    let mut vlan = Udp4::new(PORT);
    vlan.vlan = Some(100);
    h.expect_pass(&vlan.build(), "vlan-tagged udp");
    let mut v6 = Udp4::new(PORT);
    v6.version = 6;
    h.expect_pass(&v6.build(), "version 6 under ethertype 0x0800");
    for ihl in 0..5 {
        let mut short = Udp4::new(PORT);
        short.ihl = ihl;
        h.expect_pass(&short.build(), &format!("ihl {ihl}"));
    }
}

/// IPv6 UDP is steered by port as IPv4 is; extension headers, a zero
/// checksum, lying lengths and truncations go to the stack.
fn check_ipv6(h: &Harness) {
    use frames::Udp6;
    h.expect_steered(&Udp6::new(PORT).build(), "ipv6 udp");
    let mut other = Udp6::new(PORT + 1000);
    h.expect_pass(&other.build(), "ipv6 udp, another port");
    other.dst_port = PORT;
    other.trailer = 20;
    h.expect_steered(&other.build(), "ipv6 udp with padding after it");
    for next in [0u8, 43, 44, 60, 6] {
        let mut ext = Udp6::new(PORT);
        ext.next = next;
        h.expect_pass(&ext.build(), &format!("next header {next}"));
    }
    let mut jumbo = Udp6::new(PORT);
    jumbo.plen = Some(0);
    h.expect_pass(&jumbo.build(), "payload length 0 (a jumbogram's)");
    let mut long = Udp6::new(PORT);
    long.plen = Some(41 + 32);
    h.expect_pass(&long.build(), "payload length past the frame");
    let mut udp_long = Udp6::new(PORT);
    udp_long.udp_len = Some(8 + 33);
    h.expect_pass(&udp_long.build(), "udp length past the payload");
    let mut udp_short = Udp6::new(PORT);
    udp_short.udp_len = Some(7);
    h.expect_pass(&udp_short.build(), "udp length under 8");
    let mut v4 = Udp6::new(PORT);
    v4.version = 4;
    h.expect_pass(&v4.build(), "version 4 under ethertype 0x86dd");
    let f = Udp6::new(PORT).build();
    for len in [14, 34, 54, 61] {
        h.expect_pass(&f[..len], &format!("ipv6 cut to {len} bytes"));
    }
}

/// IP options (IHL 6 to 15) move the UDP header; still steered.
fn check_ip_options(h: &Harness) {
    for ihl in 5..=15 {
        let mut udp = Udp4::new(PORT);
        udp.ihl = ihl;
        h.expect_steered(&udp.build(), &format!("ihl {ihl}"));
        udp.dst_port = PORT + 1000;
        h.expect_pass(&udp.build(), &format!("ihl {ihl}, other port"));
        // The port read at the minimal-header offset must not count.
        let mut f = udp.build();
        f[36..38].copy_from_slice(&PORT.to_be_bytes());
        if ihl > 5 {
            h.expect_pass(&f, &format!("ihl {ihl}, port bytes in the options"));
        }
    }
}

/// Every truncation of a steered frame: never steered, never aborted.
fn check_truncations(h: &Harness) {
    for ihl in [5, 6, 15] {
        let mut udp = Udp4::new(PORT);
        udp.ihl = ihl;
        let frame = udp.build();
        h.expect_steered(&frame, "whole frame");
        for len in 0..frame.len() {
            let cut = &frame[..len];
            if len < TEST_RUN_FRAME_MIN {
                let err = h.prog.test_run(cut, 0).unwrap_err();
                assert!(matches!(err, BpfError::FrameSize { .. }), "{len}: {err}");
            } else {
                h.expect_pass(cut, &format!("ihl {ihl} cut to {len} bytes"));
            }
        }
        // Cut inside the headers, with lengths that agree with the cut.
        for len in TEST_RUN_FRAME_MIN..udp.header_len() {
            let mut f = frame[..len].to_vec();
            if len >= 18 {
                let tot = (len - 14) as u16;
                f[16..18].copy_from_slice(&tot.to_be_bytes());
            }
            h.expect_pass(&f, &format!("ihl {ihl} headers cut to {len}"));
        }
    }
}

/// Length fields that lie go to the stack; honest oddities are steered.
fn check_lying_lengths(h: &Harness) {
    fn hlen(u: &Udp4) -> u16 {
        4 * u16::from(u.ihl)
    }
    /// What the case is, whether it is steered, and the edit that makes it.
    type Case = (&'static str, bool, fn(&mut Udp4));
    let cases: [Case; 13] = [
        ("udp len 0", false, |u| u.udp_len = Some(0)),
        ("udp len 7", false, |u| u.udp_len = Some(7)),
        ("udp len beyond the ip payload", false, |u| {
            u.udp_len = Some(41)
        }),
        ("udp len 65535", false, |u| u.udp_len = Some(u16::MAX)),
        ("tot_len short of udp", false, |u| {
            u.tot_len = Some(hlen(u) + 7)
        }),
        ("tot_len < 20", false, |u| u.tot_len = Some(19)),
        ("tot_len 0", false, |u| u.tot_len = Some(0)),
        ("tot_len beyond the frame", false, |u| {
            u.tot_len = Some(hlen(u) + 41)
        }),
        ("tot_len 65535", false, |u| u.tot_len = Some(u16::MAX)),
        ("udp len beyond a short tot_len", false, |u| {
            (u.tot_len, u.udp_len) = (Some(hlen(u) + 8), Some(40))
        }),
        // Honest: Ethernet padding after the packet, a UDP length short of
        // the IP payload (the stack trims), an empty datagram.
        ("padding after the packet", true, |u| u.trailer = 18),
        ("udp len 8 with payload after", true, |u| {
            u.udp_len = Some(8)
        }),
        ("empty datagram", true, |u| u.payload_len = 0),
    ];
    for (what, steer, edit) in cases {
        for ihl in [5, 9] {
            let mut udp = Udp4::new(PORT);
            udp.ihl = ihl;
            edit(&mut udp);
            let what = format!("{what} (ihl {ihl})");
            if steer {
                h.expect_steered(&udp.build(), &what);
            } else {
                h.expect_pass(&udp.build(), &what);
            }
        }
    }
}

/// Fragments go to the stack; DF alone is fine.
fn check_fragments(h: &Harness) {
    for (frag, steer) in [
        (0x0000, true),
        (0x4000, true),
        (0x2000, false),
        (0x0001, false),
        (0x1fff, false),
        (0x0100, false),
        (0x2000 | 0x00b9, false),
        (0x4000 | 0x0001, false),
        (0x8000, true), // the reserved bit is not the fragment's business
    ] {
        let mut udp = Udp4::new(PORT);
        udp.frag = frag;
        let what = format!("frag field {frag:#06x}");
        if steer {
            h.expect_steered(&udp.build(), &what);
        } else {
            h.expect_pass(&udp.build(), &what);
        }
    }
}

// ---- tests without a socket ----

/// One `#[test]` per check, each on a fresh harness made by `$make`. A
/// harness with a real socket is one more invocation.
macro_rules! harness_tests {
    ($make:path; $($test:ident => $check:ident),+ $(,)?) => {$(
        #[test]
        fn $test() {
            if !privileged() {
                return;
            }
            $check(&$make(&spec()));
        }
    )+};
}

harness_tests! {
    Harness::without_socket;
    all_ports_without_socket => check_all_ports,
    other_protocols_without_socket => check_other_protocols,
    ip_options_without_socket => check_ip_options,
    truncations_without_socket => check_truncations,
    lying_lengths_without_socket => check_lying_lengths,
    fragments_without_socket => check_fragments,
    ipv6_without_socket => check_ipv6,
    rules_hold_without_socket => check_rules,
}

harness_tests! {
    Harness::with_socket;
    all_ports_with_socket => check_all_ports,
    other_protocols_with_socket => check_other_protocols,
    ip_options_with_socket => check_ip_options,
    truncations_with_socket => check_truncations,
    lying_lengths_with_socket => check_lying_lengths,
    fragments_with_socket => check_fragments,
    ipv6_with_socket => check_ipv6,
    rules_hold_with_socket => check_rules,
}

// ---- the address filter, the default miss action, the context ----

#[test]
fn dst_addr_filter() {
    if !privileged() {
        return;
    }
    for addr in [DST_ADDR, Ipv4Addr::new(10, 0, 0, 7), Ipv4Addr::BROADCAST] {
        let h = Harness::without_socket(&spec().with_dst_addr(addr));
        let mut udp = Udp4::new(PORT);
        udp.dst = addr;
        h.expect_steered(&udp.build(), &format!("to {addr}"));
        for other in [Ipv4Addr::new(10, 0, 0, 8), Ipv4Addr::new(198, 18, 0, 3)] {
            udp.dst = other;
            h.expect_pass(&udp.build(), &format!("{other} under a {addr} filter"));
        }
        udp.dst = addr;
        udp.dst_port = PORT + 1000;
        h.expect_pass(&udp.build(), &format!("to {addr}, other port"));
    }
}

#[test]
fn default_miss_action_is_pass() {
    if !privileged() {
        return;
    }
    let spec = spec();
    assert_eq!(spec.miss_action, XdpAction::Pass);
    let flags = |spec: &FilterSpec| {
        let insns = generate(spec);
        let call = insns.iter().position(|i| *i == Insn::call(51)).unwrap();
        insns[call - 1].imm
    };
    assert_eq!(flags(&spec), XdpAction::Pass.as_u32() as i32);
    // Loaded as is, with no socket, a configured port reaches the stack.
    let prog = XdpProgram::load(&spec, 4).expect("load");
    assert_eq!(
        prog.test_run(&Udp4::new(PORT).build(), 0).unwrap(),
        XdpAction::Pass
    );
    let drop = XdpProgram::load(&spec.with_miss_action(XdpAction::Drop), 4).expect("load");
    assert_eq!(
        drop.test_run(&Udp4::new(PORT).build(), 0).unwrap(),
        XdpAction::Drop
    );
}

#[test]
fn test_run_context_rules() {
    if !privileged() {
        return;
    }
    let h = Harness::without_socket(&spec());
    let frame = Udp4::new(PORT).build();
    let err = h.prog.test_run(&frame, 1).unwrap_err();
    assert!(
        matches!(err, BpfError::TestRunQueue { rx_queue: 1 }),
        "{err}"
    );
    // Queue 0 of loopback (ifindex 1) exists; its queue 1 does not.
    assert_eq!(h.prog.test_run_on(&frame, 1, 0).unwrap(), h.steered);
    let err = h.prog.test_run_on(&frame, 1, 1).unwrap_err();
    assert!(matches!(err, BpfError::TestRun { .. }), "{err}");
    let big = vec![0u8; tilewire_xdp::bpf::TEST_RUN_FRAME_MAX + 1];
    assert!(matches!(
        h.prog.test_run(&big, 0),
        Err(BpfError::FrameSize { .. })
    ));
    let mut jumbo = Udp4::new(PORT);
    jumbo.payload_len = tilewire_xdp::bpf::TEST_RUN_FRAME_MAX - 42;
    h.expect_steered(&jumbo.build(), "largest test frame");
}

#[test]
fn register_socket_errors() {
    if !privileged() {
        return;
    }
    let prog = XdpProgram::load(&spec(), 2).expect("load");
    assert_eq!(prog.queues(), 2);
    let err = prog.register_socket(2, 0).unwrap_err();
    assert!(
        matches!(
            err,
            BpfError::QueueOutOfRange {
                queue: 2,
                queues: 2
            }
        ),
        "{err}"
    );
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&udp);
    let err = prog.register_socket(0, fd).unwrap_err();
    assert!(
        matches!(err, BpfError::NotAnXskSocket { queue: 0, .. }),
        "{err}"
    );
    prog.unregister_socket(1).expect("emptying an empty slot");
    assert!(matches!(
        prog.unregister_socket(7),
        Err(BpfError::QueueOutOfRange { .. })
    ));
    assert!(matches!(
        XdpProgram::load(&spec(), 0),
        Err(BpfError::NoQueues)
    ));
}

// ---- attaching ----

/// Runs `ip args...` in the calling thread's namespace; its stdout.
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls until device `ifindex` runs `want` (a program id) or none; a
/// dropped link may live on briefly in a child forked by another test.
#[track_caller]
fn wait_attached(ifindex: u32, want: Option<u32>) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let now = attached_program(ifindex).expect("query").map(|p| p.id);
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ifindex {ifindex} runs {now:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn attach_veth_skb_and_drv() {
    if !privileged() {
        return;
    }
    let pair = VethPair::new("bpf").expect("veth pair");
    let side = pair.a();
    let ifindex = side.ifindex();
    let ifname = side.ifname().to_owned();
    let prog = XdpProgram::load(&spec(), 1).expect("load");
    let id = prog.prog_id().expect("prog id");
    side.run(|| {
        assert_eq!(attached_program(ifindex).unwrap(), None);
        for mode in [AttachMode::Skb, AttachMode::Drv, AttachMode::Skb] {
            let started = Instant::now();
            let link = prog.attach(ifindex, mode).expect("attach");
            let took = started.elapsed();
            assert_eq!((link.ifindex(), link.mode()), (ifindex, mode));
            let seen = attached_program(ifindex).unwrap().expect("attached");
            assert_eq!(
                (seen.id, seen.name.as_str(), seen.mode),
                (id, "tilewire_xdp", Some(mode))
            );
            let shown = ip(&["-d", "link", "show", "dev", &ifname]);
            let flag = if mode == AttachMode::Skb {
                " xdpgeneric "
            } else {
                " xdp "
            };
            assert!(shown.contains(flag), "{mode:?}: {shown}");
            assert!(
                shown.contains(&format!("prog/xdp id {id} name tilewire_xdp")),
                "{shown}"
            );
            drop(link);
            wait_attached(ifindex, None);
            let _ = writeln!(std::io::stderr(), "{mode:?} attach took {took:?}");
        }
        // Attach, drop, attach again straight away: no EBUSY failure.
        for _ in 0..5 {
            drop(prog.attach(ifindex, AttachMode::Drv).expect("re-attach"));
        }
        wait_attached(ifindex, None);
    })
    .expect("run in namespace");
}

#[test]
fn attach_over_another_program_names_it() {
    if !privileged() {
        return;
    }
    let pair = VethPair::new("bpfbusy").expect("veth pair");
    let ifindex = pair.a().ifindex();
    let first = XdpProgram::load(&spec(), 1).expect("load");
    let second = XdpProgram::load(&FilterSpec::new([4242]).unwrap(), 1).expect("load");
    let first_id = first.prog_id().unwrap();
    pair.a()
        .run(|| {
            let _link = first.attach(ifindex, AttachMode::Skb).expect("attach");
            for mode in [AttachMode::Skb, AttachMode::Drv] {
                let err = second.attach(ifindex, mode).unwrap_err();
                match &err {
                    BpfError::AlreadyAttached {
                        ifindex: i,
                        prog_id,
                        prog_name,
                    } => {
                        assert_eq!(
                            (*i, *prog_id, prog_name.as_str()),
                            (ifindex, first_id, "tilewire_xdp")
                        );
                    }
                    other => panic!("{mode:?}: want AlreadyAttached, got {other}"),
                }
                assert!(err.to_string().contains("xdp off"), "{err}");
            }
        })
        .expect("run in namespace");
}

#[test]
fn attach_errors_name_the_fix() {
    if !privileged() {
        return;
    }
    let pair = VethPair::new("bpferr").expect("veth pair");
    let prog = XdpProgram::load(&spec().with_miss_action(XdpAction::Drop), 4).expect("load");
    pair.a()
        .run(|| {
            for bogus in [0, 999_999, u32::MAX] {
                let err = prog.attach(bogus, AttachMode::Skb).unwrap_err();
                assert!(
                    matches!(err, BpfError::NoSuchDevice { ifindex } if ifindex == bogus),
                    "{bogus}: {err}"
                );
                assert!(err.to_string().contains("ip link"), "{err}");
            }
            // A bridge: no native XDP, and here four receive queues.
            ip(&["link", "add", "twbr0", "numrxqueues", "4", "type", "bridge"]);
            let line = ip(&["-o", "link", "show", "dev", "twbr0"]);
            let index: u32 = line.split(':').next().unwrap().trim().parse().unwrap();
            let err = prog.attach(index, AttachMode::Drv).unwrap_err();
            assert!(matches!(err, BpfError::DrvModeUnsupported { .. }), "{err}");
            assert!(err.to_string().contains("AttachMode::Skb"), "{err}");
            drop(
                prog.attach(index, AttachMode::Skb)
                    .expect("generic XDP works everywhere"),
            );
            // test_run_on a real device's queues: 0 to 3 exist, 4 does not.
            let frame = Udp4::new(PORT).build();
            for queue in 0..4 {
                assert_eq!(
                    prog.test_run_on(&frame, index, queue).unwrap(),
                    XdpAction::Drop
                );
            }
            assert!(prog.test_run_on(&frame, index, 4).is_err());
        })
        .expect("run in namespace");
}

// ---- the rules, stated again in Rust, against the kernel's verdicts ----

/// Whether the rules of the `bpf` module documentation steer `f`: an
/// independent statement of them, to hold the bytecode to.
fn rules_steer(spec: &FilterSpec, f: &[u8]) -> bool {
    let be16 = |at: usize| usize::from(u16::from_be_bytes([f[at], f[at + 1]]));
    if f.len() >= 34 && f[12..14] == [0x86, 0xdd] {
        // IPv6: 40 fixed bytes, UDP next, lengths that hold, checksum set,
        // no IPv4 address filter.
        if f.len() < 62 || f[14] >> 4 != 6 || f[20] != 17 {
            return false;
        }
        let plen = be16(18);
        let udp_len = be16(58);
        if plen < 8 || 54 + plen > f.len() || udp_len < 8 || udp_len > plen {
            return false;
        }
        if be16(60) == 0 || spec.dst_addr.is_some() {
            return false;
        }
        return spec.ports.contains(&(be16(56) as u16));
    }
    if f.len() < 34 || f[12..14] != [0x08, 0x00] || f[14] >> 4 != 4 {
        return false;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    if ihl < 20 || f[23] != 17 || be16(20) & 0x3fff != 0 {
        return false;
    }
    let tot_len = be16(16);
    let udp = 14 + ihl;
    if tot_len < ihl + 8 || 14 + tot_len > f.len() || udp + 8 > f.len() {
        return false;
    }
    let udp_len = be16(udp + 4);
    if udp_len < 8 || udp_len > tot_len - ihl {
        return false;
    }
    if spec.dst_addr.is_some_and(|a| f[30..34] != a.octets()) {
        return false;
    }
    spec.ports.contains(&(be16(udp + 2) as u16))
}

/// The kernel's verdict on many edge frames is the one the rules give.
fn check_rules(h: &Harness) {
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config {
        cases: 5000,
        failure_persistence: None,
        ..Config::default()
    });
    let spec = h.prog.spec().clone();
    let (steered, passed) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    let both = proptest::prop_oneof![frames::edge_frames(&PORTS), frames::edge_frames6(&PORTS)];
    let result = runner.run(&both, |frame| {
        let want = if rules_steer(&spec, &frame) {
            steered.set(steered.get() + 1);
            h.steered
        } else {
            passed.set(passed.get() + 1);
            XdpAction::Pass
        };
        proptest::prop_assert_eq!(h.run(&frame), want, "frame {:02x?}", frame);
        Ok(())
    });
    result.unwrap();
    // Both sides of the rules were exercised, not just one.
    let (steered, passed) = (steered.get(), passed.get());
    assert!(
        steered > 200 && passed > 200,
        "{steered} steered, {passed} passed"
    );
}

#[test]
fn rules_hold_with_dst_addr_without_socket() {
    if !privileged() {
        return;
    }
    check_rules(&Harness::without_socket(&spec().with_dst_addr(DST_ADDR)));
}
