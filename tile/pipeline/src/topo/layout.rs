//! How a topology's tiles are laid on threads: [`TopologySpec::layout`].

use tilewire_tile::stem::IdlePolicy;

use super::error::TopoError;
use super::spec::{Restart, TileSpec, TopologySpec};

/// Longest `group` name.
pub const GROUP_NAME_MAX: usize = 32;

/// Tiles that run on one thread, taking turns ([`Group`](tilewire_tile::stem::Group));
/// in processes mode, one process. A tile alone is a group of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileGroup {
    /// The `group` its tiles name; else `cpuN` for tiles that share cpu
    /// `N`; else the name of its one tile.
    pub name: String,
    /// Its tiles, as indices into [`TopologySpec::tiles`], in file order
    /// (the order they take turns).
    pub tiles: Vec<usize>,
    /// The cpu its thread is pinned to, if one of its tiles names one.
    pub cpu: Option<usize>,
    /// What its thread does while every tile in it is idle.
    pub idle: IdlePolicy,
    /// Whether its process is started again when it fails: if one of its
    /// tiles says so.
    pub restart: Restart,
}

impl TileGroup {
    /// True if it has more than one tile.
    pub fn is_shared(&self) -> bool {
        self.tiles.len() > 1
    }
}

impl TopologySpec {
    /// The threads the tiles run on. Tiles that name the same `group`, or
    /// the same `cpu`, share one thread (one process in processes mode);
    /// every other tile has a thread of its own. A group runs on the cpu
    /// one of its tiles names (the check refuses two), in the network
    /// namespace one of them names (likewise; the others have no socket and
    /// run in any), and spins while idle
    /// only if every tile in it would ([`TopologySpec::idle_policy`]).
    pub fn layout(&self) -> Vec<TileGroup> {
        let roots = self.components();
        let mut groups: Vec<TileGroup> = Vec::new();
        for (i, &root) in roots.iter().enumerate() {
            match groups.iter_mut().find(|g| roots[g.tiles[0]] == root) {
                Some(g) => g.tiles.push(i),
                None => groups.push(TileGroup {
                    name: String::new(),
                    tiles: vec![i],
                    cpu: None,
                    idle: IdlePolicy::Spin,
                    restart: Restart::Never,
                }),
            }
        }
        for g in &mut groups {
            let tiles: Vec<&TileSpec> = g.tiles.iter().map(|&i| &self.tiles[i]).collect();
            g.cpu = tiles.iter().find_map(|t| t.cpu);
            if tiles.iter().any(|t| t.restart == Restart::OnFailure) {
                g.restart = Restart::OnFailure;
            }
            g.name = match (tiles.iter().find_map(|t| t.group.as_deref()), g.cpu) {
                (Some(name), _) => name.to_owned(),
                (None, Some(cpu)) if tiles.len() > 1 => format!("cpu{cpu}"),
                _ => tiles[0].name.clone(),
            };
        }
        let spins: Vec<bool> = (0..groups.len())
            .map(|gi| {
                let g = &groups[gi];
                g.tiles.iter().all(|&i| {
                    let t = &self.tiles[i];
                    match t.idle {
                        Some(p) => p == IdlePolicy::Spin,
                        None => !g.is_shared() && g.cpu.is_some(),
                    }
                })
            })
            .collect();
        for (g, spin) in groups.iter_mut().zip(spins) {
            g.idle = if spin {
                IdlePolicy::Spin
            } else {
                IdlePolicy::Backoff
            };
        }
        groups
    }

    /// The group tile `tile` runs in.
    pub fn group_of(&self, tile: &str) -> Option<TileGroup> {
        let i = self.tiles.iter().position(|t| t.name == tile)?;
        self.layout().into_iter().find(|g| g.tiles.contains(&i))
    }

    /// For each tile, a representative of the tiles it shares a thread
    /// with (union by `group` and by `cpu`).
    fn components(&self) -> Vec<usize> {
        let n = self.tiles.len();
        let mut parent: Vec<usize> = (0..n).collect();
        fn root(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        for i in 0..n {
            for j in 0..i {
                let (a, b) = (&self.tiles[i], &self.tiles[j]);
                let same_group = a.group.is_some() && a.group == b.group;
                let same_cpu = a.cpu.is_some() && a.cpu == b.cpu;
                if same_group || same_cpu {
                    let (ri, rj) = (root(&mut parent, i), root(&mut parent, j));
                    parent[ri] = rj;
                }
            }
        }
        (0..n).map(|i| root(&mut parent, i)).collect()
    }

    /// The layout's own checks: one cpu, one `group` name and one network
    /// namespace per thread (tiles that name none run in their thread's);
    /// `netns[i]` is the namespace tile `i`'s kind says it runs in.
    pub(crate) fn check_layout(&self, netns: &[Option<&str>], errors: &mut Vec<TopoError>) {
        let roots = self.components();
        for (i, t) in self.tiles.iter().enumerate() {
            let earlier = || {
                (0..i)
                    .filter(|&j| roots[j] == roots[i])
                    .map(|j| &self.tiles[j])
            };
            if let Some(cpu) = t.cpu {
                if let Some(o) = earlier().find(|o| o.cpu.is_some_and(|c| c != cpu)) {
                    errors.push(t.at.cpu.err(format!(
                        "tile {:?} names cpu {cpu}, but it shares a thread with tile {:?}{}, \
                         which names cpu {} at line {}: the tiles of a group run on one \
                         thread, on one cpu",
                        t.name,
                        o.name,
                        o.group
                            .as_deref()
                            .map(|g| format!(" (group {g:?})"))
                            .unwrap_or_default(),
                        o.cpu.unwrap_or_default(),
                        o.at.cpu.line
                    )));
                }
            }
            if let Some(g) = &t.group {
                if let Some(o) = earlier().find(|o| o.group.as_ref().is_some_and(|og| og != g)) {
                    errors.push(t.at.group.err(format!(
                        "tile {:?} of group {g:?} shares cpu {} with tile {:?} of group {:?} \
                         (line {}): tiles that name one cpu share its thread; put them in \
                         one group or on different cpus",
                        t.name,
                        t.cpu.or(o.cpu).unwrap_or_default(),
                        o.name,
                        o.group.as_deref().unwrap_or_default(),
                        o.at.header.line
                    )));
                }
            }
            let named = netns.get(i).copied().flatten();
            let ns = |o: &TileSpec| {
                let j = self.tiles.iter().position(|x| x.name == o.name)?;
                netns.get(j).copied().flatten()
            };
            if let Some(o) =
                earlier().find(|o| named.is_some() && ns(o).is_some_and(|n| Some(n) != named))
            {
                errors.push(t.at.header.err(format!(
                    "tile {:?} runs in network namespace {:?}, but it shares a thread with \
                     tile {:?} (line {}), which runs in {:?}: a thread is in one namespace; \
                     give them different groups or cpus",
                    t.name,
                    named.unwrap_or_default(),
                    o.name,
                    o.at.header.line,
                    ns(o).unwrap_or_default()
                )));
            }
        }
    }
}
