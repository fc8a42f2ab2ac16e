//! The forward and sink tiles through the run loop, on real links:
//!
//! - a forward tile merges two inputs, fed at once from the test thread,
//!   into one output with nothing lost or changed: each input's frags in
//!   their order, unchanged (origin, signature and `tsorig` kept);
//! - a sink behind it counts exactly what was sent, and its checksum is the
//!   sum of `packet_checksum` over the sent packets;
//! - a sink fed odd frags (empty, origin beyond the frag) counts them as
//!   empty packets and carries on.

#[path = "../../tests/common/mod.rs"]
mod common;
mod kinds_support;

use common::TestWs;
use kinds_support::*;
use tilewire_pipeline::kinds::forward::Forward;
use tilewire_pipeline::kinds::sink::{packet_checksum, Sink};
use tilewire_tile::link::Reliability::*;
use tilewire_tile::stem::Stem;

const MTU: usize = 1514;

/// The frags of input `input`: UDP frames of varied sizes, some behind an
/// origin, the signature naming input and index.
fn input_frags(input: u64, n: u64) -> Vec<Frag> {
    (0..n)
        .map(|i| {
            let payload: Vec<u8> = (0..(i * 37 + input * 11) % 1200)
                .map(|k| (k as u8).wrapping_mul(7) ^ i as u8 ^ input as u8)
                .collect();
            let packet = udp_frame(input as u16, i as u16, &payload);
            let sig = input << 32 | i;
            if i % 5 == 2 {
                Frag::at(packet, 1 + (i % 13) as usize, sig)
            } else {
                Frag::plain(packet, sig)
            }
        })
        .collect()
}

#[test]
fn forward_merges_two_inputs_and_sink_counts_exactly_what_was_sent() {
    let t = TestWs::new("fwd", 1 << 24);
    let a = t.link("a", 64, MTU, &[Reliable]);
    let b = t.link("b", 64, MTU, &[Reliable]);
    let c = t.link("c", 64, MTU, &[Reliable, Reliable]);
    let mut fwd = Stem::new(
        &t.ws,
        "forward",
        Forward::new(),
        &[(&a, 0), (&b, 0)],
        &[&c],
        config(),
    )
    .unwrap();
    let mut sink = Stem::new(&t.ws, "sink", Sink::new(), &[(&c, 0)], &[], config()).unwrap();
    let (mf, ms) = (fwd.metrics(), sink.metrics());

    let n = 1500;
    let (in_a, in_b) = (input_frags(1, n), input_frags(2, n));
    let sent: Vec<&Frag> = in_a.iter().chain(&in_b).collect();
    let want_bytes: u64 = sent.iter().map(|f| f.packet.len() as u64).sum();
    let want_sum = sent
        .iter()
        .fold(0u64, |s, f| s.wrapping_add(packet_checksum(&f.packet)));
    let mut feed_a = Feeder::new(&a, in_a.clone());
    let mut feed_b = Feeder::new(&b, in_b.clone());
    let mut out = Collector::new(&c, 1);
    run_until(&mut [&mut fwd, &mut sink], || {
        let fed = feed_a.feed() & feed_b.feed();
        out.drain();
        fed && out.got.len() as u64 >= 2 * n && counter(ms, "frags") == 2 * n
    });
    out.drain();
    assert_eq!(out.got.len() as u64, 2 * n, "nothing lost, nothing added");

    // Split by input: each in its order, byte for byte.
    for (input, frags) in [(1u64, &in_a), (2, &in_b)] {
        let got: Vec<&Got> = out
            .got
            .iter()
            .filter(|g| g.meta.sig >> 32 == input)
            .collect();
        assert_eq!(got.len(), frags.len(), "input {input}");
        for (g, f) in got.iter().zip(frags.iter()) {
            assert_eq!(g.meta.sig, f.sig, "input {input} in order");
            // Passed on as it came: the same bytes behind the same origin.
            assert_eq!(g.meta.packet(&g.bytes), &f.packet[..]);
            assert_eq!(
                (usize::from(g.meta.origin()), g.meta.tsorig),
                (f.prefix, f.tsorig)
            );
        }
    }
    assert_eq!(counter(mf, "forwarded"), 2 * n);
    assert_eq!(counter(mf, "bytes"), want_bytes);
    assert_eq!(counter(ms, "bytes"), want_bytes);
    assert_eq!(counter(ms, "checksum"), want_sum);
}

#[test]
fn sink_counts_odd_frags_as_empty_packets() {
    let t = TestWs::new("sink", 1 << 22);
    let a = t.link("a", 16, 256, &[Reliable]);
    let mut sink = Stem::new(&t.ws, "sink", Sink::new(), &[(&a, 0)], &[], config()).unwrap();
    let m = sink.metrics();
    let frags = vec![
        Frag::plain(Vec::new(), 0),
        Frag {
            origin: Some(100),
            ..Frag::plain(vec![1; 10], 1)
        },
        Frag::at(b"abc".to_vec(), 7, 2),
        Frag::plain(vec![9; 256], 3),
    ];
    let want = [&b""[..], b"", b"abc", &[9; 256]];
    let want_sum = want
        .iter()
        .fold(0u64, |s, p| s.wrapping_add(packet_checksum(p)));
    let mut feeder = Feeder::new(&a, frags);
    run_until(&mut [&mut sink], || {
        feeder.feed() && counter(m, "frags") == 4
    });
    assert_eq!(counter(m, "bytes"), 259);
    assert_eq!(counter(m, "checksum"), want_sum);
    assert_eq!(sink.tile().stats().checksum, want_sum);
}
