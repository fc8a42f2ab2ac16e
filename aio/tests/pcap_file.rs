//! A PcapTee capture written to a real file reads back with the pcap-file
//! crate, byte for byte, and with tcpdump when it is installed.

mod common;

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pcap_file::pcap::PcapReader;
use pcap_file::{DataLink, TsResolution as PcapTs};
use tilewire_aio::{
    Aio, LinkType, MemAio, PcapConfig, PcapTee, PktInfo, SendErrorKind, TsResolution,
};

/// A file in the temp dir, removed when dropped (also when a test fails).
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("tilewire-aio-{}-{name}.pcap", std::process::id()));
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn ipv4_checksum(hdr: &[u8]) -> u16 {
    let mut sum: u32 = hdr
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet / IPv4 / UDP frame from 198.18.0.1:9000 to 198.18.0.2:9001
/// with `payload_len` bytes of payload derived from `seed`.
fn udp_frame(seed: u8, payload_len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(42 + payload_len);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let ip_len = (20 + 8 + payload_len) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[198, 18, 0, 1]);
    ip[16..20].copy_from_slice(&[198, 18, 0, 2]);
    let csum = ipv4_checksum(&ip);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&9000u16.to_be_bytes());
    f.extend_from_slice(&9001u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no UDP checksum (allowed over IPv4)
    f.extend((0..payload_len).map(|i| seed.wrapping_add(i as u8)));
    f
}

fn frames() -> Vec<Vec<u8>> {
    [
        0usize, 1, 18, 100, 512, 1232, 1400, 7, 1232, 64, 300, 1000, 2, 1472, 42, 900, 1232, 5, 77,
        1100,
    ]
    .iter()
    .enumerate()
    .map(|(i, &len)| udp_frame(i as u8, len))
    .collect()
}

/// Sends `frames` through a tee into `path`, in batches of 7 against a pool
/// of 8, retrying after each Again so the capture must not repeat anything.
fn capture(path: &Path, frames: &[Vec<u8>], config: PcapConfig) {
    let writer = BufWriter::new(File::create(path).unwrap());
    let mut tee = PcapTee::new(writer, MemAio::with_capacity(8), config).unwrap();
    let batch: Vec<PktInfo<'_>> = frames.iter().map(|f| PktInfo::new(f)).collect();
    let mut agains = 0;
    for chunk in batch.chunks(7) {
        let mut start = 0;
        while start < chunk.len() {
            match tee.send(&chunk[start..], false) {
                Ok(()) => start = chunk.len(),
                Err(e) => {
                    assert_eq!(e.kind, SendErrorKind::Again);
                    start += e.batch_idx;
                    agains += 1;
                    tee.downstream_mut().drain().for_each(drop);
                }
            }
        }
    }
    tee.send(&[], true).unwrap();
    assert!(
        agains > 0,
        "the pool never pushed back; the retry path went untested"
    );
    assert!(tee.io_error().is_none());
    assert_eq!(tee.pkts_captured(), frames.len() as u64);
    let (writer, _) = tee.into_inner();
    writer.into_inner().unwrap().sync_all().unwrap();
}

fn read_back(path: &Path) -> (pcap_file::pcap::PcapHeader, Vec<(Duration, u32, Vec<u8>)>) {
    let mut reader = PcapReader::new(File::open(path).unwrap()).unwrap();
    let header = reader.header();
    let mut pkts = Vec::new();
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.unwrap();
        pkts.push((pkt.timestamp, pkt.orig_len, pkt.data.into_owned()));
    }
    (header, pkts)
}

#[test]
fn capture_parses_byte_identical_with_pcap_file() {
    let file = TempFile::new("micro");
    let frames = frames();
    let config = PcapConfig {
        clock: common::fixed_clock,
        ..PcapConfig::default()
    };
    capture(&file.0, &frames, config);
    let (header, pkts) = read_back(&file.0);
    assert_eq!((header.version_major, header.version_minor), (2, 4));
    assert_eq!(header.ts_resolution, PcapTs::MicroSecond);
    assert_eq!(header.datalink, DataLink::ETHERNET);
    assert_eq!(header.snaplen, 65_535);
    assert_eq!(pkts.len(), frames.len());
    for (i, ((ts, orig_len, data), frame)) in pkts.iter().zip(&frames).enumerate() {
        assert_eq!(data, frame, "packet {i}");
        assert_eq!(*orig_len as usize, frame.len(), "packet {i}");
        assert_eq!(*ts, Duration::new(1_700_000_000, 987_654_000), "packet {i}");
    }
}

#[test]
fn nanosecond_capture_with_snaplen_cuts_but_keeps_original_length() {
    let file = TempFile::new("nano");
    let frames = frames();
    let config = PcapConfig {
        ts_resolution: TsResolution::Nano,
        snaplen: 100,
        link_type: LinkType::RAW,
        clock: common::fixed_clock,
    };
    capture(&file.0, &frames, config);
    // pcap-file's validating reader refuses records whose original length
    // exceeds the snap length, although that is what a snap length is for
    // (libpcap and tcpdump read them); read the raw records instead.
    let mut reader = PcapReader::new(File::open(&file.0).unwrap()).unwrap();
    let header = reader.header();
    assert_eq!(header.ts_resolution, PcapTs::NanoSecond);
    assert_eq!(header.datalink, DataLink::RAW);
    assert_eq!(header.snaplen, 100);
    let mut n = 0;
    while let Some(raw) = reader.next_raw_packet() {
        let raw = raw.unwrap();
        let frame = &frames[n];
        assert_eq!(raw.data[..], frame[..frame.len().min(100)], "packet {n}");
        assert_eq!(raw.incl_len as usize, frame.len().min(100), "packet {n}");
        assert_eq!(raw.orig_len as usize, frame.len(), "packet {n}");
        assert_eq!(
            (raw.ts_sec, raw.ts_frac),
            (1_700_000_000, 987_654_321),
            "packet {n}"
        );
        n += 1;
    }
    assert_eq!(n, frames.len());
}

#[test]
fn tcpdump_reads_the_capture() {
    match Command::new("tcpdump").arg("--version").output() {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "tcpdump is not installed, and CI must install it"
            );
            println!("skipped: tcpdump not installed");
            return;
        }
        Err(e) => panic!("cannot run tcpdump: {e}"),
    }
    let frames = frames();
    let run = |config: PcapConfig, name: &str| {
        let file = TempFile::new(name);
        capture(&file.0, &frames, config);
        let out = Command::new("tcpdump")
            .arg("-r")
            .arg(&file.0)
            .arg("-nn")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "tcpdump failed: {stderr}");
        assert_eq!(
            stdout.lines().count(),
            frames.len(),
            "tcpdump output:\n{stdout}"
        );
        (stdout, stderr)
    };

    let (stdout, stderr) = run(PcapConfig::default(), "tcpdump");
    assert!(stderr.contains("EN10MB"), "unexpected link type: {stderr}");
    for (line, frame) in stdout.lines().zip(&frames) {
        let payload = frame.len() - 42;
        assert!(
            line.contains("198.18.0.1.9000 > 198.18.0.2.9001: UDP")
                && line.contains(&format!("length {payload}")),
            "unexpected tcpdump line: {line}"
        );
    }

    // Nanosecond timestamps and records cut by a snap length read too.
    let config = PcapConfig {
        ts_resolution: TsResolution::Nano,
        snaplen: 64,
        ..PcapConfig::default()
    };
    let (_, stderr) = run(config, "tcpdump-nano");
    assert!(
        stderr.contains("snapshot length 64"),
        "unexpected header: {stderr}"
    );
}
