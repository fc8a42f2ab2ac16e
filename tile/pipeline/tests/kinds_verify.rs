//! The verify tile through the run loop, on real links: every packet goes
//! on unchanged (at its origin or not), the `digest` counter is the sum of
//! `payload_digest` over the UDP payloads (whole frames for the rest), and
//! a second verify tile with `dst` readdresses each UDP frame with right
//! IPv4 checksums and the same payload.

#[path = "../../tests/common/mod.rs"]
mod common;
mod kinds_support;

use std::net::SocketAddrV4;

use common::TestWs;
use kinds_support::*;
use tilewire_aio::frame::{verify_checksums, UdpFrame};
use tilewire_pipeline::kinds::verify::{payload_digest, Verify};
use tilewire_tile::link::Reliability::*;
use tilewire_tile::stem::Stem;

const MTU: usize = 1514;

#[test]
fn verify_hashes_every_payload_and_passes_the_packet_on() {
    let t = TestWs::new("verify", 1 << 24);
    let a = t.link("a", 64, MTU, &[Reliable]);
    let b = t.link("b", 64, MTU, &[Reliable, Reliable]);
    let c = t.link("c", 64, MTU, &[Reliable]);
    let next_hop: SocketAddrV4 = "198.18.0.9:7100".parse().unwrap();
    let mut plain = Stem::new(&t.ws, "v1", Verify::new(None), &[(&a, 0)], &[&b], config()).unwrap();
    let mut hop = Stem::new(
        &t.ws,
        "v2",
        Verify::new(Some(next_hop)),
        &[(&b, 0)],
        &[&c],
        config(),
    )
    .unwrap();

    let mut frags = Vec::new();
    let mut packets = Vec::new();
    let mut want_digest = 0u64;
    for i in 0..150u16 {
        let payload: Vec<u8> = (0..(i as usize * 9) % 1232 + 1)
            .map(|k| (k as u8).wrapping_mul(3) ^ i as u8)
            .collect();
        want_digest = want_digest.wrapping_add(payload_digest(&payload));
        let packet = udp_frame(10_000 + i, 9001, &payload);
        packets.push(packet.clone());
        frags.push(if i % 5 == 2 {
            Frag::at(packet, 1 + i as usize % 7, u64::from(i))
        } else {
            Frag::plain(packet, u64::from(i))
        });
    }
    // Not UDP: hashed whole, passed on, never readdressed.
    let arp = arp_frame(60, 7);
    want_digest = want_digest.wrapping_add(payload_digest(&arp));
    packets.push(arp.clone());
    frags.push(Frag::plain(arp, 999));
    // No packet: dropped.
    frags.push(Frag::plain(Vec::new(), 1000));
    let n = packets.len();
    let frags_prefix: Vec<usize> = frags.iter().map(|f| f.prefix).collect();

    let (m1, m2) = (plain.metrics(), hop.metrics());
    let mut feeder = Feeder::new(&a, frags);
    let mut out1 = Collector::new(&b, 1);
    let mut out2 = Collector::new(&c, 0);
    run_until(&mut [&mut plain, &mut hop], || {
        let fed = feeder.feed();
        out1.drain();
        out2.drain();
        fed && out2.got.len() >= n
    });
    out1.drain();
    out2.drain();
    assert_eq!((out1.got.len(), out2.got.len()), (n, n));
    for (i, p) in packets.iter().enumerate() {
        // Passed on as it came: the same bytes behind the same origin.
        let g = &out1.got[i];
        assert_eq!(g.meta.packet(&g.bytes), &p[..], "packet {i} unchanged");
        assert_eq!(usize::from(g.meta.origin()), frags_prefix[i]);
        let moved = &out2.got[i].bytes;
        match UdpFrame::new_checked(&p[..]) {
            Ok(orig) => {
                let f = UdpFrame::new_checked(&moved[..]).unwrap();
                assert_eq!((f.src(), f.dst()), (orig.src(), next_hop));
                assert_eq!(f.payload(), orig.payload());
                verify_checksums(moved).expect("IPv4 checksum right, UDP 'none'");
                assert_eq!(f.udp_checksum(), 0);
            }
            Err(_) => assert_eq!(moved, p, "not UDP: left alone"),
        }
    }
    for m in [m1, m2] {
        assert_eq!(counter(m, "verified"), n as u64);
        assert_eq!(counter(m, "not_udp"), 1);
        assert_eq!(counter(m, "digest"), want_digest);
    }
}

#[test]
fn verify_params_take_a_source_and_macs_and_refuse_a_bad_mac_at_its_line() {
    let topo = |params: &str| {
        format!(
            "[workspace]\nname = \"vp\"\n\n[[link]]\nname = \"a\"\ndepth = 64\n\n\
             [[link]]\nname = \"b\"\ndepth = 64\n\n\
             [[tile]]\nname = \"gen\"\nkind = \"gen\"\noutputs = [\"a\"]\n\n\
             [[tile]]\nname = \"v\"\nkind = \"verify\"\ninputs = [\"a\"]\noutputs = [\"b\"]\n\
             params = {{ {params} }}\n\n\
             [[tile]]\nname = \"sink\"\nkind = \"sink\"\ninputs = [\"b\"]\n"
        )
    };
    let registry = tilewire_pipeline::Registry::with_builtins();
    let good = topo(
        "dst = \"198.18.0.9:7100\", src = \"198.18.0.7:7000\", \
         dst_mac = \"02:00:c6:12:00:09\", src_mac = \"02:00:c6:12:00:07\"",
    );
    let t = registry.parse(&good).expect("a source and both MACs");
    let p = t
        .params::<tilewire_pipeline::kinds::verify::VerifyParams>("v")
        .unwrap();
    assert_eq!(p.dst_mac, Some([2, 0, 0xc6, 0x12, 0, 9]));
    assert_eq!(p.src, Some("198.18.0.7:7000".parse().unwrap()));
    for bad in [
        "02:00:c6:12:00",
        "02:00:c6:12:00:09:01",
        "zz:00:c6:12:00:09",
        "2:0:c6:12:0:9",
    ] {
        let err = registry
            .parse(&topo(&format!(
                "dst = \"198.18.0.9:7100\", dst_mac = \"{bad}\""
            )))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 22: tile \"v\" params: `dst_mac` must be a MAC address such as"),
            "{bad}: {err}"
        );
    }
}
