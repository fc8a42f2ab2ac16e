//! The checks of a whole topology (graph, cpus, sizes), the questions the
//! runner asks of one (who produces and consumes each link, how big its
//! data region is) and the workspace footprint.

use tilewire_shmem::alloc::{ENTRY_SZ, MIN_ALIGN};
use tilewire_shmem::hist::Hist;
use tilewire_shmem::workspace::{DEFAULT_TABLE_CAP, HEADER_SZ};

use super::value::Loc;
use super::{
    LinkSpec, Mode, Restart, TileSpec, TopoError, TopoErrors, Topology, TOPOLOGY_TEXT_MAX,
};
use crate::kind::CheckCtx;
use crate::stop::strongly_connected;
use tilewire_tile::link::dcache::DCache;
use tilewire_tile::link::fseq::Fseq;
use tilewire_tile::link::mcache::MCache;
use tilewire_tile::link::{LinkParams, Reliability, CONSUMERS_MAX};
use tilewire_tile::stem::metrics::TileMetrics;
use tilewire_tile::stem::IdlePolicy;

/// What a topology is checked against: the cpus the runner may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// Ids of the cpus tiles may be pinned to, ascending.
    pub cpus: Vec<usize>,
}

impl Machine {
    /// This machine as the calling thread sees it: the cpus in its
    /// affinity mask (a container or `taskset` may allow fewer than the
    /// machine has), or `0..available_parallelism` where the mask cannot
    /// be read.
    pub fn this() -> Machine {
        let mut cpus: Vec<usize> = core_affinity::get_core_ids()
            .map(|ids| ids.into_iter().map(|c| c.id).collect())
            .unwrap_or_default();
        if cpus.is_empty() {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            cpus = (0..n).collect();
        }
        cpus.sort_unstable();
        cpus.dedup();
        Machine { cpus }
    }

    /// A machine with cpus `0..n`.
    pub fn with_cpus(n: usize) -> Machine {
        Machine {
            cpus: (0..n).collect(),
        }
    }

    /// The cpus as ranges: `0-3, 6`.
    fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut i = 0;
        while i < self.cpus.len() {
            let mut j = i;
            while j + 1 < self.cpus.len() && self.cpus[j + 1] == self.cpus[j] + 1 {
                j += 1;
            }
            parts.push(if i == j {
                self.cpus[i].to_string()
            } else {
                format!("{}-{}", self.cpus[i], self.cpus[j])
            });
            i = j + 1;
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

/// "exactly 1", "0 or 1", "1 to 16", "no": how many a range allows.
fn count_words(r: &core::ops::RangeInclusive<usize>) -> String {
    match (*r.start(), *r.end()) {
        (0, 0) => "no".into(),
        (a, b) if a == b => format!("exactly {a}"),
        (a, b) if b == a + 1 => format!("{a} or {b}"),
        (a, b) => format!("{a} to {b}"),
    }
}

impl Topology {
    /// Checks the topology as a whole: every link a tile names exists;
    /// each kind's input and output counts and its own
    /// [checks](crate::TileKind::check) (a net-xdp output's mtu, gen frames
    /// that fit their link, fixture files that exist); each link has one
    /// producer and 1 to 64 consumers, and no tile lists a link twice; no
    /// cycle of reliable links; every `cpu` exists on `machine`; and the
    /// workspace holds [`Topology::footprint`].
    ///
    /// # Errors
    /// Every problem found.
    pub fn check(&self, machine: &Machine) -> Result<(), TopoErrors> {
        let mut errors = Vec::new();
        for tile in &self.tiles {
            self.check_tile(tile, machine, &mut errors);
        }
        for link in &self.links {
            self.check_link(link, &mut errors);
        }
        self.check_cycles(&mut errors);
        self.check_layout(&mut errors);
        self.check_size(&mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(TopoErrors::new(errors))
        }
    }

    fn check_tile(&self, tile: &TileSpec, machine: &Machine, errors: &mut Vec<TopoError>) {
        let name = &tile.name;
        let kind = tile.kind();
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
        let io = tile.io();
        for ((side, list, _, key_at), allowed) in sides.into_iter().zip([&io.inputs, &io.outputs]) {
            if !allowed.contains(&list.len()) {
                // Inputs a count made: say where they came from.
                let made = list.iter().find_map(|l| {
                    self.tiles
                        .iter()
                        .find(|t| t.share.is_some() && t.outputs.contains(l))
                });
                let hint = match (side, made) {
                    ("input", Some(t)) => format!(
                        " (the {} tiles `count` made of {:?} each feed it a link)",
                        t.share.map_or(1, |s| s.of),
                        t.name.rsplit_once('.').map_or(t.name.as_str(), |(n, _)| n)
                    ),
                    _ => String::new(),
                };
                let a = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                errors.push(key_at.err(format!(
                    "tile {name:?}: {a} {kind} tile takes {} {side}s, found {}{hint}",
                    count_words(allowed),
                    list.len()
                )));
            }
        }
        let (kind, params) = tile.erased();
        kind.check(params, &mut CheckCtx::new(self, tile, errors));
        if tile.restart == Restart::OnFailure && self.workspace.mode == Mode::Threads {
            errors.push(tile.at.restart.err(format!(
                "tile {name:?}: `restart` restarts a tile's process, and this topology runs \
                 its tiles as threads; set `mode = \"processes\"` in [workspace]"
            )));
        }
        if let Some(cpu) = tile.cpu {
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

    fn check_size(&self, errors: &mut Vec<TopoError>) {
        let allocs = self.allocations().len();
        let ws = &self.workspace;
        let at = ws.size_at.unwrap_or(Loc { line: 1, col: 1 });
        if allocs > DEFAULT_TABLE_CAP {
            errors.push(at.err(format!(
                "the topology needs {allocs} allocations; a workspace's table holds {DEFAULT_TABLE_CAP}"
            )));
        }
        let need = self.footprint();
        if need > ws.size {
            let mib = |b: usize| b as f64 / (1 << 20) as f64;
            errors.push(at.err(format!(
                "the topology needs {need} bytes ({:.1} MiB), workspace size is {} ({:.1} MiB); \
                 raise `size` or make links smaller",
                mib(need),
                ws.size,
                mib(ws.size)
            )));
        }
    }

    /// What tile `tile`'s loop does while idle: what its `idle` says, else
    /// [`IdlePolicy::Spin`] if it is pinned to a cpu no other tile names
    /// and in no group (a core of its own), else [`IdlePolicy::Backoff`].
    /// A group's thread spins only if every tile in it does (see
    /// [`Topology::layout`]).
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
    /// failed [`Topology::check`] has several).
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
    /// consumer per [`Topology::consumers`] entry, reliable or not as the
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

    /// The size of `link`'s dcache data region in mtus, as
    /// [`Link::create_with_data`](tilewire_tile::link::Link::create_with_data)
    /// takes it: `depth + 1`, or what its producer's kind asks for
    /// ([`TileKind::output_data_mtus`](crate::TileKind::output_data_mtus):
    /// a net-xdp output is the whole UMEM).
    pub fn data_mtus(&self, link: &LinkSpec) -> u64 {
        let asked = self.producer(&link.name).and_then(|t| {
            let out = t.outputs.iter().position(|l| *l == link.name)?;
            let (kind, params) = t.erased();
            kind.output_data_mtus(params, out, link)
        });
        asked.unwrap_or(link.depth + 1)
    }

    /// The `(align, size)` of every allocation the runner makes in the
    /// workspace (sizes of invalid parameters count as 0; parse refuses
    /// those).
    fn allocations(&self) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        for link in &self.links {
            v.push((MCache::ALIGN, MCache::footprint(link.depth).unwrap_or(0)));
            let data = self.data_mtus(link).saturating_sub(1);
            v.push((
                DCache::ALIGN,
                DCache::footprint(link.mtu, data).unwrap_or(0),
            ));
            let consumers = self.consumers(&link.name).len();
            v.extend(core::iter::repeat((Fseq::ALIGN, Fseq::footprint())).take(consumers));
        }
        for tile in &self.tiles {
            v.push((TileMetrics::ALIGN, TileMetrics::footprint()));
            v.extend(core::iter::repeat((Hist::ALIGN, Hist::footprint())).take(tile.inputs.len()));
            let (kind, params) = tile.erased();
            v.extend(
                kind.objects(params, tile)
                    .iter()
                    .map(|o| (o.align(), o.size())),
            );
        }
        // The runner's copy of the topology text, at any alignment up to a
        // page.
        v.push((4096, TOPOLOGY_TEXT_MAX));
        v
    }

    /// Bytes the workspace must hold for this topology: its header and
    /// allocation table (of the default capacity), then every allocation
    /// the runner makes (see the [module docs](super#sizes)) with room for
    /// its alignment.
    pub fn footprint(&self) -> usize {
        let table = HEADER_SZ + DEFAULT_TABLE_CAP * ENTRY_SZ;
        let data_off = table.next_multiple_of(4096);
        self.allocations()
            .into_iter()
            .fold(data_off, |sum, (align, size)| {
                sum.saturating_add(size)
                    .saturating_add(align.max(MIN_ALIGN))
            })
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
