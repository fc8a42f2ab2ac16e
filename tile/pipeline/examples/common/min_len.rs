//! A tile kind of the examples' own: `min-len` passes on the packets of at
//! least `min_len` bytes and drops the rest, counting both. It is what a
//! validator team's own tile looks like (a sigverify, a shred filter):
//! a `Tile` for the run loop, and a `TileKind` that says how a topology
//! names it, what parameters it takes and how it is built.

use core::sync::atomic::AtomicU8;

use serde::Deserialize;
use tilewire_pipeline::{BuildCtx, BuildError, CheckCtx, IoCounts, TileKind};
use tilewire_tile::link::frag::FragMeta;
use tilewire_tile::stem::{FragCopy, Outputs, Tile};

/// The tile: one input, one output.
pub(crate) struct MinLen {
    min_len: usize,
    copy: FragCopy,
    passed: u64,
    dropped: u64,
}

impl Tile for MinLen {
    fn kind(&self) -> &str {
        "min-len"
    }

    fn counters(&self) -> &'static [&'static str] {
        &["passed", "dropped"]
    }

    // The payload may be overwritten while it is read: copy it now, act on
    // it in after_frag, which runs only if the read was good.
    fn during_frag(&mut self, _input: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        self.copy.copy(meta, payload);
    }

    fn after_frag(&mut self, _input: usize, meta: &FragMeta, out: &mut Outputs<'_, '_>) {
        let packet = self.copy.packet(meta);
        if packet.len() < self.min_len {
            self.dropped += 1;
            return;
        }
        match out.publish_packet(0, packet, meta.sig, meta.ctl, meta.tsorig) {
            Ok(_) => self.passed += 1,
            // Longer than the output's mtu.
            Err(_) => self.dropped += 1,
        }
    }

    fn metrics_write(&mut self, counters: &mut [u64]) {
        counters.copy_from_slice(&[self.passed, self.dropped]);
    }
}

/// Its parameters, from the tile's `params` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MinLenParams {
    /// Shortest packet passed on, in bytes (Ethernet header included).
    pub min_len: usize,
}

/// The kind, registered as `min-len`.
pub(crate) struct MinLenKind;

impl TileKind for MinLenKind {
    type Params = MinLenParams;

    fn name(&self) -> &str {
        "min-len"
    }

    fn io(&self) -> IoCounts {
        IoCounts::new(1..=1, 1..=1)
    }

    fn check(&self, p: &MinLenParams, ctx: &mut CheckCtx<'_>) {
        if p.min_len > 65535 {
            ctx.field_error("min_len", "must be at most 65535: no frag is longer");
        }
    }

    fn build<'w>(
        &self,
        p: &MinLenParams,
        _ctx: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        Ok(Box::new(MinLen {
            min_len: p.min_len,
            copy: FragCopy::new(),
            passed: 0,
            dropped: 0,
        }))
    }
}

/// What gen sent, min-len passed and dropped, and the sink got, after a
/// run of `gen -> filter (min-len) -> sink`; an error unless every packet
/// gen sent is accounted for.
pub(crate) fn account(p: &tilewire_pipeline::Pipeline) -> Result<String, String> {
    let count = |tile: &str, name: &str| p.counter(tile, name).unwrap_or(0);
    let sent = count("gen", "sent");
    let passed = count("filter", "passed");
    let dropped = count("filter", "dropped");
    let sunk = count("sink", "frags");
    let line =
        format!("gen sent {sent}; min-len passed {passed}, dropped {dropped}; the sink got {sunk}");
    if sent == 0 || passed + dropped != sent || sunk != passed {
        return Err(format!(
            "{line}: the counts do not add up, the stop lost packets"
        ));
    }
    Ok(line)
}
