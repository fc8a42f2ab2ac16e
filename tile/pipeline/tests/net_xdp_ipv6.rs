//! IPv6 on the XDP path, end to end (as root, over a veth pair in
//! namespaces this test makes; otherwise `skipped: needs CAP_NET_ADMIN`):
//! datagrams sent over IPv6 to the net tile's port are steered by the XDP
//! program into the link, each once, whole (the frag's signature, the
//! port, is read by `tilewire_aio::frame::udp_dst_port`, tested in aio);
//! datagrams to another port reach the kernel's socket.

use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use tilewire_aio::netns::VethPair;
use tilewire_pipeline::{LinkDef, PipelineBuilder, Registry, RunOptions, TileDef};

const PORT: u16 = 9360;
const N: u64 = 200;

#[test]
fn ipv6_datagrams_to_the_port_land_in_the_link_and_others_reach_the_kernel() {
    let Some(pair) = VethPair::new_or_skip("nx-v6") else {
        return;
    };
    let (a, b) = (pair.a(), pair.b());
    let (mine, peer): (Ipv6Addr, Ipv6Addr) =
        ("2001:2::1".parse().unwrap(), "2001:2::2".parse().unwrap());
    a.add_ipv6(mine, 64).expect("an IPv6 address on a");
    b.add_ipv6(peer, 64).expect("an IPv6 address on b");
    // A kernel socket on another port, beside the net tile's.
    let other = a
        .run(|| UdpSocket::bind(SocketAddr::from((mine, PORT + 1))).unwrap())
        .unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let name = format!("nxv6{}", std::process::id());
    let pipeline = PipelineBuilder::new(&name)
        .link(LinkDef::new("rx", 1024).mtu(2048))
        .tile(
            TileDef::new("net", "net-xdp")
                .output("rx")
                .param("ifname", a.ifname())
                .param("netns", a.netns())
                .param("ports", vec![i64::from(PORT)])
                .param("bind", "copy"),
        )
        .tile(TileDef::new("sink", "sink").input("rx"))
        .build(&Registry::with_builtins())
        .unwrap();
    let running = pipeline.start(&RunOptions::new()).unwrap();
    b.run(|| {
        let s = UdpSocket::bind(SocketAddr::from((peer, 0))).unwrap();
        for i in 0..N {
            s.send_to(&i.to_le_bytes(), SocketAddr::from((mine, PORT)))
                .unwrap();
            if i % 32 == 31 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        s.send_to(b"to the kernel", SocketAddr::from((mine, PORT + 1)))
            .unwrap();
    })
    .unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = other
        .recv_from(&mut buf)
        .expect("the other port reaches the kernel");
    assert_eq!(
        (&buf[..n], from.ip()),
        (&b"to the kernel"[..], std::net::IpAddr::V6(peer))
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while pipeline.counter("sink", "frags").unwrap_or(0) < N && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let report = running.stop().unwrap();
    let c = &report.link("rx").unwrap().consumers[0];
    assert_eq!(
        report.link("rx").unwrap().published,
        N,
        "each datagram once"
    );
    assert_eq!((c.consumed, c.lost), (N, 0));
    // 14 + 40 + 8 + 8 bytes each.
    assert_eq!(
        report.counter("sink", "bytes"),
        Some(N * 70),
        "whole IPv6 frames"
    );
}
