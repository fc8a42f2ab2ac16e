//! A tile kind's parameters, read with serde from the topology's document,
//! and the errors told the way the rest of the topology's are: with the
//! line and column of the mistake, the path to it and the words of
//! [`Fields`](super::value::Fields):
//! `` tile "verify" params: `limits.max` must be in 0..=255, found 300 ``.
//!
//! The `toml_edit` crate reads the text into a document that keeps the
//! place of every value, key and table header, and its serde deserializer
//! puts that place on each error it returns. So the parameters are the
//! kind's own [`Deserialize`](serde::Deserialize) type, read by that
//! deserializer from the document, reaching the tile's `params` table by
//! its path (a [`DeserializeSeed`] that skips the rest). From an error this
//! module takes the place (and from it, in the [`Node`] tree read from the
//! same document, the path of keys and items that leads there) and serde's
//! message, which it words as the topology's messages are:
//!
//! - a wrong type or a value out of range is placed at the value;
//! - an unknown field at its key;
//! - a missing field at the table's header (or its `{`, or for a table
//!   made by dotted keys its first key; the `[[tile]]` header when the tile
//!   has no `params`).
//!
//! TOML has no null, so an `Option` that is present is `Some`. Enums are a
//! string for a unit variant (`"fast"`) or a table of one key for the
//! others (`{ fixed = 3 }`). A table's keys are strings (a map keyed by
//! integers cannot be read), and a field of a `#[serde(flatten)]` struct is
//! buffered by serde before it is typed, so an error in one points at the
//! enclosing table and cannot name the key.

use core::fmt::Write as _;
use core::marker::PhantomData;
use core::ops::Range;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, IntoDeserializer as _};

use super::error::TopoError;
use super::value::{Lines, Loc, Node, Value};

/// One step of the path to a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A table's key.
    Key(String),
    /// An array's item, from 0.
    Item(usize),
}

/// A tile's `params` as written: the table (an empty one when the tile
/// has none), the path from the document's root to it, and where to point
/// when an error has no place of its own.
#[derive(Debug, Clone)]
pub(crate) struct RawParams {
    node: Node,
    path: Option<Vec<Seg>>,
    at: Loc,
}

impl RawParams {
    /// The table `node` at `path` (`None`: the tile has no `params`),
    /// whose errors with no place go to `at`.
    pub(crate) fn new(node: Node, path: Option<Vec<Seg>>, at: Loc) -> RawParams {
        RawParams { node, path, at }
    }

    /// The table.
    pub(crate) fn node(&self) -> &Node {
        &self.node
    }

    /// Where they are, to read them from `text` (whose lines are `lines`);
    /// `what` names them in messages.
    pub(crate) fn at<'a>(&'a self, text: &'a str, lines: &'a Lines, what: &'a str) -> ParamsAt<'a> {
        ParamsAt {
            text,
            lines,
            path: self.path.as_deref(),
            node: &self.node,
            what,
            at: self.at,
        }
    }
}

/// Equal when the same is written at the same places.
impl PartialEq for RawParams {
    fn eq(&self, other: &RawParams) -> bool {
        self.path == other.path
            && self.at == other.at
            && format!("{:?}", self.node) == format!("{:?}", other.node)
    }
}

impl Eq for RawParams {}

/// Where a table of parameters is: the document's text, the path from its
/// root to the table (`None`: the tile has no `params`, read as an empty
/// table), and the table as a [`Node`] (to name the places of errors).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ParamsAt<'a> {
    /// The topology's text.
    pub(crate) text: &'a str,
    /// Its lines.
    pub(crate) lines: &'a Lines,
    /// The path to the table, if the tile has one.
    pub(crate) path: Option<&'a [Seg]>,
    /// The table.
    pub(crate) node: &'a Node,
    /// How messages name the table, e.g. `tile "verify" params`.
    pub(crate) what: &'a str,
    /// Where to point when no place is known: the table's header, or the
    /// `[[tile]]` header when there is no table.
    pub(crate) at: Loc,
}

/// Reads the table at `p` as a `T`.
///
/// # Errors
/// The first problem met, at its line and column.
pub(crate) fn from_params<T: DeserializeOwned>(p: ParamsAt<'_>) -> Result<T, TopoError> {
    let read = match p.path {
        Some(path) => toml_edit::de::Deserializer::parse(p.text)
            .and_then(|doc| Descend::<T>::new(path).deserialize(doc)),
        None => {
            let empty = toml_edit::Value::from(toml_edit::InlineTable::new());
            T::deserialize(empty.into_deserializer()).map(Some)
        }
    };
    match read {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(p.at.err(format!("{}: not found in the document", p.what))),
        Err(e) => Err(explain(&e, p)),
    }
}

/// Goes down `path` in the document and reads what is there as a `T`
/// (`None`: nothing is there).
struct Descend<'p, T> {
    path: &'p [Seg],
    _t: PhantomData<T>,
}

impl<'p, T> Descend<'p, T> {
    fn new(path: &'p [Seg]) -> Self {
        Descend {
            path,
            _t: PhantomData,
        }
    }
}

impl<'de, T: de::Deserialize<'de>> DeserializeSeed<'de> for Descend<'_, T> {
    type Value = Option<T>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        match self.path.first() {
            None => T::deserialize(d).map(Some),
            Some(Seg::Key(_)) => d.deserialize_map(self),
            Some(Seg::Item(_)) => d.deserialize_seq(self),
        }
    }
}

impl<'de, T: de::Deserialize<'de>> de::Visitor<'de> for Descend<'_, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a table or an array")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        let Some((Seg::Key(want), rest)) = self.path.split_first() else {
            return Ok(None);
        };
        while let Some(key) = map.next_key::<String>()? {
            if key == *want {
                return map.next_value_seed(Descend::<T>::new(rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(None)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Option<T>, A::Error> {
        let Some((Seg::Item(want), rest)) = self.path.split_first() else {
            return Ok(None);
        };
        for _ in 0..*want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(None);
            }
        }
        Ok(seq.next_element_seed(Descend::<T>::new(rest))?.flatten())
    }
}

/// Where in the table an error's place is.
#[derive(Debug)]
enum Spot<'a> {
    /// A value (or the table itself, with an empty path).
    Value { path: Vec<Seg>, node: &'a Node },
    /// A key, in the table at `path`, and its value (errors in a table
    /// made by dotted keys or deeper headers, which has no place of its
    /// own, are placed at its key).
    Key {
        path: Vec<Seg>,
        name: String,
        value: &'a Node,
    },
}

/// What `span` is in `node` (reached by `path`).
fn locate<'a>(node: &'a Node, span: &Range<usize>, path: &mut Vec<Seg>) -> Option<Spot<'a>> {
    if !node.implicit && node.span == *span {
        return Some(Spot::Value {
            path: path.clone(),
            node,
        });
    }
    match &node.value {
        Value::Table(entries) => {
            for (k, v) in entries {
                if k.span() == *span {
                    return Some(Spot::Key {
                        path: path.clone(),
                        name: k.get_ref().clone(),
                        value: v,
                    });
                }
                path.push(Seg::Key(k.get_ref().clone()));
                let found = locate(v, span, path);
                path.pop();
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(Seg::Item(i));
                let found = locate(v, span, path);
                path.pop();
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        _ => None,
    }
}

/// The topology error for serde's error `e` in the table at `p`.
fn explain(e: &toml_edit::de::Error, p: ParamsAt<'_>) -> TopoError {
    let span = e.span();
    let at = span.as_ref().map_or(p.at, |s| p.lines.loc(s.start));
    let spot = span.and_then(|s| locate(p.node, &s, &mut Vec::new()));
    at.err(message(e.message(), spot, p.what))
}

/// The message: what is wrong, said of the path it is at.
fn message(msg: &str, spot: Option<Spot<'_>>, what: &str) -> String {
    let msg = msg.trim();
    // The path the message speaks of, and the node there if known.
    let (mut path, node, key): (Vec<Seg>, Option<&Node>, Option<String>) = match spot {
        None => (Vec::new(), None, None),
        Some(Spot::Value { path, node }) => (path, Some(node), None),
        Some(Spot::Key { path, name, value }) => (path, Some(value), Some(name)),
    };
    let found_node = |why: &str| node.map_or(why.to_owned(), |n| n.value.describe());
    // An error at a key is the key's own (an unknown field, a variant
    // name) unless the key's value is a table with no place of its own.
    let key_value_implicit = key.is_some() && node.is_some_and(|n| n.implicit);
    if let Some(field) = strip(msg, "missing field `", "`") {
        if let Some(k) = &key {
            // At a key: in the table that is its value.
            path.push(Seg::Key(k.clone()));
        }
        path.push(Seg::Key(field.to_owned()));
        return format!("{what}: missing required field {}", render(&path));
    }
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (field, known) = rest.split_once('`').unwrap_or((rest, ""));
        let names = backticked(known);
        let expected = if names.is_empty() {
            "it takes none".to_owned()
        } else {
            format!("expected one of: {}", names.join(", "))
        };
        path.push(Seg::Key(field.to_owned()));
        return format!("{what}: unknown field {} ({expected})", render(&path));
    }
    if key_value_implicit {
        if let Some(k) = &key {
            path.push(Seg::Key(k.clone()));
        }
    }
    let in_key = key.is_some() && !key_value_implicit;
    let pred = if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let (variant, known) = rest.split_once('`').unwrap_or((rest, ""));
        Some(format!(
            "must be one of {}, found {variant:?}",
            quoted(&backticked(known))
        ))
    } else if let Some(rest) = msg
        .strip_prefix("invalid type: ")
        .or_else(|| msg.strip_prefix("invalid value: "))
    {
        let (unexp, exp) = rest.rsplit_once(", expected ").unwrap_or((rest, "?"));
        Some(mistyped(unexp, exp, node.filter(|_| !in_key)))
    } else if let Some(rest) = msg.strip_prefix("invalid length ") {
        let (len, exp) = rest.split_once(", expected ").unwrap_or((rest, "?"));
        let len: usize = len.parse().unwrap_or(0);
        let want = exp
            .split(|c: char| !c.is_ascii_digit())
            .find(|d| !d.is_empty())
            .and_then(|d| d.parse::<usize>().ok());
        Some(match want {
            Some(n) => format!(
                "must be an array of {}, found an array of {}",
                items(n),
                items(len)
            ),
            None => format!("must be {exp}, found an array of {}", items(len)),
        })
    } else if msg == "wanted string or table" {
        Some(format!(
            "must be a string (a variant's name) or a table of one key (a variant and its \
             value), found {}",
            found_node("a value")
        ))
    } else if let Some(rest) = msg.strip_prefix("wanted exactly 1 element, ") {
        let n = match node.map(|n| &n.value) {
            Some(Value::Table(t)) => t.len(),
            _ => usize::from(rest.starts_with("more")) * 2,
        };
        Some(format!(
            "must be a table of one key (a variant and its value), found a table of {n} keys"
        ))
    } else if msg.starts_with("expected empty table")
        || msg.starts_with("expected empty array")
        || msg.starts_with("expected table, found")
    {
        // A variant that takes no value, given one: the path ends at the
        // variant's key.
        let variant = match path.pop() {
            Some(Seg::Key(k)) => k,
            Some(other) => {
                path.push(other);
                String::new()
            }
            None => String::new(),
        };
        Some(format!(
            "must be the string {variant:?} (the variant takes no value), found a table"
        ))
    } else if let Some(field) = strip(msg, "duplicate field `", "`") {
        return custom(what, &path, &format!("field `{field}` is given twice"));
    } else {
        None
    };
    match pred {
        Some(p) if in_key && !msg.starts_with("unknown variant") => {
            predicate(what, &path, &format!("has a key that {p}"))
        }
        Some(p) => predicate(what, &path, &p),
        None if msg.starts_with("must ") => predicate(what, &path, msg),
        None => custom(what, &path, msg),
    }
}

/// `what: path: msg`, or `what: msg` for the table itself.
fn custom(what: &str, path: &[Seg], msg: &str) -> String {
    if path.is_empty() {
        format!("{what}: {msg}")
    } else {
        format!("{what}: {}: {msg}", render(path))
    }
}

/// `s` between `prefix` and `suffix`, if it is so written.
fn strip<'s>(s: &'s str, prefix: &str, suffix: &str) -> Option<&'s str> {
    s.strip_prefix(prefix)?.strip_suffix(suffix)
}

/// The names serde writes between backticks: `` `a`, `b` or `c` ``.
fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// "must be ..., found ..." for serde's `invalid type` or `invalid value`
/// of `unexp` where `exp` was expected, `node` being the value if known.
fn mistyped(unexp: &str, exp: &str, node: Option<&Node>) -> String {
    let found = match node.map(|n| &n.value) {
        Some(v @ (Value::Int(_) | Value::Float(_) | Value::Bool(_))) => v.describe(),
        Some(v @ Value::Str(s)) if unexp == format!("string {s:?}") => v.describe(),
        _ => found(unexp),
    };
    if let Some((lo, hi)) = int_range(exp) {
        return match unexp
            .strip_prefix("integer `")
            .and_then(|r| r.strip_suffix('`'))
        {
            Some(i) if lo == "0" && hi.len() > 10 && i.starts_with('-') => {
                format!("must not be negative, found {i}")
            }
            Some(i) => format!("must be in {lo}..={hi}, found {i}"),
            None => format!("must be an integer, found {found}"),
        };
    }
    if exp == "newtype variant" || exp == "tuple variant" || exp == "struct variant" {
        if let Some(Value::Str(s)) = node.map(|n| &n.value) {
            return format!(
                "must be written {{ {s} = ... }} (the variant takes a value), found the string \
                 {s:?}"
            );
        }
    }
    format!("must be {}, found {found}", expected(exp))
}

/// The range of the integer type serde names `name`, if it is one.
fn int_range(name: &str) -> Option<(String, String)> {
    Some(match name {
        "u8" => ("0".into(), u8::MAX.to_string()),
        "u16" => ("0".into(), u16::MAX.to_string()),
        "u32" => ("0".into(), u32::MAX.to_string()),
        "u64" | "usize" => ("0".into(), u64::MAX.to_string()),
        "u128" => ("0".into(), u128::MAX.to_string()),
        "i8" => (i8::MIN.to_string(), i8::MAX.to_string()),
        "i16" => (i16::MIN.to_string(), i16::MAX.to_string()),
        "i32" => (i32::MIN.to_string(), i32::MAX.to_string()),
        "i64" | "isize" => (i64::MIN.to_string(), i64::MAX.to_string()),
        "i128" => (i128::MIN.to_string(), i128::MAX.to_string()),
        _ => return None,
    })
}

/// serde's name for what a visitor wanted, in the words of a topology:
/// `u8` is "an integer in 0..=255", "a sequence" is "an array".
fn expected(text: &str) -> String {
    if let Some((lo, hi)) = int_range(text) {
        return format!("an integer in {lo}..={hi}");
    }
    match text {
        "a boolean" => "true or false".into(),
        "a sequence" => "an array".into(),
        "a map" => "a table".into(),
        "f32" | "f64" => "a number".into(),
        "a character" | "a char" => "a single character".into(),
        "a borrowed string" | "path string" => "a string".into(),
        // std's types read from strings: `Ipv4Addr`, `SocketAddrV4`, ...
        t if t.ends_with(" address") => "a string".into(),
        t if t == "unit" || t.starts_with("unit struct ") => "an empty table {}".into(),
        t if t.starts_with("struct ") => "a table".into(),
        t if t.starts_with("enum ") => "a variant's name".into(),
        t if t.starts_with("tuple") || t.starts_with("an array") => "an array".into(),
        t => t.into(),
    }
}

/// What serde says it found, in the words of [`Value::describe`].
fn found(unexp: &str) -> String {
    let ticked = |prefix: &str| {
        unexp
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('`'))
            .and_then(|r| r.strip_suffix('`'))
            .map(str::to_owned)
    };
    if let Some(b) = ticked("boolean ") {
        return b;
    }
    if let Some(i) = ticked("integer ") {
        return format!("the integer {i}");
    }
    if let Some(f) = ticked("floating point ") {
        return format!("the float {}", f.strip_suffix(".0").unwrap_or(&f));
    }
    if let Some(c) = ticked("character ") {
        return format!("the string {c:?}");
    }
    if let Some(s) = unexp.strip_prefix("string ") {
        return format!("the string {s}");
    }
    match unexp {
        "sequence" => "an array".into(),
        "map" => "a table".into(),
        "unit value" => "an empty value".into(),
        "unit variant" => "a variant name".into(),
        "newtype variant" | "tuple variant" | "struct variant" => "a variant with a value".into(),
        "byte array" => "bytes".into(),
        other => other.into(),
    }
}

/// `what: path pred`, or `what pred` for the table itself.
fn predicate(what: &str, path: &[Seg], pred: &str) -> String {
    if path.is_empty() {
        format!("{what} {pred}")
    } else {
        format!("{what}: {} {pred}", render(path))
    }
}

/// `"a", "b"`, for the choices of an enum.
fn quoted(names: &[&str]) -> String {
    if names.is_empty() {
        return "(no choices)".into();
    }
    let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    names.join(", ")
}

/// `1 item`, `3 items`.
fn items(n: usize) -> String {
    if n == 1 {
        "1 item".into()
    } else {
        format!("{n} items")
    }
}

/// A path as messages show it: `` `limits.max` ``, `` `ports` item 2 ``,
/// `` `links` item 0 `peer.name` ``.
fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    let mut open = false;
    for seg in path {
        match seg {
            Seg::Key(k) if open => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push('`');
                out.push_str(k);
                open = true;
            }
            Seg::Item(i) => {
                if open {
                    out.push('`');
                    open = false;
                }
                if !out.is_empty() {
                    out.push(' ');
                }
                let _ = write!(out, "item {i}");
            }
        }
    }
    if open {
        out.push('`');
    }
    out
}

#[cfg(test)]
#[path = "de_tests/mod.rs"]
mod tests;
