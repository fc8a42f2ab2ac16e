//! Binding a topology to the kinds of a registry: each tile's kind and
//! parameters read, the `count`s made into tiles, and everything checked
//! at once (what needs no kind, then each kind's inputs and outputs, its
//! own checks and the workspace's size), each problem at its line.

use std::path::Path;

use crate::kind::{CheckCtx, Replays};
use crate::registry::{KindRef, Registry};
use crate::tile_params::TileParams;
use crate::topo::{
    count_words, expand, Lines, Loc, Machine, Restart, ShareSpec, TileSpec, TopoError, TopoErrors,
    TopologySpec, Value,
};
use crate::topology::Topology;
use tilewire_shmem::workspace::DEFAULT_TABLE_CAP;
use tilewire_tile::stem::ShareBy;

impl Registry {
    /// Reads a topology's text and binds it to this registry's kinds,
    /// checked against this machine: everything [`Registry::load`] and
    /// [`Registry::bind`] check, the graph included (a cycle of reliable
    /// links is refused here, not when the pipeline is made).
    ///
    /// # Errors
    /// Every problem found, each at its line, all at once: a parameter's
    /// with the graph's. A syntax error stops the reading there; a table
    /// whose own keys are wrong (a link's `depth`, a tile's `cpu`) stops
    /// it before the kinds and the graph are checked; a tile's parameters
    /// report their first problem.
    pub fn parse(&self, text: &str) -> Result<Topology, TopoErrors> {
        self.bind(TopologySpec::parse(text)?, &Machine::this())
    }

    /// Reads the topology file at `path` and binds it to this registry's
    /// kinds, checked against this machine (as [`Registry::parse`]).
    ///
    /// # Errors
    /// The file cannot be read, or every problem found; the errors name
    /// the file.
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Topology, TopoErrors> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            TopoErrors::new(vec![TopoError {
                line: 0,
                col: 0,
                reason: format!("cannot read the topology: {e}"),
            }])
            .in_file(path)
        })?;
        self.parse(&text).map_err(|e| e.in_file(path))
    }

    /// Binds `spec` to this registry's kinds and checks it against
    /// `machine`: each tile's kind (one this registry holds) and its
    /// parameters (as the kind's type); the tiles a `count`, or a kind's
    /// [count](crate::TileKind::count), makes; the graph (every link a
    /// tile names exists, one producer and 1 to 64 consumers per link, no
    /// cycle of reliable links); every `cpu` exists on `machine`; each
    /// kind's input and output counts and its own
    /// [checks](crate::TileKind::check); and the workspace holds
    /// [`Topology::footprint`](crate::Topology::footprint).
    ///
    /// # Errors
    /// Every problem found, a parameter's with the graph's.
    pub fn bind(&self, spec: TopologySpec, machine: &Machine) -> Result<Topology, TopoErrors> {
        self.bind_on(spec, Some(machine))
    }

    /// [`Registry::bind`]; with no `machine`, no `cpu` is checked (a tile
    /// process reading the stored topology of a checked run).
    pub(crate) fn bind_on(
        &self,
        mut spec: TopologySpec,
        machine: Option<&Machine>,
    ) -> Result<Topology, TopoErrors> {
        let lines = Lines::new(&spec.text);
        let mut errors = Vec::new();
        // Values the kinds' counts resolved (`queues = "all"`): the stored
        // text says the number there.
        let mut resolved = Vec::new();
        let mut bound: Vec<(Option<KindRef>, Option<TileParams>)> = Vec::new();
        for tile in &mut spec.tiles {
            let kind = self.kind_of(tile, &mut errors);
            let params = kind.as_ref().and_then(|k| {
                let what = format!("tile {:?} params", tile.name);
                let read = k.kind().parse(tile.params.at(&spec.text, &lines, &what));
                read.map_err(|e| errors.push(e)).ok()
            });
            if let (Some(k), Some(p)) = (&kind, &params) {
                param_count(k, p, tile, &lines, &mut errors, &mut resolved);
            }
            bound.push((kind, params));
        }
        // Each tile's binding, for each tile the counts make of it.
        let made: Vec<usize> = spec
            .tiles
            .iter()
            .map(|t| t.share.filter(|s| s.of > 1).map_or(1, |s| s.of as usize))
            .collect();
        let (links, tiles) = expand(spec.links, spec.tiles, &mut errors);
        let bound: Vec<_> = bound
            .into_iter()
            .zip(made)
            .flat_map(|(b, n)| std::iter::repeat_n(b, n))
            .collect();
        spec.links = links;
        spec.tiles = tiles;
        spec.text = with_resolved(&spec.text, resolved);
        let params: Vec<Option<TileParams>> = bound.iter().map(|(_, p)| p.clone()).collect();
        let netns: Vec<Option<&str>> = bound
            .iter()
            .map(|(k, p)| k.as_ref()?.kind().netns(p.as_ref()?))
            .collect();
        spec.check_graph(machine, &netns, &mut errors);
        for (tile, (kind, p)) in spec.tiles.iter().zip(&bound) {
            let Some(kind) = kind else { continue };
            check_io(&spec, tile, kind, &mut errors);
            if let Some(p) = p {
                kind.kind()
                    .check(p, &mut CheckCtx::new(&spec, &params, tile, &mut errors));
            }
        }
        let kinds: Vec<Option<&KindRef>> = bound.iter().map(|(k, _)| k.as_ref()).collect();
        check_replays(&spec, &kinds, &mut errors);
        let complete: Option<Vec<(KindRef, TileParams)>> =
            bound.into_iter().map(|(k, p)| Some((k?, p?))).collect();
        let Some(complete) = complete else {
            return Err(TopoErrors::new(errors));
        };
        let (kinds, params): (Vec<KindRef>, Vec<TileParams>) = complete.into_iter().unzip();
        let mut topo = Topology::new(spec, kinds, params);
        check_size(&mut topo, &mut errors);
        if errors.is_empty() {
            Ok(topo)
        } else {
            Err(TopoErrors::new(errors))
        }
    }

    /// The kind `tile` names, or an error listing the registered ones.
    fn kind_of(&self, tile: &TileSpec, errors: &mut Vec<TopoError>) -> Option<KindRef> {
        if let Some(k) = self.get(tile.kind()) {
            return Some(k.clone());
        }
        let names: Vec<&str> = self.names().collect();
        errors.push(tile.at.kind.err(format!(
            "tile {:?}: `kind` names the unknown tile kind {:?} (registered: {})",
            tile.name,
            tile.kind(),
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )));
        None
    }
}

/// A count from `tile`'s parameters (a net-xdp tile's `queues`), as
/// `count`: sets the tile's share, or says why it cannot.
fn param_count(
    kind: &KindRef,
    params: &TileParams,
    tile: &mut TileSpec,
    lines: &Lines,
    errors: &mut Vec<TopoError>,
    resolved: &mut Vec<(std::ops::Range<usize>, String)>,
) {
    let what = format!("tile {:?}", tile.name);
    let params_at = tile.param_loc("");
    match kind.kind().count(params) {
        Ok(None) => {}
        Ok(Some(c)) => {
            let node = match &tile.params.node().value {
                Value::Table(entries) => entries
                    .iter()
                    .find(|(k, _)| k.get_ref() == c.param)
                    .map(|(_, v)| v),
                _ => None,
            };
            let at = node.map_or(params_at, |n| lines.loc(n.span.start));
            if tile.share.is_some() {
                errors.push(tile.at.count.err(format!(
                    "{what}: give `count` or its params' `{}`, not both: each makes a tile \
                     per queue",
                    c.param
                )));
                return;
            }
            if !(1..=64).contains(&c.tiles) {
                errors.push(at.err(format!(
                    "{what} params: `{}` makes {} tiles; one [[tile]] makes 1 to 64",
                    c.param, c.tiles
                )));
                return;
            }
            if let Some(n) = node.filter(|n| !matches!(n.value, Value::Int(_))) {
                resolved.push((n.span.clone(), c.tiles.to_string()));
            }
            tile.share = Some(ShareSpec {
                index: 0,
                of: c.tiles,
                by: tile.at.share_by.unwrap_or(ShareBy::RoundRobin),
            });
            tile.at.count = at;
        }
        Err(reason) => {
            let at = tile.param_loc("queues");
            errors.push(at.err(format!("{what} params: {reason}")));
        }
    }
}

/// `text` with each of `resolved`'s spans replaced by its text.
fn with_resolved(text: &str, mut resolved: Vec<(std::ops::Range<usize>, String)>) -> String {
    resolved.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
    let mut out = text.to_owned();
    for (span, with) in resolved {
        out.replace_range(span, &with);
    }
    out
}

/// `tile`'s input and output counts against what its kind takes.
/// Refuses a tile that restarts (`restart = "on-failure"`: it and the
/// tiles of its group, whose process restarts with it) when what it
/// replays after a crash reaches a kind that must see each frag once,
/// along a chain of tiles that pass replays on (see
/// [`TileKind::replays`](crate::TileKind::replays)). A tile whose kind is
/// unknown ends the chain (its own error is reported).
fn check_replays(spec: &TopologySpec, kinds: &[Option<&KindRef>], errors: &mut Vec<TopoError>) {
    let consumers = |link: &str| -> Vec<usize> {
        (0..spec.tiles.len())
            .filter(|&j| spec.tiles[j].inputs.iter().any(|l| l == link))
            .collect()
    };
    for (i, t) in spec.tiles.iter().enumerate() {
        if t.restart != Restart::OnFailure {
            continue;
        }
        let mut seen = vec![false; spec.tiles.len()];
        // (tile, the links that led there)
        let mut queue: Vec<(usize, Vec<&str>)> = (0..spec.tiles.len())
            .filter(|&j| j == i || (t.group.is_some() && spec.tiles[j].group == t.group))
            .map(|j| (j, Vec::new()))
            .collect();
        for (j, _) in &queue {
            seen[*j] = true;
        }
        while let Some((at, path)) = queue.pop() {
            for link in &spec.tiles[at].outputs {
                for c in consumers(link) {
                    let Some(kind) = kinds[c] else { continue };
                    let mut path = path.clone();
                    path.push(link);
                    match kind.kind().replays() {
                        Replays::Refuse => {
                            errors.push(t.at.restart.err(format!(
                                "tile {:?}: `restart = \"on-failure\"` replays, after a crash, \
                                 what its process passed on since it last published its \
                                 progress, and tile {:?} (kind {:?}) must see each frag once; \
                                 it is reached over {}: put a dedup between them, or drop the \
                                 restart",
                                t.name,
                                spec.tiles[c].name,
                                spec.tiles[c].kind(),
                                path.join(" -> ")
                            )));
                            return;
                        }
                        Replays::Pass if !seen[c] => {
                            seen[c] = true;
                            queue.push((c, path));
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

fn check_io(spec: &TopologySpec, tile: &TileSpec, kind: &KindRef, errors: &mut Vec<TopoError>) {
    let name = &tile.name;
    let kind_name = tile.kind();
    let io = kind.kind().io();
    let sides = [
        ("input", &tile.inputs, tile.at.inputs_key, &io.inputs),
        ("output", &tile.outputs, tile.at.outputs_key, &io.outputs),
    ];
    for (side, list, key_at, allowed) in sides {
        if allowed.contains(&list.len()) {
            continue;
        }
        // Inputs a count made: say where they came from.
        let made = list.iter().find_map(|l| {
            spec.tiles
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
        let a = if kind_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        errors.push(key_at.err(format!(
            "tile {name:?}: {a} {kind_name} tile takes {} {side}s, found {}{hint}",
            count_words(allowed),
            list.len()
        )));
    }
}

/// Sets the workspace's size when the topology gives none (the footprint,
/// rounded up to a page), and checks the workspace holds what the topology
/// puts in it.
fn check_size(topo: &mut Topology, errors: &mut Vec<TopoError>) {
    if topo.workspace.size == 0 {
        let page = topo.workspace.pages.size();
        let size = topo.footprint().next_multiple_of(page);
        topo.set_size(size);
    }
    let allocs = topo.allocation_count();
    let need = topo.footprint();
    let ws = &topo.workspace;
    let at = ws.size_at.unwrap_or(Loc { line: 1, col: 1 });
    if allocs > DEFAULT_TABLE_CAP {
        errors.push(at.err(format!(
            "the topology needs {allocs} allocations; a workspace's table holds {DEFAULT_TABLE_CAP}"
        )));
    }
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
