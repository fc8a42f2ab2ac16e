//! No input panics, and every error names the table and a line.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddrV4;
use std::path::PathBuf;

use proptest::prelude::*;
use serde::Deserialize;

use super::places::{Limits, Link, Params};
use super::types::{even, Hex, Mode, Rate};
use super::*;

// ---- 4. no panics ---------------------------------------------------------

/// Mixed field types, for the proptests.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Mixed {
    #[serde(default)]
    size: u8,
    rate: Option<f32>,
    name: Option<String>,
    mode: Option<Mode>,
    r: Option<Rate>,
    #[serde(default)]
    ports: Vec<u16>,
    limits: Option<Limits>,
    #[serde(default)]
    map: BTreeMap<u16, i64>,
    addr: Option<SocketAddrV4>,
    pair: Option<(u8, char)>,
    any: Option<toml::Value>,
    unit: Option<()>,
    path: Option<PathBuf>,
    hex: Option<Hex>,
    links: Option<Vec<Link>>,
    #[serde(default, deserialize_with = "even")]
    even: u32,
}

/// The same fields, lax and flattened.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
struct Flat {
    #[serde(default)]
    size: u8,
    #[serde(flatten)]
    inner: Option<Limits>,
    #[serde(flatten)]
    rest: HashMap<String, toml::Value>,
}

/// Keys the generated tables use: mostly the fields of [`Mixed`].
const KEYS: &[&str] = &[
    "size",
    "rate",
    "name",
    "mode",
    "r",
    "ports",
    "limits",
    "map",
    "addr",
    "pair",
    "any",
    "unit",
    "path",
    "hex",
    "links",
    "even",
    "max",
    "min",
    "fixed",
    "range",
    "burst",
    "every_ms",
    "unlimited",
    "peer",
    "80",
    "x",
];

/// Strings the generated values use, some of them meaningful.
const STRS: &[&str] = &[
    "",
    "fast",
    "very-slow",
    "unlimited",
    "fixed",
    "1.2.3.4:80",
    "1.2.3",
    "0xff",
    "0x",
    "a",
    "ab",
    "/tmp",
    "é",
];

/// Any node, with arbitrary spans.
fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        prop::sample::select(STRS).prop_map(|s| Value::Str(s.into())),
        ".{0,4}".prop_map(Value::Str),
        any::<i64>().prop_map(Value::Int),
        (-70_000i64..70_000).prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        any::<bool>().prop_map(Value::Bool),
    ];
    let value = leaf.prop_recursive(4, 48, 6, |inner| {
        let node = (inner, 0usize..400).prop_map(|(value, at)| Node::new(at..at + 1, value));
        prop_oneof![
            prop::collection::vec(node.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), node), 0..6).prop_map(Value::Table),
        ]
    });
    (value, 0usize..400).prop_map(|(value, at)| Node::new(at..at + 1, value))
}

/// A key, mostly a known one.
fn key() -> impl Strategy<Value = Key> {
    (
        prop_oneof![
            4 => prop::sample::select(KEYS).prop_map(String::from),
            1 => "[a-z0-9]{0,3}",
        ],
        0usize..400,
    )
        .prop_map(|(k, at)| Key::new(at..at + 1, k))
}

/// A table of known keys, as a topology would hold.
fn table() -> impl Strategy<Value = Node> {
    (prop::collection::vec((key(), node()), 0..10), 0usize..400)
        .prop_map(|(entries, at)| Node::new(at..at + 1, Value::Table(entries)))
}

/// Reads a table into some type, giving the error if any.
type Check = fn(ParamsAt<'_>) -> Option<TopoError>;

/// The table at `path` of `text` (read into `root`) into each of the test
/// types: only `Ok` or `Err`, and errors name the table and have a line.
fn try_all(text: &str, lines: &Lines, node: &Node, path: Option<&[Seg]>) {
    let at = Loc { line: 1, col: 1 };
    let checks: [Check; 4] = [
        |p| from_params::<Mixed>(p).err(),
        |p| from_params::<Flat>(p).err(),
        |p| from_params::<Params>(p).err(),
        |p| from_params::<toml::Value>(p).err(),
    ];
    for check in checks {
        let p = ParamsAt {
            text,
            lines,
            path,
            node,
            what: WHAT,
            at,
        };
        if let Some(e) = check(p) {
            assert!(e.line >= 1 && e.col >= 1, "{e:?}");
            assert!(e.reason.starts_with(WHAT), "{e:?}");
        }
    }
}

/// Each top-level table of `text` through [`try_all`].
fn try_text(text: &str) {
    let lines = Lines::new(text);
    if let Ok(root) = read(text, &lines) {
        for (k, n) in &root {
            let path = [Seg::Key(k.get_ref().clone())];
            try_all(text, &lines, n, Some(&path));
        }
        let empty = Node::new(0..0, Value::Table(Vec::new()));
        try_all(text, &lines, &empty, None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_toml_text_never_panics(node in prop_oneof![table(), node()]) {
        // Back to text (dropping what TOML cannot write) and read again, for
        // real spans.
        let mut root = toml::Table::new();
        root.insert("params".into(), to_toml(&node));
        try_text(&toml::to_string(&root).unwrap_or_default());
    }

    #[test]
    fn random_text_never_panics(text in "(\\[params\\]\n)?([a-z]{1,3} = (-?[0-9]{1,6}|\"[a-z.:0-9]{0,6}\"|\\[[0-9, ]{0,6}\\]|\\{ ?[a-z]{0,2} ?=? ?[0-9]{0,2} ?\\}|true)\n){0,6}") {
        try_text(&text);
    }
}

/// `node` as a `toml::Value`, to write it out as text.
fn to_toml(node: &Node) -> toml::Value {
    match &node.value {
        Value::Str(s) => toml::Value::String(s.clone()),
        Value::Int(i) => toml::Value::Integer(*i),
        Value::Float(f) => toml::Value::Float(*f),
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Array(a) => toml::Value::Array(a.iter().map(to_toml).collect()),
        Value::Table(t) => toml::Value::Table(
            t.iter()
                .map(|(k, v)| (k.get_ref().clone(), to_toml(v)))
                .collect(),
        ),
    }
}
