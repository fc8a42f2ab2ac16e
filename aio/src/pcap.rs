//! [`PcapTee`]: an aio that forwards every batch to a downstream aio and
//! records what the downstream took in a classic pcap capture.
//!
//! Put it on any edge of a pipeline to see the traffic in tcpdump or
//! Wireshark without changing the stages on either side.
//!
//! # What lands in the file
//!
//! The tee sends first and writes second: it forwards the batch, then writes
//! exactly the packets the downstream took, `[0, batch_idx)` on an error and
//! all of them on success. A caller that retries from `batch_idx` after
//! `Again` therefore never puts a packet in the capture twice, and a packet
//! that was refused is never in it.
//!
//! # The format
//!
//! The classic libpcap format: a 24-byte global header written when the tee
//! is made (magic for microsecond or nanosecond timestamps, version 2.4,
//! zone and accuracy 0, snap length, link type), then per packet a 16-byte
//! record header (seconds, fraction, captured length, original length) and
//! the captured bytes. Every field is written little-endian; readers detect
//! the byte order from the magic. Packets longer than the snap length are
//! cut to it, with the original length kept in the record. All packets of
//! one batch share the timestamp taken when the downstream returned.
//!
//! # Write errors
//!
//! A capture is a diagnostic, so its failures never change the data path:
//! the tee never panics on an I/O error and always returns the downstream's
//! result unchanged. The first error is kept ([`PcapTee::io_error`]) and the
//! capture stops there, because a failed write may have left half a record
//! and every record after it would be misread. Packets the downstream took
//! afterwards are counted in [`PcapTee::pkts_uncaptured`].

#![forbid(unsafe_code)]

use core::fmt;
use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use crate::{Aio, PktInfo, SendError};

/// A pcap link type (the `network` field of the global header): what the
/// first byte of each packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkType(pub u32);

impl LinkType {
    /// `LINKTYPE_ETHERNET`: packets start with an Ethernet header. The
    /// default, right for AF_XDP frames.
    pub const ETHERNET: LinkType = LinkType(1);
    /// `LINKTYPE_RAW`: packets start with an IPv4 or IPv6 header.
    pub const RAW: LinkType = LinkType(101);
    /// `LINKTYPE_USER0`: private use; right for bare UDP payloads, which
    /// have no standard link type.
    pub const USER0: LinkType = LinkType(147);
}

/// Timestamp resolution of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TsResolution {
    /// Microseconds (magic `0xa1b2c3d4`), what every reader understands.
    #[default]
    Micro,
    /// Nanoseconds (magic `0xa1b23c4d`).
    Nano,
}

impl TsResolution {
    /// The global-header magic for this resolution.
    pub const fn magic(self) -> u32 {
        match self {
            TsResolution::Micro => 0xa1b2_c3d4,
            TsResolution::Nano => 0xa1b2_3c4d,
        }
    }
}

/// The time since the Unix epoch from the system clock (0 if the clock is
/// set before 1970).
pub fn system_clock() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

/// How a [`PcapTee`] writes its capture.
#[derive(Debug, Clone, Copy)]
pub struct PcapConfig {
    /// Microsecond (default) or nanosecond timestamps.
    pub ts_resolution: TsResolution,
    /// Longest packet captured in full; longer ones are cut. Default 65535.
    pub snaplen: u32,
    /// Link type of the packets. Default [`LinkType::ETHERNET`].
    pub link_type: LinkType,
    /// Where timestamps come from: time since the Unix epoch. Default
    /// [`system_clock`]; a fixed clock makes captures byte-reproducible.
    pub clock: fn() -> Duration,
}

impl Default for PcapConfig {
    fn default() -> PcapConfig {
        PcapConfig {
            ts_resolution: TsResolution::Micro,
            snaplen: 65_535,
            link_type: LinkType::ETHERNET,
            clock: system_clock,
        }
    }
}

/// Size of the pcap global header.
pub const GLOBAL_HEADER_LEN: usize = 24;
/// Size of a pcap record header.
pub const RECORD_HEADER_LEN: usize = 16;

/// An aio that forwards to `N` and writes what `N` took to a pcap stream.
pub struct PcapTee<W: Write, N: Aio> {
    writer: W,
    downstream: N,
    config: PcapConfig,
    io_error: Option<io::Error>,
    pkts_captured: u64,
    pkts_uncaptured: u64,
}

impl<W: Write, N: Aio> fmt::Debug for PcapTee<W, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PcapTee")
            .field("config", &self.config)
            .field("io_error", &self.io_error)
            .field("pkts_captured", &self.pkts_captured)
            .field("pkts_uncaptured", &self.pkts_uncaptured)
            .finish_non_exhaustive()
    }
}

impl<W: Write, N: Aio> PcapTee<W, N> {
    /// Writes the global header to `writer` and returns a tee in front of
    /// `downstream`.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] if `config.snaplen` is 0; the
    /// writer's error if the global header cannot be written.
    pub fn new(mut writer: W, downstream: N, config: PcapConfig) -> io::Result<PcapTee<W, N>> {
        if config.snaplen == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "pcap snaplen must be at least 1",
            ));
        }
        let mut hdr = [0u8; GLOBAL_HEADER_LEN];
        hdr[0..4].copy_from_slice(&config.ts_resolution.magic().to_le_bytes());
        hdr[4..6].copy_from_slice(&2u16.to_le_bytes());
        hdr[6..8].copy_from_slice(&4u16.to_le_bytes());
        // [8, 16): thiszone and sigfigs, both zero.
        hdr[16..20].copy_from_slice(&config.snaplen.to_le_bytes());
        hdr[20..24].copy_from_slice(&config.link_type.0.to_le_bytes());
        writer.write_all(&hdr)?;
        Ok(PcapTee {
            writer,
            downstream,
            config,
            io_error: None,
            pkts_captured: 0,
            pkts_uncaptured: 0,
        })
    }

    /// The configuration the capture was started with.
    pub fn config(&self) -> &PcapConfig {
        &self.config
    }

    /// The first I/O error of the capture, if any; nothing was written
    /// after it.
    pub fn io_error(&self) -> Option<&io::Error> {
        self.io_error.as_ref()
    }

    /// Packets written to the capture.
    pub fn pkts_captured(&self) -> u64 {
        self.pkts_captured
    }

    /// Packets the downstream took that are not in the capture because of
    /// the I/O error.
    pub fn pkts_uncaptured(&self) -> u64 {
        self.pkts_uncaptured
    }

    /// The capture's writer.
    pub fn writer(&self) -> &W {
        &self.writer
    }

    /// The capture's writer, mutably: for a caller that writes its buffer
    /// out itself (the pipeline's pcap tile does, to know which records
    /// reached the file). Writing to it directly puts bytes in the
    /// capture that are no record.
    pub fn writer_mut(&mut self) -> &mut W {
        &mut self.writer
    }

    /// The downstream aio.
    pub fn downstream(&self) -> &N {
        &self.downstream
    }

    /// The downstream aio, mutably (to drain a test backend, say).
    pub fn downstream_mut(&mut self) -> &mut N {
        &mut self.downstream
    }

    /// Gives back the writer and the downstream aio. The writer is not
    /// flushed; a buffered writer still holds what it buffered.
    pub fn into_inner(self) -> (W, N) {
        (self.writer, self.downstream)
    }

    fn write_record(&mut self, ts: Duration, buf: &[u8]) -> io::Result<()> {
        let frac = match self.config.ts_resolution {
            TsResolution::Micro => ts.subsec_micros(),
            TsResolution::Nano => ts.subsec_nanos(),
        };
        let secs = u32::try_from(ts.as_secs()).unwrap_or(u32::MAX);
        let orig_len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let incl_len = orig_len.min(self.config.snaplen);
        let mut hdr = [0u8; RECORD_HEADER_LEN];
        hdr[0..4].copy_from_slice(&secs.to_le_bytes());
        hdr[4..8].copy_from_slice(&frac.to_le_bytes());
        hdr[8..12].copy_from_slice(&incl_len.to_le_bytes());
        hdr[12..16].copy_from_slice(&orig_len.to_le_bytes());
        self.writer.write_all(&hdr)?;
        // incl_len <= buf.len(), so the cast back cannot truncate.
        self.writer.write_all(&buf[..incl_len as usize])
    }

    fn capture(&mut self, taken: &[PktInfo<'_>]) {
        if taken.is_empty() {
            return;
        }
        let ts = (self.config.clock)();
        for (i, pkt) in taken.iter().enumerate() {
            if self.io_error.is_some() {
                self.pkts_uncaptured += (taken.len() - i) as u64;
                return;
            }
            match self.write_record(ts, pkt.buf) {
                Ok(()) => self.pkts_captured += 1,
                Err(e) => {
                    self.io_error = Some(e);
                    self.pkts_uncaptured += 1;
                }
            }
        }
    }
}

impl<W: Write, N: Aio> Aio for PcapTee<W, N> {
    /// Forwards `batch` to the downstream, then captures exactly the packets
    /// it took; with `flush`, also flushes the writer.
    ///
    /// # Errors
    /// The downstream's error, unchanged. Capture errors never surface here
    /// (see [`PcapTee::io_error`]).
    fn send(&mut self, batch: &[PktInfo<'_>], flush: bool) -> Result<(), SendError> {
        let result = self.downstream.send(batch, flush);
        let taken = match result {
            Ok(()) => batch.len(),
            // A downstream that reports an index past the batch broke the
            // contract; capture what certainly exists.
            Err(e) => e.batch_idx.min(batch.len()),
        };
        self.capture(&batch[..taken]);
        if flush && self.io_error.is_none() {
            if let Err(e) = self.writer.flush() {
                self.io_error = Some(e);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemAio, SendError};

    fn fixed_clock() -> Duration {
        Duration::new(1_700_000_000, 123_456_789)
    }

    fn config(ts_resolution: TsResolution, snaplen: u32) -> PcapConfig {
        PcapConfig {
            ts_resolution,
            snaplen,
            link_type: LinkType::USER0,
            clock: fixed_clock,
        }
    }

    #[test]
    fn bytes_are_exactly_the_classic_format() {
        let mut tee = PcapTee::new(
            Vec::new(),
            MemAio::with_capacity(4),
            config(TsResolution::Micro, 3),
        )
        .unwrap();
        tee.send(&[PktInfo::new(b"abcde")], false).unwrap();
        let (out, _) = tee.into_inner();
        let mut want = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
        want.extend_from_slice(&[2, 0, 4, 0]);
        want.extend_from_slice(&[0; 8]);
        for word in [3u32, 147, 1_700_000_000, 123_456, 3, 5] {
            want.extend_from_slice(&word.to_le_bytes());
        }
        want.extend_from_slice(b"abc");
        assert_eq!(out, want);
    }

    #[test]
    fn nanosecond_magic_and_fraction() {
        let mut tee = PcapTee::new(
            Vec::new(),
            MemAio::with_capacity(1),
            config(TsResolution::Nano, 65_535),
        )
        .unwrap();
        tee.send(&[PktInfo::new(b"z")], true).unwrap();
        let out = tee.writer();
        assert_eq!(out[0..4], 0xa1b2_3c4du32.to_le_bytes());
        assert_eq!(out[28..32], 123_456_789u32.to_le_bytes());
    }

    #[test]
    fn only_what_the_downstream_took_is_written() {
        let mut tee = PcapTee::new(
            Vec::new(),
            MemAio::with_capacity(1),
            config(TsResolution::Micro, 100),
        )
        .unwrap();
        let batch = [PktInfo::new(b"one"), PktInfo::new(b"two")];
        assert_eq!(tee.send(&batch, false), Err(SendError::again(1)));
        assert_eq!(
            tee.writer().len(),
            GLOBAL_HEADER_LEN + RECORD_HEADER_LEN + 3
        );
        assert_eq!(tee.pkts_captured(), 1);
        assert!(tee.writer().ends_with(b"one"));
    }

    #[test]
    fn zero_snaplen_is_refused() {
        let e = PcapTee::new(
            Vec::new(),
            MemAio::with_capacity(1),
            config(TsResolution::Micro, 0),
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    /// Accepts `room` bytes, then fails every write and flush.
    struct Failing {
        room: usize,
        flushes: usize,
    }

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::other("disk full"));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            self.flushes += 1;
            Ok(())
        }
    }

    #[test]
    fn write_errors_never_change_the_send_result_and_stop_the_capture() {
        // Room for the global header and one 1-byte record.
        let w = Failing {
            room: GLOBAL_HEADER_LEN + RECORD_HEADER_LEN + 1,
            flushes: 0,
        };
        let mut tee = PcapTee::new(w, MemAio::with_capacity(8), PcapConfig::default()).unwrap();
        let batch = [PktInfo::new(b"a"), PktInfo::new(b"b"), PktInfo::new(b"c")];
        assert_eq!(tee.send(&batch, true), Ok(()));
        assert_eq!(tee.io_error().unwrap().to_string(), "disk full");
        assert_eq!((tee.pkts_captured(), tee.pkts_uncaptured()), (1, 2));
        // The failed capture does not flush (nothing more to say) and later
        // sends still reach the downstream.
        assert_eq!(tee.writer().flushes, 0);
        assert_eq!(tee.send(&batch[..1], true), Ok(()));
        assert_eq!(tee.pkts_uncaptured(), 3);
        assert_eq!(tee.downstream().len(), 4);
        assert_eq!(tee.downstream_mut().drain().count(), 4);
    }

    #[test]
    fn header_write_error_is_reported_by_new() {
        let w = Failing {
            room: 10,
            flushes: 0,
        };
        assert!(PcapTee::new(w, MemAio::with_capacity(1), PcapConfig::default()).is_err());
    }
}
