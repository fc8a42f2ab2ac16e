//! `tilewire shmem`: list, inspect and remove workspaces.
//!
//! (The flags: see `--help`, made from the same definitions as the
//! parser.)
//!
//! Directories come from the environment (`TILEWIRE_SHM_DIR`,
//! `TILEWIRE_HUGE_DIR`, `TILEWIRE_GIGANTIC_DIR`; see
//! [`Config::from_env`]). Workspaces are only ever joined read-only here.
//!
//! `ls` gives each workspace a status (see
//! [`WorkspaceStatus`]): `live`
//! (a tile runs with a fresh heartbeat, or its creator is alive),
//! `stopped` (every tile halted), `abandoned` (its creator and its running
//! tiles died: a crash left it; `tilewire shmem rm NAME` removes it) or
//! `invalid` (not a workspace, with the reason). With `--json` it prints an
//! array of objects with the fields `name, page, path, file_size, size,
//! allocated_bytes, creator_pid, creator_alive, tiles {running, booting,
//! halted, dead}, status, why` (`why` only for `invalid`; the numbers of a
//! workspace that could not be read are null).
//!
//! `info --json` prints one object: `name, path, magic, version, size,
//! page, page_size, created_ns, creator_pid, creator_alive, table_cap,
//! data_off, usage {data_bytes, used_bytes, free_bytes, largest_free,
//! allocations}, allocations [{name, gaddr, size, tag, owner_pid,
//! object}]`.
//!
//! `rm` refuses a workspace one of whose tiles is alive (running or booting
//! in a live process, with a fresh heartbeat), naming the tile and its pid,
//! unless `--force`. Processes that have the workspace mapped keep their
//! mapping either way; only the name goes.

use std::fmt::Write as _;

use tilewire_monitor::{
    classify, identify, pid_alive, workspace_status, HealthCounts, Snapshot, TileHealth,
    WorkspaceStatus, HEARTBEAT_TIMEOUT,
};
use tilewire_shmem::object::magic_version;
use tilewire_shmem::workspace::WKSP_MAGIC;
use tilewire_shmem::{Access, Config, OpenError, Workspace, WorkspaceInfo};

/// `tilewire shmem` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Every workspace: size, use, tiles, and live, stopped, abandoned or
    /// invalid
    Ls {
        /// One JSON object per workspace, a line each
        #[arg(long)]
        json: bool,
    },
    /// The header and every allocation, with the object it holds
    Info {
        /// The workspace
        workspace: String,
        /// One JSON object
        #[arg(long)]
        json: bool,
    },
    /// Remove workspaces (refused while a tile of one is alive)
    Rm {
        /// The workspaces
        #[arg(required = true)]
        workspaces: Vec<String>,
        /// Remove even while a tile is alive
        #[arg(long)]
        force: bool,
    },
}

/// Runs the subcommand.
pub(crate) fn run(command: Command) -> Result<(), String> {
    let config = Config::from_env();
    match command {
        Command::Ls { json } => ls(&config, json),
        Command::Info { workspace, json } => info(&config, &workspace, json),
        Command::Rm { workspaces, force } => {
            let names: Vec<&str> = workspaces.iter().map(String::as_str).collect();
            rm(&config, &names, force)
        }
    }
}

/// Tile healths of a workspace, judged now.
fn tile_healths(ws: &Workspace) -> Vec<(String, u32, Option<u64>, TileHealth)> {
    let snap = Snapshot::take(ws);
    snap.tiles
        .iter()
        .map(|t| {
            let m = &t.metrics;
            let age = (m.heartbeat_ns != 0).then(|| snap.taken_ns.saturating_sub(m.heartbeat_ns));
            let h = classify(m, snap.taken_ns, HEARTBEAT_TIMEOUT, pid_alive);
            (t.name.clone(), m.pid, age, h)
        })
        .collect()
}

/// What `ls` found out about one workspace.
struct Listed {
    info: WorkspaceInfo,
    /// Allocation table entries no allocator writes (corrupt).
    table: Vec<String>,
    allocated: Option<u64>,
    tiles: HealthCounts,
    status: WorkspaceStatus,
}

fn inspect(config: &Config, info: WorkspaceInfo) -> Listed {
    let mut l = Listed {
        table: Vec::new(),
        allocated: None,
        tiles: HealthCounts::default(),
        status: WorkspaceStatus::Stopped,
        info,
    };
    if let Err(why) = &l.info.header {
        l.status = WorkspaceStatus::Invalid { why: why.clone() };
        return l;
    }
    match Workspace::join_with(&l.info.name, Access::ReadOnly, config) {
        Ok(ws) => {
            let healths = tile_healths(&ws);
            l.tiles = HealthCounts::count(healths.iter().map(|(.., h)| h));
            l.allocated = Some(ws.usage().used_bytes);
            l.table = ws
                .allocation_problems()
                .iter()
                .map(|p| p.to_string())
                .collect();
            l.status = workspace_status(l.info.creator_alive, &l.tiles);
        }
        Err(e) => l.status = WorkspaceStatus::Invalid { why: e.to_string() },
    }
    l
}

fn ls(config: &Config, json: bool) -> Result<(), String> {
    let listed: Vec<Listed> = Workspace::list(config)
        .into_iter()
        .map(|i| inspect(config, i))
        .collect();
    if json {
        let rows: Vec<LsJson<'_>> = listed.iter().map(ls_json).collect();
        println!(
            "{}",
            serde_json::to_string(&rows).expect("numbers and strings")
        );
        return Ok(());
    }
    if listed.is_empty() {
        println!(
            "no workspaces (looked in {}, {}, {})",
            config.shm_dir.display(),
            config.huge_dir.display(),
            config.gigantic_dir.display()
        );
        return Ok(());
    }
    let mut out = format!(
        "{:<24} {:<8} {:>10} {:>10} {:>14}  {:<22} STATUS\n",
        "NAME", "PAGE", "SIZE", "ALLOCATED", "CREATOR", "TILES"
    );
    let mut notes = String::new();
    for l in &listed {
        let header = l.info.header.as_ref().ok();
        let size = header.map_or(l.info.file_size, |h| h.size);
        let creator = header.map_or("-".into(), |h| {
            let state = if l.info.creator_alive {
                "alive"
            } else {
                "gone"
            };
            format!("{} {state}", h.creator_pid)
        });
        let _ = writeln!(
            out,
            "{:<24} {:<8} {:>10} {:>10} {:>14}  {:<22} {}",
            l.info.name,
            l.info.page.as_str(),
            bytes(size),
            l.allocated.map_or("-".into(), bytes),
            creator,
            if header.is_some() {
                l.tiles.to_string()
            } else {
                "-".into()
            },
            l.status.as_str()
        );
        match &l.status {
            WorkspaceStatus::Abandoned => {
                let _ = writeln!(
                    notes,
                    "{}: left behind by a crash (creator and tiles dead); \
                     remove it with `tilewire shmem rm {}`",
                    l.info.name, l.info.name
                );
            }
            WorkspaceStatus::Invalid { why } => {
                let _ = writeln!(notes, "{}: invalid: {why}", l.info.name);
            }
            _ => {}
        }
        for p in &l.table {
            let _ = writeln!(notes, "{}: CORRUPT: {p}", l.info.name);
        }
    }
    print!("{out}{notes}");
    Ok(())
}

/// One workspace of `ls --json`.
#[derive(serde::Serialize)]
struct LsJson<'a> {
    name: &'a str,
    page: &'static str,
    path: String,
    file_size: u64,
    size: Option<u64>,
    allocated_bytes: Option<u64>,
    creator_pid: Option<u32>,
    creator_alive: Option<bool>,
    tiles: TilesJson,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<&'a str>,
    /// Corrupt allocation table entries, each named.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    corrupt: &'a [String],
}

#[derive(serde::Serialize)]
struct TilesJson {
    running: usize,
    booting: usize,
    halted: usize,
    dead: usize,
}

fn ls_json(l: &Listed) -> LsJson<'_> {
    let header = l.info.header.as_ref().ok();
    LsJson {
        name: &l.info.name,
        page: l.info.page.as_str(),
        path: l.info.path.display().to_string(),
        file_size: l.info.file_size,
        size: header.map(|h| h.size),
        allocated_bytes: l.allocated,
        creator_pid: header.map(|h| h.creator_pid),
        creator_alive: header.map(|_| l.info.creator_alive),
        tiles: TilesJson {
            running: l.tiles.running,
            booting: l.tiles.booting,
            halted: l.tiles.halted,
            dead: l.tiles.dead,
        },
        status: l.status.as_str(),
        why: match &l.status {
            WorkspaceStatus::Invalid { why } => Some(why),
            _ => None,
        },
        corrupt: &l.table,
    }
}

/// `info --json`.
#[derive(serde::Serialize)]
struct InfoJson<'a> {
    name: &'a str,
    path: String,
    magic: String,
    version: u8,
    size: u64,
    page: &'static str,
    page_size: u64,
    created_ns: u64,
    creator_pid: u32,
    creator_alive: bool,
    table_cap: u64,
    data_off: u64,
    usage: UsageJson,
    allocations: Vec<AllocJson<'a>>,
}

#[derive(serde::Serialize)]
struct UsageJson {
    data_bytes: u64,
    used_bytes: u64,
    free_bytes: u64,
    largest_free: u64,
    allocations: usize,
}

#[derive(serde::Serialize)]
struct AllocJson<'a> {
    name: Option<&'a str>,
    gaddr: u64,
    size: u64,
    tag: u64,
    owner_pid: u32,
    object: &'a str,
}

fn join_ro(config: &Config, name: &str) -> Result<Workspace, String> {
    Workspace::join_with(name, Access::ReadOnly, config).map_err(|e| e.to_string())
}

fn info(config: &Config, name: &str, json: bool) -> Result<(), String> {
    let ws = join_ro(config, name)?;
    let h = ws.header();
    let creator_alive = pid_alive(h.creator_pid);
    let usage = ws.usage();
    let allocs: Vec<(tilewire_shmem::AllocInfo, String)> = ws
        .allocations()
        .into_iter()
        .map(|a| {
            let object = usize::try_from(a.size)
                .ok()
                .and_then(|size| ws.region(a.gaddr, size).ok())
                .map_or_else(
                    || "outside the workspace".into(),
                    |m| identify(&m).to_string(),
                );
            (a, object)
        })
        .collect();
    if json {
        let v = InfoJson {
            name: ws.name(),
            path: ws.path().display().to_string(),
            magic: format!("{:#018x}", h.magic),
            version: magic_version(h.magic),
            size: h.size,
            page: ws.page_kind().as_str(),
            page_size: h.page_sz,
            created_ns: h.created_ns,
            creator_pid: h.creator_pid,
            creator_alive,
            table_cap: h.table_cap,
            data_off: h.data_off,
            usage: UsageJson {
                data_bytes: usage.data_bytes,
                used_bytes: usage.used_bytes,
                free_bytes: usage.free_bytes,
                largest_free: usage.largest_free,
                allocations: usage.allocations,
            },
            allocations: allocs
                .iter()
                .map(|(a, object)| AllocJson {
                    name: a.name.as_deref(),
                    gaddr: a.gaddr,
                    size: a.size,
                    tag: a.tag,
                    owner_pid: a.owner_pid,
                    object,
                })
                .collect(),
        };
        let v = serde_json::to_string(&v).expect("numbers and strings");
        println!("{v}");
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(out, "workspace {}", ws.name());
    let _ = writeln!(out, "  file      {}", ws.path().display());
    let magic_note = if h.magic == WKSP_MAGIC {
        "tilewire workspace"
    } else {
        "?"
    };
    let _ = writeln!(
        out,
        "  magic     {:#018x} ({magic_note}, layout v{})",
        h.magic,
        magic_version(h.magic)
    );
    let _ = writeln!(
        out,
        "  size      {} ({} bytes) on {} pages of {}",
        bytes(h.size),
        h.size,
        ws.page_kind().as_str(),
        bytes(h.page_sz)
    );
    let _ = writeln!(
        out,
        "  created   {} by pid {} ({})",
        utc(h.created_ns),
        h.creator_pid,
        if creator_alive { "alive" } else { "gone" }
    );
    let _ = writeln!(
        out,
        "  usage     {} allocated, {} free (largest gap {}) of {}; {} of {} table entries",
        bytes(usage.used_bytes),
        bytes(usage.free_bytes),
        bytes(usage.largest_free),
        bytes(usage.data_bytes),
        usage.allocations,
        usage.table_cap
    );
    let _ = writeln!(
        out,
        "\n{:<40} {:>12} {:>10} {:>8}  OBJECT",
        "ALLOCATION", "OFFSET", "SIZE", "OWNER"
    );
    for (a, object) in &allocs {
        let _ = writeln!(
            out,
            "{:<40} {:>#12x} {:>10} {:>8}  {object}",
            a.name.as_deref().unwrap_or("(unnamed)"),
            a.gaddr,
            bytes(a.size),
            a.owner_pid
        );
    }
    print!("{out}");
    Ok(())
}

fn rm(config: &Config, names: &[&str], force: bool) -> Result<(), String> {
    let mut refused = Vec::new();
    for name in names {
        match Workspace::join_with(name, Access::ReadOnly, config) {
            Ok(ws) => {
                let alive: Vec<String> = tile_healths(&ws)
                    .into_iter()
                    .filter(|(.., h)| h.is_alive())
                    .map(|(tile, pid, age, h)| {
                        let beat = age.map_or("never beat".into(), |ns| {
                            format!("heartbeat {} ago", tilewire_monitor::render::duration(ns))
                        });
                        format!("tile {tile:?} is {} in pid {pid} ({beat})", h.as_str())
                    })
                    .collect();
                if !alive.is_empty() && !force {
                    refused.push(format!(
                        "{name}: not removed: {}; stop it first, or pass --force",
                        alive.join(", ")
                    ));
                    continue;
                }
            }
            // Not a workspace of any use, or not there: unlink says which.
            Err(OpenError::NotFound { .. }) => {}
            Err(_) => {}
        }
        match Workspace::unlink_with(name, config) {
            Ok(()) => println!("removed {name}"),
            Err(e) => refused.push(format!("{name}: {e}")),
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(refused.join("\n"))
    }
}

/// `n` bytes with a binary unit: `512 B`, `4.0 KiB`, `16.0 MiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Nanoseconds since the Unix epoch as `YYYY-MM-DD hh:mm:ss UTC`.
fn utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01, over 400-year eras of
    // 146097 days, with years starting in March so leap days come last.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_sizes_read_right() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400 * 1_000_000_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(
            utc(1_732_206_645 * 1_000_000_000),
            "2024-11-21 16:30:45 UTC"
        );
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(16 << 20), "16.0 MiB");
    }
}
