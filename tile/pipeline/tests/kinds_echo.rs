//! The echo tile through the run loop: two echo tiles in a row, on real
//! links. The first turns every UDP frame into its reply (endpoints
//! swapped, payload and checksums intact, verified with the frame
//! module's own checks); the second turns the replies back into the
//! original bytes. Frames that are not IPv4 UDP, empty frags and an
//! origin beyond the frag are dropped and counted by the first.

#[path = "../../tests/common/mod.rs"]
mod common;
mod kinds_support;

use common::TestWs;
use kinds_support::*;
use tilewire_aio::frame::{verify_checksums, UdpFrame};
use tilewire_pipeline::kinds::echo::Echo;
use tilewire_tile::link::Reliability::*;
use tilewire_tile::stem::Stem;

const MTU: usize = 1514;

#[test]
fn echo_swaps_endpoints_and_a_second_echo_restores_the_original() {
    let t = TestWs::new("echo", 1 << 24);
    let a = t.link("a", 64, MTU, &[Reliable]);
    let b = t.link("b", 64, MTU, &[Reliable, Reliable]);
    let c = t.link("c", 64, MTU, &[Reliable]);
    let mut first = Stem::new(&t.ws, "echo1", Echo::new(), &[(&a, 0)], &[&b], config()).unwrap();
    let mut second = Stem::new(&t.ws, "echo2", Echo::new(), &[(&b, 0)], &[&c], config()).unwrap();

    let mut frags = Vec::new();
    let mut originals = Vec::new();
    for i in 0..200u16 {
        let payload: Vec<u8> = (0..(i as usize * 7) % 1400)
            .map(|k| k as u8 ^ i as u8)
            .collect();
        let packet = udp_frame(10_000 + i, 8000 + i % 3, &payload);
        originals.push(packet.clone());
        frags.push(if i % 4 == 1 {
            Frag::at(packet, 2 + i as usize % 9, u64::from(i))
        } else {
            Frag::plain(packet, u64::from(i))
        });
        // Every tenth frame is followed by one that is not IPv4 UDP.
        if i % 10 == 0 {
            let bad = match i / 10 % 4 {
                0 => arp_frame(60, i as u8),
                1 => Vec::new(),
                2 => originals.last().unwrap()[..30].to_vec(),
                _ => vec![0xab; 5],
            };
            frags.push(Frag::plain(bad, 1 << 40));
        }
    }
    frags.push(Frag {
        origin: Some(200),
        ..Frag::plain(originals[0].clone(), 1 << 41)
    });
    let bad = frags.len() - originals.len();

    let (m1, m2) = (first.metrics(), second.metrics());
    let mut feeder = Feeder::new(&a, frags);
    let mut replies = Collector::new(&b, 1);
    let mut restored = Collector::new(&c, 0);
    let n = originals.len();
    run_until(&mut [&mut first, &mut second], || {
        let fed = feeder.feed();
        replies.drain();
        restored.drain();
        fed && restored.got.len() >= n && counter(m1, "not_udp") == bad as u64
    });
    replies.drain();
    restored.drain();
    assert_eq!((replies.got.len(), restored.got.len()), (n, n));

    for (i, orig) in originals.iter().enumerate() {
        let reply = &replies.got[i];
        assert_eq!(reply.meta.sig, i as u64, "order and signature kept");
        assert_eq!(reply.meta.origin(), 0);
        verify_checksums(&reply.bytes).expect("the reply's checksums are right");
        let (o, r) = (
            UdpFrame::new_checked(&orig[..]).unwrap(),
            UdpFrame::new_checked(&reply.bytes[..]).unwrap(),
        );
        assert_eq!(r.endpoints(), o.endpoints().reversed(), "frame {i}");
        assert_ne!(r.endpoints(), o.endpoints());
        assert_eq!(r.payload(), o.payload());
        assert_eq!(reply.bytes.len(), orig.len());
        assert_eq!(&restored.got[i].bytes, orig, "echoed twice: frame {i}");
        assert_eq!(restored.got[i].meta.tsorig, reply.meta.tsorig);
    }
    assert_eq!(counter(m1, "echoed"), n as u64);
    assert_eq!(counter(m1, "not_udp"), bad as u64);
    assert_eq!(counter(m2, "echoed"), n as u64);
    assert_eq!(counter(m2, "not_udp"), 0);
}
