//! Helpers shared by the topology tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use tilewire_pipeline::topo::{Machine, TopoErrors, TopologySpec};
use tilewire_pipeline::{Registry, Topology};

/// Four cpus, so the checks do not depend on the test host.
pub(crate) fn machine() -> Machine {
    Machine::with_cpus(4)
}

/// Parses and checks `text`; the errors as (line, reason).
pub(crate) fn problems(text: &str) -> Vec<(usize, String)> {
    let res = bind(text, &machine());
    match res {
        Ok(_) => Vec::new(),
        Err(e) => e
            .errors()
            .iter()
            .map(|e| (e.line, e.reason.clone()))
            .collect(),
    }
}

/// Asserts that `text` has a problem on `line` whose reason contains every
/// one of `needles`.
#[track_caller]
pub(crate) fn assert_problem(text: &str, line: usize, needles: &[&str]) {
    let found = problems(text);
    assert!(
        found
            .iter()
            .any(|(l, r)| *l == line && needles.iter().all(|n| r.contains(n))),
        "expected a problem on line {line} containing {needles:?}; found {found:#?}"
    );
}

#[track_caller]
pub(crate) fn parse_ok(text: &str) -> Topology {
    match bind(text, &machine()) {
        Ok(t) => t,
        Err(e) => panic!("parse or check failed:\n{e}"),
    }
}

/// Parses `text` and binds it to the built-in kinds, checked against
/// `machine`.
pub(crate) fn bind(text: &str, machine: &Machine) -> Result<Topology, TopoErrors> {
    Registry::with_builtins().bind(TopologySpec::parse(text)?, machine)
}

/// Reads the file at `path` and [`bind`]s it, the errors naming the file.
pub(crate) fn load(path: &Path, machine: &Machine) -> Result<Topology, TopoErrors> {
    let text = std::fs::read_to_string(path).unwrap();
    bind(&text, machine).map_err(|e| e.in_file(path))
}

pub(crate) const WS: &str = "[workspace]\nname = \"t\"\nsize = \"64MiB\"\n";

/// A valid two-tile pipeline to build bad cases from: `WS` is lines 1-3.
pub(crate) fn gen_sink(extra: &str) -> String {
    format!(
        "{WS}
[[link]]
name = \"a\"
depth = 64

[[tile]]
name = \"gen\"
kind = \"gen\"
outputs = [\"a\"]

[[tile]]
name = \"sink\"
kind = \"sink\"
inputs = [\"a\"]
{extra}"
    )
}

/// A directory removed at the end, also when the test fails.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "tw-topo-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every example topology in tests/topos, loaded (so parsed and checked
/// against a two-cpu machine), by file name.
pub(crate) fn examples() -> Vec<(PathBuf, Topology)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/topos");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 3, "{paths:?}");
    paths
        .into_iter()
        .map(|p| {
            let t = load(&p, &Machine::with_cpus(2)).unwrap_or_else(|e| panic!("{e}"));
            (p, t)
        })
        .collect()
}
