//! The mirror against a real kernel, in namespaces this test makes (as
//! root; otherwise each test says `skipped: needs CAP_NET_ADMIN`): the
//! peer's address resolved on request, a route via a gateway, a
//! blackhole, a neighbour whose MAC changes followed within a second, a
//! burst of changes past the socket's buffer (an overflow, a re-dump,
//! the table right at the end), IPv6 as IPv4.

use std::net::{IpAddr, Ipv6Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use tilewire_aio::netns::VethPair;
use tilewire_route::{Hop, Mirror, Miss, NextHops, NextHopsHandle, NextHopsParams, RouteKind};
use tilewire_shmem::TempWorkspace;

/// Runs `ip -n <ns> args...`, panicking with its stderr on failure.
fn ip(ns: &str, args: &[&str]) {
    let out = Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .output()
        .expect("running ip");
    assert!(
        out.status.success(),
        "ip -n {ns} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Scene {
    pair: VethPair,
    mirror: Mirror,
    ws: TempWorkspace,
    at: u64,
    size: usize,
}

impl Scene {
    fn new(tag: &str) -> Option<Scene> {
        Scene::with_buffer(tag, 4 << 20)
    }

    fn with_buffer(tag: &str, events_buffer: usize) -> Option<Scene> {
        let pair = VethPair::new_or_skip(tag)?;
        let mirror = pair
            .a()
            .run(|| Mirror::open_with(events_buffer))
            .unwrap()
            .expect("opening the mirror");
        let ws = TempWorkspace::new("mirror", 8 << 20).unwrap();
        let p = NextHopsParams::default();
        let size = <NextHops as tilewire_shmem::object::ShmObject>::footprint(&p).unwrap();
        let at = ws.alloc(64, size, 1).unwrap();
        NextHops::new(ws.region(at, size).unwrap(), p).unwrap();
        let mut s = Scene {
            pair,
            mirror,
            ws,
            at,
            size,
        };
        s.sync();
        Some(s)
    }

    fn table(&self) -> NextHopsHandle<'_> {
        NextHops::join(self.ws.region(self.at, self.size).unwrap()).unwrap()
    }

    /// Applies what the kernel announced and publishes it.
    fn sync(&mut self) {
        self.mirror.poll().unwrap();
        let t = NextHops::join(self.ws.region(self.at, self.size).unwrap()).unwrap();
        self.mirror.publish(&t).unwrap();
    }

    /// Syncs until `resolve(dst)` satisfies `done`, for up to `within`;
    /// returns the last answer and how long it took.
    fn until(
        &mut self,
        dst: IpAddr,
        within: Duration,
        done: impl Fn(&Result<Hop, Miss>) -> bool,
    ) -> (Result<Hop, Miss>, Duration) {
        let start = Instant::now();
        loop {
            self.sync();
            let r = self.table().resolve(dst);
            if done(&r) || start.elapsed() > within {
                return (r, start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn the_peer_is_resolved_on_request_and_a_gateway_route_goes_through_it() {
    let Some(mut s) = Scene::new("nh-peer") else {
        return;
    };
    let (a, b) = (s.pair.a(), s.pair.b());
    let peer = IpAddr::V4(b.addr());
    let mine = IpAddr::V4(a.addr());
    let (ifindex, peer_mac, ns) = (a.ifindex(), b.mac(), a.netns().to_owned());
    let my_mac = a.mac();
    // The pair is made with a permanent entry for the peer; without it,
    // nothing has resolved the peer yet.
    let if_a = a.ifname().to_owned();
    ip(&ns, &["neigh", "del", &peer.to_string(), "dev", &if_a]);
    let gone = Err(Miss::NoNeighbour {
        ifindex,
        next_hop: peer,
    });
    let (r, _) = s.until(peer, Duration::from_secs(1), |r| r == &gone);
    assert_eq!(r, gone, "a flushed neighbour is gone from the table");
    s.mirror.solicit(ifindex, peer).unwrap();
    let (r, took) = s.until(peer, Duration::from_secs(3), |r| r.is_ok());
    let hop = r.expect("resolved after the solicit");
    assert_eq!(
        (hop.ifindex, hop.next_hop, hop.mac),
        (ifindex, peer, peer_mac)
    );
    assert_eq!(hop.src_mac, my_mac, "sent from this side's interface");
    let me = s.table().interface_named(&if_a).expect("found by its name");
    assert_eq!((me.ifindex, me.mac), (ifindex, Some(my_mac)));
    eprintln!("resolved {peer} -> {:02x?} in {took:?}", hop.mac);
    // A route via the peer: a destination beyond it goes to its MAC.
    ip(
        &ns,
        &["route", "add", "198.19.200.0/24", "via", &peer.to_string()],
    );
    let far = "198.19.200.7".parse().unwrap();
    let (r, _) = s.until(far, Duration::from_secs(1), |r| r.is_ok());
    let hop = r.expect("a route via the peer, followed within a second");
    assert_eq!((hop.next_hop, hop.mac), (peer, peer_mac));
    // A blackhole, and its removal.
    ip(&ns, &["route", "add", "blackhole", "198.19.201.0/24"]);
    let dark = "198.19.201.1".parse().unwrap();
    let (r, _) = s.until(dark, Duration::from_secs(1), |r| r.is_err());
    assert_eq!(r, Err(Miss::Refused(RouteKind::Blackhole)));
    ip(&ns, &["route", "del", "blackhole", "198.19.201.0/24"]);
    let (r, _) = s.until(dark, Duration::from_secs(1), |r| {
        r != &Err(Miss::Refused(RouteKind::Blackhole))
    });
    assert_eq!(
        r,
        Err(Miss::NoRoute),
        "the route is gone, and so is the refusal"
    );
    assert_eq!(s.table().resolve(mine), Err(Miss::Local));
    let st = s.table().stats();
    assert!(st.events > 0 && st.solicits == 1 && st.dumps == 1, "{st:?}");
}

#[test]
fn a_neighbour_whose_mac_changes_is_followed_within_a_second() {
    let Some(mut s) = Scene::new("nh-mac") else {
        return;
    };
    let (a, b) = (s.pair.a(), s.pair.b());
    let peer = IpAddr::V4(b.addr());
    let (ifindex, ns_a, ns_b, if_a, if_b) = (
        a.ifindex(),
        a.netns().to_owned(),
        b.netns().to_owned(),
        a.ifname().to_owned(),
        b.ifname().to_owned(),
    );
    s.mirror.solicit(ifindex, peer).unwrap();
    let (r, _) = s.until(peer, Duration::from_secs(3), |r| r.is_ok());
    let old = r.unwrap().mac;
    let new = [0x02, 0x18, 0x00, 0x00, 0x0b, 0x0b];
    let new_text = "02:18:00:00:0b:0b";
    assert_ne!(old, new);
    // The peer takes a new MAC and the kernel's table learns it.
    ip(&ns_b, &["link", "set", "dev", &if_b, "address", new_text]);
    ip(
        &ns_a,
        &[
            "neigh",
            "replace",
            &peer.to_string(),
            "lladdr",
            new_text,
            "dev",
            &if_a,
            "nud",
            "reachable",
        ],
    );
    let (r, took) = s.until(peer, Duration::from_secs(1), |r| {
        r.as_ref().is_ok_and(|h| h.mac == new)
    });
    assert_eq!(
        r.map(|h| h.mac),
        Ok(new),
        "followed within a second ({took:?})"
    );
    eprintln!("the new MAC was followed in {took:?}");
}

#[test]
fn a_burst_past_the_socket_s_buffer_is_an_overflow_and_a_re_dump() {
    // The smallest buffer the kernel gives (a few KiB): 4000 changes
    // cannot fit.
    let Some(mut s) = Scene::with_buffer("nh-burst", 1) else {
        return;
    };
    let a = s.pair.a();
    let (ns, ifname) = (a.netns().to_owned(), a.ifname().to_owned());
    // Many routes at once, none read meanwhile.
    let batch: String = (0..4000)
        .map(|i| {
            format!(
                "route add 198.19.{}.{}/32 dev {ifname}\n",
                100 + i / 250,
                i % 250
            )
        })
        .collect();
    let path = std::env::temp_dir().join(format!("tilewire-nh-burst-{}.txt", std::process::id()));
    std::fs::write(&path, batch).unwrap();
    let status = Command::new("ip")
        .args(["-n", &ns, "-batch"])
        .arg(&path)
        .status()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(status.success());
    s.sync();
    let routes = s
        .mirror
        .routes()
        .filter(|r| r.prefix_len == 32 && r.table == 254)
        .count();
    assert_eq!(routes, 4000, "every route, whether by events or a re-dump");
    let st = s.mirror.stats();
    eprintln!(
        "4000 routes: {} events, {} overflows, {} dumps",
        st.events, st.overflows, st.dumps
    );
    assert!(st.overflows >= 1, "the burst overflowed the socket");
    assert_eq!(
        st.dumps,
        1 + st.overflows,
        "each overflow is followed by a dump"
    );
    let t = s.table().stats();
    assert_eq!(t.overflows, st.overflows, "and counted in the table");
    assert!(
        t.routes >= 1000,
        "the table holds its capacity: {}",
        t.routes
    );
}

#[test]
fn ipv6_next_hops_are_resolved_like_ipv4() {
    let Some(mut s) = Scene::new("nh-v6") else {
        return;
    };
    let (a, b) = (s.pair.a(), s.pair.b());
    let (mine, peer): (Ipv6Addr, Ipv6Addr) =
        ("2001:2::1".parse().unwrap(), "2001:2::2".parse().unwrap());
    // Neighbour discovery speaks from the link-local addresses: both
    // sides wait until theirs are past duplicate address detection.
    a.add_ipv6(mine, 64).expect("an IPv6 address on a");
    b.add_ipv6(peer, 64).expect("an IPv6 address on b");
    let (ifindex, peer_mac) = (a.ifindex(), b.mac());
    let _ = (a, b);
    let peer = IpAddr::V6(peer);
    let (r, _) = s.until(peer, Duration::from_secs(1), |r| {
        matches!(r, Err(Miss::NoNeighbour { .. }))
    });
    assert_eq!(
        r,
        Err(Miss::NoNeighbour {
            ifindex,
            next_hop: peer
        }),
        "the /64 route is mirrored"
    );
    s.mirror.solicit(ifindex, peer).unwrap();
    let (r, took) = s.until(peer, Duration::from_secs(3), |r| r.is_ok());
    let hop = r.expect("resolved by neighbour discovery");
    assert_eq!((hop.ifindex, hop.mac), (ifindex, peer_mac));
    eprintln!("resolved {peer} in {took:?}");
    assert_eq!(s.table().resolve(IpAddr::V6(mine)), Err(Miss::Local));
}
