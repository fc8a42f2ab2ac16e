//! A drain tile in a second process for the tile tests: joins a workspace
//! and a link by name and runs the tile run loop ([`Stem`]) with a [`Drain`]
//! tile on one of the link's consumers. The drain's downstream aio, written
//! here, checks every packet against [`tilewire_tests::link_payload`]
//! (size and every byte), taking the packet's `meta.user` (the frag's
//! signature, which the test's producer sets to the frag's seq) as its seq.
//! Workspace directories come from the environment (TILEWIRE_SHM_DIR), like
//! any tilewire process.
//!
//! ```text
//! tile-peer WS LINK INDEX TILE [--slow-ns N]
//!
//!   TILE          the tile's name: its metrics are TILE.tm, its input's
//!                 latency histogram TILE.lat0 (joined if they exist)
//!   --slow-ns N   spin N ns after checking each packet (a slow downstream)
//! ```
//!
//! It runs until the tile is asked to stop through its metrics
//! ([`TileMetricsHandle::request_stop`](tilewire_tile::stem::metrics::TileMetricsHandle::request_stop),
//! from any process joined to the workspace), then prints `done` and exits
//! 0. Whatever happens it gives up after [`DEADLINE`], so a test that lost
//! track of it cannot leave it spinning.
//!
//! Lines on stdout, each flushed at once:
//!
//! ```text
//! ready seq=S pid=P                          joined; S is the first seq the
//!                                            tile's input will read
//! progress first=F seq=S frags=N skipped=K   after a send of the drain: with
//!                                            --slow-ns after every send,
//!                                            otherwise at most every 2 ms
//! done first=F seq=S frags=N skipped=K pending=P
//!                                            stopped cleanly; exit 0
//! bad seq=S ...                              a packet did not match; exit 1
//! error: ...                                 bad arguments or setup failed
//!                                            (exit 2), deadline (exit 3)
//! ```
//!
//! `first` is the first seq checked (S of `ready` before any), `seq` the
//! next seq expected (one past the last checked), `frags` the packets
//! checked, `skipped` the seqs jumped over (frags an unreliable input lost
//! to overruns; on a reliable input any jump is `bad`), all since this
//! process joined; `pending` is what the drain still held when it halted.
//! With `--slow-ns` a progress line is printed after every send, so the last
//! one a killed peer printed says exactly which packets its downstream had
//! taken.

use std::time::{Duration, Instant};

use tilewire_aio::{Aio, PktInfo, SendError};
use tilewire_shmem::clock::mono_ns;
use tilewire_shmem::{Access, Workspace};
use tilewire_tests::{fail, link_payload, say};
use tilewire_tile::link::Link;
use tilewire_tile::stem::drain::Drain;
use tilewire_tile::stem::{Stem, StemConfig};

/// The longest a peer lives.
const DEADLINE: Duration = Duration::from_secs(30);
/// Shortest time between two progress lines (without `--slow-ns`).
const PROGRESS_EVERY: Duration = Duration::from_millis(2);

struct Args {
    ws: String,
    link: String,
    index: usize,
    tile: String,
    slow_ns: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut slow_ns = 0;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--slow-ns" => {
                let v = args.next().ok_or("--slow-ns needs a value")?;
                slow_ns = v.parse().map_err(|e| format!("--slow-ns {v:?}: {e}"))?;
            }
            _ if a.starts_with("--") => return Err(format!("unknown flag {a:?}")),
            _ => positional.push(a),
        }
    }
    let [ws, link, index, tile] = <[String; 4]>::try_from(positional)
        .map_err(|_| "usage: tile-peer WS LINK INDEX TILE [--slow-ns N]".to_string())?;
    let index = index
        .parse()
        .map_err(|e| format!("consumer index {index:?}: {e}"))?;
    Ok(Args {
        ws,
        link,
        index,
        tile,
        slow_ns,
    })
}

/// The drain's downstream: checks each packet, counts, reports progress.
struct Verify {
    mtu: usize,
    /// May seqs be jumped over (an unreliable input)?
    gaps_allowed: bool,
    slow_ns: u64,
    first: Option<u64>,
    /// The next seq expected.
    next: u64,
    frags: u64,
    skipped: u64,
    want: Vec<u8>,
    printed: (u64, u64),
    printed_at: Instant,
}

impl Verify {
    fn new(mtu: usize, gaps_allowed: bool, slow_ns: u64) -> Verify {
        Verify {
            mtu,
            gaps_allowed,
            slow_ns,
            first: None,
            next: 0,
            frags: 0,
            skipped: 0,
            want: Vec::with_capacity(mtu),
            printed: (0, 0),
            printed_at: Instant::now(),
        }
    }

    /// The input starts reading at `seq`: the first packet should be it.
    fn start_at(&mut self, seq: u64) {
        self.next = seq;
        self.printed = (seq, 0);
    }

    /// `first=F seq=S frags=N skipped=K`
    fn counts(&self) -> String {
        format!(
            "first={} seq={} frags={} skipped={}",
            self.first.unwrap_or(self.next),
            self.next,
            self.frags,
            self.skipped
        )
    }

    /// Checks the packet claiming to be frag `seq`; exits on a mismatch.
    fn check(&mut self, seq: u64, got: &[u8]) {
        if seq < self.next {
            fail(
                1,
                format_args!("bad seq={seq} expected={} (went back)", self.next),
            );
        }
        if seq > self.next && !self.gaps_allowed {
            fail(
                1,
                format_args!("bad seq={seq} expected={} (gap)", self.next),
            );
        }
        link_payload(seq, self.mtu, &mut self.want);
        if got.len() != self.want.len() {
            fail(
                1,
                format_args!("bad seq={seq} sz={} want_sz={}", got.len(), self.want.len()),
            );
        }
        if let Some(i) = got.iter().zip(&self.want).position(|(g, w)| g != w) {
            fail(
                1,
                format_args!(
                    "bad seq={seq} byte={i} got={:#04x} want={:#04x}",
                    got[i], self.want[i]
                ),
            );
        }
        self.skipped += seq - self.next;
        self.first.get_or_insert(seq);
        self.next = seq + 1;
        self.frags += 1;
    }
}

impl Aio for Verify {
    fn send(&mut self, batch: &[PktInfo<'_>], _flush: bool) -> Result<(), SendError> {
        for pkt in batch {
            self.check(pkt.meta.user, pkt.buf);
            if self.slow_ns > 0 {
                let end = mono_ns() + self.slow_ns;
                while mono_ns() < end {
                    std::hint::spin_loop();
                }
            }
        }
        // Reported only once the whole batch was taken: a line says which
        // packets the downstream has, never one still in the drain's hands.
        let now = Instant::now();
        let state = (self.next, self.frags);
        let due = self.slow_ns > 0 || now - self.printed_at >= PROGRESS_EVERY;
        if state != self.printed && due {
            say(format_args!("progress {}", self.counts()));
            (self.printed, self.printed_at) = (state, now);
        }
        Ok(())
    }
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| fail(2, format_args!("error: {e}")));
    std::thread::spawn(|| {
        std::thread::sleep(DEADLINE);
        fail(
            3,
            format_args!("error: deadline of {DEADLINE:?} passed without a stop"),
        );
    });
    let ws = Workspace::join(&args.ws, Access::ReadWrite)
        .unwrap_or_else(|e| fail(2, format_args!("error: joining workspace: {e}")));
    let link = Link::join(&ws, &args.link)
        .unwrap_or_else(|e| fail(2, format_args!("error: joining link: {e}")));
    let Some(fseq) = link.fseqs().get(args.index) else {
        fail(2, format_args!("error: no consumer {}", args.index))
    };
    let verify = Verify::new(link.mtu(), !fseq.reliable(), args.slow_ns);
    let mut stem = Stem::new(
        &ws,
        &args.tile,
        Drain::new(verify, link.mtu()),
        &[(&link, args.index)],
        &[],
        StemConfig::default(),
    )
    .unwrap_or_else(|e| fail(2, format_args!("error: {e}")));
    // The input resumes at its fseq's published progress.
    let start = stem.inputs()[0].seq();
    stem.tile_mut().aio_mut().start_at(start);
    say(format_args!("ready seq={start} pid={}", std::process::id()));
    let end = stem.run();
    say(format_args!(
        "done {} pending={}",
        stem.tile().aio().counts(),
        end.pending
    ));
}
