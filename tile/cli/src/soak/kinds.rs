//! The two tile kinds of a soak: a source whose every frag carries an id
//! of its own, and a sink that records in the workspace which ids arrived.
//!
//! # Ids that a restart never reuses
//!
//! `soak-src` publishes well-formed IPv4 UDP frames whose payload starts
//! with the frag's *id*: the seq the frag gets on the source's output link
//! ([`Producer::seq`](tilewire_pipeline::tile::link::producer::Producer::seq),
//! read just before the publish that takes it). A producer that starts
//! on a link continues one past the newest seq on any of its lines (see
//! the link's "Restarts"), so a source killed and started again goes on
//! with the next id, never one it published: the ids of a soak are exactly
//! `seq0 .. next seq` of that link, each published once, and the link's
//! next seq after the stop is the exact number of frags the sources sent.
//! A frag reserved but not committed when the source died takes no seq;
//! its successor publishes that id.
//!
//! Its rate is a token bucket (`rate` frags a second, at most `burst`
//! saved up); it stops publishing at id `capacity`, the size of the
//! sink's record, and says so in its `capped` counter.
//!
//! # A record that survives the sink's own kill
//!
//! `soak-sink` keeps one bit per id in a workspace allocation,
//! [`record_name`] of the tile, made and zeroed with the workspace
//! (every page touched then, in the runner, so reading the record never
//! grows anyone's memory later). Setting a bit is the delivery: a sink
//! killed and started again joins the same record, and a frag its
//! predecessor took but whose progress it had not published yet comes
//! again and finds its bit set: a duplicate, counted as such. The header
//! of the record counts live (one writer, the sink of the moment):
//! `delivered` (bits set), `duplicates`, `malformed` (no id in the
//! frame) and `beyond` (an id past the record). A kill between a bit and
//! its count leaves a count one short; the final figure of deliveries is
//! the number of bits set ([`Record::delivered_bits`]), which is exact.

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use tilewire_pipeline::aio::frame::{build_vec, UdpEndpoints, UdpFrame, HEADERS_LEN};
use tilewire_pipeline::shmem::clock::{mono_ns, mono_ts};
use tilewire_pipeline::shmem::Workspace;
use tilewire_pipeline::tile::link::frag::CTL_PKT;
use tilewire_pipeline::tile::stem::{Frag, Outputs, Reading, Tile};
use tilewire_pipeline::{
    BuildCtx, BuildError, CheckCtx, IoCounts, Object, Registry, RegistryError, TileKind,
};

/// The kind name of the soak's source.
pub(crate) const SOURCE_KIND: &str = "soak-src";
/// The kind name of the soak's sink.
pub(crate) const SINK_KIND: &str = "soak-sink";

/// What follows the id in every payload: a frame without it is not the
/// soak's (counted malformed by the sink).
const MAGIC: u64 = u64::from_le_bytes(*b"twsoak01");
/// Payload bytes: the id, the magic, and padding to a small frame.
const PAYLOAD: usize = 32;
/// Words of the record's header (see [`Record`]).
const HEADER_WORDS: usize = 8;
const H_MAGIC: usize = 0;
const H_CAPACITY: usize = 1;
const H_DELIVERED: usize = 2;
const H_DUPLICATES: usize = 3;
const H_MALFORMED: usize = 4;
const H_BEYOND: usize = 5;
const RECORD_MAGIC: u64 = u64::from_le_bytes(*b"twsoakr1");

/// Largest record: 2^32 ids (512 MiB of bits).
const CAPACITY_MAX: u64 = 1 << 32;

/// Adds the soak's kinds to `registry`.
///
/// # Errors
/// A kind of one of their names is registered already.
pub(crate) fn register(registry: &mut Registry) -> Result<(), RegistryError> {
    registry.register(SourceKind)?;
    registry.register(SinkKind)?;
    Ok(())
}

/// The allocation holding sink `tile`'s record.
pub(crate) fn record_name(tile: &str) -> String {
    format!("{tile}.seen")
}

/// Bytes of a record of `capacity` ids.
fn record_size(capacity: u64) -> usize {
    (HEADER_WORDS + capacity.div_ceil(64) as usize) * 8
}

/// The id a soak payload carries, if it is one.
fn payload_id(payload: &[u8]) -> Option<u64> {
    let id = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    let magic = u64::from_le_bytes(payload.get(8..16)?.try_into().ok()?);
    (magic == MAGIC).then_some(id)
}

/// The parameters of `soak-src`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceParams {
    /// Frags a second (at least 1).
    rate: u64,
    /// Most frags at once (1 to the output's depth; default 64).
    #[serde(default = "default_burst")]
    burst: u64,
    /// Ids available: the source publishes ids below it.
    capacity: u64,
}

fn default_burst() -> u64 {
    64
}

/// `soak-src`: see the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
struct SourceKind;

impl TileKind for SourceKind {
    type Params = SourceParams;

    fn name(&self) -> &str {
        SOURCE_KIND
    }

    fn io(&self) -> IoCounts {
        IoCounts::new(0..=0, 1..=1)
    }

    fn check(&self, p: &SourceParams, ctx: &mut CheckCtx<'_>) {
        if p.rate == 0 {
            ctx.field_error("rate", "must be at least 1");
        }
        if p.burst == 0 {
            ctx.field_error("burst", "must be at least 1");
        }
        if p.capacity == 0 || p.capacity > CAPACITY_MAX {
            ctx.field_error("capacity", format!("must be 1 to {CAPACITY_MAX}"));
        }
    }

    fn build<'w>(
        &self,
        p: &SourceParams,
        _: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        let ends = UdpEndpoints {
            src_mac: [2, 0, 198, 18, 0, 1],
            dst_mac: [2, 0, 198, 18, 0, 2],
            src: SocketAddrV4::new([198, 18, 0, 1].into(), 4000),
            dst: SocketAddrV4::new([198, 18, 0, 2].into(), 9000),
        };
        let mut payload = [0u8; PAYLOAD];
        payload[8..16].copy_from_slice(&MAGIC.to_le_bytes());
        let mut frame =
            build_vec(&ends, &payload).map_err(|e| BuildError::new(format!("its frame: {e}")))?;
        // The id changes per frame: no UDP checksum ("none", allowed over
        // IPv4) rather than one to recompute each time.
        if let Ok(mut view) = UdpFrame::new_checked(&mut frame[..]) {
            view.set_udp_checksum(0);
        }
        Ok(Box::new(Source {
            frame,
            params: *p,
            bucket: u128::from(p.burst) * NANO,
            filled_ns: mono_ns(),
            sent: 0,
            capped: false,
            mismatched: 0,
        }))
    }
}

/// Token resolution of the bucket: nano-tokens.
const NANO: u128 = 1_000_000_000;

/// The source tile.
struct Source {
    frame: Vec<u8>,
    params: SourceParams,
    bucket: u128,
    filled_ns: u64,
    /// Frags published by this boot.
    sent: u64,
    /// True once the next id is past the record.
    capped: bool,
    /// Publishes whose seq was not the id written (never, by the link's
    /// contract; counted so a soak would show it).
    mismatched: u64,
}

impl Source {
    /// Frames the bucket allows now (refilled first), at most a burst.
    fn allowed(&mut self) -> u64 {
        let now = mono_ns();
        let elapsed = now.saturating_sub(self.filled_ns);
        self.filled_ns = now;
        let cap = u128::from(self.params.burst) * NANO;
        self.bucket = (self.bucket + u128::from(elapsed) * u128::from(self.params.rate)).min(cap);
        (self.bucket / NANO) as u64
    }
}

impl Tile for Source {
    fn kind(&self) -> &str {
        SOURCE_KIND
    }

    fn burst(&self) -> u64 {
        self.params.burst
    }

    fn external_input(&self) -> bool {
        true
    }

    fn counters(&self) -> &'static [&'static str] {
        &["sent", "capped", "mismatched"]
    }

    fn after_credit(&mut self, out: &mut Outputs<'_, '_>) {
        if self.capped {
            return;
        }
        let budget = self.allowed();
        let ts = mono_ts();
        let mut sent = 0;
        while sent < budget {
            let id = out.producer(0).seq();
            if id >= self.params.capacity {
                self.capped = true;
                break;
            }
            self.frame[HEADERS_LEN..HEADERS_LEN + 8].copy_from_slice(&id.to_le_bytes());
            match out.publish(0, &self.frame, id, CTL_PKT, ts) {
                Ok(seq) => {
                    self.mismatched += u64::from(seq != id);
                    sent += 1;
                }
                // No credits (the loop calls this with a burst of them, so
                // only a bug gets here): the id goes next time.
                Err(_) => break,
            }
        }
        self.bucket = self.bucket.saturating_sub(u128::from(sent) * NANO);
        self.sent += sent;
    }

    fn metrics_write(&mut self, counters: &mut [u64]) {
        for (c, v) in counters
            .iter_mut()
            .zip([self.sent, u64::from(self.capped), self.mismatched])
        {
            *c = v;
        }
    }
}

/// The parameters of `soak-sink`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SinkParams {
    /// Ids the record holds (as the source's `capacity`).
    capacity: u64,
}

/// `soak-sink`: see the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
struct SinkKind;

impl TileKind for SinkKind {
    type Params = SinkParams;

    fn name(&self) -> &str {
        SINK_KIND
    }

    fn io(&self) -> IoCounts {
        IoCounts::new(1..=1, 0..=0)
    }

    fn check(&self, p: &SinkParams, ctx: &mut CheckCtx<'_>) {
        if p.capacity == 0 || p.capacity > CAPACITY_MAX {
            ctx.field_error("capacity", format!("must be 1 to {CAPACITY_MAX}"));
        }
    }

    fn objects(&self, p: &SinkParams, tile: &tilewire_pipeline::topo::TileSpec) -> Vec<Object> {
        let capacity = p.capacity;
        vec![Object::new(
            record_name(&tile.name),
            64,
            record_size(capacity),
            move |mem| {
                let words = mem
                    .atomic_u64s(0, mem.len() / 8)
                    .ok_or("the record is not 8-byte aligned")?;
                // Every word written, so every page is touched now.
                for w in &words[HEADER_WORDS..] {
                    // SYNC: Relaxed; nothing runs yet, the magic below is
                    // published with Release.
                    w.store(0, Ordering::Relaxed);
                }
                words[H_CAPACITY].store(capacity, Ordering::Relaxed);
                // SYNC: Release; pairs with the Acquire in Record::join.
                words[H_MAGIC].store(RECORD_MAGIC, Ordering::Release);
                Ok(())
            },
        )]
    }

    fn build<'w>(
        &self,
        _: &SinkParams,
        ctx: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        let record = Record::join(ctx.workspace(), ctx.name()).map_err(BuildError::new)?;
        Ok(Box::new(Sink { record }))
    }
}

/// The sink tile.
struct Sink<'w> {
    record: Record<'w>,
}

impl Tile for Sink<'_> {
    fn kind(&self) -> &str {
        SINK_KIND
    }

    fn counters(&self) -> &'static [&'static str] {
        &["delivered", "duplicates"]
    }

    fn reading(&self) -> Reading {
        Reading::Settled
    }

    fn on_frag(&mut self, _input: usize, frag: &Frag<'_>, _out: &mut Outputs<'_, '_>) {
        let id = UdpFrame::new_checked(frag.packet())
            .ok()
            .and_then(|f| payload_id(f.payload()));
        let r = &self.record;
        let Some(id) = id else {
            r.bump(H_MALFORMED);
            return;
        };
        if id >= r.capacity {
            r.bump(H_BEYOND);
            return;
        }
        let (word, bit) = (&r.bits[(id / 64) as usize], 1u64 << (id % 64));
        // SYNC: Relaxed; one writer at a time (the sink of the moment),
        // read by the runner after the sink halted (its exit orders it).
        if word.fetch_or(bit, Ordering::Relaxed) & bit == 0 {
            r.bump(H_DELIVERED);
        } else {
            r.bump(H_DUPLICATES);
        }
    }

    fn metrics_write(&mut self, counters: &mut [u64]) {
        let r = &self.record;
        for (c, v) in counters
            .iter_mut()
            .zip([r.get(H_DELIVERED), r.get(H_DUPLICATES)])
        {
            *c = v;
        }
    }
}

/// A sink's record of ids, joined (see the [module docs](self)).
pub(crate) struct Record<'w> {
    header: &'w [AtomicU64],
    bits: &'w [AtomicU64],
    capacity: u64,
}

/// What a record's header counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RecordCounts {
    /// Ids delivered the first time (live; see [`Record::delivered_bits`]).
    pub(crate) delivered: u64,
    /// Ids that came again.
    pub(crate) duplicates: u64,
    /// Frames carrying no id.
    pub(crate) malformed: u64,
    /// Ids past the record.
    pub(crate) beyond: u64,
}

impl<'w> Record<'w> {
    /// Joins sink `tile`'s record in `ws`.
    ///
    /// # Errors
    /// It is missing, lies outside the workspace, or is not formatted.
    pub(crate) fn join(ws: &'w Workspace, tile: &str) -> Result<Record<'w>, String> {
        let name = record_name(tile);
        let a = ws
            .lookup(&name)
            .ok_or_else(|| format!("its record {name:?} is missing"))?;
        let mem = ws
            .region(a.gaddr, a.size as usize)
            .map_err(|e| format!("its record {name:?}: {e}"))?;
        let words = mem
            .atomic_u64s(0, mem.len() / 8)
            .filter(|w| w.len() >= HEADER_WORDS)
            .ok_or_else(|| format!("its record {name:?} is too small or misaligned"))?;
        let (header, bits) = words.split_at(HEADER_WORDS);
        // SYNC: Acquire; pairs with the Release that formatted it.
        if header[H_MAGIC].load(Ordering::Acquire) != RECORD_MAGIC {
            return Err(format!("its record {name:?} is not formatted"));
        }
        let capacity = header[H_CAPACITY].load(Ordering::Relaxed);
        if capacity.div_ceil(64) > bits.len() as u64 {
            return Err(format!(
                "its record {name:?} says {capacity} ids but holds {} bits",
                bits.len() * 64
            ));
        }
        Ok(Record {
            header,
            bits,
            capacity,
        })
    }

    fn get(&self, i: usize) -> u64 {
        // SYNC: Relaxed; counters, read for their value.
        self.header[i].load(Ordering::Relaxed)
    }

    fn bump(&self, i: usize) {
        // SYNC: Relaxed; a counter with one writer.
        self.header[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The header's counts now.
    pub(crate) fn counts(&self) -> RecordCounts {
        RecordCounts {
            delivered: self.get(H_DELIVERED),
            duplicates: self.get(H_DUPLICATES),
            malformed: self.get(H_MALFORMED),
            beyond: self.get(H_BEYOND),
        }
    }

    /// Ids whose bit is set below `end`: the exact count of ids delivered.
    pub(crate) fn delivered_bits(&self, end: u64) -> u64 {
        let end = end.min(self.capacity);
        let full = (end / 64) as usize;
        // SYNC: Relaxed; read after the sink halted.
        let mut n: u64 = self.bits[..full]
            .iter()
            .map(|w| u64::from(w.load(Ordering::Relaxed).count_ones()))
            .sum();
        if !end.is_multiple_of(64) {
            let mask = (1u64 << (end % 64)) - 1;
            n += u64::from((self.bits[full].load(Ordering::Relaxed) & mask).count_ones());
        }
        n
    }

    /// The first `max` runs of ids below `end` that never arrived, as
    /// `(first, count)`.
    pub(crate) fn missing_runs(&self, end: u64, max: usize) -> Vec<(u64, u64)> {
        let end = end.min(self.capacity);
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut id = 0;
        while id < end && runs.len() <= max {
            let w = self.bits[(id / 64) as usize].load(Ordering::Relaxed);
            if id % 64 == 0 && w == u64::MAX {
                id += 64;
                continue;
            }
            if w & (1 << (id % 64)) == 0 {
                match runs.last_mut() {
                    Some((first, n)) if *first + *n == id => *n += 1,
                    _ => runs.push((id, 1)),
                }
            }
            id += 1;
        }
        runs.truncate(max);
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_without_the_magic_carries_no_id() {
        let mut p = [0u8; PAYLOAD];
        p[..8].copy_from_slice(&77u64.to_le_bytes());
        assert_eq!(payload_id(&p), None);
        p[8..16].copy_from_slice(&MAGIC.to_le_bytes());
        assert_eq!(payload_id(&p), Some(77));
        assert_eq!(payload_id(&p[..12]), None);
    }

    #[test]
    fn a_record_has_a_bit_per_id_after_its_header() {
        assert_eq!(record_size(1), (HEADER_WORDS + 1) * 8);
        assert_eq!(record_size(64), (HEADER_WORDS + 1) * 8);
        assert_eq!(record_size(65), (HEADER_WORDS + 2) * 8);
    }
}
