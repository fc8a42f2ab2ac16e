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
//! Records go to a 64 KiB buffer of the tile's own (allocated once, when
//! the tile is made), written to the file at every housekeeping (so a
//! capture lags the traffic by at most a housekeeping interval), when the
//! next record would not fit, when the tile stops (the run loop's last
//! housekeeping, see [`tilewire_tile::stem`]), and when the tile is
//! dropped. [`Tile::pending`] says how many records wait in the buffer. A
//! tile that dies without either loses at most the records in its buffer;
//! the file up to the last write is a valid capture.
//!
//! # A full disk (or any write error)
//!
//! The tile knows where each record of its buffer ends, and how long the
//! file's whole records are. When writing the buffer fails part way (a
//! full disk, `ENOSPC`, is the usual cause; a file-size limit or an I/O
//! error are others), the file holds the whole records before the failure
//! and the start of one more: the tile cuts the file back to its last
//! whole record (`ftruncate`), so it stays a valid capture that any reader
//! reads to the end, counts the records that made it in `written`, and
//! writes nothing more (a disk that filled once would fill again with the
//! next record, and a later write that succeeded would follow a hole).
//! It says so once, on stderr (a processes-mode runner tags the line with
//! the tile), naming the file, the OS error and the records kept:
//!
//! ```text
//! pcap tile "cap": writing cap.pcap failed: No space left on device (os error 28); the capture stops there with 1234 whole records (the file cut back to the last of them)
//! ```
//!
//! What happens next is the tile's `on_error` param:
//!
//! - `"drop"` (the default): the tile goes on reading its input and drops
//!   every packet, counting it in `dropped`. The rest of the pipeline does
//!   not notice: a reliable link into the tile keeps giving its producer
//!   credits. This is the default because a capture in a validator is a
//!   tee beside the data path, a diagnostic: a full disk must cost the
//!   capture, never the traffic (the same rule [`tilewire_aio::PcapTee`]
//!   follows). The `dropped` and `write_errors` counters show it in the
//!   monitor and in the run's report.
//! - `"stop"`: the tile fails, and with it the run: it panics with the
//!   same message (the run loop's way for a tile to end in error), so the
//!   runner stops the other tiles in order and reports
//!   [`TileFailure::Panicked`](crate::TileFailure::Panicked) with the
//!   message (threads mode) or the tile's process exit with the message
//!   on its stderr (processes mode). For a pipeline whose point is the
//!   capture (a recorder, a test harness), where running on without it
//!   would only hide the failure.
//!
//! Either way the file is left a valid capture of the records counted in
//! `written`. A tile of a `restart = "on-failure"` pipeline that is
//! started again makes its file anew (the earlier capture is lost).
//!
//! # What it counts
//!
//! - `written`: records in the file (written out, whole);
//! - `bytes`: packet bytes in those records (after the snap length);
//! - `truncated`: those records cut to the snap length;
//! - `dropped`: packets read but not in the file because of a write
//!   error: the records of the failed write, and every packet after it;
//! - `write_errors`: failed writes to the file (0 or 1: the capture stops
//!   at the first).
//!
//! Every packet the tile read is in `written`, in `dropped`, or still in
//! the buffer ([`Tile::pending`]; none once the tile stopped). Empty frags
//! are written as empty records; nothing a frag holds makes the tile
//! panic (a write error with `on_error = "stop"` does, on purpose).

use core::sync::atomic::AtomicU8;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use tilewire_aio::pcap::RECORD_HEADER_LEN;
use tilewire_aio::{Aio, LinkType, PcapConfig, PcapTee, PktInfo, SendError, TsResolution};

use tilewire_tile::link::frag::FragMeta;
use tilewire_tile::stem::{FragCopy, Outputs, Tile};

use crate::kind::{BuildCtx, BuildError, IoCounts, TileKind};

/// Bytes of records buffered between writes to the file.
const BUFFER_BYTES: usize = 1 << 16;

/// The aio behind the capture writer: takes every packet, keeps none.
#[derive(Debug, Clone, Copy, Default)]
struct Nowhere;

impl Aio for Nowhere {
    fn send(&mut self, _batch: &[PktInfo<'_>], _flush: bool) -> Result<(), SendError> {
        Ok(())
    }
}

/// Where a buffered record ends, and whether it was cut to the snap
/// length.
#[derive(Debug, Clone, Copy)]
struct RecordEnd {
    end: usize,
    cut: bool,
}

/// The capture's buffer and file: the records not yet written, where
/// each ends, and the length of the file's whole records.
#[derive(Debug)]
struct Spool {
    file: File,
    buf: Vec<u8>,
    ends: Vec<RecordEnd>,
    /// Bytes of the file that are whole records (global header included).
    whole: u64,
}

/// What a write of the buffer put in the file.
#[derive(Debug, Default)]
struct Written {
    /// Whole records.
    records: u64,
    /// Packet bytes in them.
    bytes: u64,
    /// Those cut to the snap length.
    cut: u64,
    /// Records of the buffer not in the file.
    lost: u64,
    /// The write error, and the error of cutting the file back, if any.
    error: Option<(io::Error, Option<io::Error>)>,
}

impl Write for Spool {
    /// Appends to the buffer (never fails; the tile keeps room for the
    /// next record, so this does not allocate).
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    /// Nothing: [`Spool::write_out`] writes the buffer to the file.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Spool {
    /// Marks the end of a record (or of the global header) at the end of
    /// the buffer.
    fn record_end(&mut self, cut: bool) {
        self.ends.push(RecordEnd {
            end: self.buf.len(),
            cut,
        });
    }

    /// Writes the buffer to the file. On an error, cuts the file back to
    /// the last record that reached it whole. Empties the buffer.
    fn write_out(&mut self) -> Written {
        let mut done = 0;
        let mut error = None;
        while done < self.buf.len() {
            match self.file.write(&self.buf[done..]) {
                Ok(0) => {
                    error = Some(io::Error::from(io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let whole = self.ends.partition_point(|r| r.end <= done);
        let mut out = Written {
            records: whole as u64,
            lost: (self.ends.len() - whole) as u64,
            ..Written::default()
        };
        let mut start = 0;
        for r in &self.ends[..whole] {
            out.bytes += (r.end - start - RECORD_HEADER_LEN) as u64;
            out.cut += u64::from(r.cut);
            start = r.end;
        }
        self.whole += start as u64;
        if let Some(e) = error {
            let cut_back = self.file.set_len(self.whole).err();
            out.error = Some((e, cut_back));
        }
        self.buf.clear();
        self.ends.clear();
        out
    }
}

/// What a pcap tile does after a write to its file failed (see the
/// [module docs](self)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Go on reading the input, dropping and counting every packet.
    #[default]
    Drop,
    /// Fail the tile (a panic with the message), and so the run.
    Stop,
}

/// What a pcap tile counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PcapStats {
    /// Records in the file.
    pub written: u64,
    /// Packet bytes in those records.
    pub bytes: u64,
    /// Those records cut to the snap length.
    pub truncated: u64,
    /// Packets read and not in the file because of a write error.
    pub dropped: u64,
    /// Failed writes to the file (the capture stops at the first).
    pub write_errors: u64,
}

/// Writes input 0 to a pcap file (see the [module docs](self)).
#[derive(Debug)]
pub struct Pcap {
    tee: PcapTee<Spool, Nowhere>,
    path: PathBuf,
    /// The tile's name, for the message of a write error.
    name: String,
    snaplen: u32,
    on_error: OnError,
    copy: FragCopy,
    stats: PcapStats,
    /// The write error that stopped the capture, as reported.
    failure: Option<String>,
}

impl Pcap {
    /// Creates (or truncates) the file at `path` and writes the pcap
    /// global header: Ethernet link type, microsecond timestamps, snap
    /// length `snaplen`. A write error later drops packets
    /// ([`OnError::Drop`]; see [`Pcap::on_error`]).
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
        let path = path.as_ref().to_path_buf();
        let spool = Spool {
            file: File::create(&path)?,
            // Room for a full buffer and one more record of the longest.
            buf: Vec::with_capacity(BUFFER_BYTES + RECORD_HEADER_LEN + snaplen as usize),
            ends: Vec::with_capacity(BUFFER_BYTES / RECORD_HEADER_LEN + 1),
            whole: 0,
        };
        let config = PcapConfig {
            ts_resolution: TsResolution::Micro,
            snaplen,
            link_type: LinkType::ETHERNET,
            ..PcapConfig::default()
        };
        let mut tee = PcapTee::new(spool, Nowhere, config)?;
        // The header reaches the file now: an idle capture is a valid one.
        let spool = tee.writer_mut();
        spool.record_end(false);
        if let Some((e, _)) = spool.write_out().error {
            return Err(io::Error::new(
                e.kind(),
                format!("writing the pcap header to {}: {e}", path.display()),
            ));
        }
        Ok(Pcap {
            tee,
            path,
            name: "pcap".to_owned(),
            snaplen,
            on_error: OnError::Drop,
            copy: FragCopy::new(),
            stats: PcapStats::default(),
            failure: None,
        })
    }

    /// Sets what the tile does after a write error (default
    /// [`OnError::Drop`]).
    pub fn on_error(mut self, policy: OnError) -> Pcap {
        self.on_error = policy;
        self
    }

    /// Sets the tile's name, said in the message of a write error
    /// (default `pcap`).
    pub fn named(mut self, name: &str) -> Pcap {
        name.clone_into(&mut self.name);
        self
    }

    /// What the tile counted so far.
    pub fn stats(&self) -> PcapStats {
        self.stats
    }

    /// The message of the write error that stopped the capture (naming
    /// the file, the OS error and the records kept), if one did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Writes the buffered records to the file; on a write error, cuts
    /// the file back to its last whole record, stops the capture and says
    /// why once (see the [module docs](self)). Returns the message of
    /// that error, the first time only.
    pub fn flush(&mut self) -> Option<String> {
        if self.failure.is_some() {
            return None;
        }
        let w = self.tee.writer_mut().write_out();
        self.stats.written += w.records;
        self.stats.bytes += w.bytes;
        self.stats.truncated += w.cut;
        self.stats.dropped += w.lost;
        let (e, cut_back) = w.error?;
        self.stats.write_errors += 1;
        let mut msg = format!(
            "pcap tile {:?}: writing {} failed: {e}; the capture stops there with {} whole \
             records (the file cut back to the last of them)",
            self.name,
            self.path.display(),
            self.stats.written
        );
        if let Some(e2) = cut_back {
            msg.push_str(&format!(
                "; cutting it back failed too ({e2}): its end may hold part of a record"
            ));
        }
        eprintln!("{msg}");
        self.failure = Some(msg.clone());
        Some(msg)
    }

    /// Flushes from a callback of the run loop, where a write error with
    /// [`OnError::Stop`] ends the tile.
    fn flush_or_stop(&mut self) {
        if let Some(msg) = self.flush() {
            if self.on_error == OnError::Stop {
                // The run loop's way for a tile to fail: the runner
                // reports the message and stops the other tiles.
                panic!("{msg}");
            }
        }
    }
}

impl Tile for Pcap {
    fn kind(&self) -> &str {
        "pcap"
    }

    fn counters(&self) -> &'static [&'static str] {
        &["written", "bytes", "truncated", "dropped", "write_errors"]
    }

    fn during_frag(&mut self, _input: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        self.copy.copy(meta, payload);
    }

    fn after_frag(&mut self, _input: usize, meta: &FragMeta, _out: &mut Outputs<'_, '_>) {
        if self.failure.is_some() {
            self.stats.dropped += 1;
            return;
        }
        let len = self.copy.packet(meta).len();
        let kept = len.min(self.snaplen as usize);
        if self.tee.writer().buf.len() + RECORD_HEADER_LEN + kept > BUFFER_BYTES {
            self.flush_or_stop();
            if self.failure.is_some() {
                self.stats.dropped += 1;
                return;
            }
        }
        let packet = self.copy.packet(meta);
        // `Nowhere` takes everything and the spool never fails a write:
        // the record is in the buffer.
        let _ = self.tee.send(&[PktInfo::new(packet)], false);
        self.tee.writer_mut().record_end(kept < len);
    }

    fn housekeeping(&mut self, _out: &mut Outputs<'_, '_>) {
        self.flush_or_stop();
    }

    fn metrics_write(&mut self, counters: &mut [u64]) {
        let s = self.stats;
        for (c, v) in
            counters
                .iter_mut()
                .zip([s.written, s.bytes, s.truncated, s.dropped, s.write_errors])
        {
            *c = v;
        }
    }

    fn pending(&self) -> usize {
        self.tee.writer().ends.len()
    }
}

impl Drop for Pcap {
    /// Writes what is buffered; an error is said (once) but never panics
    /// here, whatever the policy.
    fn drop(&mut self) {
        if self.pending() > 0 {
            let _ = self.flush();
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
    /// What the tile does after a write to the file failed: `"drop"`
    /// (default) or `"stop"` (see the [module docs](self)).
    #[serde(default)]
    pub on_error: OnError,
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
        ctx: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        let tile = Pcap::create(&p.path, p.snaplen)
            .map_err(|e| BuildError::new(format!("creating {}: {e}", p.path.display())))?
            .on_error(p.on_error)
            .named(&ctx.tile().name);
        Ok(Box::new(tile))
    }
}
