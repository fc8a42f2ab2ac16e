//! Property: whatever a downstream aio answers (`Again` at any index, any
//! packet refused as `Inval`), a drain tile passes every other packet on
//! exactly once, in order, and counts the refused ones.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestWs;
use proptest::prelude::*;
use tilewire_aio::{Aio, PktInfo, PktMeta, SendError};
use tilewire_tile::link::tx::LinkTx;
use tilewire_tile::link::Reliability::*;
use tilewire_tile::stem::drain::Drain;
use tilewire_tile::stem::{Stem, StemConfig};

/// Packets whose signature has this bit are refused as `Inval`.
const BAD: u64 = 1 << 63;

/// What the downstream took: (signature, bytes), in order.
type Taken = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;

/// A downstream that follows a script: for each send, take at most the
/// scripted number of packets (then `Again`), refusing `BAD` ones.
struct Scripted {
    script: Vec<Option<usize>>,
    calls: usize,
    got: Taken,
}

impl Aio for Scripted {
    fn send(&mut self, batch: &[PktInfo<'_>], _flush: bool) -> Result<(), SendError> {
        let limit = self.script[self.calls % self.script.len()];
        self.calls += 1;
        let mut got = self.got.lock().unwrap();
        for (i, p) in batch.iter().enumerate() {
            if limit == Some(i) {
                return Err(SendError::again(i));
            }
            if p.meta.user & BAD != 0 {
                return Err(SendError::inval(i));
            }
            got.push((p.meta.user, p.buf.to_vec()));
        }
        Ok(())
    }
}

fn bytes_of(seq: u64) -> Vec<u8> {
    (0..(seq % 50) as usize)
        .map(|i| (seq as u8) ^ (i as u8))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn drain_passes_on_every_good_packet_once_in_order(
        bad in prop::collection::vec(any::<bool>(), 1..300),
        script in prop::collection::vec(prop::option::weighted(0.4, 0usize..70), 1..8),
        depth_log in 3u32..7,
    ) {
        // A script of only zero-limits would never let anything through.
        prop_assume!(script.iter().any(|s| s != &Some(0)));
        let t = TestWs::new("drainprop", 1 << 21);
        let a = t.link("a", 1 << depth_log, 64, &[Reliable]);
        let got: Taken = Arc::default();
        let aio = Scripted { script, calls: 0, got: got.clone() };
        let config = StemConfig { lazy: 16, stop_grace: Duration::from_secs(2) };
        let mut drain = Stem::new(&t.ws, "drain", Drain::new(aio, 64), &[(&a, 0)], &[], config)
            .unwrap();
        let m = drain.metrics();
        let n = bad.len() as u64;
        let end = std::thread::scope(|s| {
            let h = s.spawn(|| drain.run());
            let mut tx = LinkTx::new(&a);
            let deadline = Instant::now() + Duration::from_secs(10);
            for (seq, &b) in bad.iter().enumerate() {
                let seq = seq as u64;
                let bytes = bytes_of(seq);
                let user = if b { seq | BAD } else { seq };
                let pkt = PktInfo::new(&bytes).with_meta(PktMeta { addr: None, user });
                while tx.send(&[pkt], true).is_err() {
                    if Instant::now() > deadline {
                        m.request_stop();
                        panic!("link stayed full at {seq}");
                    }
                    std::thread::yield_now();
                }
            }
            while a.fseqs()[0].query() != n && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            m.request_stop();
            h.join().unwrap()
        });
        prop_assert_eq!(end.pending, 0);
        let want: Vec<(u64, Vec<u8>)> = bad
            .iter()
            .enumerate()
            .filter(|(_, &b)| !b)
            .map(|(s, _)| (s as u64, bytes_of(s as u64)))
            .collect();
        prop_assert_eq!(&*got.lock().unwrap(), &want);
        let c = m.snapshot().counters;
        prop_assert_eq!(c[0].1, want.len() as u64, "sent");
        prop_assert_eq!(c[3].1, bad.iter().filter(|&&b| b).count() as u64, "inval");
    }
}
