//! The pcap tile through the run loop, on a real link, into a file in a
//! temporary directory (removed at the end, also when the test fails):
//!
//! - the `pcap-file` crate reads the file back with the same frames, the
//!   Ethernet link type, the snap length, long packets cut to it with
//!   their original length kept, and wall-clock timestamps;
//! - records reach the file at housekeeping, while the tile still runs;
//! - `Pcap::create` refuses a zero snap length and unwritable files.

#[path = "../../tests/common/mod.rs"]
mod common;
mod kinds_support;

use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use common::TestWs;
use kinds_support::*;
use pcap_file::pcap::PcapReader;
use pcap_file::{DataLink, TsResolution};
use tilewire_pipeline::kinds::pcap::Pcap;
use tilewire_tile::link::Reliability::*;
use tilewire_tile::stem::Stem;

const MTU: usize = 1514;

/// A directory of its own under the system's temporary directory,
/// removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "tilewire-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
}

/// Every packet in the capture at `path`, with the header checked.
///
/// Records are read raw: `pcap-file`'s `next_packet` refuses a record
/// whose original length exceeds the snap length, which is exactly what a
/// cut packet is (libpcap writes them so too); the raw reader takes them,
/// and the checks it skips are made here.
fn read_back(path: &PathBuf, snaplen: u32) -> Vec<(Duration, u32, Vec<u8>)> {
    let mut r = PcapReader::new(File::open(path).unwrap()).unwrap();
    let h = r.header();
    assert_eq!(h.datalink, DataLink::ETHERNET);
    assert_eq!(h.snaplen, snaplen);
    assert_eq!(h.ts_resolution, TsResolution::MicroSecond);
    let mut packets = Vec::new();
    while let Some(p) = r.next_raw_packet() {
        let p = p.unwrap();
        assert!(p.ts_frac < 1_000_000);
        assert_eq!(p.incl_len as usize, p.data.len());
        assert!(p.incl_len <= snaplen && p.incl_len <= p.orig_len);
        let ts = Duration::new(u64::from(p.ts_sec), p.ts_frac * 1000);
        packets.push((ts, p.orig_len, p.data.into_owned()));
    }
    packets
}

#[test]
fn pcap_writes_a_file_that_pcap_file_reads_back() {
    let dir = TempDir::new("pcap");
    let path = dir.0.join("cap.pcap");
    let snaplen = 200;
    let t = TestWs::new("pcap", 1 << 23);
    let a = t.link("a", 32, MTU, &[Reliable]);
    let tile = Pcap::create(&path, snaplen).unwrap();
    let mut stem = Stem::new(&t.ws, "pcap", tile, &[(&a, 0)], &[], config()).unwrap();
    let m = stem.metrics();

    let packets: Vec<Vec<u8>> = (0..100u16)
        .map(|i| match i % 10 {
            3 => Vec::new(),
            7 => arp_frame(60, i as u8),
            _ => udp_frame(i, 9000, &vec![i as u8; usize::from(i) * 13]),
        })
        .collect();
    let frags = packets
        .iter()
        .enumerate()
        .map(|(i, p)| Frag::at(p.clone(), i % 4, i as u64))
        .collect();
    let before = now();
    let mut feeder = Feeder::new(&a, frags);
    let ends = run_until(&mut [&mut stem], || {
        feeder.feed() && counter(m, "written") == packets.len() as u64
    });
    assert_eq!(ends[0].pending, 0, "flushed when stopping");
    let after = now();

    let got = read_back(&path, snaplen);
    assert_eq!(got.len(), packets.len());
    let mut truncated = 0;
    for (i, ((ts, orig_len, data), want)) in got.iter().zip(&packets).enumerate() {
        let kept = want.len().min(snaplen as usize);
        truncated += u64::from(kept < want.len());
        assert_eq!(data[..], want[..kept], "packet {i}");
        assert_eq!(*orig_len as usize, want.len());
        // Microsecond stamps: allow the rounding down.
        assert!(
            *ts + Duration::from_micros(1) >= before && *ts <= after,
            "{ts:?}"
        );
    }
    assert!(truncated > 0 && truncated < packets.len() as u64);
    let bytes: u64 = packets
        .iter()
        .map(|p| p.len().min(snaplen as usize) as u64)
        .sum();
    assert_eq!(counter(m, "bytes"), bytes);
    assert_eq!(counter(m, "truncated"), truncated);
    assert_eq!(counter(m, "write_errors"), 0);
    assert_eq!(counter(m, "dropped"), 0);
    assert!(stem.tile().failure().is_none());
}

#[test]
fn pcap_records_reach_the_file_at_housekeeping_while_running() {
    let dir = TempDir::new("pcap-hk");
    let path = dir.0.join("live.pcap");
    let t = TestWs::new("pcap-hk", 1 << 22);
    let a = t.link("a", 16, MTU, &[Reliable]);
    let tile = Pcap::create(&path, 65_535).unwrap();
    // A valid, empty capture from the start.
    assert!(read_back(&path, 65_535).is_empty());
    let mut stem = Stem::new(&t.ws, "pcap", tile, &[(&a, 0)], &[], config()).unwrap();
    let frame = udp_frame(1, 2, b"live");
    let want_len = 24 + 5 * (16 + frame.len() as u64);
    let mut feeder = Feeder::new(&a, (0..5).map(|i| Frag::plain(frame.clone(), i)).collect());
    // The condition looks at the file only: it holds before the stop.
    run_until(&mut [&mut stem], || {
        feeder.feed() && std::fs::metadata(&path).unwrap().len() == want_len
    });
    let got = read_back(&path, 65_535);
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(|(_, _, d)| *d == frame));
}

#[test]
fn pcap_create_refuses_a_zero_snaplen_and_unwritable_files() {
    let dir = TempDir::new("pcap-bad");
    let e = Pcap::create(dir.0.join("zero.pcap"), 0).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(Pcap::create(dir.0.join("no/such/dir.pcap"), 100).is_err());
    if std::path::Path::new("/dev/full").exists() {
        // Opens, but the header's flush fails: reported by create.
        assert!(Pcap::create("/dev/full", 100).is_err());
    }
}
