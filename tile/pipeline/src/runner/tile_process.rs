//! The tile processes of processes mode: how the runner tells a process
//! which tile it is, the entry point a pipeline binary's `main` calls
//! first, and the flag Ctrl-C and SIGTERM set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tilewire_shmem::pid_alive;
use tilewire_shmem::Workspace;
use tilewire_tile::stem::{MemberEnd, StemConfig};

use crate::error::PipelineError;
use crate::run::{run_group, run_tile, tile_metrics};
use crate::{workspace, Registry};

/// The environment variable that makes a process a tile process:
/// `WORKSPACE/TILE`, or `WORKSPACE/GROUP` for a process that runs a group
/// of tiles ([`Topology::layout`](crate::topo::TopologySpec::layout)). Set by the runner for the processes it starts; read by
/// [`tile_main`].
pub const TILE_ENV: &str = "TILEWIRE_TILE";
/// The runner's pid, which a tile process watches.
pub(crate) const PARENT_ENV: &str = "TILEWIRE_PARENT";
/// The tile's [`StemConfig`]: `LAZY,GRACE_MS`.
pub(crate) const STEM_ENV: &str = "TILEWIRE_STEM";

/// A flag that asks a running pipeline to stop: set it from any thread
/// ([`StopFlag::stop`]), or let Ctrl-C and SIGTERM set it
/// ([`StopFlag::on_signals`]).
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A flag not set.
    pub fn new() -> StopFlag {
        StopFlag::default()
    }

    /// The flag Ctrl-C (SIGINT) and SIGTERM set. The handler is installed
    /// once per process; every call returns the same flag.
    ///
    /// # Errors
    /// The handler could not be installed (another one was, by other
    /// code of this process).
    pub fn on_signals() -> Result<StopFlag, PipelineError> {
        static FLAG: OnceLock<Result<StopFlag, String>> = OnceLock::new();
        FLAG.get_or_init(|| {
            let flag = StopFlag::new();
            let f = flag.clone();
            ctrlc::set_handler(move || f.stop())
                .map(|()| flag)
                .map_err(|e| format!("installing the Ctrl-C and SIGTERM handler: {e}"))
        })
        .clone()
        .map_err(PipelineError::Signals)
    }

    /// Sets the flag.
    pub fn stop(&self) {
        // SYNC: Relaxed; the flag carries no data, a runner polls it.
        self.0.store(true, Ordering::Relaxed);
    }

    /// True once set.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// In a process started as a tile, making or running a pipeline means its
/// `main` did not call [`tile_main`]: refuse, rather than fork again.
pub(crate) fn refuse_in_tile_process() -> Result<(), PipelineError> {
    match std::env::var(TILE_ENV) {
        Ok(tile) => Err(PipelineError::NotATileMain { tile }),
        Err(_) => Ok(()),
    }
}

/// The entry point of a pipeline binary's tile processes; call it first
/// thing in `main`, with the registry the runner uses. In a process the
/// runner started as a tile ([`TILE_ENV`] set) it runs that tile until it
/// is asked to stop or its runner is gone, then exits the process (0 when
/// the tile halted cleanly, 1 with the reason on stderr otherwise). In any
/// other process it returns at once.
///
/// This is the one function a processes-mode binary needs: see
/// [processes mode](crate::Pipeline#processes-mode) for how the runner
/// starts it.
pub fn tile_main(registry: &Registry) {
    let Ok(spec) = std::env::var(TILE_ENV) else {
        return;
    };
    let code = match tile_process(&spec, registry) {
        Ok(ends) => {
            let mut code = 0;
            for (tile, end) in ends {
                match end {
                    MemberEnd::Halted(end) if end.pending == 0 => {}
                    MemberEnd::Halted(end) => {
                        eprintln!(
                            "tile {tile}: stopped holding {} packets it could not pass on",
                            end.pending
                        );
                        code = 1;
                    }
                    MemberEnd::Panicked(message) => {
                        eprintln!("tile {tile} panicked: {message}");
                        code = 1;
                    }
                }
            }
            code
        }
        Err(e) => {
            eprintln!("tile {spec}: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn tile_process(
    spec: &str,
    registry: &Registry,
) -> Result<Vec<(String, MemberEnd)>, PipelineError> {
    let bad = |why: &str| PipelineError::Stored {
        name: spec.to_owned(),
        why: why.to_owned(),
    };
    let (ws, name) = spec
        .split_once('/')
        .ok_or_else(|| bad("TILEWIRE_TILE must be WORKSPACE/TILE or WORKSPACE/GROUP"))?;
    let parent = std::env::var(PARENT_ENV).ok().and_then(|p| p.parse().ok());
    let mut stem = StemConfig::default();
    if let Some((lazy, grace)) = std::env::var(STEM_ENV)
        .ok()
        .as_deref()
        .and_then(|s| s.split_once(','))
    {
        stem.lazy = lazy.parse().unwrap_or(stem.lazy);
        stem.stop_grace = grace
            .parse()
            .map(Duration::from_millis)
            .unwrap_or(stem.stop_grace);
    }
    run_tile_process(ws, name, parent, registry, stem)
}

/// Runs tile `name` of the running pipeline in workspace `ws` in this
/// process, or, if no tile has that name, the tiles of the group
/// ([`Topology::layout`](crate::topo::TopologySpec::layout)) of that name on this
/// process's one thread, until they are asked to stop, Ctrl-C or SIGTERM
/// arrive, or (with `parent`) that process is gone; `tilewire tile` is
/// this. A tile started again after a crash rejoins its links where its
/// predecessor left them. A tile of a group that panics ends alone, and
/// the others drain their inputs and stop. Returns how each tile ended.
///
/// # Errors
/// The workspace or its stored topology cannot be read (against
/// `registry`), no tile or group has that name, or a tile cannot be
/// built.
pub fn run_tile_process(
    ws: &str,
    name: &str,
    parent: Option<u32>,
    registry: &Registry,
    stem: StemConfig,
) -> Result<Vec<(String, MemberEnd)>, PipelineError> {
    let ws = workspace::join(ws)?;
    let topo = workspace::stored_topology(&ws, registry)?;
    if topo.tile(name).is_some() {
        let tiles = [name.to_owned()];
        let end = watched(&ws, &tiles, parent, || run_tile(&ws, &topo, name, stem))?;
        return Ok(vec![(name.to_owned(), MemberEnd::Halted(end))]);
    }
    let group = topo
        .layout()
        .into_iter()
        .find(|g| g.name == name)
        .ok_or_else(|| PipelineError::NoSuchTile(name.into()))?;
    let tiles: Vec<String> = group
        .tiles
        .iter()
        .map(|&t| topo.tiles[t].name.clone())
        .collect();
    watched(&ws, &tiles, parent, || {
        run_group(&ws, &topo, &group, stem, true, |_, _| {})
    })
}

/// Runs `run` while a watcher thread asks `tiles` to stop once Ctrl-C or
/// SIGTERM arrive or `parent` is gone.
fn watched<T>(
    ws: &Workspace,
    tiles: &[String],
    parent: Option<u32>,
    run: impl FnOnce() -> Result<T, PipelineError>,
) -> Result<T, PipelineError> {
    let signals = StopFlag::on_signals()?;
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let parent_gone = parent.is_some_and(|p| !pid_alive(p));
                // Asked again every turn until the tiles ended: a request
                // made while one was still starting would be lost.
                if signals.is_stopped() || parent_gone {
                    for tile in tiles {
                        if let Some(m) = tile_metrics(ws, tile) {
                            m.request_stop();
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let r = run();
        done.store(true, Ordering::Relaxed);
        let _ = watcher.join();
        r
    })
}
