//! Laying a topology out for the machine it runs on, when the topology
//! says nothing of cpus or groups ([`Topology::fit_to_machine`]), and
//! saying how its tiles sit on threads ([`Topology::layout_summary`]).

use tilewire_tile::stem::IdlePolicy;

use crate::topo::{Machine, Mode};
use crate::topology::Topology;

/// Name of the group [`Topology::fit_to_machine`] puts tiles in (with
/// `-2`, `-3` .. for the tiles of a second, third network namespace).
const FIT_GROUP: &str = "pipeline";

impl Topology {
    /// True if no tile names a `cpu` or a `group`: the topology leaves its
    /// layout to the machine.
    pub fn names_no_placement(&self) -> bool {
        self.tiles
            .iter()
            .all(|t| t.cpu.is_none() && t.group.is_none())
    }

    /// Lays the tiles out for `machine`, if the topology runs in threads
    /// and names no `cpu` or `group` (otherwise it changes nothing and
    /// returns false):
    ///
    /// - with more cpus than tiles (one to spare: the kernel's network
    ///   work, a sender on the same host), each tile is pinned to a cpu of
    ///   its own, the last ones of the machine, and spins while idle
    ///   (Firedancer's way: the lowest latency);
    /// - with fewer, the tiles of each network namespace share one thread,
    ///   taking turns and backing off while idle (a tile without a
    ///   namespace joins the first namespace's thread). A frag then passes
    ///   from tile to tile by a function call, and the pipeline leaves the
    ///   other cores to the kernel and whatever feeds it. On a 2-core
    ///   machine this took less CPU a packet at every load than two
    ///   threads did (`tilewire-bench pipeline`, in memory: 360-380 ns a
    ///   packet on one thread, 430-460 on two), which in turn moved more
    ///   at saturation (2.6-2.9 against 4.2-4.5 M pkt/s): a topology that
    ///   wants the rate names its `group`s.
    ///
    /// In processes mode every tile is a process the kernel places, and a
    /// layout must be in the topology's text (tile processes read it back
    /// from the workspace), so nothing changes.
    pub fn fit_to_machine(&mut self, machine: &Machine) -> bool {
        if self.workspace.mode != Mode::Threads || !self.names_no_placement() {
            return false;
        }
        let (n, cpus) = (self.tiles.len(), &machine.cpus);
        if n == 0 {
            return false;
        }
        if cpus.len() > n {
            let first = cpus.len() - n;
            for (t, &cpu) in self.spec_mut().tiles.iter_mut().zip(&cpus[first..]) {
                t.cpu = Some(cpu);
            }
            return true;
        }
        let netns: Vec<Option<String>> = self
            .tiles
            .iter()
            .map(|t| self.netns(&t.name).map(str::to_owned))
            .collect();
        let mut spaces: Vec<String> = Vec::new();
        for ns in netns.iter().flatten() {
            if !spaces.contains(ns) {
                spaces.push(ns.clone());
            }
        }
        for (t, ns) in self.spec_mut().tiles.iter_mut().zip(&netns) {
            let k = ns
                .as_ref()
                .and_then(|ns| spaces.iter().position(|s| s == ns))
                .unwrap_or(0);
            t.group = Some(match k {
                0 => FIT_GROUP.to_owned(),
                k => format!("{FIT_GROUP}-{}", k + 1),
            });
        }
        true
    }

    /// How the tiles sit on threads, for a log line: `3 tiles on 1 thread
    /// on 2 cpus: [net, dedup, echo] taking turns (unpinned, backoff)`.
    pub fn layout_summary(&self) -> String {
        let cpus = Machine::this().cpus.len();
        let groups = self.layout();
        let threads: Vec<String> = groups
            .iter()
            .map(|g| {
                let idle = match g.idle {
                    IdlePolicy::Spin => "spin",
                    IdlePolicy::Backoff => "backoff",
                };
                let cpu = g
                    .cpu
                    .map_or_else(|| "unpinned".to_owned(), |c| format!("cpu {c}"));
                let tiles: Vec<&str> = g
                    .tiles
                    .iter()
                    .map(|&i| self.tiles[i].name.as_str())
                    .collect();
                if g.is_shared() {
                    format!("[{}] taking turns ({cpu}, {idle})", tiles.join(", "))
                } else {
                    format!("{} ({cpu}, {idle})", tiles[0])
                }
            })
            .collect();
        let noun = match (self.workspace.mode, groups.len() == 1) {
            (Mode::Threads, true) => "thread",
            (Mode::Threads, false) => "threads",
            (Mode::Processes, true) => "process",
            (Mode::Processes, false) => "processes",
        };
        format!(
            "{} tiles on {} {noun} on {cpus} cpus: {}",
            self.tiles.len(),
            groups.len(),
            threads.join("; ")
        )
    }
}
