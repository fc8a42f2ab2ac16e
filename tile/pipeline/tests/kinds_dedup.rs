//! The dedup tile through the run loop, on real links in a workspace:
//!
//! - a list with known duplicates (same UDP payload behind other headers,
//!   some packets behind an origin) comes out as exactly its first
//!   occurrences, in order, byte for byte, with signature and `tsorig`;
//! - frames that are not IPv4 UDP are hashed whole;
//! - empty frags, an origin beyond the frag, junk, and a frag overwritten
//!   while the tile read it neither stop the tile nor reach its output;
//! - for any random list with repeats, the output is the first
//!   occurrences of the input, in order (proptest).

#[path = "../../tests/common/mod.rs"]
mod common;
mod kinds_support;

use std::collections::HashSet;

use common::TestWs;
use kinds_support::*;
use proptest::prelude::*;
use tilewire_pipeline::kinds::dedup::{packet_tag, Dedup};
use tilewire_tile::link::fseq::DIAG_OVRNR_CNT;
use tilewire_tile::link::{Producer, Reliability::*};
use tilewire_tile::stem::{Filter, Frag as TileFrag, Outputs, Reading, Stem, Tile};

/// Room for the largest fixture frame (a 1232-byte transaction).
const MTU: usize = 2048;

/// Runs a dedup tile from link "in" to link "out" over `frags`, until
/// `expect` frags came out; returns them, read after the stop, and the
/// tile's counters (unique, dups, not_udp, bad_frags).
fn run_dedup(frags: Vec<Frag>, expect: usize) -> (Vec<Got>, [u64; 4]) {
    let t = TestWs::new("dedup", 1 << 23);
    let a = t.link("in", 64, MTU, &[Reliable]);
    let b = t.link("out", 64, MTU, &[Reliable]);
    let tc = tcache(&t.ws, "dedup", 1024);
    let mut stem = Stem::new(&t.ws, "dedup", Dedup::new(tc), &[(&a, 0)], &[&b], config()).unwrap();
    let m = stem.metrics();
    let n_in = frags.len() as u64;
    let mut feeder = Feeder::new(&a, frags);
    let mut out = Collector::new(&b, 0);
    let ends = run_until(&mut [&mut stem], || {
        let fed = feeder.feed();
        out.drain();
        // Every input frag read and the counters written past it.
        let c = ["unique", "dups", "bad_frags"].map(|n| counter(m, n));
        fed && out.got.len() >= expect && c.iter().sum::<u64>() == n_in
    });
    assert_eq!(ends[0].pending, 0);
    out.drain();
    let c = ["unique", "dups", "not_udp", "bad_frags"].map(|n| counter(m, n));
    (out.got, c)
}

#[test]
fn dedup_drops_exactly_the_duplicates_and_keeps_the_rest_in_order() {
    // Payload k of 12; each is sent from several ports (other headers, same
    // payload: a duplicate), some behind an origin.
    let order = [0, 1, 2, 1, 3, 0, 4, 5, 5, 6, 2, 7, 8, 9, 9, 9, 10, 3, 11, 0];
    let frags: Vec<Frag> = order
        .iter()
        .enumerate()
        .map(|(i, &k)| {
            let payload = format!("transaction {k} {}", "x".repeat(k * 7));
            let packet = udp_frame(1000 + i as u16, 8001, payload.as_bytes());
            if i % 3 == 0 {
                Frag::at(packet, 1 + i % 5, i as u64)
            } else {
                Frag::plain(packet, i as u64)
            }
        })
        .collect();
    let mut seen = HashSet::new();
    let want: Vec<&Frag> = order
        .iter()
        .zip(&frags)
        .filter(|(k, _)| seen.insert(**k))
        .map(|(_, f)| f)
        .collect();
    assert_eq!(want.len(), 12);
    let (got, [unique, dups, not_udp, bad]) = run_dedup(frags.clone(), want.len());
    assert_eq!(got.len(), want.len(), "nothing beyond the first sights");
    for (g, w) in got.iter().zip(&want) {
        // Passed on unchanged, by chunk: the same bytes behind the same
        // origin.
        assert_eq!(
            g.meta.packet(&g.bytes),
            w.packet,
            "the packet, from its origin"
        );
        assert_eq!(usize::from(g.meta.origin()), w.prefix);
        assert!(g.meta.som() && g.meta.eom() && !g.meta.err());
        assert_eq!((g.meta.sig, g.meta.tsorig), (w.sig, w.tsorig));
    }
    assert_eq!((unique, dups, not_udp, bad), (12, 8, 0, 0));
}

/// The fixture of realistic traffic (fixtures/mix.bin and malformed.bin):
/// dedup passes each distinct payload once, in order, and drops exactly
/// the records the fixture labels as duplicates; malformed frames are
/// hashed whole and pass (each is distinct).
#[test]
fn dedup_over_the_fixtures_drops_exactly_their_duplicates() {
    use tilewire_aio::fixture::{malformed, mix, FrameClass};
    let (mix, bad) = (mix(), malformed());
    let records: Vec<_> = mix.iter().chain(bad.iter()).collect();
    let frags: Vec<Frag> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Frag::plain(r.bytes.to_vec(), i as u64))
        .collect();
    let labelled_dups = records
        .iter()
        .filter(|r| r.class == FrameClass::Dup)
        .count();
    assert!(
        labelled_dups > 50,
        "the mix has duplicates: {labelled_dups}"
    );
    let want: Vec<&Frag> = records
        .iter()
        .zip(&frags)
        .filter(|(r, _)| r.class != FrameClass::Dup)
        .map(|(_, f)| f)
        .collect();
    let (got, [unique, dups, not_udp, bad_frags]) = run_dedup(frags.clone(), want.len());
    assert_eq!(dups as usize, labelled_dups);
    assert_eq!(unique as usize, want.len());
    assert_eq!(bad_frags, 0);
    let malformed_udp = records
        .iter()
        .filter(|r| !r.class.is_well_formed_udp())
        .count();
    assert!(not_udp as usize <= malformed_udp && not_udp > 0);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.bytes, w.packet);
    }
}

#[test]
fn dedup_hashes_frames_that_are_not_udp_whole() {
    let udp = udp_frame(1000, 8001, b"the same bytes");
    // The same frame with protocol TCP: not UDP, so hashed whole, and not a
    // duplicate of the UDP frame whose payload it carries.
    let mut tcp = udp.clone();
    tcp[23] = 6;
    let arp = arp_frame(60, 0x11);
    let mut arp_changed = arp.clone();
    arp_changed[59] ^= 1;
    let runt = b"junk".to_vec();
    let list = [
        udp.clone(),
        tcp.clone(),
        arp.clone(),
        arp.clone(),
        arp_changed.clone(),
        runt.clone(),
        tcp.clone(),
        runt.clone(),
    ];
    assert!(!packet_tag(&tcp).1 && packet_tag(&udp).1);
    let frags = list
        .iter()
        .enumerate()
        .map(|(i, p)| Frag::plain(p.clone(), i as u64))
        .collect();
    let (got, [unique, dups, not_udp, bad]) = run_dedup(frags, 5);
    let bytes: Vec<&[u8]> = got.iter().map(|g| &g.bytes[..]).collect();
    assert_eq!(bytes, [&udp[..], &tcp, &arp, &arp_changed, &runt]);
    assert_eq!((unique, dups, not_udp, bad), (5, 3, 7, 0));
}

#[test]
fn dedup_counts_bad_frags_and_carries_on() {
    let good = |i: u16| udp_frame(i, 8001, format!("good {i}").as_bytes());
    let frags = vec![
        Frag::plain(good(1), 1),
        Frag::plain(Vec::new(), 2),
        // Origin 40 in a 30-byte frag.
        Frag {
            origin: Some(40),
            ..Frag::plain(vec![7; 30], 3)
        },
        // Origin at the very end: an empty packet.
        Frag {
            origin: Some(30),
            ..Frag::plain(vec![7; 30], 4)
        },
        Frag::plain(vec![0xff], 5),
        Frag::plain(good(2), 6),
        Frag::plain(good(1), 7),
    ];
    let (got, [unique, dups, not_udp, bad]) = run_dedup(frags, 3);
    let sigs: Vec<u64> = got.iter().map(|g| g.meta.sig).collect();
    assert_eq!(sigs, [1, 5, 6]);
    assert_eq!(got[1].bytes, [0xff], "a one-byte runt is a packet");
    assert_eq!((unique, dups, not_udp, bad), (3, 1, 1, 3));
}

/// A dedup tile whose input is overwritten while it reads frag
/// `tear_seq`: the wrapper publishes `junk` into the input (an unreliable
/// link, so nothing holds the producer back) once the run loop read the
/// frag's metadata and before it reads the payload and re-checks the line
/// (from inside `before_frag`).
struct Tearing<'w> {
    inner: Dedup<'w>,
    input: Producer<'w>,
    tear_seq: u64,
    junk: Vec<Vec<u8>>,
}

impl Tile for Tearing<'_> {
    fn kind(&self) -> &str {
        self.inner.kind()
    }
    fn counters(&self) -> &'static [&'static str] {
        self.inner.counters()
    }
    fn before_frag(&mut self, input: usize, seq: u64, sig: u64) -> Filter {
        if seq == self.tear_seq {
            for (i, j) in self.junk.drain(..).enumerate() {
                self.input
                    .publish(j.as_slice(), 100 + i as u64, 3, 0)
                    .unwrap();
            }
        }
        self.inner.before_frag(input, seq, sig)
    }
    fn reading(&self) -> Reading {
        self.inner.reading()
    }
    fn on_frag(&mut self, input: usize, frag: &TileFrag<'_>, out: &mut Outputs<'_, '_>) {
        self.inner.on_frag(input, frag, out);
    }
    fn metrics_write(&mut self, counters: &mut [u64]) {
        self.inner.metrics_write(counters);
    }
}

#[test]
fn dedup_never_acts_on_a_frag_torn_while_it_read_it() {
    let t = TestWs::new("dedup-torn", 1 << 23);
    let depth = 8;
    let a = t.link("in", depth, MTU, &[Unreliable]);
    let b = t.link("out", 64, MTU, &[Reliable]);
    let first: Vec<Vec<u8>> = (0..5u16)
        .map(|i| udp_frame(i, 8001, format!("before {i}").as_bytes()))
        .collect();
    let junk: Vec<Vec<u8>> = (0..depth as u16)
        .map(|i| udp_frame(i, 8001, format!("junk {i}").as_bytes()))
        .collect();
    let mut input = a.producer();
    for (i, f) in first.iter().enumerate() {
        input.publish(f, i as u64, 3, 0).unwrap();
    }
    let tile = Tearing {
        inner: Dedup::new(tcache(&t.ws, "dedup", 256)),
        input,
        tear_seq: 2,
        junk: junk.clone(),
    };
    let mut stem = Stem::new(&t.ws, "dedup", tile, &[(&a, 0)], &[&b], config()).unwrap();
    let mut out = Collector::new(&b, 0);
    let last = junk.last().unwrap().clone();
    run_until(&mut [&mut stem], || {
        out.drain();
        out.got.iter().any(|g| g.bytes == last)
    });
    out.drain();
    let got: Vec<&[u8]> = out.got.iter().map(|g| &g.bytes[..]).collect();
    assert_eq!(got[..2], [&first[0][..], &first[1]], "read before the tear");
    assert!(
        !got.contains(&&first[2][..]),
        "the torn frag was not passed on"
    );
    // Whatever came after the resync is junk, each once, in order.
    let rest: Vec<usize> = got[2..]
        .iter()
        .map(|g| junk.iter().position(|j| j == g).expect("only junk"))
        .collect();
    assert!(rest.windows(2).all(|w| w[0] < w[1]), "{rest:?}");
    assert!(a.fseqs()[0].diag(DIAG_OVRNR_CNT) >= 1, "the tear was seen");
    let m = stem.metrics();
    assert_eq!(counter(m, "unique"), got.len() as u64);
    assert_eq!(counter(m, "dups") + counter(m, "bad_frags"), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// For any list drawn from a few payloads (each occurrence behind other
    /// headers), the output is the first occurrence of each payload, in
    /// input order, byte for byte.
    #[test]
    fn dedup_outputs_the_first_occurrences_in_order(
        picks in proptest::collection::vec((0usize..10, any::<u16>()), 1..80),
    ) {
        let frags: Vec<Frag> = picks
            .iter()
            .enumerate()
            .map(|(i, &(k, port))| {
                let payload = vec![k as u8; 1 + k * 13];
                Frag::plain(udp_frame(port, 8001, &payload), i as u64)
            })
            .collect();
        let mut seen = HashSet::new();
        let want: Vec<Vec<u8>> = picks
            .iter()
            .zip(&frags)
            .filter(|((k, _), _)| seen.insert(*k))
            .map(|(_, f)| f.packet.clone())
            .collect();
        let (got, [unique, dups, _, _]) = run_dedup(frags, want.len());
        let got: Vec<Vec<u8>> = got.into_iter().map(|g| g.bytes).collect();
        prop_assert_eq!(got, want.clone());
        prop_assert_eq!(unique, want.len() as u64);
        prop_assert_eq!(dups, (picks.len() - want.len()) as u64);
    }
}
