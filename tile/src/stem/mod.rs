//! The tile run loop: one generic loop that drives any [`Tile`].
//!
//! A tile is a single-threaded job (dedup, echo, forward, drain into a
//! socket) written as a handful of callbacks; [`Stem`] owns its input
//! consumers and output producers and calls the callbacks in a fixed order,
//! so flow control, overrun handling, housekeeping and metrics are written
//! once, here, and every tile gets them the same way.
//!
//! # One iteration
//!
//! 1. Housekeeping, when due (every [`StemConfig::lazy`] iterations on
//!    average, randomised so tiles sharing links do not fall into step):
//!    inputs publish their progress (handing credits back upstream),
//!    outputs refresh their credits and publish their position, the tile's
//!    own [`Tile::housekeeping`] runs, then the heartbeat and metrics are
//!    written and a stop request is looked for.
//! 2. [`Tile::before_credit`].
//! 3. Credits: every output must have at least [`Tile::burst`] credits, or
//!    the iteration ends here *back-pressured* (counted per episode, with
//!    its duration, and per output). A back-pressured tile reads no input,
//!    which is how back-pressure travels upstream over reliable links.
//! 4. [`Tile::after_credit`].
//! 5. The next input in turn is polled, and steps 6 to 8 repeat for up
//!    to a batch of its frags ([`FRAG_BATCH`], fewer when an output has credits for
//!    fewer bursts): the credit check, `before_credit` and `after_credit`
//!    run once for the batch, and the frags it publishes share one clock
//!    read for their `tspub`. Nothing new:
//!    [`Tile::end_of_burst`] (the place to flush). Overrun: counted in the
//!    input's fseq, the consumer resyncs, the iteration ends.
//! 6. A frag: [`Tile::before_frag`] sees its seq and signature and says
//!    [`Filter::Process`], [`Filter::Skip`] (counted as filtered, the
//!    payload never read) or [`Filter::Retry`] (leave it, come back later).
//! 7. [`Tile::during_frag`] reads the payload *speculatively*: the
//!    producer may be overwriting it at that very moment. Copy, do not act.
//! 8. The frag's seq is checked again. Only if it did not change does
//!    [`Tile::after_frag`] run: now the copy is good and the tile may act on
//!    it and publish. Otherwise the copy is discarded (counted as an overrun
//!    while reading) and the consumer resyncs.
//!
//! # Stopping
//!
//! A tile can be asked, from any thread or process joined to the
//! workspace, for one of two stops. The loop sees either at its next
//! housekeeping (until then it reads every input as before; the running
//! loop looks for nothing else), and [`StemConfig::stop_grace`] bounds
//! what follows, counted from then.
//!
//! - **Stop now** ([`TileMetricsHandle::request_stop`]): the loop polls no
//!   more input, and keeps calling [`Tile::after_credit`] and
//!   [`Tile::housekeeping`] until [`Tile::pending`] is zero (whatever the
//!   tile had taken in got out) or the grace passed. What is still on its
//!   input links stays there, for whoever reads them next.
//! - **Drain, then stop** ([`TileMetricsHandle::request_drain`], with a
//!   mask of inputs): the loop runs on as usual (credits, back-pressure,
//!   every callback, housekeeping) but polls only the inputs of the mask,
//!   in turn; the others are not polled again, their frags stay on their
//!   links. It is done once every input of the mask was found caught up
//!   (its latest poll found nothing new; a frag the tile answered
//!   [`Filter::Retry`] is not caught up) and [`Tile::pending`] is zero.
//!   Caught up means drained only if nothing more will come: ask for a
//!   drain once the producers of those inputs halted (a pipeline stops its
//!   tiles in topological order, sources first, each once everything
//!   upstream of it halted), and nothing published over a reliable link
//!   is lost by the stop. When the grace passes first, or a stop now is
//!   asked meanwhile, the tile stops as a stop now does, and
//!   [`RunEnd::unread`] says how many frags it left on the inputs of the
//!   mask. A drain with no input of the tile in its mask is a stop now.
//!
//! Either way the tile ends the same: every input publishes its exact
//! progress, every output its position, the metrics are written and the
//! state set to [`TileState::Halted`], and [`Stem::run`] returns a
//! [`RunEnd`] with what was left ([`RunEnd::pending`] in the tile's hands,
//! [`RunEnd::unread`] on drained inputs). A tile started again on the same
//! links continues where this one stopped.
//!
//! # Idling, turns and groups
//!
//! What the loop does with nothing to do is the tile's [`IdlePolicy`]:
//! spin, or back off (spin, yield, then sleep on the input link until its
//! producer publishes, or nap). [`Stem::run`] owns its thread;
//! [`Stem::turn`] runs the same loop a bounded turn at a time, so a
//! [`Group`] can run several tiles on one thread, taking turns, each with
//! its own metrics, heartbeat and stop. [`Stem::set_share`] makes a tile
//! one of N that share its inputs' frags (a topology's `count`).
//!
//! # Crashes
//!
//! A tile process can die at any instruction (SIGKILL, a panic). What it
//! leaves is consistent by construction: an output line is either
//! published or not (a successor producer continues past the newest one),
//! and an input's published progress never counts a frag the tile still
//! held ([`Tile::held`]), so over a reliable link a successor reads again
//! whatever the dead tile had not passed on. The price is duplicates: up to
//! the frags between two progress publishes (a few per cent of the ring)
//! may be passed on twice, which is why pipelines put a dedup tile where it
//! matters. A dead tile's metrics keep saying `Running` with a heartbeat
//! that no longer moves: that is how a monitor tells it is dead.
//!
//! [`TileMetricsHandle::request_stop`]: metrics::TileMetricsHandle::request_stop
//! [`TileMetricsHandle::request_drain`]: metrics::TileMetricsHandle::request_drain
//! [`TileState::Halted`]: metrics::TileState::Halted

mod config;
mod copy;
pub mod drain;
mod error;
pub mod forward;
pub mod group;
pub mod metrics;
mod names;
mod run;
mod step;
mod tile;

pub use config::{IdlePolicy, ShareBy, StemConfig};
pub use copy::FragCopy;
pub use error::TileError;
pub use forward::{Forwarded, Frag, Reading};
pub use group::{Group, MemberEnd};
pub use names::{latency_name, metrics_name, TILE_NAME_MAX};
pub use run::{RunEnd, Turn};
pub use step::{Stem, FRAG_BATCH};
pub use tile::{Filter, Outputs, PublishError, Tile};
