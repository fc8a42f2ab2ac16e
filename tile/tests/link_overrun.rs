//! Overruns made deterministic: the producer publishes from inside a
//! consumer's read, so a frag is overwritten while it is being read at a
//! point the test chooses (its line reused with the bytes intact, its bytes
//! torn, or its line invalidated by a publish cut in half), and the
//! discard, the counters and the resync are checked exactly. The threaded
//! side of the protocol is in `link_threads.rs`.

mod common;

use common::{payload, TestWs};
use tilewire_shmem::load_bytes;
use tilewire_tile::link::frag::CTL_PKT;
use tilewire_tile::link::fseq::{DIAG_OVRNP_CNT, DIAG_OVRNP_FRAGS, DIAG_OVRNR_CNT, DIAG_PUB_CNT};
use tilewire_tile::link::{Consumer, Poll, Producer, Reliability::*};
// ---------------------------------------------------------------------------
// Deterministic: the frag is overwritten while the consumer reads it.
// ---------------------------------------------------------------------------

/// Publishes the next frag: payload(seq), sig = seq, tsorig = seq.
fn publish_next(p: &mut Producer<'_>, mtu: usize, buf: &mut Vec<u8>) -> u64 {
    let seq = p.seq();
    payload(seq, mtu, buf);
    let got = p
        .publish(buf, seq, CTL_PKT, seq as u32)
        .expect("an unreliable consumer never back-pressures");
    assert_eq!(got, seq);
    seq
}

/// Polls once and expects frag `seq`, every field and byte intact.
fn expect_frag(c: &mut Consumer<'_>, seq: u64, mtu: usize) {
    let mut buf = vec![0u8; mtu];
    let mut want = Vec::new();
    payload(seq, mtu, &mut want);
    match c.poll_copy(&mut buf) {
        Poll::Frag(m, ()) => {
            assert_eq!(m.seq, seq);
            assert_eq!((m.sig, m.ctl, m.tsorig), (seq, CTL_PKT, seq as u32));
            assert_eq!(m.sz as usize, want.len(), "size of {seq}");
            assert_eq!(&buf[..want.len()], &want[..], "bytes of {seq}");
        }
        other => panic!("wanted frag {seq}, got {other:?}"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overwrite {
    /// The producer publishes until the frag's line is reused; its payload
    /// bytes are still intact.
    Line,
    /// The producer publishes until the frag's payload bytes were
    /// overwritten too, so the copy is genuinely torn.
    Payload,
    /// The producer is stopped between invalidating the line and committing
    /// the frag that reuses it.
    MidPublish,
}

fn overwrite_while_reading(how: Overwrite) {
    let t = TestWs::new("ovrnr", 4 << 20);
    let (depth, mtu) = (16u64, 256usize);
    let link = t.link("l", depth, mtu, &[Unreliable]);
    let mut p = link.producer();
    let mut c = link.consumer(0).unwrap();
    let f = *c.fseq();
    let mut buf = Vec::new();

    // Some traffic first, so the victim is not the ring's first frag.
    let victim = 5u64;
    for _ in 0..=victim {
        publish_next(&mut p, mtu, &mut buf);
    }
    for s in 0..victim {
        expect_frag(&mut c, s, mtu);
    }
    let mut want = Vec::new();
    payload(victim, mtu, &mut want);
    assert!(want.len() >= 8, "the victim needs payload bytes to tear");

    let (mut ran, mut intact_after) = (false, true);
    let polled = c.poll_with(|m, bytes| {
        ran = true;
        assert_eq!(m.seq, victim);
        let n = m.sz as usize;
        let mut copy = vec![0u8; n];
        load_bytes(&mut copy, bytes);
        assert_eq!(copy, want, "before the overwrite the copy is intact");
        match how {
            Overwrite::Line => {
                while p.seq() <= victim + depth {
                    publish_next(&mut p, mtu, &mut buf);
                }
            }
            Overwrite::Payload => loop {
                publish_next(&mut p, mtu, &mut buf);
                load_bytes(&mut copy, bytes);
                if copy != want {
                    // The dcache's sizing rule: bytes are reused only after
                    // the line was (so the re-check below must catch it).
                    assert!(p.seq() > victim + depth, "payload reused at {}", p.seq());
                    break;
                }
                assert!(p.seq() < victim + 16 * depth, "payload never reused");
            },
            Overwrite::MidPublish => {
                while p.seq() < victim + depth {
                    publish_next(&mut p, mtu, &mut buf);
                }
                // What the producer's publish of victim + depth does first.
                link.mcache().invalidate(victim + depth);
            }
        }
        load_bytes(&mut copy, bytes);
        intact_after = copy == want;
        copy
    });
    assert!(ran, "the read ran");
    assert_eq!(
        polled,
        Poll::Overrun { lost: 0 },
        "{how:?}: the read result is discarded"
    );
    assert_eq!(intact_after, how != Overwrite::Payload, "{how:?}");
    assert_eq!(
        f.diag(DIAG_OVRNR_CNT),
        1,
        "counted once as overrun while reading"
    );
    // The frag counts go to the fseq with the progress: publish them.
    c.housekeeping();
    assert_eq!(f.diag(DIAG_PUB_CNT), victim, "not counted as consumed");
    assert_eq!(f.diag(DIAG_OVRNP_CNT), 0);
    assert_eq!(c.seq(), victim, "did not move past the discarded frag");

    // The next poll finds the newer frag on the victim's line and resyncs.
    let found = match how {
        Overwrite::MidPublish => victim + depth - 1,
        _ => victim + (p.seq() - 1 - victim) / depth * depth,
    };
    assert_eq!(
        c.poll_copy(&mut vec![0u8; mtu]),
        Poll::Overrun {
            lost: found - victim
        }
    );
    assert_eq!(c.seq(), found);
    assert_eq!(f.diag(DIAG_OVRNP_CNT), 1);
    assert_eq!(f.diag(DIAG_OVRNP_FRAGS), found - victim);
    if how == Overwrite::MidPublish {
        // Finish the interrupted publish (it invalidates again, then commits).
        assert_eq!(publish_next(&mut p, mtu, &mut buf), victim + depth);
    }

    // From there on every frag arrives intact, then the ring is empty, and
    // later traffic flows normally.
    let mut delivered = victim;
    for s in found..p.seq() {
        expect_frag(&mut c, s, mtu);
        delivered += 1;
    }
    assert_eq!(c.poll_copy(&mut vec![0u8; mtu]), Poll::Empty);
    for _ in 0..4 {
        for _ in 0..depth / 2 {
            publish_next(&mut p, mtu, &mut buf);
        }
        for s in c.seq()..p.seq() {
            expect_frag(&mut c, s, mtu);
            delivered += 1;
        }
        assert_eq!(c.poll_copy(&mut vec![0u8; mtu]), Poll::Empty);
    }
    assert_eq!(f.diag(DIAG_OVRNR_CNT), 1);
    assert_eq!(f.diag(DIAG_OVRNP_CNT), 1);
    assert_eq!(f.diag(DIAG_PUB_CNT), delivered);
    assert_eq!(
        delivered + (found - victim),
        p.seq(),
        "every seq delivered or lost"
    );
}

#[test]
fn line_reused_while_reading_discards_even_an_intact_copy() {
    overwrite_while_reading(Overwrite::Line);
}

#[test]
fn payload_overwritten_while_reading_discards_the_torn_copy() {
    overwrite_while_reading(Overwrite::Payload);
}

#[test]
fn line_invalidated_mid_publish_while_reading_discards_the_copy() {
    overwrite_while_reading(Overwrite::MidPublish);
}
