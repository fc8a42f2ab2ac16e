//! Tests of [`from_params`]: each kind of type, where each kind of error
//! points and what it says, and (proptest) that no input panics.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{from_params, ParamsAt, Seg};
use crate::topo::value::{read, Key, Lines, Loc, Node, Value};
use crate::topo::TopoError;

/// How the tests name the table.
const WHAT: &str = "tile \"t\" params";

/// The top-level table `params` of `text`, with where it is.
fn params_node(text: &str) -> (Node, Lines, Loc) {
    let lines = Lines::new(text);
    let root = read(text, &lines).expect("test TOML is valid");
    let node = root
        .into_iter()
        .find(|(k, _)| k.get_ref() == "params")
        .map(|(_, n)| n)
        .expect("test TOML has [params]");
    let at = lines.loc(node.span.start);
    (node, lines, at)
}

/// `text`'s `[params]` table as a `T`.
fn de<T: DeserializeOwned>(text: &str) -> Result<T, TopoError> {
    let (node, lines, at) = params_node(text);
    from_params(ParamsAt {
        text,
        lines: &lines,
        path: Some(&[Seg::Key("params".into())]),
        node: &node,
        what: WHAT,
        at,
    })
}

/// `text`'s `[params]` table as a `T`, which must fail: (line, col, reason).
fn fail<T: DeserializeOwned + core::fmt::Debug>(text: &str) -> (usize, usize, String) {
    match de::<T>(text) {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => (e.line, e.col, e.reason),
    }
}

/// `T` with one field `v`, to test one type at a time.
#[derive(Debug, Deserialize, PartialEq)]
struct One<T> {
    v: T,
}

/// `v = <value>` under `[params]` as a `T`.
fn one<T: DeserializeOwned>(value: &str) -> Result<T, TopoError> {
    de::<One<T>>(&format!("[params]\nv = {value}\n")).map(|o| o.v)
}

/// As [`one`], failing: (line, col, reason).
fn one_fail<T: DeserializeOwned + core::fmt::Debug>(value: &str) -> (usize, usize, String) {
    fail::<One<T>>(&format!("[params]\nv = {value}\n"))
}

/// A test that deserializes a value and fails: (line, col, reason).
type Failing = fn(&str) -> (usize, usize, String);

mod fuzz;
mod places;
mod types;
