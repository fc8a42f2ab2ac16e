//! Property tests: any interleaving of publishes and polls, with sequence
//! numbers that wrap past u64::MAX, keeps the link's promises.

mod common;

use common::{payload, TestWs};
use proptest::prelude::*;
use tilewire_tile::link::frag::{seq_diff, CTL_PKT};
use tilewire_tile::link::{Link, LinkParams, Poll, Reliability::*};

#[derive(Debug, Clone)]
enum Op {
    Publish(u8),
    PollReliable(u8),
    PollUnreliable(u8),
    Housekeeping,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..40).prop_map(Op::Publish),
        3 => (1u8..40).prop_map(Op::PollReliable),
        2 => (1u8..40).prop_map(Op::PollUnreliable),
        1 => Just(Op::Housekeeping),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn publish_poll_interleavings_across_wraparound(
        ops in prop::collection::vec(op(), 1..80),
        back in 0u64..64,
    ) {
        let t = TestWs::new("lp", 4 << 20);
        let (depth, mtu) = (16u64, 200usize);
        let seq0 = u64::MAX - back;
        let params = LinkParams { depth, mtu, consumers: vec![Reliable, Unreliable], seq0 };
        let link = Link::create(&t.ws, "l", &params).unwrap();
        let mut p = link.producer();
        prop_assert_eq!(p.seq(), seq0);
        let (mut rel, mut unrel) = (link.consumer(0).unwrap(), link.consumer(1).unwrap());
        let (mut rel_next, mut unrel_last): (u64, Option<u64>) = (seq0, None);
        let (mut buf, mut want) = (vec![0u8; mtu], Vec::new());
        let mut unrel_seen = 0u64;
        for op in ops {
            match op {
                Op::Publish(k) => {
                    for _ in 0..k {
                        let s = p.seq();
                        payload(s, mtu, &mut want);
                        let in_flight = seq_diff(s, link.fseqs()[0].query());
                        match p.publish(&want, s, CTL_PKT, 0) {
                            Ok(got) => {
                                prop_assert_eq!(got, s);
                                prop_assert!(in_flight < depth as i64, "published past a reliable consumer");
                            }
                            Err(_) => prop_assert_eq!(in_flight, depth as i64, "back-pressure only when a ring behind"),
                        }
                    }
                }
                Op::PollReliable(k) => {
                    for _ in 0..k {
                        match rel.poll_copy(&mut buf) {
                            Poll::Frag(m, ()) => {
                                prop_assert_eq!(m.seq, rel_next, "reliable: every frag, in order");
                                payload(m.seq, mtu, &mut want);
                                prop_assert_eq!(&buf[..m.sz as usize], &want[..]);
                                rel_next = rel_next.wrapping_add(1);
                            }
                            Poll::Empty => {
                                prop_assert_eq!(rel_next, p.seq());
                                break;
                            }
                            other => prop_assert!(false, "reliable consumer got {:?}", other),
                        }
                    }
                }
                Op::PollUnreliable(k) => {
                    for _ in 0..k {
                        match unrel.poll_copy(&mut buf) {
                            Poll::Frag(m, ()) => {
                                if let Some(l) = unrel_last {
                                    prop_assert!(seq_diff(m.seq, l) > 0, "unreliable: strictly newer");
                                }
                                payload(m.seq, mtu, &mut want);
                                prop_assert_eq!(&buf[..m.sz as usize], &want[..], "bytes of {}", m.seq);
                                unrel_last = Some(m.seq);
                                unrel_seen += 1;
                            }
                            Poll::Overrun { .. } => {}
                            Poll::Empty => break,
                            Poll::Dropped(m) => prop_assert!(false, "dropped {:?}", m),
                        }
                    }
                }
                Op::Housekeeping => {
                    p.housekeeping();
                    rel.housekeeping();
                    unrel.housekeeping();
                }
            }
        }
        // Whatever the unreliable consumer got or lost adds up to where it
        // is (once its counts are published, which goes with the progress).
        unrel.housekeeping();
        let f = unrel.fseq();
        use tilewire_tile::link::fseq::{DIAG_OVRNP_FRAGS, DIAG_PUB_CNT};
        prop_assert_eq!(f.diag(DIAG_PUB_CNT), unrel_seen);
        prop_assert_eq!(
            f.diag(DIAG_PUB_CNT).wrapping_add(f.diag(DIAG_OVRNP_FRAGS)),
            unrel.seq().wrapping_sub(seq0),
        );
    }
}
