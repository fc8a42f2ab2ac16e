//! The retransmit tile over a real veth pair (as root, in namespaces this
//! test makes; otherwise `skipped: needs CAP_NET_ADMIN`): shreds fanned
//! out to 32 addresses of a peer behind a gateway route, sent by AF_XDP
//! with next hops from the netlink tile. The gateway starts unresolved:
//! the first shreds are dropped and counted (`no_neighbour`), the tile
//! asks the netlink tile, and once the kernel resolved the gateway every
//! frame goes out; the peer receives, on each address, exactly what the
//! tile counted as sent, and nothing reaches it with a wrong MAC (the
//! peer's kernel would drop such a frame, and the counts would differ).
//! The same over IPv6, the gateway found by neighbour discovery.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use tilewire_aio::netns::{VethPair, VethSide};
use tilewire_pipeline::tile::stem::{Outputs, Tile};
use tilewire_pipeline::{
    BuildCtx, BuildError, IoCounts, LinkDef, Pipeline, PipelineBuilder, Registry, RunOptions,
    TileDef, TileKind,
};

const SHREDS: u64 = 60;
const DESTS: u8 = 32;
const PORT: u16 = 9000;

/// Publishes `SHREDS` shred-sized payloads for set 0, one every 10 ms.
struct ShredsKind;

struct Shreds {
    next: u64,
    at: Instant,
}

impl Tile for Shreds {
    fn kind(&self) -> &str {
        "shreds"
    }
    fn after_credit(&mut self, out: &mut Outputs<'_, '_>) {
        if self.next < SHREDS && Instant::now() >= self.at {
            let mut payload = vec![0xa5u8; 1228];
            payload[..8].copy_from_slice(&self.next.to_le_bytes());
            out.publish(0, &payload, 0, 0, 0).expect("a shred fits");
            self.next += 1;
            self.at += Duration::from_millis(10);
        }
    }
    fn external_input(&self) -> bool {
        true
    }
}

impl TileKind for ShredsKind {
    type Params = tilewire_pipeline::NoParams;
    fn name(&self) -> &str {
        "shreds"
    }
    fn io(&self) -> IoCounts {
        IoCounts::new(0..=0, 1..=1)
    }
    fn build<'w>(
        &self,
        _: &tilewire_pipeline::NoParams,
        _: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        Ok(Box::new(Shreds {
            next: 0,
            at: Instant::now() + Duration::from_millis(100),
        }))
    }
}

fn ip(ns: &str, args: &[&str]) {
    let ok = Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .status()
        .expect("running ip")
        .success();
    assert!(ok, "ip -n {ns} {}", args.join(" "));
}

fn dest(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, 250, i + 1)
}

/// Destination `i` of the peer, as a set names it.
fn dest_addr(i: u8) -> String {
    SocketAddr::from((dest(i), PORT)).to_string()
}

/// The peer of a fan-out: `n` addresses (`dest(0..n)`) on side b, reached
/// from side a through b's address (a route via it), and a non-blocking
/// socket bound to each.
fn peer(pair: &VethPair, n: u8) -> Vec<UdpSocket> {
    let (a, b) = (pair.a(), pair.b());
    for i in 0..n {
        ip(
            b.netns(),
            &["addr", "add", &format!("{}/32", dest(i)), "dev", b.ifname()],
        );
    }
    ip(
        a.netns(),
        &[
            "route",
            "add",
            "198.19.250.0/24",
            "via",
            &b.addr().to_string(),
        ],
    );
    b.run(|| {
        (0..n)
            .map(|i| {
                let s = UdpSocket::bind((dest(i), PORT)).unwrap();
                s.set_nonblocking(true).unwrap();
                s
            })
            .collect()
    })
    .unwrap()
}

/// The retransmit tile `rt` reading link `from` and sending on `tx`: next
/// hops from the netlink tile `nl`, from a's address and port 8000, to
/// set 0 = `dests`, sets of at most `max`.
fn rt(a: &VethSide, from: &str, dests: Vec<String>, max: i64) -> TileDef {
    TileDef::new("rt", "retransmit")
        .input(from)
        .output("tx")
        .param("resolver", "nl")
        .param("ifname", a.ifname())
        .param("src_port", 8000)
        .param("src_ip", a.addr().to_string())
        .param("max_destinations", max)
        .param("destinations", vec![dests])
}

/// A fan-out pipeline on side `a`: `source`, publishing on link `from`,
/// then `rt`, then a net-xdp tile sending on a's interface, with the
/// netlink tile `nl` in a's namespace (fed `rt`'s resolution requests
/// over an `asks` link when `asks`) and a sink on the net tile's receive
/// link.
fn fan_out(
    name: &str,
    a: &VethSide,
    (from, source): (LinkDef, TileDef),
    rt: TileDef,
    asks: bool,
    registry: &Registry,
) -> Pipeline {
    let mut nl = TileDef::new("nl", "netlink").param("netns", a.netns());
    let mut rt = rt;
    let mut b = PipelineBuilder::new(name)
        .link(from)
        .link(LinkDef::new("tx", 1024).mtu(2048));
    if asks {
        b = b.link(LinkDef::new("asks", 64).unreliable());
        nl = nl.input("asks");
        rt = rt.output("asks");
    }
    b.link(LinkDef::new("rx", 256).mtu(2048))
        .tile(source)
        .tile(nl)
        .tile(rt)
        .tile(
            TileDef::new("net", "net-xdp")
                .input("tx")
                .output("rx")
                .param("ifname", a.ifname())
                .param("netns", a.netns())
                .param("ports", vec![9999])
                .param("bind", "copy"),
        )
        .tile(TileDef::new("rxsink", "sink").input("rx"))
        .build(registry)
        .unwrap()
}

/// The shreds source and its link.
fn shreds() -> (LinkDef, TileDef) {
    (
        LinkDef::new("shreds", 64).mtu(1280),
        TileDef::new("src", "shreds").output("shreds"),
    )
}

/// Reads every socket until `rt` handled `frags` frags and every frame it
/// sent arrived (failing past `deadline`), each datagram handed to
/// `check`; what each socket got.
fn receive(
    socks: &[UdpSocket],
    pipeline: &Pipeline,
    frags: u64,
    deadline: Instant,
    mut check: impl FnMut(&[u8], SocketAddr),
) -> Vec<u64> {
    let mut got = vec![0u64; socks.len()];
    let mut buf = [0u8; 2048];
    let counter = |n: &str| pipeline.counter("rt", n).unwrap_or(0);
    loop {
        for (i, s) in socks.iter().enumerate() {
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                check(&buf[..n], from);
                got[i] += 1;
            }
        }
        if counter("frags") == frags && got.iter().sum::<u64>() == counter("sent") {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "got {got:?}, rt sent {}",
            counter("sent")
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Ten seconds from now: how long any of these runs may take.
fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

#[test]
fn shreds_fan_out_by_af_xdp_to_every_destination_once_the_gateway_resolves() {
    let Some(pair) = VethPair::new_or_skip("rt-fan") else {
        return;
    };
    let a = pair.a();
    let gw = pair.b().addr();
    // The peer holds the destinations; this side reaches them through it.
    let socks = peer(&pair, DESTS);
    // The pair comes with a permanent entry for the gateway: without it,
    // the gateway is unresolved at the start.
    ip(
        a.netns(),
        &["neigh", "del", &gw.to_string(), "dev", a.ifname()],
    );
    let dests: Vec<String> = (0..DESTS).map(dest_addr).collect();
    let registry = Registry::with_builtins().with(ShredsKind).unwrap();
    let name = format!("rtf{}", std::process::id());
    let pipeline = fan_out(
        &name,
        a,
        shreds(),
        rt(a, "shreds", dests, 64),
        true,
        &registry,
    );
    let running = pipeline.start(&RunOptions::new()).unwrap();
    let got = receive(&socks, &pipeline, SHREDS, deadline(), |d, from| {
        assert_eq!(d.len(), 1228, "the whole shred");
        assert_eq!(from, SocketAddr::from((a.addr(), 8000)));
        assert!(d[8..].iter().all(|&x| x == 0xa5), "the payload intact");
    });
    let report = running.stop().unwrap();
    let c = |n: &str| report.counter("rt", n).unwrap();
    let sent = c("sent");
    eprintln!(
        "{SHREDS} shreds to {DESTS} destinations: {sent} frames sent, {} dropped waiting for the gateway ({} asked); per destination {:?}",
        c("no_neighbour") + c("pending"),
        c("asked"),
        got
    );
    assert_sent_whole_behind_a_gateway(&c, &got);
    assert!(
        c("no_neighbour") + c("pending") > 0,
        "the first shreds found no gateway"
    );
    assert!(c("asked") >= 1, "and the tile asked for it");
}

/// What a fan-out behind a gateway ends with (`c`: the rt tile's
/// counters, `got`: what each destination's socket received): every
/// frame sent arrived, whole shreds to every destination alike, most of
/// them, each destination of each shred sent or counted waiting for the
/// gateway, and no other reason to skip one.
fn assert_sent_whole_behind_a_gateway(c: &dyn Fn(&str) -> u64, got: &[u64]) {
    let (sent, dests) = (c("sent"), got.len() as u64);
    assert_eq!(got.iter().sum::<u64>(), sent, "every frame sent arrived");
    assert!(
        got.iter().all(|&g| g == got[0]),
        "each destination got every shred sent: {got:?}"
    );
    assert_eq!(sent % dests, 0, "whole shreds");
    assert!(sent >= dests * (SHREDS / 2), "most shreds went out: {sent}");
    assert_eq!(
        sent + c("no_neighbour") + c("pending"),
        SHREDS * dests,
        "every destination of every shred sent or counted"
    );
    for r in [
        "no_route",
        "wrong_interface",
        "too_big",
        "bad_set",
        "no_source",
    ] {
        assert_eq!(c(r), 0, "{r}");
    }
}

/// The relay: what a net tile would receive (here gen's UDP frames),
/// `input = "udp-frame"` with one set for all: each frame's UDP payload
/// goes to every destination.
#[test]
fn received_udp_frames_are_relayed_by_their_payload_to_a_fixed_set() {
    let Some(pair) = VethPair::new_or_skip("rt-relay") else {
        return;
    };
    let a = pair.a();
    let socks = peer(&pair, 4);
    const FRAMES: u64 = 40;
    let name = format!("rtr{}", std::process::id());
    let gen = TileDef::new("gen", "gen")
        .output("frames")
        .param("count", FRAMES as i64)
        .param("rate", 2000);
    let relay = rt(a, "frames", (0..4).map(dest_addr).collect(), 8)
        .param("input", "udp-frame")
        .param("set", 0);
    let pipeline = fan_out(
        &name,
        a,
        (LinkDef::new("frames", 64), gen),
        relay,
        false,
        &Registry::with_builtins(),
    );
    let running = pipeline.start(&RunOptions::new()).unwrap();
    let got: u64 = receive(&socks, &pipeline, FRAMES, deadline(), |_, _| {})
        .iter()
        .sum();
    let report = running.stop().unwrap();
    let c = |n: &str| report.counter("rt", n).unwrap();
    assert_eq!(c("frags"), FRAMES);
    assert_eq!(c("not_udp"), 0, "gen's frames are UDP");
    assert_eq!(c("sent"), FRAMES * 4, "every payload to every destination");
    assert_eq!(got, FRAMES * 4, "and each arrived");
}

/// Route and neighbour changes, thousands a second, while shreds fan out:
/// the lookups are never torn (every destination of every shred resolves
/// and its frame arrives) whatever the table's writer does meanwhile.
#[test]
fn a_fan_out_under_route_and_neighbour_churn_sends_every_frame_right() {
    let Some(pair) = VethPair::new_or_skip("rt-churn") else {
        return;
    };
    let a = pair.a();
    let socks = peer(&pair, DESTS);
    let dests: Vec<String> = (0..DESTS).map(dest_addr).collect();
    let registry = Registry::with_builtins().with(ShredsKind).unwrap();
    let name = format!("rtc{}", std::process::id());
    let pipeline = fan_out(
        &name,
        a,
        shreds(),
        rt(a, "shreds", dests, 64),
        false,
        &registry,
    );
    // The churn: routes to other prefixes added and removed, neighbours
    // of other addresses replaced, in batches, until the shreds are out.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ns, ifname) = (a.netns().to_owned(), a.ifname().to_owned());
    let churn = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut changes = 0u64;
            let path =
                std::env::temp_dir().join(format!("tilewire-churn-{}.txt", std::process::id()));
            let mut round = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut batch = String::new();
                for i in 0..200u32 {
                    let op = if round.is_multiple_of(2) {
                        "add"
                    } else {
                        "del"
                    };
                    batch += &format!(
                        "route {op} 198.19.{}.{}/32 dev {ifname}\n",
                        100 + i / 250,
                        i % 250
                    );
                    batch += &format!(
                        "neigh replace 198.18.255.{} lladdr 02:00:00:00:{:02x}:{:02x} dev {ifname}\n",
                        i % 200 + 1,
                        round % 256,
                        i % 256
                    );
                }
                std::fs::write(&path, batch).unwrap();
                let ok = Command::new("ip")
                    .args(["-n", &ns, "-batch"])
                    .arg(&path)
                    .status()
                    .unwrap()
                    .success();
                assert!(ok, "a churn batch");
                changes += 400;
                round += 1;
            }
            let _ = std::fs::remove_file(&path);
            changes
        })
    };
    let started = Instant::now();
    let running = pipeline.start(&RunOptions::new()).unwrap();
    let got = receive(&socks, &pipeline, SHREDS, deadline(), |_, _| {});
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let changes = churn.join().unwrap();
    let secs = started.elapsed().as_secs_f64();
    let report = running.stop().unwrap();
    let c = |n: &str| report.counter("rt", n).unwrap();
    let nl = |n: &str| report.counter("nl", n).unwrap();
    eprintln!(
        "{changes} changes in {secs:.1} s ({:.0}/s; the mirror applied {} events, {} overflows) while {} frames went out",
        changes as f64 / secs,
        nl("events"),
        nl("overflows"),
        c("sent")
    );
    let reasons: Vec<(&str, u64)> = [
        "no_route",
        "no_neighbour",
        "pending",
        "no_interface",
        "wrong_interface",
        "busy",
    ]
    .into_iter()
    .map(|r| (r, c(r)))
    .collect();
    eprintln!("destinations not sent, by reason: {reasons:?}");
    assert!(
        changes as f64 / secs >= 1000.0,
        "at least 1000 changes a second"
    );
    assert_eq!(
        c("sent"),
        SHREDS * u64::from(DESTS),
        "every destination of every shred"
    );
    assert_eq!(got.iter().sum::<u64>(), c("sent"), "and each frame arrived");
    assert!(got.iter().all(|&g| g == SHREDS), "{got:?}");
    assert!(nl("events") > 1000, "the mirror followed the churn");
}

/// A destination set rewritten while the tile runs (from this process,
/// through the workspace, as any process would): the shreds after the
/// change go to the new set only, none is torn between the two.
#[test]
fn a_destination_set_updated_at_run_time_takes_effect_at_once_and_whole() {
    use tilewire_pipeline::kinds::retransmit::{dest_sets_name, DestSets};
    let Some(pair) = VethPair::new_or_skip("rt-upd") else {
        return;
    };
    let a = pair.a();
    let socks = peer(&pair, DESTS);
    let all: Vec<SocketAddr> = (0..DESTS)
        .map(|i| SocketAddr::from((dest(i), PORT)))
        .collect();
    let registry = Registry::with_builtins().with(ShredsKind).unwrap();
    let name = format!("rtu{}", std::process::id());
    let dests = all.iter().map(ToString::to_string).collect();
    let pipeline = fan_out(
        &name,
        a,
        shreds(),
        rt(a, "shreds", dests, 64),
        false,
        &registry,
    );
    let running = pipeline.start(&RunOptions::new()).unwrap();
    let ws = pipeline.workspace();
    let obj = ws.lookup(&dest_sets_name("rt")).expect("the sets exist");
    let sets = DestSets::join(ws.region(obj.gaddr, obj.size as usize).unwrap()).unwrap();
    let counter = |n: &str| pipeline.counter("rt", n).unwrap_or(0);
    let deadline = deadline();
    while counter("frags") < SHREDS / 6 {
        assert!(Instant::now() < deadline, "the first shreds go out");
        std::thread::sleep(Duration::from_millis(2));
    }
    // From now on, the first 8 destinations only.
    sets.write(0, &all[..8]).unwrap();
    let got = receive(&socks, &pipeline, SHREDS, deadline, |_, _| {});
    let report = running.stop().unwrap();
    let sent = report.counter("rt", "sent").unwrap();
    eprintln!("set changed mid-run: per destination {got:?}, {sent} sent");
    // Every shred went to the first 8; the others got only the shreds
    // before the change, each the same number (a set is read whole).
    assert!(got[..8].iter().all(|&g| g == SHREDS), "{got:?}");
    let before = got[8];
    assert!((SHREDS / 6..SHREDS).contains(&before), "{got:?}");
    assert!(
        got[8..].iter().all(|&g| g == before),
        "no shred saw half a set: {got:?}"
    );
    assert_eq!(sent, 8 * SHREDS + 24 * before);
}

/// Destinations that cannot be sent to, each skipped and counted by its
/// reason, every shred, while the good ones in the same set go out: a
/// route through another interface than the net tile's, a neighbour in
/// FAILED state, a blackhole, an address of this host, no route at all.
#[test]
fn unsendable_destinations_are_skipped_and_counted_by_reason_and_the_rest_go_out() {
    let Some(pair) = VethPair::new_or_skip("rt-bad") else {
        return;
    };
    let a = pair.a();
    let ns = a.netns().to_owned();
    let socks = peer(&pair, 4);
    // Another interface of this namespace, with resolved neighbours.
    ip(
        &ns,
        &[
            "link", "add", "twx0", "type", "veth", "peer", "name", "twx1",
        ],
    );
    ip(&ns, &["link", "set", "twx0", "up"]);
    ip(&ns, &["link", "set", "twx1", "up"]);
    ip(&ns, &["addr", "add", "198.19.252.1/24", "dev", "twx0"]);
    for n in ["198.19.252.5", "198.19.252.6"] {
        ip(
            &ns,
            &[
                "neigh",
                "replace",
                n,
                "lladdr",
                "02:00:00:00:52:05",
                "dev",
                "twx0",
                "nud",
                "permanent",
            ],
        );
    }
    // On the net tile's link, an address that failed to resolve.
    ip(&ns, &["route", "add", "198.19.254.0/24", "dev", a.ifname()]);
    ip(
        &ns,
        &[
            "neigh",
            "replace",
            "198.19.254.9",
            "dev",
            a.ifname(),
            "nud",
            "failed",
        ],
    );
    ip(&ns, &["route", "add", "blackhole", "198.19.255.0/24"]);
    let mut set: Vec<String> = (0..4).map(dest_addr).collect();
    for other in [
        "198.19.252.5", // through twx0: wrong interface
        "198.19.252.6", // the same
        "198.19.254.9", // FAILED neighbour
        "198.19.255.1", // blackhole
        "198.19.249.1", // no route
    ] {
        set.push(format!("{other}:{PORT}"));
    }
    set.push(SocketAddr::from((a.addr(), PORT)).to_string()); // local
    let registry = Registry::with_builtins().with(ShredsKind).unwrap();
    let name = format!("rtb{}", std::process::id());
    let pipeline = fan_out(
        &name,
        a,
        shreds(),
        rt(a, "shreds", set, 16),
        false,
        &registry,
    );
    let running = pipeline.start(&RunOptions::new()).unwrap();
    let got = receive(&socks, &pipeline, SHREDS, deadline(), |_, _| {});
    let report = running.stop().unwrap();
    let c = |n: &str| report.counter("rt", n).unwrap();
    assert_eq!(
        got,
        [SHREDS; 4].to_vec(),
        "the good destinations got every shred"
    );
    assert_eq!(c("sent"), 4 * SHREDS);
    assert_eq!(c("wrong_interface"), 2 * SHREDS, "routed through twx0");
    assert_eq!(c("failed"), SHREDS, "the FAILED neighbour");
    assert_eq!(c("refused"), SHREDS, "the blackhole");
    assert_eq!(c("no_route"), SHREDS);
    assert_eq!(c("local"), SHREDS);
    for r in [
        "no_neighbour",
        "pending",
        "no_interface",
        "too_big",
        "busy",
        "bad_set",
    ] {
        assert_eq!(c(r), 0, "{r}");
    }
}

/// IPv6 end to end: shreds fanned out to 8 IPv6 addresses of the peer
/// behind an IPv6 gateway, the gateway found by neighbour discovery (the
/// netlink tile asks the kernel, the table follows). Every frame the tile
/// sent reaches its socket in b whole: b's kernel takes an IPv6 datagram
/// only with the right MAC, addresses and UDP checksum (over the IPv6
/// pseudo header, never 0), so a frame wrong in any of them would be
/// missing from the counts.
#[test]
fn shreds_fan_out_over_ipv6_once_the_gateway_is_discovered() {
    use std::net::Ipv6Addr;
    const V6_DESTS: u16 = 8;
    let Some(pair) = VethPair::new_or_skip("rt-v6") else {
        return;
    };
    let (a, b) = (pair.a(), pair.b());
    let (a6, gw6): (Ipv6Addr, Ipv6Addr) =
        ("2001:2::1".parse().unwrap(), "2001:2::2".parse().unwrap());
    a.add_ipv6(a6, 64).expect("a's address");
    b.add_ipv6(gw6, 64).expect("b's address");
    let dest6 = |i: u16| Ipv6Addr::new(0x2001, 2, 1, 0, 0, 0, 0, i + 1);
    for i in 0..V6_DESTS {
        b.add_ipv6(dest6(i), 128).expect("a destination address");
    }
    ip(
        a.netns(),
        &[
            "-6",
            "route",
            "add",
            "2001:2:1::/64",
            "via",
            &gw6.to_string(),
        ],
    );
    let socks: Vec<UdpSocket> = b
        .run(|| {
            (0..V6_DESTS)
                .map(|i| {
                    let s = UdpSocket::bind((dest6(i), PORT)).unwrap();
                    s.set_nonblocking(true).unwrap();
                    s
                })
                .collect()
        })
        .unwrap();
    let dests: Vec<String> = (0..V6_DESTS)
        .map(|i| SocketAddr::from((dest6(i), PORT)).to_string())
        .collect();
    let registry = Registry::with_builtins().with(ShredsKind).unwrap();
    let name = format!("rt6{}", std::process::id());
    let pipeline = fan_out(
        &name,
        a,
        shreds(),
        rt(a, "shreds", dests, 64).param("src_ip", a6.to_string()),
        true,
        &registry,
    );
    let running = pipeline.start(&RunOptions::new()).unwrap();
    let got = receive(&socks, &pipeline, SHREDS, deadline(), |d, from| {
        assert_eq!(d.len(), 1228, "the whole shred");
        assert_eq!(from.ip(), a6, "from a's IPv6 address");
        assert_eq!(from.port(), 8000);
        assert!(d[8..].iter().all(|&x| x == 0xa5), "the payload intact");
    });
    let report = running.stop().unwrap();
    let c = |n: &str| report.counter("rt", n).unwrap();
    let sent = c("sent");
    eprintln!(
        "IPv6: {SHREDS} shreds to {V6_DESTS} destinations: {sent} frames sent, {} waiting for the gateway; per destination {got:?}",
        c("no_neighbour") + c("pending"),
    );
    assert_sent_whole_behind_a_gateway(&c, &got);
}
