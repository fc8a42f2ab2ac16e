//! The committed fixtures against what they claim: every frame agrees with
//! its class under the checked frame parser, the XDP program's verdict on
//! every frame is the one its label gives (through `BPF_PROG_TEST_RUN`, as
//! root), the `.pcap` and `.bin` of each fixture hold the same frames, and
//! `fixtures/make_fixtures.py` still writes exactly the committed files.
//!
//! Plus what the loader refuses (bad records, cut or foreign pcaps) and the
//! endpoint rewrite. The BPF tests need root; without it they print
//! `skipped: needs CAP_NET_ADMIN` and pass.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use tilewire_aio::netns::VethPair;
use tilewire_shmem::{PageKind, Workspace};
use tilewire_xdp::bpf::{BpfError, FilterSpec, XdpAction, XdpProgram, TEST_RUN_FRAME_MIN};
use tilewire_xdp::fixture::{
    self, load_pcap, rewrite_endpoints, Fixture, FixtureError, FixtureFrame, FrameClass,
    PcapLoadError, CLASS_PORTS, FILE_HEADER_LEN, FRAME_LEN_MAX, MALFORMED_BIN, MIX_BIN,
    RECORD_HEADER_LEN,
};
use tilewire_xdp::frame::{verify_checksums, FrameError, UdpEndpoints, UdpFrame};
use tilewire_xdp::{BindMode, Umem, Xsk, XskConfig};

/// The validator every fixture frame is sent to.
const VALIDATOR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// Both fixtures, with their names.
fn both() -> [(&'static str, Fixture<'static>); 2] {
    [("mix", fixture::mix()), ("malformed", fixture::malformed())]
}

/// True when root; otherwise says the test is skipped, as CI expects.
fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let _ = writeln!(std::io::stderr(), "\nskipped: needs CAP_NET_ADMIN");
    false
}

// ---- (a) every frame agrees with its class ----

/// The UDP payload lengths a class's frames may have.
fn payload_range(class: FrameClass) -> std::ops::RangeInclusive<usize> {
    match class {
        FrameClass::Txn | FrameClass::IpOptions => 100..=1232,
        FrameClass::Shred => 1228..=1228,
        FrameClass::Gossip => 60..=300,
        FrameClass::Repair => 80..=170,
        other => panic!("{other} has no payload range"),
    }
}

fn in_benchmark_net(addr: Ipv4Addr) -> bool {
    let [a, b, ..] = addr.octets();
    a == 198 && (b == 18 || b == 19)
}

fn locally_administered_unicast(mac: [u8; 6]) -> bool {
    mac[0] & 0x03 == 0x02
}

/// Checks a frame of a well-formed class (or the original of a `dup`).
fn check_well_formed(what: &str, class: FrameClass, bytes: &[u8], steer_port: Option<u16>) {
    let f = UdpFrame::new_checked(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    verify_checksums(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(Some(f.dst_port()), class.port(), "{what}: port");
    assert_eq!(steer_port, class.port(), "{what}: steer port");
    assert!(
        payload_range(class).contains(&f.payload().len()),
        "{what}: payload {}",
        f.payload().len()
    );
    assert_eq!(f.frame_len(), bytes.len(), "{what}: no padding, no slack");
    assert_eq!(
        f.ihl() > 5,
        class == FrameClass::IpOptions,
        "{what}: ihl {}",
        f.ihl()
    );
    assert_eq!(f.dst_ip(), VALIDATOR, "{what}");
    assert!(
        in_benchmark_net(f.src_ip()) && f.src_ip() != VALIDATOR,
        "{what}: {}",
        f.src_ip()
    );
    assert!(locally_administered_unicast(f.src_mac()), "{what}");
    assert!(locally_administered_unicast(f.dst_mac()), "{what}");
}

/// Whether `err` is the refusal a frame of malformed `class` must get.
fn refused_as_expected(class: FrameClass, bytes: &[u8], err: FrameError) -> bool {
    let ip_header_end = 14 + UdpFrame::new_unchecked(bytes).ip_header_len();
    match (class, err) {
        (FrameClass::TruncatedEthernet, FrameError::Truncated { need, .. }) => need == 14,
        (FrameClass::TruncatedIpv4, FrameError::Truncated { need, .. }) => {
            need == 14 + 20 || need == ip_header_end
        }
        (FrameClass::TruncatedUdp, FrameError::Truncated { len, need }) => {
            len >= ip_header_end && need == ip_header_end + 8
        }
        (
            FrameClass::IpLengthTooLong,
            FrameError::IpLength {
                total_len,
                available,
                ..
            },
        ) => usize::from(total_len) > available,
        (FrameClass::UdpLengthWrong, FrameError::UdpLength { .. }) => true,
        (FrameClass::Ipv6Udp, FrameError::NotIpv4 { ethertype }) => ethertype == 0x86dd,
        (FrameClass::Tcp, FrameError::NotUdp { protocol }) => protocol == 6,
        (FrameClass::Icmp, FrameError::NotUdp { protocol }) => protocol == 1,
        (FrameClass::Arp, FrameError::NotIpv4 { ethertype }) => ethertype == 0x0806,
        (FrameClass::Fragment, FrameError::Fragment { .. }) => true,
        (FrameClass::Vlan, FrameError::NotIpv4 { ethertype }) => {
            ethertype == 0x8100 || ethertype == 0x88a8
        }
        _ => false,
    }
}

/// The port a malformed frame aims at where its bytes have a UDP or TCP
/// header in a known place: it must be a class port, or the XDP checks on
/// it would prove nothing.
fn aimed_port(class: FrameClass, b: &[u8]) -> Option<u16> {
    let at = match class {
        FrameClass::Ipv6Udp => 14 + 40 + 2,
        FrameClass::Tcp => 14 + 20 + 2,
        FrameClass::Vlan if b[12..14] == [0x88, 0xa8] => 22 + 20 + 2,
        FrameClass::Vlan => 18 + 20 + 2,
        _ => return None,
    };
    Some(u16::from_be_bytes([b[at], b[at + 1]]))
}

#[test]
fn every_frame_agrees_with_its_class() {
    for (name, fixture) in both() {
        for (i, frame) in fixture.iter().enumerate() {
            let what = format!("{name}[{i}] {}", frame.class);
            let steer = fixture.steer_port(i);
            match frame.class {
                FrameClass::Dup => {
                    let of = frame.dup_of.expect("a dup names its original");
                    let original = &fixture.frames()[of];
                    assert!(of < i && original.bytes == frame.bytes, "{what}");
                    check_well_formed(&what, original.class, frame.bytes, steer);
                }
                class if class.is_well_formed_udp() => {
                    assert_eq!(frame.dup_of, None, "{what}");
                    check_well_formed(&what, class, frame.bytes, steer);
                }
                FrameClass::Ipv6Udp => {
                    // Steered by its own port, one of the class ports.
                    assert_eq!(frame.dup_of, None, "{what}");
                    let port = steer.unwrap_or_else(|| panic!("{what}: a steered IPv6 frame"));
                    assert!(CLASS_PORTS.contains(&port), "{what}: aims at {port}");
                }
                class => {
                    assert_eq!(
                        (frame.dup_of, steer, class.port()),
                        (None, None, None),
                        "{what}"
                    );
                    let err = UdpFrame::new_checked(frame.bytes).expect_err(&what);
                    assert!(
                        refused_as_expected(class, frame.bytes, err),
                        "{what}: {err}"
                    );
                    if let Some(port) = aimed_port(class, frame.bytes) {
                        assert!(CLASS_PORTS.contains(&port), "{what}: aims at {port}");
                    }
                }
            }
        }
    }
}

#[test]
fn fixtures_hold_every_class_in_proportion() {
    let (mix, bad) = (fixture::mix(), fixture::malformed());
    assert_eq!((mix.len(), bad.len()), (1024, 52));
    for class in FrameClass::ALL {
        let (in_mix, in_bad) = (mix.count(class), bad.count(class));
        let traffic = matches!(
            class,
            FrameClass::Txn
                | FrameClass::Shred
                | FrameClass::Gossip
                | FrameClass::Repair
                | FrameClass::Dup
        );
        if traffic {
            assert!(
                in_mix >= 40 && in_bad == 0,
                "{class}: {in_mix} in mix, {in_bad} malformed"
            );
        } else {
            assert!(
                in_mix == 0 && in_bad >= 3,
                "{class}: {in_mix} in mix, {in_bad} malformed"
            );
        }
        assert_eq!(FrameClass::from_code(class.code()), Some(class));
    }
    // Shreds and transactions dominate; both ends of the transaction sizes occur.
    assert!(mix.count(FrameClass::Shred) + mix.count(FrameClass::Txn) > mix.len() * 7 / 10);
    let txn_payloads: Vec<usize> = mix
        .iter()
        .filter(|f| f.class == FrameClass::Txn)
        .map(|f| f.bytes.len() - 42)
        .collect();
    assert!(txn_payloads.contains(&100) && txn_payloads.contains(&1232));
    assert!(
        MIX_BIN.len() + MALFORMED_BIN.len() < 1 << 20,
        "keep the fixtures small"
    );
}

// ---- (b) the XDP program's verdicts ----

/// Runs every frame of both fixtures through `prog`: a frame whose steer
/// port is in the program's spec must come back `steered`, every other one
/// `Pass`, and one too short for a test run must be refused as such.
/// Returns how many were steered.
fn check_verdicts(prog: &XdpProgram, steered: XdpAction) -> usize {
    let ports = prog.spec().ports.clone();
    let mut steered_count = 0;
    for (name, fixture) in both() {
        for (i, frame) in fixture.iter().enumerate() {
            let what = format!("{name}[{i}] {} under ports {ports:?}", frame.class);
            let verdict = prog.test_run(frame.bytes, 0);
            if frame.bytes.len() < TEST_RUN_FRAME_MIN {
                assert!(
                    matches!(verdict, Err(BpfError::FrameSize { .. })),
                    "{what}: {verdict:?}"
                );
                continue;
            }
            let want = match fixture.steer_port(i) {
                Some(port) if ports.contains(&port) => {
                    steered_count += 1;
                    steered
                }
                _ => XdpAction::Pass,
            };
            assert_eq!(verdict.expect(&what), want, "{what}");
        }
    }
    steered_count
}

/// Frames of both fixtures whose steer port is in `ports`.
fn expected_steered(ports: &[u16]) -> usize {
    both()
        .iter()
        .map(|(_, f)| {
            (0..f.len())
                .filter(|&i| f.steer_port(i).is_some_and(|p| ports.contains(&p)))
                .count()
        })
        .sum()
}

#[test]
fn xdp_verdicts_follow_the_labels() {
    if !privileged() {
        return;
    }
    // Without a socket, the redirect path shows as the miss action.
    let load = |ports: &[u16]| {
        let spec = FilterSpec::new(ports)
            .unwrap()
            .with_miss_action(XdpAction::Drop);
        XdpProgram::load(&spec, 1).expect("load")
    };
    let all = check_verdicts(&load(&CLASS_PORTS), XdpAction::Drop);
    assert_eq!(all, expected_steered(&CLASS_PORTS));
    assert!(all > 1000, "{all} steered");
    // One class port at a time: exactly that class (and its duplicates).
    for port in CLASS_PORTS {
        let n = check_verdicts(&load(&[port]), XdpAction::Drop);
        assert!(n > 0 && n == expected_steered(&[port]), "port {port}: {n}");
    }
    // Ports next to the class ports, and the usual validator ones: nothing.
    let others = [8000, 8001, 8899, 9000, 9005, 9010, 2309, 1901];
    assert_eq!(check_verdicts(&load(&others), XdpAction::Drop), 0);
}

#[test]
fn xdp_redirects_fixture_traffic_to_a_bound_socket() {
    let Some(pair) = VethPair::new_or_skip("fixsock") else {
        return;
    };
    let prog = XdpProgram::load(&FilterSpec::new(CLASS_PORTS).unwrap(), 1).expect("load");
    let name = format!("tw-fixtest-{}-{}", std::process::id(), pair.a().ifindex());
    let ws = Workspace::create(&name, 8 << 20, PageKind::Normal).unwrap();
    let _ = Workspace::unlink(&name);
    let umem = Umem::alloc_named(&ws, "umem", 256).unwrap();
    let cfg = XskConfig {
        ifname: pair.a().ifname().to_string(),
        bind: BindMode::Copy,
        rx_size: 64,
        fill_size: 64,
        tx_size: 64,
        ..XskConfig::default()
    };
    let (xsk, _fill) = pair
        .a()
        .run(|| Xsk::bind(umem, &cfg))
        .unwrap()
        .expect("bind");
    prog.register_socket(0, xsk.raw_fd().unwrap())
        .expect("register");
    let steered = check_verdicts(&prog, XdpAction::Redirect);
    assert_eq!(steered, expected_steered(&CLASS_PORTS));
    drop(xsk);
}

// ---- (c) the .pcap and the .bin agree; the script still writes them ----

#[test]
fn pcap_and_bin_hold_the_same_frames() {
    for (name, fixture) in both() {
        let pcap = std::fs::read(fixtures_dir().join(format!("{name}.pcap"))).unwrap();
        let frames = load_pcap(&pcap).unwrap_or_else(|e| panic!("{name}.pcap: {e}"));
        assert_eq!(frames.len(), fixture.len(), "{name}");
        for (i, (pcap_frame, frame)) in frames.iter().zip(fixture.iter()).enumerate() {
            assert_eq!(pcap_frame[..], *frame.bytes, "{name} frame {i}");
        }
    }
}

#[test]
fn the_script_writes_the_committed_files() {
    let out = std::env::temp_dir().join(format!("tw-fixtures-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let run = std::process::Command::new("python3")
        .arg(fixtures_dir().join("make_fixtures.py"))
        .arg("--out")
        .arg(&out)
        .output();
    let run = match run {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let _ = std::fs::remove_dir_all(&out);
            assert!(std::env::var_os("CI").is_none(), "CI must have python3");
            let _ = writeln!(std::io::stderr(), "skipped: python3 not installed");
            return;
        }
        other => other.expect("run make_fixtures.py"),
    };
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for file in ["mix.bin", "mix.pcap", "malformed.bin", "malformed.pcap"] {
        let made = std::fs::read(out.join(file)).unwrap();
        let committed = std::fs::read(fixtures_dir().join(file)).unwrap();
        assert!(
            made == committed,
            "{file} differs from the script's output: regenerate it"
        );
    }
    std::fs::remove_dir_all(&out).unwrap();
}

// ---- what the loaders refuse ----

/// A fixture of four frames, one a duplicate: txn, arp, dup of 0, shred.
fn small() -> Vec<u8> {
    let frame = |class, dup_of, bytes| FixtureFrame {
        class,
        dup_of,
        bytes,
    };
    let frames = vec![
        frame(FrameClass::Txn, None, &b"transaction"[..]),
        frame(FrameClass::Arp, None, b""),
        frame(FrameClass::Dup, Some(0), b"transaction"),
        frame(FrameClass::Shred, None, &[0xee; 40]),
    ];
    Fixture::from_frames(frames).unwrap().encode()
}

fn patched(bytes: &[u8], at: usize, patch: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[at..at + patch.len()].copy_from_slice(patch);
    v
}

#[test]
fn bad_records_are_refused() {
    let bytes = small();
    let rec0 = FILE_HEADER_LEN;
    let rec1 = rec0 + RECORD_HEADER_LEN + 11;
    let rec2 = rec1 + RECORD_HEADER_LEN;
    let parse = |b: &[u8]| Fixture::parse(b).map(|f| f.len());
    assert_eq!(parse(&bytes), Ok(4));
    assert_eq!(
        parse(&patched(&bytes, rec0, &[99])),
        Err(FixtureError::UnknownClass {
            record: 0,
            code: 99
        })
    );
    let huge = (FRAME_LEN_MAX as u32 + 1).to_le_bytes();
    assert_eq!(
        parse(&patched(&bytes, rec0 + 8, &huge)),
        Err(FixtureError::Oversize {
            record: 0,
            len: FRAME_LEN_MAX + 1
        })
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        parse(&longer),
        Err(FixtureError::TrailingBytes {
            records: 4,
            extra: 1
        })
    );
    let fewer = patched(&bytes, 8, &3u32.to_le_bytes());
    assert_eq!(
        parse(&fewer),
        Err(FixtureError::TrailingBytes {
            records: 3,
            extra: 52
        })
    );
    let bad_ref = |record, class, dup_of| {
        Err(FixtureError::BadDupRef {
            record,
            class,
            dup_of,
        })
    };
    // The dup naming itself, a later record, the ARP frame, and nothing.
    for (of, want) in [
        (2u32, Some(2)),
        (3, Some(3)),
        (1, Some(1)),
        (u32::MAX, None),
    ] {
        let b = patched(&bytes, rec2 + 4, &of.to_le_bytes());
        assert_eq!(parse(&b), bad_ref(2, FrameClass::Dup, want), "dup_of {of}");
    }
    // The ARP frame naming the first.
    let b = patched(&bytes, rec1 + 4, &0u32.to_le_bytes());
    assert_eq!(parse(&b), bad_ref(1, FrameClass::Arp, Some(0)));
    let b = patched(&bytes, rec2 + RECORD_HEADER_LEN, b"T");
    assert_eq!(
        parse(&b),
        Err(FixtureError::DupMismatch {
            record: 2,
            dup_of: 0
        })
    );
    // A dup of a dup: the fourth frame made a copy of the third.
    let mut frames = Fixture::parse(&bytes).unwrap().frames().to_vec();
    frames[3] = FixtureFrame {
        class: FrameClass::Dup,
        dup_of: Some(2),
        bytes: b"transaction",
    };
    assert_eq!(
        Fixture::from_frames(frames).map(|f| f.len()),
        bad_ref(3, FrameClass::Dup, Some(2))
    );
}

#[test]
fn pcap_loader_refuses_cut_foreign_and_snapped_files() {
    let pcap = std::fs::read(fixtures_dir().join("malformed.pcap")).unwrap();
    assert_eq!(load_pcap(&pcap).unwrap().len(), 52);
    for len in 0..pcap.len() {
        let cut = load_pcap(&pcap[..len]);
        let ok = match &cut {
            Err(PcapLoadError::Header { .. }) => len < 24,
            Err(PcapLoadError::Record { .. }) => len >= 24,
            // A cut at a record boundary is a shorter capture.
            Ok(frames) => frames.len() < 52,
            Err(_) => false,
        };
        assert!(ok, "cut at {len}: {cut:?}");
    }
    let raw_ip = patched(&pcap, 20, &101u32.to_le_bytes());
    assert!(matches!(
        load_pcap(&raw_ip),
        Err(PcapLoadError::NotEthernet { datalink: 101 })
    ));
    // The first record's captured length cut by one (its bytes moved up).
    let first_len = u32::from_le_bytes(pcap[32..36].try_into().unwrap());
    let mut snapped = patched(&pcap, 32, &(first_len - 1).to_le_bytes());
    snapped.remove(40);
    assert!(matches!(
        load_pcap(&snapped),
        Err(PcapLoadError::Snapped { index: 0, captured, original }) if captured + 1 == original
    ));
    assert!(matches!(
        load_pcap(MIX_BIN),
        Err(PcapLoadError::Header { .. })
    ));
}

// ---- the endpoint rewrite ----

#[test]
fn rewrite_moves_well_formed_frames_and_refuses_the_rest() {
    let ends = UdpEndpoints {
        src_mac: [0x02, 0xaa, 0, 0, 0, 1],
        dst_mac: [0x02, 0xaa, 0, 0, 0, 2],
        src: SocketAddrV4::new(Ipv4Addr::new(198, 19, 200, 1), 40000),
        dst: SocketAddrV4::new(Ipv4Addr::new(198, 19, 200, 2), 7000),
    };
    let mut rewritten = 0;
    for (name, fixture) in both() {
        for (i, frame) in fixture.iter().enumerate() {
            let mut bytes = frame.bytes.to_vec();
            match rewrite_endpoints(&mut bytes, &ends) {
                Ok(()) => {
                    assert!(frame.class.is_well_formed_udp(), "{name}[{i}]");
                    let before = UdpFrame::new_checked(frame.bytes).unwrap();
                    let after = UdpFrame::new_checked(&bytes[..]).unwrap();
                    assert_eq!(after.endpoints(), ends, "{name}[{i}]");
                    assert_eq!(after.payload(), before.payload(), "{name}[{i}]");
                    assert_eq!(after.ip_options(), before.ip_options(), "{name}[{i}]");
                    verify_checksums(&bytes).unwrap_or_else(|e| panic!("{name}[{i}]: {e}"));
                    assert_eq!(frame.with_endpoints(&ends).unwrap(), bytes);
                    rewritten += 1;
                }
                Err(e) => {
                    assert!(!frame.class.is_well_formed_udp(), "{name}[{i}]: {e}");
                    assert_eq!(bytes, frame.bytes, "{name}[{i}]: untouched on error");
                }
            }
        }
    }
    assert_eq!(rewritten, 1024 + 5);
}
