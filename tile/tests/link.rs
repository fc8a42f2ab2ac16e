//! Links in one process and across threads: flow control, overruns, bad
//! frags, joins that must fail, restarts.

mod common;

use common::{payload, TestWs};
use tilewire_shmem::JoinError;
use tilewire_tile::link::frag::CTL_PKT;
use tilewire_tile::link::fseq::*;
use tilewire_tile::link::{Backpressure, Link, LinkError, LinkParams, Poll, Reliability::*};
use tilewire_tile::part::PartError;

#[test]
fn reliable_consumer_backpressures_at_exactly_depth() {
    let t = TestWs::new("bp", 4 << 20);
    let link = t.link("l", 64, 256, &[Reliable]);
    let mut p = link.producer();
    let mut c = link.consumer(0).unwrap();
    for i in 0..64u64 {
        assert_eq!(p.publish(&[i as u8; 10], i, CTL_PKT, 0), Ok(i));
    }
    assert_eq!(p.publish(b"x", 0, CTL_PKT, 0), Err(Backpressure));
    assert_eq!(p.backpressure_count(), 1);
    let mut buf = [0u8; 256];
    for i in 0..64u64 {
        match c.poll_copy(&mut buf) {
            Poll::Frag(m, ()) => {
                assert_eq!((m.seq, m.sig, m.sz), (i, i, 10));
                assert_eq!(&buf[..10], &[i as u8; 10]);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        c.poll_copy(&mut buf),
        Poll::Empty,
        "empty also publishes progress"
    );
    assert_eq!(p.refresh_credits(), 64);
    assert_eq!(c.fseq().diag(DIAG_PUB_CNT), 64);
    assert_eq!(c.fseq().diag(DIAG_PUB_SZ), 640);
}

#[test]
fn unreliable_consumer_is_overrun_and_counts_what_it_lost() {
    let t = TestWs::new("ov", 4 << 20);
    let link = t.link("l", 16, 64, &[Unreliable]);
    let mut p = link.producer();
    let mut c = link.consumer(0).unwrap();
    for i in 0..100u64 {
        p.publish(&i.to_le_bytes(), i, CTL_PKT, 0)
            .expect("unreliable consumers never block");
    }
    let mut got = Vec::new();
    let mut lost = 0;
    let mut buf = [0u8; 64];
    loop {
        match c.poll_copy(&mut buf) {
            Poll::Frag(m, ()) => {
                assert_eq!(u64::from_le_bytes(buf[..8].try_into().unwrap()), m.seq);
                got.push(m.seq);
            }
            Poll::Overrun { lost: n } => lost += n,
            Poll::Empty => break,
            Poll::Dropped(m) => panic!("dropped {m:?}"),
        }
    }
    // The consumer resyncs to the newest frag found on its line (96).
    assert_eq!(got, (96..100).collect::<Vec<_>>());
    assert_eq!(lost, 96);
    assert_eq!(c.fseq().diag(DIAG_OVRNP_FRAGS), 96);
    assert_eq!(c.fseq().diag(DIAG_OVRNP_CNT), 1);
}

#[test]
fn frag_outside_the_dcache_is_counted_and_dropped_never_read() {
    let t = TestWs::new("bad", 4 << 20);
    let link = t.link("l", 16, 64, &[Reliable]);
    let mut c = link.consumer(0).unwrap();
    let dc = link.dcache();
    link.mcache()
        .publish(0, 1, dc.chunk0() - 1, 8, CTL_PKT, 0, 0);
    link.mcache().publish(1, 2, u32::MAX, 8, CTL_PKT, 0, 0);
    link.mcache()
        .publish(2, 3, dc.wmark() + 1000, 64, CTL_PKT, 0, 0);
    let mut read = 0;
    for want in 1..=3 {
        match c.poll_with(|_, _| read += 1) {
            Poll::Dropped(m) => assert_eq!(m.sig, want),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(read, 0, "no payload byte was touched");
    assert_eq!(c.fseq().diag(DIAG_BAD_CNT), 3);
    assert_eq!(
        tilewire_tile::link::fseq::bad_frag(
            c.fseq().diag(tilewire_tile::link::fseq::DIAG_BAD_LAST)
        ),
        Some((dc.wmark() + 1000, 64)),
        "the last one is named"
    );
}

#[test]
fn joins_that_must_fail_say_why() {
    let t = TestWs::new("join", 4 << 20);
    let _l = t.link("good", 64, 1232, &[Reliable, Unreliable]);
    assert!(Link::join(&t.ws, "good").is_ok());
    assert!(matches!(
        Link::join_expect(&t.ws, "good", 128, 1232),
        Err(LinkError::Mismatch {
            what: "depth",
            expected: 128,
            found: 64,
            ..
        })
    ));
    assert!(matches!(
        Link::join_expect(&t.ws, "good", 64, 1500),
        Err(LinkError::Mismatch {
            what: "mtu",
            expected: 1500,
            found: 1232,
            ..
        })
    ));
    assert!(matches!(Link::join(&t.ws, "absent"), Err(LinkError::NotFound(p)) if p == "absent.mc"));
    assert!(matches!(
        Link::join(&t.ws, "bad/name"),
        Err(LinkError::Name { .. })
    ));
    assert!(matches!(
        Link::join(&t.ws, "good").unwrap().consumer(2),
        Err(LinkError::NoSuchConsumer {
            index: 2,
            count: 2,
            ..
        })
    ));

    // The wrong kind of object under a link part's name.
    let g =
        t.ws.alloc_named("fake.mc", 128, Fseq::footprint().max(4096), 0)
            .unwrap();
    Fseq::new(t.ws.region(g, Fseq::footprint()).unwrap(), 0, true).unwrap();
    match Link::join(&t.ws, "fake") {
        Err(LinkError::Part(PartError::Join {
            part,
            source: JoinError::BadMagic { kind: "mcache", .. },
        })) => assert_eq!(part, "fake.mc"),
        other => panic!("{other:?}"),
    }
    // Garbage under the name.
    let g = t.ws.alloc_named("junk.mc", 128, 8192, 0).unwrap();
    let r = t.ws.region(g, 8192).unwrap();
    for w in r.atomic_u64s(0, 1024).unwrap() {
        w.store(0x5a5a_5a5a_5a5a_5a5a, core::sync::atomic::Ordering::Relaxed);
    }
    assert!(matches!(
        Link::join(&t.ws, "junk"),
        Err(LinkError::Part(PartError::Join { .. }))
    ));

    // Bad parameters, and nothing left allocated after a failed create.
    let before = t.ws.allocations().len();
    let p = |depth, mtu, n| LinkParams {
        depth,
        mtu,
        consumers: vec![Reliable; n],
        seq0: 0,
    };
    assert!(matches!(
        Link::create(&t.ws, "x", &p(100, 64, 1)),
        Err(LinkError::Params(_))
    ));
    assert!(matches!(
        Link::create(&t.ws, "x", &p(64, 0, 1)),
        Err(LinkError::Params(_))
    ));
    assert!(matches!(
        Link::create(&t.ws, "x", &p(64, 64, 0)),
        Err(LinkError::Params(_))
    ));
    assert!(matches!(
        Link::create(&t.ws, "good", &p(64, 64, 1)),
        Err(LinkError::Part(PartError::Alloc { .. }))
    ));
    assert!(matches!(
        Link::create(&t.ws, "huge", &p(1 << 20, 1232, 1)),
        Err(LinkError::Part(PartError::Alloc { .. }))
    ));
    assert_eq!(
        t.ws.allocations().len(),
        before,
        "failed creates free what they took"
    );
}

#[test]
fn consumer_started_before_the_producer_waits_then_reads_from_the_start() {
    let t = TestWs::new("early", 4 << 20);
    let link = t.link("l", 32, 64, &[Reliable]);
    let mut c = link.consumer(0).unwrap();
    let mut buf = [0u8; 64];
    for _ in 0..10 {
        assert_eq!(c.poll_copy(&mut buf), Poll::Empty);
    }
    let mut p = link.producer();
    p.publish(b"first", 9, CTL_PKT, 0).unwrap();
    assert!(matches!(c.poll_copy(&mut buf), Poll::Frag(m, ()) if m.seq == 0 && m.sig == 9));
}

#[test]
#[allow(clippy::drop_non_drop)] // the drops mark where a process would die
fn restarted_producer_continues_the_stream_and_restarted_consumer_resumes() {
    let t = TestWs::new("restart", 4 << 20);
    let link = t.link("l", 64, 64, &[Reliable]);
    let mut p = link.producer();
    for i in 0..10u64 {
        p.publish(&i.to_le_bytes(), i, CTL_PKT, 0).unwrap();
    }
    drop(p); // died without housekeeping: seq_query still says 0
    assert_eq!(link.mcache().seq_query(), 0);
    let mut p = Link::join(&t.ws, "l").unwrap().producer();
    assert_eq!(
        p.seq(),
        10,
        "continues one past the newest frag on the ring"
    );

    let mut c = link.consumer(0).unwrap();
    let mut buf = [0u8; 64];
    for i in 0..5u64 {
        assert!(matches!(c.poll_copy(&mut buf), Poll::Frag(m, ()) if m.seq == i));
    }
    c.housekeeping();
    drop(c);
    for i in 10..20u64 {
        p.publish(&i.to_le_bytes(), i, CTL_PKT, 0).unwrap();
    }
    let mut c = link.consumer(0).unwrap();
    assert_eq!(
        c.seq(),
        5,
        "a new consumer resumes at the published progress"
    );
    for i in 5..20u64 {
        match c.poll_copy(&mut buf) {
            Poll::Frag(m, ()) => {
                assert_eq!(m.seq, i);
                assert_eq!(u64::from_le_bytes(buf[..8].try_into().unwrap()), i);
            }
            other => panic!("at {i}: {other:?}"),
        }
    }
}

/// Producer and consumer on two threads, every byte checked.
fn run_threads(reliable: bool, frags: u64) -> (u64, u64) {
    let t = TestWs::new("thr", 16 << 20);
    let mtu = 1232;
    let r = if reliable { Reliable } else { Unreliable };
    let link = t.link("l", 256, mtu, &[r]);
    std::thread::scope(|s| {
        let prod = s.spawn(|| {
            let mut p = link.producer();
            let mut buf = Vec::new();
            let mut seq = 0;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while seq < frags {
                payload(seq, mtu, &mut buf);
                match p.publish(&buf, seq, CTL_PKT, 0) {
                    Ok(s) => {
                        assert_eq!(s, seq);
                        seq += 1;
                    }
                    Err(Backpressure) => {
                        assert!(std::time::Instant::now() < deadline, "stalled");
                        std::hint::spin_loop();
                    }
                }
            }
            p.housekeeping();
        });
        let mut c = link.consumer(0).unwrap();
        let (mut got, mut lost) = (0u64, 0u64);
        let mut buf = vec![0u8; mtu];
        let mut want = Vec::new();
        let mut last: Option<u64> = None;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while got + lost < frags {
            assert!(
                std::time::Instant::now() < deadline,
                "consumer stalled at {}",
                c.seq()
            );
            match c.poll_copy(&mut buf) {
                Poll::Frag(m, ()) => {
                    payload(m.seq, mtu, &mut want);
                    assert_eq!(m.sz as usize, want.len(), "size of {}", m.seq);
                    assert_eq!(&buf[..want.len()], &want[..], "bytes of {}", m.seq);
                    assert_eq!(m.sig, m.seq);
                    if let Some(l) = last {
                        assert!(m.seq > l, "in order");
                        if reliable {
                            assert_eq!(m.seq, l + 1, "reliable: no gaps");
                        }
                    }
                    last = Some(m.seq);
                    got += 1;
                }
                Poll::Overrun { lost: n } => {
                    assert!(!reliable, "a reliable consumer is never overrun");
                    lost += n;
                }
                Poll::Empty => {
                    if prod.is_finished() && c.seq() >= frags {
                        break;
                    }
                    std::hint::spin_loop()
                }
                Poll::Dropped(m) => panic!("dropped {m:?}"),
            }
        }
        prod.join().unwrap();
        (got, lost)
    })
}

#[test]
fn two_threads_reliable_every_frag_every_byte() {
    let (got, lost) = run_threads(true, 200_000);
    assert_eq!((got, lost), (200_000, 0));
}

#[test]
fn two_threads_unreliable_every_delivered_frag_intact() {
    let (got, lost) = run_threads(false, 200_000);
    assert!(got > 0);
    assert!(got + lost >= 200_000, "got {got} lost {lost}");
}

#[test]
fn a_line_holding_a_seq_no_producer_puts_there_is_skipped_and_counted_corrupt_not_lost() {
    let t = TestWs::new("linecorrupt", 1 << 20);
    let link = t.link("a", 16, 64, &[Unreliable]);
    let mut c = link.consumer(0).unwrap();
    let mut p = link.producer();
    for i in 0..10u64 {
        p.publish(&i.to_le_bytes(), i, CTL_PKT, 0).unwrap();
    }
    // A stray write into frag 3's line: a seq neither 3, nor a later frag of
    // that line, nor one a publish in progress leaves (3 + 16k - 1).
    let a = t.ws.lookup("a.mc").unwrap();
    let mem = t.ws.region(a.gaddr, a.size as usize).unwrap();
    mem.atomic_u64(128 + 3 * 32)
        .unwrap()
        .store(0x0bad_5eed_0000_0007, std::sync::atomic::Ordering::Relaxed);
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    for _ in 0..20 {
        match c.poll_copy(&mut buf) {
            Poll::Frag(m, ()) => got.push(m.sig),
            Poll::Empty => break,
            _ => {}
        }
    }
    assert_eq!(
        got,
        [0, 1, 2, 4, 5, 6, 7, 8, 9],
        "frag 3 skipped, nothing else"
    );
    c.housekeeping();
    let f = &link.fseqs()[0];
    assert_eq!(f.diag(DIAG_CORRUPT_CNT), 1);
    assert_eq!(f.diag(DIAG_OVRNP_FRAGS), 0, "no garbage counted as lost");
    assert_eq!(f.lost(), 0);

    // Garbage that happens to sit on its line's residue (a lap's) is
    // still far past anything the producer published: corrupt too.
    let seq = 10 + 16 * 1_000_000_000_000;
    mem.atomic_u64(128 + (seq as usize & 15) * 32)
        .unwrap()
        .store(seq, std::sync::atomic::Ordering::Relaxed);
    assert!(matches!(c.poll_copy(&mut buf), Poll::Overrun { lost: 1 }));
    c.housekeeping();
    assert_eq!(f.diag(DIAG_CORRUPT_CNT), 2);
    assert_eq!(f.diag(DIAG_OVRNP_FRAGS), 0);
}
