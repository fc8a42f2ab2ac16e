//! The checks of a whole topology that need no kind (the graph, cycles,
//! cpus) and the questions the runner asks of one (who produces and
//! consumes each link).

use super::error::TopoError;
use super::machine::Machine;
use super::scc::strongly_connected;
use super::spec::{LinkSpec, Mode, Restart, TileSpec, TopologySpec};
use tilewire_tile::link::{LinkParams, Reliability, CONSUMERS_MAX};
use tilewire_tile::stem::IdlePolicy;

/// "exactly 1", "0 or 1", "1 to 16", "no": how many a range allows.
pub(crate) fn count_words(r: &core::ops::RangeInclusive<usize>) -> String {
    match (*r.start(), *r.end()) {
        (0, 0) => "no".into(),
        (a, b) if a == b => format!("exactly {a}"),
        (a, b) if b == a + 1 => format!("{a} or {b}"),
        (a, b) => format!("{a} to {b}"),
    }
}

impl TopologySpec {
    /// Checks what needs no kind: every link a tile names exists; each
    /// link has one producer and 1 to 64 consumers, and no tile lists a
    /// link twice; no cycle of reliable links; `restart` only in processes
    /// mode; every `cpu` exists on `machine` (when given); one cpu, group
    /// and network namespace per thread (`netns[i]`: tile `i`'s, as its
    /// kind says). Each problem goes to `errors`.
    pub(crate) fn check_graph(
        &self,
        machine: Option<&Machine>,
        netns: &[Option<&str>],
        errors: &mut Vec<TopoError>,
    ) {
        for tile in &self.tiles {
            self.check_tile(tile, machine, errors);
        }
        for link in &self.links {
            self.check_link(link, errors);
        }
        self.check_cycles(errors);
        self.check_layout(netns, errors);
    }

    fn check_tile(&self, tile: &TileSpec, machine: Option<&Machine>, errors: &mut Vec<TopoError>) {
        let name = &tile.name;
        let sides = [
            ("input", &tile.inputs, &tile.at.inputs, tile.at.inputs_key),
            (
                "output",
                &tile.outputs,
                &tile.at.outputs,
                tile.at.outputs_key,
            ),
        ];
        for (side, list, locs, _) in sides {
            for (i, (link, at)) in list.iter().zip(locs).enumerate() {
                if let Some(first) = list[..i].iter().position(|l| l == link) {
                    let verb = if side == "input" {
                        "consumes"
                    } else {
                        "produces"
                    };
                    errors.push(at.err(format!(
                        "tile {name:?} {verb} link {link:?} twice ({side}s {first} and {i}); list it once"
                    )));
                } else if self.link(link).is_none() {
                    let known: Vec<&str> = self.links.iter().map(|l| l.name.as_str()).collect();
                    errors.push(at.err(format!(
                        "tile {name:?}: {side} {link:?} names no [[link]] (links: {})",
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    )));
                }
            }
        }
        if tile.restart == Restart::OnFailure && self.workspace.mode == Mode::Threads {
            errors.push(tile.at.restart.err(format!(
                "tile {name:?}: `restart` restarts a tile's process, and this topology runs \
                 its tiles as threads; set `mode = \"processes\"` in [workspace]"
            )));
        }
        if let (Some(cpu), Some(machine)) = (tile.cpu, machine) {
            if !machine.cpus.contains(&cpu) {
                errors.push(tile.at.cpu.err(format!(
                    "tile {name:?}: cpu {cpu} does not exist on this machine (cpus: {})",
                    machine.describe()
                )));
            }
        }
    }

    fn check_link(&self, link: &LinkSpec, errors: &mut Vec<TopoError>) {
        let name = &link.name;
        let mut producer: Option<&TileSpec> = None;
        for tile in &self.tiles {
            let Some(i) = tile.outputs.iter().position(|l| l == name) else {
                continue;
            };
            match producer {
                None => producer = Some(tile),
                Some(first) => errors.push(tile.at.outputs[i].err(format!(
                    "link {name:?} already has a producer, tile {:?} (line {}); a link has exactly one",
                    first.name, first.line
                ))),
            }
        }
        if producer.is_none() {
            errors.push(link.at.err(format!(
                "link {name:?} has no producer: no tile lists it in `outputs`"
            )));
        }
        let consumers = self.consumers(name).len();
        if consumers == 0 {
            errors.push(link.at.err(format!(
                "link {name:?} has no consumer: no tile lists it in `inputs` (a link needs at least one)"
            )));
        } else if consumers > CONSUMERS_MAX {
            errors.push(link.at.err(format!(
                "link {name:?} has {consumers} consumers; the limit is {CONSUMERS_MAX}"
            )));
        }
    }

    /// Every cycle of reliable links, one error per strongly connected
    /// group of tiles, naming one cycle through the group's first tile.
    fn check_cycles(&self, errors: &mut Vec<TopoError>) {
        let n = self.tiles.len();
        // edges[i]: (j, link) for each reliable link tile i produces and
        // tile j consumes.
        let edges: Vec<Vec<(usize, &str)>> = self
            .tiles
            .iter()
            .map(|t| {
                t.outputs
                    .iter()
                    .filter(|l| self.link(l).is_some_and(|l| l.reliable))
                    .flat_map(|l| {
                        self.tiles
                            .iter()
                            .enumerate()
                            .filter(move |(_, c)| c.inputs.contains(l))
                            .map(move |(j, _)| (j, l.as_str()))
                    })
                    .collect()
            })
            .collect();
        let adj: Vec<Vec<usize>> = edges
            .iter()
            .map(|e| e.iter().map(|&(j, _)| j).collect())
            .collect();
        let group = strongly_connected(&adj);
        let mut reported = vec![false; n];
        for start in 0..n {
            if reported[group[start]] {
                continue;
            }
            let Some(cycle) = cycle_through(start, &edges, &group) else {
                continue;
            };
            reported[group[start]] = true;
            let mut path = vec![self.tiles[start].name.as_str()];
            path.extend(cycle.iter().map(|&(j, _)| self.tiles[j].name.as_str()));
            let links: Vec<&str> = cycle.iter().map(|&(_, l)| l).collect();
            errors.push(self.tiles[start].at.header.err(format!(
                "tiles {} form a cycle whose links ({}) are all reliable: each tile can wait for \
                 credits from the next, so the pipeline can deadlock; make one of these links \
                 `reliable = false`",
                path.join(" -> "),
                links.join(", ")
            )));
        }
    }

    /// What tile `tile`'s loop does while idle: what its `idle` says, else
    /// [`IdlePolicy::Spin`] if it is pinned to a cpu no other tile names
    /// and in no group (a core of its own), else [`IdlePolicy::Backoff`].
    /// A group's thread spins only if every tile in it does (see
    /// [`TopologySpec::layout`]).
    pub fn idle_policy(&self, tile: &TileSpec) -> IdlePolicy {
        if let Some(p) = tile.idle {
            return p;
        }
        match self.group_of(&tile.name) {
            Some(g) if g.cpu.is_some() && !g.is_shared() => IdlePolicy::Spin,
            _ => IdlePolicy::Backoff,
        }
    }

    /// The link named `name`.
    pub fn link(&self, name: &str) -> Option<&LinkSpec> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The tile named `name`.
    pub fn tile(&self, name: &str) -> Option<&TileSpec> {
        self.tiles.iter().find(|t| t.name == name)
    }

    /// The tile producing link `link` (the first one, if a topology that
    /// failed its check has several).
    pub fn producer(&self, link: &str) -> Option<&TileSpec> {
        self.tiles
            .iter()
            .find(|t| t.outputs.iter().any(|l| l == link))
    }

    /// The consumers of link `link`, in consumer-index order: each tile
    /// with the input index at which it reads the link. Consumer `k` of the
    /// link is element `k`.
    pub fn consumers(&self, link: &str) -> Vec<(&TileSpec, usize)> {
        self.tiles
            .iter()
            .flat_map(|t| {
                t.inputs
                    .iter()
                    .enumerate()
                    .filter(move |(_, l)| *l == link)
                    .map(move |(i, _)| (t, i))
            })
            .collect()
    }

    /// Which consumer of its link input `input` of tile `tile` is; `None`
    /// if there is no such tile or input.
    pub fn consumer_index(&self, tile: &str, input: usize) -> Option<usize> {
        let link = self.tile(tile)?.inputs.get(input)?;
        self.consumers(link)
            .iter()
            .position(|(t, i)| t.name == tile && *i == input)
    }

    /// The parameters to make `link` with: its depth and mtu, and one
    /// consumer per [`TopologySpec::consumers`] entry, reliable or not as the
    /// link says.
    pub fn link_params(&self, link: &LinkSpec) -> LinkParams {
        let r = if link.reliable {
            Reliability::Reliable
        } else {
            Reliability::Unreliable
        };
        LinkParams {
            depth: link.depth,
            mtu: link.mtu,
            consumers: vec![r; self.consumers(&link.name).len()],
            seq0: 0,
        }
    }
}

/// The shortest cycle from `start` back to itself inside its component,
/// as the steps `(next tile, link taken)`; `None` if there is none.
fn cycle_through<'e>(
    start: usize,
    edges: &[Vec<(usize, &'e str)>],
    group: &[usize],
) -> Option<Vec<(usize, &'e str)>> {
    let n = edges.len();
    let mut came_from: Vec<Option<(usize, &str)>> = vec![None; n];
    let mut queue = std::collections::VecDeque::from([start]);
    let mut seen = vec![false; n];
    seen[start] = true;
    while let Some(v) = queue.pop_front() {
        for &(w, link) in &edges[v] {
            if group[w] != group[start] {
                continue;
            }
            if w == start {
                let mut steps = vec![(start, link)];
                let mut at = v;
                while at != start {
                    let (prev, l) = came_from[at].expect("on the search tree");
                    steps.push((at, l));
                    at = prev;
                }
                steps.reverse();
                return Some(steps);
            }
            if !seen[w] {
                seen[w] = true;
                came_from[w] = Some((v, link));
                queue.push_back(w);
            }
        }
    }
    None
}
