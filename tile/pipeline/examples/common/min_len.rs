// A tile kind of the examples' own: `min-len` passes on the packets of at
// least `min_len` bytes and drops the rest, counting both. It is what a
// validator team's own tile looks like (a sigverify, a shred filter): a
// `Tile` for the run loop, and a `TileKind` that says how a topology names
// it, what parameters it takes and how it is built. (The crate docs of
// tilewire-pipeline show this file and compile it.)

use serde::Deserialize;
use tilewire_pipeline::tile::stem::{Frag, Outputs, Reading, Tile};
use tilewire_pipeline::{BuildCtx, BuildError, CheckCtx, IoCounts, TileKind};

/// The tile: one input, one output.
pub(crate) struct MinLen {
    min_len: usize,
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

    // Settled: `on_frag` gets each frag once its read proved good, and
    // `forward` passes it on without copying it (a copy only where the
    // link cannot lend its bytes: an unreliable input or output).
    fn reading(&self) -> Reading {
        Reading::Settled
    }

    fn on_frag(&mut self, _input: usize, frag: &Frag<'_>, out: &mut Outputs<'_, '_>) {
        // `forward` fails only for a frag longer than the output's mtu.
        if frag.packet().len() >= self.min_len && out.forward(0, frag).is_ok() {
            self.passed += 1;
        } else {
            self.dropped += 1;
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
    pub(crate) min_len: usize,
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
            passed: 0,
            dropped: 0,
        }))
    }
}
