//! What a tile publishes through `Outputs`: a payload longer than the
//! output's mtu is an error, not a panic, and nothing is published for it;
//! `publish_packet` makes whole-packet frags that keep only the ERR flag.

mod common;

use common::TestWs;
use tilewire_tile::link::frag::{ctl, CTL_ERR, CTL_PKT};
use tilewire_tile::link::{Poll, Reliability::*};
use tilewire_tile::stem::{Outputs, PublishError, Stem, StemConfig, Tile};

const MTU: usize = 100;

/// Publishes its script once, from `after_credit`, recording each result.
struct Publisher {
    results: Vec<Result<u64, PublishError>>,
    done: bool,
}

impl Tile for Publisher {
    fn kind(&self) -> &str {
        "publisher"
    }
    fn burst(&self) -> u64 {
        4
    }
    fn after_credit(&mut self, out: &mut Outputs<'_, '_>) {
        if self.done {
            return;
        }
        self.done = true;
        let long = [7u8; MTU + 1];
        let fits = [9u8; MTU];
        self.results = vec![
            out.publish(0, &long, 1, CTL_PKT, 0),
            out.publish_packet(0, &long, 2, CTL_PKT, 0),
            out.publish(0, &fits, 3, CTL_PKT, 0),
            // SOM/EOM set, origin dropped, ERR kept.
            out.publish_packet(0, &fits[..10], 4, ctl(false, false, true, 5), 0),
        ];
    }
    fn pending(&self) -> usize {
        usize::from(!self.done)
    }
}

#[test]
fn a_payload_longer_than_the_mtu_is_an_error_and_nothing_is_published() {
    let t = TestWs::new("outputs", 1 << 20);
    let link = t.link("out", 16, MTU, &[Reliable]);
    let tile = Publisher {
        results: Vec::new(),
        done: false,
    };
    let mut stem = Stem::new(&t.ws, "pub", tile, &[], &[&link], StemConfig::default()).unwrap();
    // Asked to stop before it runs: the loop still lets it pass on what it
    // has pending, which is its one `after_credit`.
    stem.metrics().request_stop();
    let end = stem.run();
    assert_eq!(end.pending, 0);
    let results = &stem.tile().results;
    let too_long = PublishError::TooLong {
        len: MTU + 1,
        mtu: MTU,
    };
    assert_eq!(results[0], Err(too_long));
    assert_eq!(results[1], Err(too_long));
    assert_eq!(results[2], Ok(0), "the first frag published is seq 0");
    assert_eq!(results[3], Ok(1));
    assert_eq!(
        too_long.to_string(),
        "a payload of 101 bytes is longer than the output's mtu 100"
    );

    let mut c = link.consumer(0).unwrap();
    let mut seen = Vec::new();
    loop {
        match c.poll_with(|m, _| (m.sig, m.sz, m.ctl)) {
            Poll::Frag(_, x) => seen.push(x),
            Poll::Empty => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        seen,
        vec![(3, MTU as u16, CTL_PKT), (4, 10, CTL_PKT | CTL_ERR)]
    );
}
