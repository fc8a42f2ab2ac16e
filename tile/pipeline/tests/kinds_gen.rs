//! The gen tile through the run loop, on real links:
//!
//! - it sends exactly `count` frames, then idles and says it is done;
//!   frames too long for the link are skipped, not counted;
//! - it cycles through its list, pass 0 unchanged, pass `p` as
//!   `stamp_pass(frame, p)` makes it (differing from the original exactly
//!   in the first eight payload bytes and the UDP checksum, checksums
//!   right), frames that are not UDP unchanged;
//! - with a rate, the count over a measured interval stays within the token
//!   bucket's bound (a count check, never a timing one);
//! - a sink behind a gen sees the checksum the sender can compute.

#[path = "../../tests/common/mod.rs"]
mod common;
mod kinds_support;

use std::time::{Duration, Instant};

use common::TestWs;
use kinds_support::*;
use tilewire_aio::frame::{verify_checksums, UdpFrame, HEADERS_LEN};
use tilewire_pipeline::kinds::generator::{stamp_pass, synthetic, Gen, GenConfig};
use tilewire_pipeline::kinds::sink::{packet_checksum, Sink};
use tilewire_tile::link::Reliability::*;
use tilewire_tile::stem::Stem;

const MTU: usize = 1514;

fn src() -> std::net::SocketAddrV4 {
    "198.18.0.1:4000".parse().unwrap()
}
fn dst() -> std::net::SocketAddrV4 {
    "198.18.0.2:8001".parse().unwrap()
}

#[test]
fn gen_sends_exactly_count_frames_then_idles() {
    let t = TestWs::new("gen-count", 1 << 23);
    let a = t.link("a", 64, MTU, &[Reliable]);
    let mut frames = synthetic(100, src(), dst());
    frames.insert(3, vec![0; MTU + 1]);
    let list = frames.clone();
    let gen_config = GenConfig {
        rate: 0,
        count: 37,
        burst: 8,
    };
    let mut stem = Stem::new(
        &t.ws,
        "gen",
        Gen::new(frames, gen_config),
        &[],
        &[&a],
        config(),
    )
    .unwrap();
    let m = stem.metrics();
    let mut out = Collector::new(&a, 0);
    let mut idle_since = None;
    run_until(&mut [&mut stem], || {
        out.drain();
        if counter(m, "done") == 0 {
            return false;
        }
        // Done: keep reading a while to see that nothing more comes.
        let since = *idle_since.get_or_insert_with(Instant::now);
        since.elapsed() > Duration::from_millis(50)
    });
    out.drain();
    assert_eq!(out.got.len(), 37, "exactly count frames");
    let sendable: Vec<&Vec<u8>> = list.iter().filter(|f| f.len() <= MTU).collect();
    for (k, g) in out.got.iter().enumerate() {
        let pass = (k / sendable.len()) as u64;
        let mut want = sendable[k % sendable.len()].clone();
        stamp_pass(&mut want, pass);
        assert_eq!(g.bytes, want, "frame {k}");
        assert_eq!(g.meta.sig, 8001, "the destination port");
    }
    assert_eq!(counter(m, "sent"), 37);
    assert_eq!(counter(m, "passes"), 2, "37 frames of 16 good ones");
    let bytes: u64 = out.got.iter().map(|g| g.bytes.len() as u64).sum();
    assert_eq!(counter(m, "bytes"), bytes);
    assert!(stem.tile().too_long() >= 2, "the long frame was skipped");
}

#[test]
fn gen_cycles_its_list_stamping_each_pass() {
    let t = TestWs::new("gen-pass", 1 << 23);
    let a = t.link("a", 64, MTU, &[Reliable]);
    let mut no_checksum = udp_frame(5, 6, b"no udp checksum here");
    no_checksum[HEADERS_LEN - 2..HEADERS_LEN].fill(0);
    let list = vec![
        udp_frame(1, 2, b"a payload long enough to stamp"),
        udp_frame(3, 4, b"abc"),
        no_checksum,
        arp_frame(60, 0x42),
        udp_frame(7, 8, b""),
    ];
    let n = list.len();
    let gen_config = GenConfig {
        rate: 0,
        count: 3 * n as u64,
        burst: 4,
    };
    let mut stem = Stem::new(
        &t.ws,
        "gen",
        Gen::new(list.clone(), gen_config),
        &[],
        &[&a],
        config(),
    )
    .unwrap();
    let m = stem.metrics();
    let mut out = Collector::new(&a, 0);
    run_until(&mut [&mut stem], || {
        out.drain();
        out.got.len() == 3 * n && counter(m, "done") == 1
    });
    for (k, g) in out.got.iter().enumerate() {
        let (pass, orig) = ((k / n) as u64, &list[k % n]);
        let mut want = orig.clone();
        stamp_pass(&mut want, pass);
        assert_eq!(g.bytes, want, "frame {k}");
        if pass == 0 {
            assert_eq!(&g.bytes, orig, "pass 0 is the list itself");
        }
        let Ok(o) = UdpFrame::new_checked(&orig[..]) else {
            assert_eq!(&g.bytes, orig, "not UDP: never changed");
            continue;
        };
        verify_checksums(&g.bytes).expect("checksums right in every pass");
        // Which bytes differ: only the stamped payload bytes and, unless it
        // was 0, the UDP checksum.
        let start = o.udp_offset() + 8;
        let stamped = start..start + o.payload().len().min(8);
        let ck = o.udp_offset() + 6..o.udp_offset() + 8;
        for (i, (x, y)) in g.bytes.iter().zip(orig.iter()).enumerate() {
            if stamped.contains(&i) {
                let shift = 8 * (i - start);
                assert_eq!(x ^ y, (pass >> shift) as u8, "byte {i} of frame {k}");
            } else if !ck.contains(&i) || o.udp_checksum() == 0 {
                assert_eq!(x, y, "byte {i} of frame {k} changed");
            }
        }
        if pass > 0 && !stamped.is_empty() {
            assert_ne!(&g.bytes, orig, "pass {pass} changed frame {k}");
        }
    }
    assert_eq!(counter(m, "passes"), 3);
}

#[test]
fn gen_with_a_rate_stays_within_the_token_bucket() {
    let t = TestWs::new("gen-rate", 1 << 23);
    let a = t.link("a", 256, MTU, &[Reliable]);
    let (rate, burst) = (2_000u64, 4u64);
    let gen_config = GenConfig {
        rate,
        count: 0,
        burst,
    };
    let start = Instant::now();
    let gen = Gen::new(synthetic(64, src(), dst()), gen_config);
    let mut stem = Stem::new(&t.ws, "gen", gen, &[], &[&a], config()).unwrap();
    let mut out = Collector::new(&a, 0);
    run_until(&mut [&mut stem], || {
        out.drain();
        start.elapsed() > Duration::from_millis(200)
    });
    let elapsed = start.elapsed().as_secs_f64();
    out.drain();
    let sent = out.got.len() as f64;
    // The bound of the bucket, plus one for rounding; never a lower bound
    // tighter than "something was sent" (a loaded machine may be slow).
    let bound = rate as f64 * elapsed + burst as f64 + 1.0;
    assert!(sent > 0.0, "nothing sent");
    assert!(sent <= bound, "{sent} frames in {elapsed} s at {rate}/s");
    assert_eq!(counter(stem.metrics(), "sent"), out.got.len() as u64);
}

#[test]
fn a_sink_behind_a_gen_sums_what_the_sender_computes() {
    let t = TestWs::new("gen-sink", 1 << 23);
    let a = t.link("a", 64, MTU, &[Reliable]);
    let list = synthetic(300, src(), dst());
    let count = 100u64;
    let gen_config = GenConfig {
        rate: 0,
        count,
        burst: 16,
    };
    let mut gen = Stem::new(
        &t.ws,
        "gen",
        Gen::new(list.clone(), gen_config),
        &[],
        &[&a],
        config(),
    )
    .unwrap();
    let mut sink = Stem::new(&t.ws, "sink", Sink::new(), &[(&a, 0)], &[], config()).unwrap();
    let ms = sink.metrics();
    run_until(&mut [&mut gen, &mut sink], || counter(ms, "frags") == count);
    let mut want = 0u64;
    for k in 0..count as usize {
        let mut f = list[k % list.len()].clone();
        stamp_pass(&mut f, (k / list.len()) as u64);
        want = want.wrapping_add(packet_checksum(&f));
    }
    assert_eq!(counter(ms, "checksum"), want);
    assert_eq!(counter(ms, "bytes"), count * list[0].len() as u64);
}
