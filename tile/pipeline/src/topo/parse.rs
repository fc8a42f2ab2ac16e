//! Reading a topology's text into a [`Topology`]: the tables, their
//! fields, and unique, valid names. Each problem is recorded and the
//! reading goes on, so one pass reports them all.

use tilewire_shmem::PageKind;

use super::de::{RawParams, Seg};
use super::error::{TopoError, TopoErrors};
use super::layout::GROUP_NAME_MAX;
use super::spec::{
    LinkSpec, Mode, Restart, ShareSpec, TileLocs, TileSpec, TopologySpec, WorkspaceSpec, IDLES,
    MODES, PAGES, RESTARTS, SHARES, TOPOLOGY_TEXT_MAX,
};
use super::value::{
    array_of, boolean, int_in, one_of, pow2_in, string, Fields, Key, Lines, Loc, Node, Value,
};
use tilewire_tile::link::LINK_NAME_MAX;
use tilewire_tile::stem::ShareBy;
use tilewire_tile::stem::TILE_NAME_MAX;

impl TopologySpec {
    /// Reads a topology from its text: TOML syntax, every field's type and
    /// range, and unique valid names. The kinds and their parameters, the
    /// graph, cpus and sizes are checked when a
    /// [`Registry`](crate::Registry) binds it
    /// ([`Registry::bind`](crate::Registry::bind)).
    ///
    /// # Errors
    /// Every problem found (a syntax error stops the reading there).
    pub fn parse(text: &str) -> Result<TopologySpec, TopoErrors> {
        let lines = Lines::new(text);
        if text.len() > TOPOLOGY_TEXT_MAX {
            return Err(TopoErrors::new(vec![Loc { line: 1, col: 1 }.err(format!(
                "the topology is {} bytes; the limit is {TOPOLOGY_TEXT_MAX} (the runner keeps a copy in the workspace)",
                text.len()
            ))]));
        }
        let root = super::value::read(text, &lines).map_err(|e| TopoErrors::new(vec![e]))?;
        let mut errors = Vec::new();
        let top = Node::new(0..0, Value::Table(root));
        let mut f = Fields::of(&top, "the file", &lines, &mut errors).expect("a table");
        let start = Loc { line: 1, col: 1 };
        let workspace = match f.take("workspace") {
            Some((_, node)) => parse_workspace(node, &lines, &mut errors),
            None => {
                errors.push(start.err("missing the [workspace] table"));
                None
            }
        };
        let links = match f.take("link") {
            Some((key, node)) => each_table(key, node, "[[link]]", &lines, &mut errors)
                .map(|t| parse_link(t, &lines, &mut errors))
                .collect(),
            None => Vec::new(),
        };
        let tiles = match f.take("tile") {
            Some((key, node)) => each_table(key, node, "[[tile]]", &lines, &mut errors)
                .enumerate()
                .map(|(i, t)| parse_tile(t, i, &lines, &mut errors))
                .collect(),
            None => Vec::new(),
        };
        f.finish(&["workspace", "link", "tile"], &mut errors);
        let links: Vec<LinkSpec> = links.into_iter().flatten().collect();
        let tiles: Vec<TileSpec> = tiles.into_iter().flatten().collect();
        unique_names("link", links.iter().map(|l| (&l.name, l.at)), &mut errors);
        unique_names(
            "tile",
            tiles.iter().map(|t| (&t.name, t.at.header)),
            &mut errors,
        );
        match workspace {
            Some(workspace) if errors.is_empty() => Ok(TopologySpec {
                workspace,
                links,
                tiles,
                text: text.to_owned(),
            }),
            _ => Err(TopoErrors::new(errors)),
        }
    }

    /// The text the topology was read from (once bound, with the numbers
    /// the kinds' counts resolved in place of what it said: the runner
    /// keeps a copy in the workspace, so a monitor can show what runs).
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The tables of an array of tables (`[[link]]`), or an error if `node` is
/// something else.
fn each_table<'n>(
    key: &Key,
    node: &'n Node,
    header: &str,
    lines: &Lines,
    errors: &mut Vec<TopoError>,
) -> impl Iterator<Item = &'n Node> {
    let items: &[Node] = match &node.value {
        Value::Array(items) => items,
        _ => {
            errors.push(lines.loc(key.span().start).err(format!(
                "`{}` must be an array of tables: write each one under a {header} header",
                key.get_ref()
            )));
            &[]
        }
    };
    items.iter()
}

/// A name check as the workspace does it, plus a length limit.
fn name_rule(max: usize) -> impl Fn(&Node) -> Result<String, String> {
    move |node| {
        let s = string(node)?;
        tilewire_shmem::check_name(&s).map_err(|e| format!("{s:?} is not a valid name: {e}"))?;
        if s.len() > max {
            return Err(format!(
                "{s:?} is {} bytes long; the limit is {max}",
                s.len()
            ));
        }
        Ok(s)
    }
}

/// Records an error for each name seen before, pointing at the earlier one.
fn unique_names<'a>(
    what: &str,
    names: impl Iterator<Item = (&'a String, Loc)>,
    errors: &mut Vec<TopoError>,
) {
    let mut seen: Vec<(&String, Loc)> = Vec::new();
    for (name, at) in names {
        match seen.iter().find(|(n, _)| *n == name) {
            Some((_, first)) => errors.push(at.err(format!(
                "duplicate {what} name {name:?} (first defined on line {})",
                first.line
            ))),
            None => seen.push((name, at)),
        }
    }
}

/// Bytes from an integer or a string with a unit.
fn byte_size(node: &Node) -> Result<usize, String> {
    let bad = |found: String| {
        Err(format!(
            "must be a byte count: an integer, or a string such as \"256MiB\" (units B, KiB, MiB, GiB), found {found}"
        ))
    };
    let n = match &node.value {
        Value::Int(i) if *i > 0 => *i as u64,
        Value::Str(s) => {
            let s = s.trim();
            let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let (num, unit) = s.split_at(digits);
            let shift = match unit.trim() {
                "" | "B" => 0,
                "KiB" => 10,
                "MiB" => 20,
                "GiB" => 30,
                _ => return bad(format!("{s:?}")),
            };
            match num.parse::<u64>() {
                Ok(n) if n > 0 => n
                    .checked_mul(1 << shift)
                    .ok_or_else(|| format!("{s:?} is too large"))?,
                _ => return bad(format!("{s:?}")),
            }
        }
        other => return bad(other.describe()),
    };
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= isize::MAX as usize / 2)
        .ok_or_else(|| format!("{n} bytes is too large"))
}

fn parse_workspace(
    node: &Node,
    lines: &Lines,
    errors: &mut Vec<TopoError>,
) -> Option<WorkspaceSpec> {
    let mut f = Fields::of(node, "workspace", lines, errors)?;
    let name = f.req("name", errors, name_rule(tilewire_shmem::NAME_MAX));
    let size = f.opt("size", errors, byte_size);
    let pages = f.or("pages", PageKind::Normal, errors, one_of(PAGES));
    let mode = f.or("mode", Mode::Threads, errors, one_of(MODES));
    let size_given = f.key_loc("size").is_some();
    f.finish(&["name", "size", "pages", "mode"], errors);
    let pages = pages?;
    if size_given && size.is_none() {
        return None;
    }
    Some(WorkspaceSpec {
        name: name?.0,
        size: size
            .as_ref()
            .map_or(0, |(s, _)| s.next_multiple_of(pages.size())),
        pages,
        mode: mode?,
        size_at: size.map(|(_, at)| at),
    })
}

fn parse_link(node: &Node, lines: &Lines, errors: &mut Vec<TopoError>) -> Option<LinkSpec> {
    let mut f = Fields::of(node, "link", lines, errors)?;
    let name = f.req("name", errors, name_rule(LINK_NAME_MAX));
    if let Some((n, _)) = &name {
        f.what = format!("link {n:?}");
    }
    let depth_at = f.key_loc("depth").unwrap_or(f.at);
    let depth = f.req(
        "depth",
        errors,
        pow2_in(
            tilewire_tile::link::mcache::DEPTH_MIN,
            tilewire_tile::link::mcache::DEPTH_MAX,
        ),
    );
    let mtu_at = f.key_loc("mtu").unwrap_or(f.at);
    let mtu = f.or(
        "mtu",
        2048,
        errors,
        int_in(1, tilewire_tile::link::dcache::MTU_MAX as u64),
    );
    let reliable = f.or("reliable", true, errors, boolean);
    let at = f.at;
    f.finish(&["name", "depth", "mtu", "reliable"], errors);
    Some(LinkSpec {
        name: name?.0,
        depth: depth?.0,
        mtu: mtu? as usize,
        reliable: reliable?,
        line: at.line,
        at,
        mtu_at,
        depth_at,
    })
}

/// Parses `[[tile]]` `node`, the one of index `index`.
fn parse_tile(
    node: &Node,
    index: usize,
    lines: &Lines,
    errors: &mut Vec<TopoError>,
) -> Option<TileSpec> {
    let mut f = Fields::of(node, "tile", lines, errors)?;
    let before = errors.len();
    let name = f.req("name", errors, name_rule(TILE_NAME_MAX));
    if let Some((n, _)) = &name {
        f.what = format!("tile {n:?}");
    }
    let kind = f.req("kind", errors, string);
    let cpu = f.opt("cpu", errors, int_in(0, 1 << 20));
    let group = f.opt("group", errors, name_rule(GROUP_NAME_MAX));
    let count = f.opt("count", errors, int_in(1, 64));
    let share_by = f.opt("share", errors, one_of(SHARES));
    let restart = f.opt("restart", errors, one_of(RESTARTS));
    let idle = f.opt("idle", errors, one_of(IDLES)).map(|(p, _)| p);
    let links = |f: &mut Fields<'_>, errors: &mut Vec<TopoError>, key| {
        let key_at = f.key_loc(key).unwrap_or(f.at);
        let list = f.or(key, Vec::new(), errors, array_of(string, lines));
        list.map(|l| (l, key_at))
    };
    let inputs = links(&mut f, errors, "inputs");
    let outputs = links(&mut f, errors, "outputs");
    if let Some(at) = f.key_loc("netns") {
        f.take("netns");
        errors.push(at.err(format!(
            "{}: `netns` belongs in the tile's params, for the kinds that have a socket \
             (net-xdp, net-udp)",
            f.what
        )));
    }
    let params_node = f.take("params").map(|(_, n)| n);
    let header = f.at;
    f.finish(
        &[
            "name", "kind", "cpu", "group", "count", "share", "restart", "idle", "inputs",
            "outputs", "params",
        ],
        errors,
    );
    let (kind, kind_at) = kind?;
    let empty = Node::new(node.span.clone(), Value::Table(Vec::new()));
    let path = vec![
        Seg::Key("tile".into()),
        Seg::Item(index),
        Seg::Key("params".into()),
    ];
    let params = match params_node {
        Some(n) => RawParams::new(n.clone(), Some(path), lines.loc(n.span.start)),
        None => RawParams::new(empty, None, header),
    };
    let param_locs = match &params.node().value {
        Value::Table(entries) => entries
            .iter()
            .map(|(k, v)| (k.get_ref().clone(), lines.loc(v.span.start)))
            .collect(),
        _ => Vec::new(),
    };
    if errors.len() != before {
        return None;
    }
    let (inputs, inputs_key) = inputs?;
    let (outputs, outputs_key) = outputs?;
    Some(TileSpec {
        name: name?.0,
        kind,
        params,
        cpu: cpu.as_ref().map(|(c, _)| *c as usize),
        group: group.as_ref().map(|(g, _)| g.clone()),
        restart: restart.map_or(Restart::Never, |(r, _)| r),
        share: count.as_ref().map(|(n, _)| ShareSpec {
            index: 0,
            of: *n as u32,
            by: share_by.as_ref().map_or(ShareBy::RoundRobin, |(b, _)| *b),
        }),
        idle,
        inputs: inputs.iter().map(|(l, _)| l.clone()).collect(),
        outputs: outputs.iter().map(|(l, _)| l.clone()).collect(),
        line: header.line,
        at: TileLocs {
            header,
            kind: kind_at,
            cpu: cpu.map_or(header, |(_, at)| at),
            group: group.map_or(header, |(_, at)| at),
            restart: restart.map_or(header, |(_, at)| at),
            count: count.map_or(header, |(_, at)| at),
            inputs: inputs.iter().map(|(_, at)| *at).collect(),
            outputs: outputs.iter().map(|(_, at)| *at).collect(),
            inputs_key,
            outputs_key,
            params: param_locs,
            share_by: share_by.map(|(b, _)| b),
        },
    })
}
