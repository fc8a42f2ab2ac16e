//! `tilewire_aio::netns`: veth pairs between fresh namespaces carry UDP
//! both ways, are removed on drop (also while a panic unwinds), and pairs
//! made at the same time do not collide. Privileged: as a user each test
//! prints the line CI counts and returns.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::time::Duration;

use tilewire_aio::netns::{NetnsError, VethPair, ADDR_RANGE, PREFIX_LEN};

/// True when root; otherwise prints `skipped: needs CAP_NET_ADMIN` straight
/// to stderr (past the harness's capture, for `.ci/test` to count), on a
/// line of its own even when the harness is mid-line with another test.
fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let _ = writeln!(std::io::stderr(), "\nskipped: needs CAP_NET_ADMIN");
    false
}

/// The names in `ip netns list` (each line is `name` or `name (id: n)`).
fn netns_list() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("run ip netns list");
    assert!(out.status.success(), "ip netns list failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn in_range(addr: Ipv4Addr) -> bool {
    let (range, len) = ADDR_RANGE;
    u32::from(addr) >> (32 - len) == u32::from(range) >> (32 - len)
}

/// Binds a UDP socket to `addr:0` inside side `a` or `b` of `pair`, with a
/// read timeout so no receive waits for ever.
fn bind_in(pair: &VethPair, side_a: bool, addr: Ipv4Addr) -> UdpSocket {
    let bind = move || -> std::io::Result<UdpSocket> {
        let sock = UdpSocket::bind((addr, 0))?;
        sock.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(sock)
    };
    let made = if side_a {
        pair.in_a(bind)
    } else {
        pair.in_b(bind)
    };
    made.expect("enter namespace").expect("bind in namespace")
}

/// One datagram from `from` to `to`: same bytes, source address `from`.
fn send_and_check(from: &UdpSocket, to: &UdpSocket, payload: &[u8]) {
    let dest = to.local_addr().unwrap();
    assert_eq!(from.send_to(payload, dest).unwrap(), payload.len());
    let mut buf = [0u8; 2048];
    let (n, src) = to.recv_from(&mut buf).expect("datagram within 2 s");
    assert_eq!(&buf[..n], payload);
    assert_eq!(src, from.local_addr().unwrap());
}

/// Both directions across one pair, using its 198.18 addresses.
fn exchange(pair: &VethPair) {
    let (a, b) = (pair.a(), pair.b());
    let sock_a = bind_in(pair, true, a.addr());
    let sock_b = bind_in(pair, false, b.addr());
    // The sockets were made inside; this thread is not in either namespace
    // and uses them all the same.
    send_and_check(&sock_a, &sock_b, b"from a to b across the veth");
    let big: Vec<u8> = (0..1232u32).map(|i| (i * 7 + 3) as u8).collect();
    send_and_check(&sock_b, &sock_a, &big);
    assert_eq!(
        sock_b.local_addr().unwrap(),
        SocketAddr::from((b.addr(), sock_b.local_addr().unwrap().port()))
    );
}

#[test]
fn pair_carries_udp_both_ways_and_is_removed_on_drop() {
    if !privileged() {
        return;
    }
    let pair = VethPair::new("udp").expect("make a veth pair");
    let (a, b) = (pair.a().clone(), pair.b().clone());
    assert!(in_range(a.addr()) && in_range(b.addr()), "{a} / {b}");
    assert_eq!(
        u32::from(a.addr()) >> (32 - PREFIX_LEN),
        u32::from(b.addr()) >> (32 - PREFIX_LEN),
        "both ends in one /{PREFIX_LEN}"
    );
    assert!(a.ifname().len() <= 15 && b.ifname().len() <= 15);
    assert_ne!(a.ifname(), b.ifname());
    assert_ne!(a.mac(), b.mac());
    assert!(
        a.ifindex() > 1 && b.ifindex() > 1,
        "lo is 1 in a new namespace"
    );
    let listed = netns_list();
    assert!(listed.contains(&a.netns().to_owned()), "{listed:?}");
    assert!(listed.contains(&b.netns().to_owned()), "{listed:?}");

    // Inside the namespace, the interface has the index reported.
    let name = std::ffi::CString::new(a.ifname()).unwrap();
    // SAFETY: if_nametoindex reads the NUL-terminated name, alive for the call.
    let inside = pair
        .in_a(|| unsafe { libc::if_nametoindex(name.as_ptr()) })
        .expect("enter a");
    assert_eq!(inside, a.ifindex(), "{a}");

    exchange(&pair);
    drop(pair);
    let listed = netns_list();
    assert!(!listed.contains(&a.netns().to_owned()), "{listed:?}");
    assert!(!listed.contains(&b.netns().to_owned()), "{listed:?}");
}

#[test]
fn namespaces_are_removed_when_a_closure_panics() {
    if !privileged() {
        return;
    }
    let mut names = Vec::new();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let pair = VethPair::new("panic").expect("make a veth pair");
        names.push(pair.a().netns().to_owned());
        names.push(pair.b().netns().to_owned());
        pair.in_b(|| panic!("on purpose, inside the namespace"))
            .expect("enter b");
    }));
    assert!(result.is_err(), "the panic reaches the caller");
    assert_eq!(names.len(), 2);
    let listed = netns_list();
    for name in &names {
        assert!(!listed.contains(name), "{name} left behind: {listed:?}");
    }
}

#[test]
fn two_pairs_at_once_do_not_collide() {
    if !privileged() {
        return;
    }
    let (one, two) = std::thread::scope(|s| {
        let one = s.spawn(|| VethPair::new("two"));
        let two = s.spawn(|| VethPair::new("two"));
        (one.join().unwrap(), two.join().unwrap())
    });
    let (one, two) = (one.expect("pair one"), two.expect("pair two"));
    assert_ne!(one.a().netns(), two.a().netns());
    assert_ne!(one.a().ifname(), two.a().ifname());
    assert_ne!(one.a().addr(), two.a().addr());
    assert_ne!(one.b().addr(), two.b().addr());
    exchange(&one);
    exchange(&two);

    // A socket bound in pair one cannot reach pair two's address: the
    // namespaces are separate hosts.
    let stray = bind_in(&one, true, one.a().addr());
    let target = bind_in(&two, false, two.b().addr());
    let _ = stray.send_to(b"must not arrive", target.local_addr().unwrap());
    target
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(target.recv_from(&mut buf).is_err(), "crossed between pairs");
}

#[test]
fn spawned_thread_runs_inside_the_namespace() {
    if !privileged() {
        return;
    }
    let pair = VethPair::new("spawn").expect("make a veth pair");
    let addr = pair.b().addr();
    let thread = pair
        .b()
        .spawn("in-b".into(), move || UdpSocket::bind((addr, 0)).is_ok())
        .expect("spawn in b");
    assert!(thread.join().unwrap(), "{addr} is local inside b");
    // Outside, the address is not local.
    assert!(UdpSocket::bind((addr, 0)).is_err());
    drop(pair);
}

#[test]
fn bad_tags_are_refused_before_anything_is_made() {
    for tag in ["", "has space", "a/b", &"x".repeat(33)] {
        match VethPair::new(tag) {
            Err(NetnsError::BadTag { .. }) => {}
            other => panic!("{tag:?}: {other:?}"),
        }
    }
}
