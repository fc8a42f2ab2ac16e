//! Where each kind of error points, and what it says, in a tile's params.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::*;

// ---- 2. locations and 3. messages ----------------------------------------

/// Parameters as a tile kind might declare them.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Params {
    size: u32,
    #[serde(default)]
    rate: Option<f64>,
    path: PathBuf,
    #[serde(default)]
    ports: Vec<u16>,
    #[serde(default)]
    limits: Option<Limits>,
    #[serde(default)]
    links: Vec<Link>,
}

/// A nested table of [`Params`].
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Limits {
    max: u8,
    #[serde(default)]
    min: u8,
}

/// An item of an array of tables.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
pub(super) struct Link {
    name: String,
    #[serde(default)]
    peer: Option<Peer>,
}

/// Nested in an item.
#[derive(Debug, Deserialize)]
pub(super) struct Peer {
    name: String,
}

/// A topology with one tile whose params are `params` (TOML lines after
/// the `[tile.params]` header, or no table at all when `None`).
fn tile(params: Option<&str>) -> String {
    let mut text = String::from("[workspace]\nname = \"w\"\n\n[[tile]]\nname = \"t\"\n");
    if let Some(p) = params {
        text.push_str("\n[tile.params]\n");
        text.push_str(p);
    }
    text
}

/// The tile's params as a `T`, the way tilewire would call [`from_params`].
fn tile_params<T: DeserializeOwned>(text: &str) -> Result<T, TopoError> {
    let lines = Lines::new(text);
    let root = read(text, &lines).unwrap();
    let (_, tiles) = root.iter().find(|(k, _)| k.get_ref() == "tile").unwrap();
    let Value::Array(tiles) = &tiles.value else {
        panic!("[[tile]] is an array")
    };
    let Value::Table(entries) = &tiles[0].value else {
        panic!("a tile is a table")
    };
    let empty = Node::new(0..0, Value::Table(Vec::new()));
    let path = [
        Seg::Key("tile".into()),
        Seg::Item(0),
        Seg::Key("params".into()),
    ];
    let (node, at, path) = match entries.iter().find(|(k, _)| k.get_ref() == "params") {
        Some((_, n)) => (n, lines.loc(n.span.start), Some(&path[..])),
        None => (&empty, lines.loc(tiles[0].span.start), None),
    };
    from_params(ParamsAt {
        text,
        lines: &lines,
        path,
        node,
        what: WHAT,
        at,
    })
}

/// [`tile_params`] as [`Params`], failing: (line, col, reason).
fn tile_fail(params: Option<&str>) -> (usize, usize, String) {
    let e = tile_params::<Params>(&tile(params)).unwrap_err();
    (e.line, e.col, e.reason)
}

#[test]
fn good_params_read() {
    let p: Params = tile_params(&tile(Some(
        "size = 3\npath = \"/x\"\nports = [1, 2]\nlinks = [{ name = \"a\", peer = { name = \"b\" } }]\n\
         [tile.params.limits]\nmax = 9\n",
    )))
    .unwrap();
    assert_eq!((p.size, p.rate, p.ports.len()), (3, None, 2));
    assert_eq!(p.limits.unwrap().max, 9);
    assert_eq!(p.links[0].peer.as_ref().unwrap().name, "b");
}

#[test]
fn wrong_type_points_at_the_value() {
    assert_eq!(
        tile_fail(Some("size = \"x\"\npath = \"/\"\n")),
        (
            8,
            8,
            format!("{WHAT}: `size` must be an integer, found the string \"x\"")
        )
    );
    assert_eq!(
        tile_fail(Some("size = 1\npath = \"/\"\nrate = \"fast\"\n")),
        (
            10,
            8,
            format!("{WHAT}: `rate` must be a number, found the string \"fast\"")
        )
    );
}

#[test]
fn unknown_field_points_at_the_key() {
    assert_eq!(
        tile_fail(Some("size = 1\npath = \"/\"\n  colour = 3\n")),
        (
            10,
            3,
            format!(
                "{WHAT}: unknown field `colour` (expected one of: size, rate, path, ports, \
                 limits, links)"
            )
        )
    );
    assert_eq!(
        tile_fail(Some(
            "size = 1\npath = \"/\"\nlimits = { max = 1, top = 2 }\n"
        )),
        (
            10,
            21,
            format!("{WHAT}: unknown field `limits.top` (expected one of: max, min)")
        )
    );
}

#[test]
fn missing_field_points_at_the_table() {
    // At the [tile.params] header.
    assert_eq!(
        tile_fail(Some("size = 1\n")),
        (7, 1, format!("{WHAT}: missing required field `path`"))
    );
    // No params table: at the [[tile]] header.
    assert_eq!(
        tile_fail(None),
        (4, 1, format!("{WHAT}: missing required field `size`"))
    );
    // A nested table: at its own header, or its `{`.
    assert_eq!(
        tile_fail(Some(
            "size = 1\npath = \"/\"\n\n[tile.params.limits]\nmin = 1\n"
        )),
        (
            11,
            1,
            format!("{WHAT}: missing required field `limits.max`")
        )
    );
    assert_eq!(
        tile_fail(Some("size = 1\npath = \"/\"\nlimits = { min = 1 }\n")),
        (
            10,
            10,
            format!("{WHAT}: missing required field `limits.max`")
        )
    );
}

#[test]
fn array_items_are_pointed_at() {
    assert_eq!(
        tile_fail(Some("size = 1\npath = \"/\"\nports = [1, 2, 70000]\n")),
        (
            10,
            16,
            format!("{WHAT}: `ports` item 2 must be in 0..=65535, found 70000")
        )
    );
    assert_eq!(
        tile_fail(Some("size = 1\npath = \"/\"\nports = [1,\n  \"x\"]\n")),
        (
            11,
            3,
            format!("{WHAT}: `ports` item 1 must be an integer, found the string \"x\"")
        )
    );
    assert_eq!(
        tile_fail(Some(
            "size = 1\npath = \"/\"\nlinks = [{ name = \"a\" }, { name = \"b\", peer = { name = 3 } }]\n"
        )),
        (
            10,
            56,
            format!("{WHAT}: `links` item 1 `peer.name` must be a string, found the integer 3")
        )
    );
    assert_eq!(
        tile_fail(Some(
            "size = 1\npath = \"/\"\nlinks = [{ name = \"a\" }, { nam = \"b\" }]\n"
        )),
        (
            10,
            26,
            format!("{WHAT}: missing required field `links` item 1 `name`")
        )
    );
}

#[test]
fn params_that_are_not_a_table() {
    let text = "[[tile]]\nname = \"t\"\nparams = 3\n";
    let e = tile_params::<Params>(text).unwrap_err();
    assert_eq!(
        (e.line, e.col, e.reason),
        (
            3,
            10,
            format!("{WHAT} must be a table, found the integer 3")
        )
    );
}
