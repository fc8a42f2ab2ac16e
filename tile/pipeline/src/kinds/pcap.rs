//! The pcap tile: writes what a link carries to a capture file.
//!
//! # What it does
//!
//! [`Pcap`] reads input 0 and writes each frag's packet as one record of a
//! classic pcap file with the Ethernet link type, so tcpdump, Wireshark or
//! the `pcap-file` crate read it as they would a capture from an
//! interface. Each record is stamped with the wall clock when the tile
//! wrote it, in microseconds. Packets longer than the snap length are cut
//! to it, the record keeping their original length (as libpcap writes
//! them; note that the `pcap-file` crate's `next_packet` refuses such
//! records, its `next_raw_packet` reads them). A packet that starts
//! `origin` bytes into its frag (an AF_XDP receive link, see
//! [`crate::kinds::net_xdp`]) is written from its origin.
//!
//! The format itself is [`tilewire_aio::PcapTee`]'s, the capture writer
//! the aio side already has, here in front of an aio that takes everything
//! and goes nowhere: one writer of the format in the code base.
//!
//! # Buffering
//!
//! Records go through a 64 KiB buffer, flushed to the file at every
//! housekeeping (so a capture lags the traffic by at most a housekeeping
//! interval), when the tile stops (the run loop's last housekeeping, see
//! [`tilewire_tile::stem`]), and when the tile is dropped. [`Tile::pending`] says
//! how many records wait in the buffer. A tile that dies without either
//! loses at most the records in its buffer; the file up to the last flush
//! is a valid capture.
//!
//! # What it counts
//!
//! - `written`: records written (to the buffer, and so to the file once
//!   flushed);
//! - `bytes`: packet bytes in those records (after the snap length);
//! - `truncated`: records cut to the snap length;
//! - `write_errors`: packets not written because the file refused a write
//!   (after the first failed write or flush the capture stops, since a
//!   half-written record would make every later one unreadable: every
//!   packet after it counts here), and failed flushes.
//!
//! A write error never stops the tile or the pipeline: a capture is a
//! diagnostic. Empty frags are written as empty records; nothing a frag
//! holds makes the tile panic.

use core::sync::atomic::AtomicU8;
use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use tilewire_aio::{Aio, LinkType, PcapConfig, PcapTee, PktInfo, SendError, TsResolution};

use tilewire_tile::link::frag::FragMeta;
use tilewire_tile::stem::{FragCopy, Outputs, Tile};

use crate::kind::{BuildCtx, BuildError, IoCounts, TileKind};

/// Bytes of records buffered between flushes.
const BUFFER_BYTES: usize = 1 << 16;

/// The aio behind the capture writer: takes every packet, keeps none.
#[derive(Debug, Clone, Copy, Default)]
struct Nowhere;

impl Aio for Nowhere {
    fn send(&mut self, _batch: &[PktInfo<'_>], _flush: bool) -> Result<(), SendError> {
        Ok(())
    }
}

/// What a pcap tile counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PcapStats {
    /// Records written.
    pub written: u64,
    /// Packet bytes in those records.
    pub bytes: u64,
    /// Records cut to the snap length.
    pub truncated: u64,
    /// Packets lost to write errors, plus failed flushes.
    pub write_errors: u64,
}

/// Writes input 0 to a pcap file (see the [module docs](self)).
#[derive(Debug)]
pub struct Pcap {
    tee: PcapTee<BufWriter<File>, Nowhere>,
    snaplen: u32,
    copy: FragCopy,
    stats: PcapStats,
    failed_flushes: u64,
    /// Records written since the last flush.
    unflushed: usize,
}

impl Pcap {
    /// Creates (or truncates) the file at `path` and writes the pcap
    /// global header: Ethernet link type, microsecond timestamps, snap
    /// length `snaplen`.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] if `snaplen` is 0; the error of
    /// creating the file or writing its header.
    pub fn create(path: impl AsRef<Path>, snaplen: u32) -> io::Result<Pcap> {
        if snaplen == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "pcap snaplen must be at least 1",
            ));
        }
        let file = File::create(path)?;
        let config = PcapConfig {
            ts_resolution: TsResolution::Micro,
            snaplen,
            link_type: LinkType::ETHERNET,
            ..PcapConfig::default()
        };
        let tee = PcapTee::new(
            BufWriter::with_capacity(BUFFER_BYTES, file),
            Nowhere,
            config,
        )?;
        let mut pcap = Pcap {
            tee,
            snaplen,
            copy: FragCopy::new(),
            stats: PcapStats::default(),
            failed_flushes: 0,
            unflushed: 0,
        };
        // The header reaches the file now: an idle capture is a valid one.
        pcap.flush();
        if let Some(e) = pcap.tee.io_error() {
            return Err(io::Error::new(e.kind(), e.to_string()));
        }
        Ok(pcap)
    }

    /// What the tile counted so far.
    pub fn stats(&self) -> PcapStats {
        self.stats
    }

    /// The first write or flush error of the capture, if any.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.tee.io_error()
    }

    /// Writes the buffered records to the file. A failure is counted in
    /// `write_errors` and ends the capture (see the [module docs](self)).
    pub fn flush(&mut self) {
        let failed_before = self.tee.io_error().is_some();
        // An empty batch with `flush` writes no record and flushes the
        // writer (if the capture has not failed already).
        let _ = self.tee.send(&[], true);
        if !failed_before && self.tee.io_error().is_some() {
            self.failed_flushes += 1;
        }
        self.unflushed = 0;
        self.update_errors();
    }

    fn update_errors(&mut self) {
        self.stats.write_errors = self.tee.pkts_uncaptured() + self.failed_flushes;
    }
}

impl Tile for Pcap {
    fn kind(&self) -> &str {
        "pcap"
    }

    fn counters(&self) -> &'static [&'static str] {
        &["written", "bytes", "truncated", "write_errors"]
    }

    fn during_frag(&mut self, _input: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        self.copy.copy(meta, payload);
    }

    fn after_frag(&mut self, _input: usize, meta: &FragMeta, _out: &mut Outputs<'_, '_>) {
        let packet = self.copy.packet(meta);
        let before = self.tee.pkts_captured();
        // `Nowhere` takes everything: the result is always Ok.
        let _ = self.tee.send(&[PktInfo::new(packet)], false);
        if self.tee.pkts_captured() > before {
            let kept = packet.len().min(self.snaplen as usize);
            self.stats.written += 1;
            self.stats.bytes += kept as u64;
            self.stats.truncated += u64::from(kept < packet.len());
            self.unflushed += 1;
        }
        self.update_errors();
    }

    fn housekeeping(&mut self, _out: &mut Outputs<'_, '_>) {
        self.flush();
    }

    fn metrics_write(&mut self, counters: &mut [u64]) {
        let s = self.stats;
        for (c, v) in counters
            .iter_mut()
            .zip([s.written, s.bytes, s.truncated, s.write_errors])
        {
            *c = v;
        }
    }

    fn pending(&self) -> usize {
        self.unflushed
    }
}

impl Drop for Pcap {
    fn drop(&mut self) {
        if self.unflushed > 0 {
            self.flush();
        }
    }
}

/// The `pcap` kind: exactly 1 input, no outputs; writes what it consumes
/// to a pcap file.
#[derive(Debug, Clone, Copy, Default)]
pub struct PcapKind;

/// Parameters of a `pcap` tile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcapParams {
    /// The file written (required; relative to the runner's directory).
    #[serde(deserialize_with = "pcap_path")]
    pub path: PathBuf,
    /// Bytes kept of each frame, 1..=65535 (default 65535).
    #[serde(default = "default_snaplen", deserialize_with = "snaplen")]
    pub snaplen: u32,
}

fn pcap_path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    crate::params::non_empty(d).map(PathBuf::from)
}

fn default_snaplen() -> u32 {
    65535
}

fn snaplen<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    crate::params::int_in(d, 1, 65535)
}

impl TileKind for PcapKind {
    type Params = PcapParams;

    fn name(&self) -> &str {
        "pcap"
    }

    fn io(&self) -> IoCounts {
        IoCounts::new(1..=1, 0..=0)
    }

    fn build<'w>(
        &self,
        p: &PcapParams,
        _: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        let tile = Pcap::create(&p.path, p.snaplen)
            .map_err(|e| BuildError::new(format!("creating {}: {e}", p.path.display())))?;
        Ok(Box::new(tile))
    }
}
