//! Several tiles on one thread, taking turns.
//!
//! A machine with fewer cores than tiles (a laptop, a CI runner, a small
//! validator host) runs best with the tiles that would fight over a core
//! on one thread instead: a [`Group`] calls [`Stem::turn`] of each of its
//! tiles in turn, so a frag one of them publishes is read by the next a
//! few hundred nanoseconds later, with no context switch between them.
//! Each tile keeps everything of its own: its metrics and heartbeat, its
//! stop (a tile of a group is asked to stop or drain exactly like a tile
//! on a thread of its own, and halts on its own), its links. The group
//! ends once every one of them halted.
//!
//! The group idles only when every tile in it is idle, and then does what
//! its [`IdlePolicy`] says: keep polling, or back off: spin a little,
//! yield, then sleep: on the one link from outside the group that all its
//! work comes from, until that link's producer publishes (a wake is never
//! lost), else in short naps (a tile with work from outside its links, or
//! several links coming in, or waiting for credits). Every tile does its
//! housekeeping after each sleep, so a monitor sees a sleeping group's
//! tiles as idle, not dead.
//!
//! A tile that panics ends alone: the panic is caught at its turn and
//! reported ([`MemberEnd::Panicked`]), the tile is not called again, and
//! the others go on, or, with [`Group::stop_on_panic`], are asked to drain
//! their inputs and stop, each once the tiles of the group upstream of it
//! ended.

use std::panic::{catch_unwind, AssertUnwindSafe};

use std::time::Duration;

use tilewire_shmem::clock::mono_ts;

use crate::link::mcache::{MCacheHandle, Peek};
use crate::stem::config::{Backoff, Idle, IdlePolicy, PARK_MAX};
use crate::stem::run::{RunEnd, Turn};
use crate::stem::step::Stem;
use crate::stem::tile::Tile;

/// Tiles that run on one thread (see the [module docs](self)).
#[derive(Debug)]
pub struct Group<'w, T: Tile> {
    stems: Vec<Stem<'w, T>>,
    idle: IdlePolicy,
    stop_on_panic: bool,
}

/// How a tile of a [`Group`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberEnd {
    /// It halted (see [`Stem::run`]).
    Halted(RunEnd),
    /// It panicked, with this message; it was not called again.
    Panicked(String),
}

impl<'w, T: Tile> Group<'w, T> {
    /// A group of `stems`, in the order they take turns (upstream first
    /// is best: a frag goes through the whole group in one round).
    /// [`IdlePolicy::Backoff`] unless [`Group::set_idle`] says otherwise:
    /// a group is for tiles that share a core.
    pub fn new(stems: Vec<Stem<'w, T>>) -> Group<'w, T> {
        Group {
            stems,
            idle: IdlePolicy::Backoff,
            stop_on_panic: false,
        }
    }

    /// What the group does while every tile in it is idle.
    pub fn set_idle(&mut self, idle: IdlePolicy) {
        self.idle = idle;
    }

    /// Whether a panic of one tile asks the others to drain every input
    /// and stop, upstream first (default: they go on, and whoever runs the
    /// group decides).
    pub fn stop_on_panic(&mut self, stop: bool) {
        self.stop_on_panic = stop;
    }

    /// The tiles, in turn order.
    pub fn stems(&self) -> &[Stem<'w, T>] {
        &self.stems
    }

    /// Takes the tiles back.
    pub fn into_stems(self) -> Vec<Stem<'w, T>> {
        self.stems
    }

    /// Runs every tile until each halted or panicked, calling `ended` with
    /// a tile's index and end as soon as it ends (the others still run
    /// then). Returns every tile's end, in turn order.
    pub fn run(&mut self, mut ended: impl FnMut(usize, &MemberEnd)) -> Vec<MemberEnd> {
        let n = self.stems.len();
        let mut ends: Vec<Option<MemberEnd>> = vec![None; n];
        let mut live = n;
        let mut backoff = Backoff::default();
        // After a panic with stop_on_panic: the tiles asked to drain.
        let mut stopping = false;
        let mut asked = vec![false; n];
        while live > 0 {
            if stopping {
                self.ask_to_drain(&ends, &mut asked);
            }
            let mut busy = false;
            for (i, (stem, slot)) in self.stems.iter_mut().zip(ends.iter_mut()).enumerate() {
                if slot.is_some() {
                    continue;
                }
                let end = match catch_unwind(AssertUnwindSafe(|| stem.turn())) {
                    Ok(Turn::Busy) => {
                        busy = true;
                        continue;
                    }
                    Ok(Turn::Idle) => continue,
                    Ok(Turn::Halted(end)) => MemberEnd::Halted(end),
                    Err(panic) => MemberEnd::Panicked(panic_message(&*panic)),
                };
                busy = true;
                live -= 1;
                if self.stop_on_panic && matches!(end, MemberEnd::Panicked(_)) {
                    stopping = true;
                }
                ended(i, &end);
                *slot = Some(end);
            }
            if busy {
                backoff.worked();
                continue;
            }
            if self.idle == IdlePolicy::Spin {
                core::hint::spin_loop();
                continue;
            }
            let waiting = self
                .stems
                .iter()
                .zip(&ends)
                .any(|(s, e)| e.is_none() && s.backpressure_since != 0);
            match backoff.idle(waiting) {
                Idle::Spin => core::hint::spin_loop(),
                Idle::Yield => std::thread::yield_now(),
                Idle::Sleep => {
                    let parked = mono_ts();
                    let published = self.sleep(&ends, backoff.nap(waiting));
                    backoff.slept(parked, published);
                    for (s, e) in self.stems.iter_mut().zip(&ends) {
                        if e.is_none() {
                            // Housekeeping first thing after a sleep.
                            s.next_housekeeping = s.loops;
                        }
                    }
                }
            }
        }
        ends.into_iter().flatten().collect()
    }

    /// The stop after a panic: asks each live tile to drain every input
    /// once every tile of the group that feeds it ended, upstream first,
    /// so a tile's drain finds what its upstream passed on before it
    /// halted.
    fn ask_to_drain(&self, ends: &[Option<MemberEnd>], asked: &mut [bool]) {
        for (i, s) in self.stems.iter().enumerate() {
            if asked[i] || ends[i].is_some() {
                continue;
            }
            let fed_by_live = self.stems.iter().enumerate().any(|(j, up)| {
                j != i
                    && ends[j].is_none()
                    && up
                        .outputs
                        .iter()
                        .any(|p| s.input_mcaches.iter().any(|mc| p.mcache().same(mc)))
            });
            if !fed_by_live {
                s.metrics().request_drain(u64::MAX);
                asked[i] = true;
            }
        }
    }

    /// Sleeps while every live tile is idle: parked on the one link from
    /// outside the group all their inputs come from, if that is the only
    /// way work can come; else a nap of `nap`. After a park that ended
    /// with a frag, that frag's `tspub`.
    #[cold]
    fn sleep(&mut self, ends: &[Option<MemberEnd>], nap: Duration) -> Option<u32> {
        // Each member hands back what its outputs' readers (often the next
        // member) passed since its last refresh: a producer outside the
        // group may be waiting for those credits, and would not wake us.
        let mut holding = false;
        for (s, _) in self.stems.iter_mut().zip(ends).filter(|(_, e)| e.is_none()) {
            holding |= s.settle_holds();
        }
        let live = || self.stems.iter().zip(ends).filter(|(_, e)| e.is_none());
        let ours = |mc: &MCacheHandle<'_>| {
            live().any(|(s, _)| s.outputs.iter().any(|p| p.mcache().same(mc)))
        };
        let mut on: Option<(MCacheHandle<'w>, u64)> = None;
        let mut can_park = !holding;
        'members: for (s, _) in live() {
            if s.tile.external_input() || s.backpressure_since != 0 {
                can_park = false;
                break;
            }
            for (mc, c) in s.input_mcaches.iter().zip(&s.inputs) {
                if ours(mc) {
                    continue;
                }
                match on {
                    None => on = Some((*mc, c.seq())),
                    Some((other, _)) if other.same(mc) => {}
                    Some(_) => {
                        can_park = false;
                        break 'members;
                    }
                }
            }
        }
        match on {
            Some((mc, seq)) if can_park => {
                mc.park(seq, PARK_MAX);
                // When the frag it waited for was published (see
                // [`Patience`]).
                if let Peek::Ready(meta) = mc.peek(seq) {
                    return Some(meta.tspub);
                }
            }
            _ => std::thread::sleep(nap),
        }
        None
    }
}

/// The message a panic was raised with (`panic!`'s formatted text or
/// string literal), for a report of a caught panic.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".into())
}
