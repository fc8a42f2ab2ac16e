//! tilewire's side: `shreds -> retransmit -> net-xdp`, with a netlink
//! tile for the next hops, built with the library's [`PipelineBuilder`]
//! and run by its runner in threads mode.
//!
//! ```text
//! src --shreds--> rt --tx--> net (net-xdp, queue 0; or net.0, net.1: a tile per queue)
//!                  \--asks--> nl (netlink, namespace a)      net --rx--> rxsink
//! ```
//!
//! - `src` ([`ShredsKind`], the bench's own kind): publishes shreds of
//!   [`SHRED`] bytes with sig 0 (destination set 0) as fast as the
//!   credits of its reliable link let it; stops when told.
//! - `rt`: the retransmit tile, the 200 destinations as set 0, source
//!   a's address and [`SRC_PORT`], next hops from `nl`: one frame per
//!   destination into `tx`.
//! - `net`: AF_XDP in copy mode on a's veth end; with two queues
//!   (`count = 2`), `net.0` and `net.1` share `tx` round-robin (frag `seq
//!   % 2`), each sending on its own queue. Its receive side (a port no one
//!   sends to) goes to a sink.
//!
//! Every tile has a thread of its own, none pinned, backing off when idle
//! (the runner's default for tiles that share cores). `TILEWIRE_BENCH_LAYOUT`
//! tries others: `two` (every tile but the net tiles on one thread), `pin`
//! (that, and the net tiles pinned from the first cpu up). On two cpus,
//! with b's counting thread on the second, none beat the default beyond
//! this shared machine's noise (see the bench README).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tilewire_pipeline::tile::stem::{Outputs, Tile};
use tilewire_pipeline::{
    BuildCtx, BuildError, IoCounts, LinkDef, Mode, NoParams, PipelineBuilder, TileDef, TileKind,
};

use super::peer::{shred, Net, SHRED, SRC_PORT};

/// Shreds the source publishes per turn of its loop.
const SRC_BURST: u64 = 4;
/// Frames on the link from rt to the net tiles: at least a frag's
/// destinations (rt publishes them together); 256 to 4096 ran alike here
/// (a deeper ring only queues longer, its frames out of the caches), 512
/// as the pipeline bench's links.
const TX_DEPTH: u64 = 512;
/// A port nothing sends to: what the net tiles' receive side steers.
const NET_PORT: u16 = 9999;

/// What the main thread and the source tile share.
#[derive(Debug, Default)]
pub(super) struct SourceShared {
    /// Set to stop publishing.
    pub stop: AtomicBool,
    /// Shreds published so far.
    pub published: AtomicU64,
}

/// `bench-shreds`: no input, one output; publishes shreds for set 0 until
/// [`SourceShared::stop`].
#[derive(Debug)]
pub(super) struct ShredsKind(pub Arc<SourceShared>);

impl TileKind for ShredsKind {
    type Params = NoParams;

    fn name(&self) -> &str {
        "bench-shreds"
    }

    fn io(&self) -> IoCounts {
        IoCounts::new(0..=0, 1..=1)
    }

    fn build<'w>(
        &self,
        _: &NoParams,
        _: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        Ok(Box::new(Shreds {
            shared: self.0.clone(),
            payload: shred(0),
            next: 0,
        }))
    }
}

struct Shreds {
    shared: Arc<SourceShared>,
    payload: Vec<u8>,
    next: u64,
}

impl Tile for Shreds {
    fn kind(&self) -> &str {
        "bench-shreds"
    }

    fn burst(&self) -> u64 {
        SRC_BURST
    }

    fn external_input(&self) -> bool {
        true
    }

    fn counters(&self) -> &'static [&'static str] {
        &["published"]
    }

    fn after_credit(&mut self, out: &mut Outputs<'_, '_>) {
        // SYNC: Relaxed; a flag, no data rides on it.
        if self.shared.stop.load(Ordering::Relaxed) {
            return;
        }
        for _ in 0..SRC_BURST {
            self.payload[..8].copy_from_slice(&self.next.to_le_bytes());
            // The loop calls this with `burst` credits: it cannot fail.
            if out.publish(0, &self.payload, 0, 0, 0).is_err() {
                break;
            }
            self.next += 1;
        }
        // SYNC: Relaxed; a progress count.
        self.shared.published.store(self.next, Ordering::Relaxed);
    }

    fn metrics_write(&mut self, c: &mut [u64]) {
        c[0] = self.next;
    }
}

/// The topology of a cell with `queues` net tiles (1 or 2), workspace
/// `ws`.
pub(super) fn topology(ws: &str, net: &Net, queues: u32) -> PipelineBuilder {
    let a = net.pair.a();
    let dests: Vec<String> = net.dests.iter().map(|d| d.to_string()).collect();
    let max = dests.len() as i64;
    let xdp = TileDef::new("net", "net-xdp")
        .input("tx")
        .output("rx")
        .param("ifname", a.ifname())
        .param("netns", a.netns())
        .param("ports", vec![i64::from(NET_PORT)])
        .param("bind", "copy");
    let xdp = if queues > 1 { xdp.count(queues) } else { xdp };
    let layout = std::env::var("TILEWIRE_BENCH_LAYOUT").unwrap_or_default();
    // Every tile but the net tiles.
    let place = |t: TileDef| match layout.as_str() {
        "two" | "pin" => t.group("fan"),
        _ => t,
    };
    let xdp = match layout.as_str() {
        "pin" => xdp.cpu(0),
        _ => xdp,
    };
    PipelineBuilder::new(ws)
        .mode(Mode::Threads)
        .link(LinkDef::new("shreds", 256).mtu(SHRED + 64))
        .link(LinkDef::new("tx", TX_DEPTH).mtu(2048))
        // As deep as a frag's destinations: the loop gives rt a frag only
        // when every output has `max_destinations` credits.
        .link(LinkDef::new("asks", 256).unreliable())
        .link(LinkDef::new("rx", 256).mtu(2048))
        .tile(place(TileDef::new("src", "bench-shreds").output("shreds")))
        .tile(place(
            TileDef::new("nl", "netlink")
                .input("asks")
                .param("netns", a.netns()),
        ))
        .tile(place(
            TileDef::new("rt", "retransmit")
                .input("shreds")
                .output("tx")
                .output("asks")
                .param("resolver", "nl")
                .param("ifname", a.ifname())
                .param("src_port", i64::from(SRC_PORT))
                .param("src_ip", a.addr().to_string())
                .param("max_destinations", max)
                .param("destinations", vec![dests]),
        ))
        .tile(xdp)
        .tile(place(TileDef::new("rxsink", "sink").input("rx")))
}

/// The net tiles of a cell with `queues` of them.
pub(super) fn net_tiles(queues: u32) -> Vec<String> {
    match queues {
        1 => vec!["net".into()],
        n => (0..n).map(|i| format!("net.{i}")).collect(),
    }
}
