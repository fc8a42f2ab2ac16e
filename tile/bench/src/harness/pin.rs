//! Pinning: every bench runs its two sides (producer and consumer,
//! sender and receiver, source and pipeline) on the first two cores.

use std::sync::Barrier;

use core_affinity::CoreId;

/// The two cores the sides of a bench are pinned to: the first side
/// (producers, senders, blasters, sources) on the first, the second
/// (consumers, receivers) on the second; both `None` with fewer than two.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cores {
    pub first: Option<CoreId>,
    pub second: Option<CoreId>,
}

impl Cores {
    /// The first two cores this process may run on.
    pub(crate) fn detect() -> Cores {
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        if cores.len() < 2 {
            return Cores {
                first: None,
                second: None,
            };
        }
        Cores {
            first: Some(cores[0]),
            second: Some(cores[1]),
        }
    }

    /// What the output says about pinning: `"{first} on cpu A, {second}
    /// on cpu B"`, or that nothing was pinned.
    pub(crate) fn describe(&self, first: &str, second: &str) -> String {
        match (self.first, self.second) {
            (Some(a), Some(b)) => format!("{first} on cpu {}, {second} on cpu {}", a.id, b.id),
            _ => "not pinned (fewer than 2 cores)".to_string(),
        }
    }
}

/// Pins the calling thread to `core`, if there is one.
pub(crate) fn pin(core: Option<CoreId>) {
    if let Some(c) = core {
        core_affinity::set_for_current(c);
    }
}

/// Runs `a` pinned to the first core and `b` to the second, from a
/// common start (both wait on one barrier after pinning).
pub(crate) fn pinned_pair<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let cores = Cores::detect();
    let start = Barrier::new(2);
    std::thread::scope(|s| {
        let start = &start;
        let ta = s.spawn(move || {
            pin(cores.first);
            start.wait();
            a()
        });
        let tb = s.spawn(move || {
            pin(cores.second);
            start.wait();
            b()
        });
        (ta.join().expect("thread a"), tb.join().expect("thread b"))
    })
}
