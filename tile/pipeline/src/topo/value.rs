//! The topology file as a tree of values that remember where they were
//! written, and a reader that turns tables of it into typed fields while
//! collecting every problem it meets.
//!
//! Deserializing straight into typed structs would stop at the first bad
//! field; a person fixing a topology wants every mistake at once, each with
//! its line. So the TOML text is first read (by the `toml` crate, with
//! [`toml::Spanned`] on every value and key) into [`Node`]s, which only
//! fails on a syntax error, and [`Fields`] then takes the tables apart one
//! key at a time, recording a [`TopoError`] for each missing, unknown or
//! mistyped field and carrying on.

use core::ops::Range;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::TopoError;

/// Where each line of the source starts, to turn byte offsets into
/// 1-based line and column numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lines {
    starts: Vec<usize>,
    len: usize,
}

/// A 1-based line and column in the topology text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Loc {
    pub(crate) line: usize,
    pub(crate) col: usize,
}

impl Loc {
    /// An error at this place.
    pub(crate) fn err(self, reason: impl Into<String>) -> TopoError {
        TopoError {
            line: self.line,
            col: self.col,
            reason: reason.into(),
        }
    }
}

impl Lines {
    pub(crate) fn new(text: &str) -> Lines {
        let starts = core::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines {
            starts,
            len: text.len(),
        }
    }

    /// The line and column (counted in characters would need the text;
    /// bytes are what editors show for the ASCII a topology holds) of
    /// byte `offset`.
    pub(crate) fn loc(&self, offset: usize) -> Loc {
        // A place not known is the end of the text.
        let offset = offset.min(self.len);
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        Loc {
            line,
            col: offset - self.starts[line - 1] + 1,
        }
    }
}

/// A TOML value and the bytes of the source it came from. A table's span
/// starts at its header (`[workspace]`, `[[tile]]`), an inline table's at
/// its `{`.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) span: Range<usize>,
    pub(crate) value: Value,
}

/// A key of a table and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    span: Range<usize>,
    name: String,
}

impl Key {
    /// Key `name`, written at `span`.
    pub(crate) fn new(span: Range<usize>, name: String) -> Key {
        Key { span, name }
    }

    /// Where it is written.
    pub(crate) fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// The key.
    pub(crate) fn get_ref(&self) -> &String {
        &self.name
    }
}

// The names by which the toml crate hands out a value's or key's place: a
// struct of these three fields (see `toml::Spanned`). It does so only
// where it knows the place; a table made implicitly by a dotted key or a
// `[a.b.c]` header, and its key, come without one, as a plain value. So a
// node or key is read as "spanned, or plain", and a plain one takes its
// place from what it holds (see `place_implicit`).
const SPANNED: &str = "$__serde_spanned_private_Spanned";
const SPAN_START: &str = "$__serde_spanned_private_start";
const SPAN_END: &str = "$__serde_spanned_private_end";
const SPAN_VALUE: &str = "$__serde_spanned_private_value";
const SPAN_FIELDS: &[&str] = &[SPAN_START, SPAN_END, SPAN_VALUE];

/// A place not known (yet).
const NOWHERE: Range<usize> = usize::MAX..usize::MAX;

/// The kinds of TOML value a topology uses (dates and times are refused
/// when the text is read).
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Array(Vec<Node>),
    Table(Vec<(Key, Node)>),
}

impl Value {
    /// "a string", "an integer", ...: for "found ..." in messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Value::Str(s) => format!("the string {s:?}"),
            Value::Int(i) => format!("the integer {i}"),
            Value::Float(f) => format!("the float {f}"),
            Value::Bool(b) => format!("{b}"),
            Value::Array(_) => "an array".into(),
            Value::Table(_) => "a table".into(),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_struct(
            SPANNED,
            SPAN_FIELDS,
            SpannedVisitor(|span, value| Node { span, value }),
        )
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        d.deserialize_struct(SPANNED, SPAN_FIELDS, KeyVisitor)
    }
}

/// Reads a node: the toml crate's spanned struct, or a plain value with
/// no place.
struct SpannedVisitor<F>(F);

impl<'de, F: FnOnce(Range<usize>, Value) -> Node> Visitor<'de> for SpannedVisitor<F> {
    type Value = Node;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a TOML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok((self.0)(NOWHERE, Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        ValueVisitor.visit_i64(v).map(|v| (self.0)(NOWHERE, v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        ValueVisitor.visit_u64(v).map(|v| (self.0)(NOWHERE, v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok((self.0)(NOWHERE, Value::Float(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok((self.0)(NOWHERE, Value::Str(v.into())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok((self.0)(NOWHERE, Value::Str(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Node, A::Error> {
        let v = ValueVisitor.visit_seq(seq)?;
        Ok(place_implicit((self.0)(NOWHERE, v)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let Some(first) = map.next_key::<Key>()? else {
            return Ok((self.0)(NOWHERE, Value::Table(Vec::new())));
        };
        if first.name != SPAN_START {
            // A plain table: `first` is its first key.
            let mut entries = vec![(first, map.next_value::<Node>()?)];
            while let Some(key) = map.next_key::<Key>()? {
                let value = map.next_value::<Node>()?;
                entries.push((key, value));
            }
            return Ok(place_implicit((self.0)(NOWHERE, Value::Table(entries))));
        }
        let start: usize = map.next_value()?;
        let (mut end, mut value) = (start, None);
        while let Some(key) = map.next_key::<Key>()? {
            match key.name.as_str() {
                SPAN_END => end = map.next_value()?,
                SPAN_VALUE => value = Some(map.next_value_seed(ValueSeed)?),
                _ => return Err(de::Error::custom("a malformed spanned value")),
            }
        }
        let value = value.ok_or_else(|| de::Error::custom("a spanned value without its value"))?;
        Ok(place_implicit((self.0)(start..end, value)))
    }
}

/// Reads a key: spanned, or a plain string with no place.
struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a TOML key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(Key::new(NOWHERE, v.into()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Key, E> {
        Ok(Key::new(NOWHERE, v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Key, A::Error> {
        let (mut start, mut end, mut name) = (0usize, 0usize, None);
        while let Some(k) = map.next_key::<String>()? {
            match k.as_str() {
                SPAN_START => start = map.next_value()?,
                SPAN_END => end = map.next_value()?,
                SPAN_VALUE => name = Some(map.next_value::<String>()?),
                _ => return Err(de::Error::custom("a malformed spanned key")),
            }
        }
        let name = name.ok_or_else(|| de::Error::custom("a spanned key without its name"))?;
        Ok(Key::new(start..end, name))
    }
}

/// The value inside a spanned struct.
struct ValueSeed;

impl<'de> de::DeserializeSeed<'de> for ValueSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
}

/// Gives a node, and the keys and items inside it, that came without a
/// place the place of the first thing in it that has one: an implicit
/// table is "where its first key is written", an unplaced key where its
/// value is. (What has nothing placed inside stays nowhere, and `Lines`
/// reports it at the end of the text.)
fn place_implicit(mut node: Node) -> Node {
    match &mut node.value {
        Value::Table(entries) => {
            for (k, v) in entries.iter_mut() {
                if k.span == NOWHERE {
                    k.span = v.span.clone();
                }
            }
            if node.span == NOWHERE {
                if let Some(first) = entries
                    .iter()
                    .flat_map(|(k, v)| [k.span.clone(), v.span.clone()])
                    .filter(|s| *s != NOWHERE)
                    .min_by_key(|s| s.start)
                {
                    node.span = first;
                }
            }
        }
        Value::Array(items) if node.span == NOWHERE => {
            if let Some(first) = items.iter().find(|i| i.span != NOWHERE) {
                node.span = first.span.clone();
            }
        }
        _ => {}
    }
    node
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a TOML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.into()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Key>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        let placed = place_implicit(Node {
            span: NOWHERE,
            value: Value::Table(entries),
        });
        Ok(placed.value)
    }
}

/// Reads `text` into its top-level table.
///
/// # Errors
/// The TOML syntax error, with its line.
pub(crate) fn read(text: &str, lines: &Lines) -> Result<Vec<(Key, Node)>, TopoError> {
    let root: Result<Vec<(Key, Node)>, toml::de::Error> =
        toml::from_str::<Node>(text).map(|n| match n.value {
            Value::Table(entries) => entries,
            _ => Vec::new(),
        });
    root.map_err(|e| {
        let loc = lines.loc(e.span().map_or(0, |s| s.start));
        // The crate's own message repeats the line and quotes the source;
        // keep only its last line, which says what is wrong.
        let msg = e.message().trim().replace('\n', "; ");
        let reason = if msg.contains("$__toml_private_datetime") {
            "dates and times have no meaning in a topology file".to_owned()
        } else {
            format!("TOML syntax: {msg}")
        };
        loc.err(reason)
    })
}

/// A table being taken apart: each key read is marked, and
/// [`Fields::finish`] reports the rest as unknown.
#[derive(Debug)]
pub(crate) struct Fields<'t> {
    /// How messages name the table: `workspace`, `link "rx"`, ...
    pub(crate) what: String,
    /// The table's place (its header).
    pub(crate) at: Loc,
    entries: &'t [(Key, Node)],
    used: Vec<bool>,
    lines: &'t Lines,
}

/// A field's value and where it was written.
pub(crate) type At<T> = (T, Loc);

impl<'t> Fields<'t> {
    /// The fields of `node`, or `None` (with an error) if it is not a table.
    pub(crate) fn of(
        node: &'t Node,
        what: impl Into<String>,
        lines: &'t Lines,
        errors: &mut Vec<TopoError>,
    ) -> Option<Fields<'t>> {
        let what = what.into();
        let at = lines.loc(node.span.start);
        match &node.value {
            Value::Table(entries) => Some(Fields {
                what,
                at,
                used: vec![false; entries.len()],
                entries,
                lines,
            }),
            other => {
                errors.push(at.err(format!(
                    "{what} must be a table, found {}",
                    other.describe()
                )));
                None
            }
        }
    }

    /// Where a node is.
    pub(crate) fn loc(&self, node: &Node) -> Loc {
        self.lines.loc(node.span.start)
    }

    /// The raw node of `key`, marked as read.
    pub(crate) fn take(&mut self, key: &str) -> Option<(&'t Key, &'t Node)> {
        let i = self.entries.iter().position(|(k, _)| k.get_ref() == key)?;
        self.used[i] = true;
        let (k, n) = &self.entries[i];
        Some((k, n))
    }

    /// Where `key` is written, if it is.
    pub(crate) fn key_loc(&self, key: &str) -> Option<Loc> {
        self.entries
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(k, _)| self.lines.loc(k.span().start))
    }

    /// `key` converted by `conv`, or `None` if it is absent or bad (an
    /// error is recorded for a bad one).
    pub(crate) fn opt<T>(
        &mut self,
        key: &str,
        errors: &mut Vec<TopoError>,
        conv: impl FnOnce(&Node) -> Result<T, String>,
    ) -> Option<At<T>> {
        let (_, node) = self.take(key)?;
        let at = self.loc(node);
        match conv(node) {
            Ok(v) => Some((v, at)),
            Err(why) => {
                errors.push(at.err(format!("{}: `{key}` {why}", self.what)));
                None
            }
        }
    }

    /// As [`Fields::opt`], and an error if `key` is absent.
    pub(crate) fn req<T>(
        &mut self,
        key: &str,
        errors: &mut Vec<TopoError>,
        conv: impl FnOnce(&Node) -> Result<T, String>,
    ) -> Option<At<T>> {
        if self.entries.iter().all(|(k, _)| k.get_ref() != key) {
            let what = &self.what;
            errors.push(
                self.at
                    .err(format!("{what}: missing required field `{key}`")),
            );
            return None;
        }
        self.opt(key, errors, conv)
    }

    /// `key` or `default` when it is absent. A bad value gives `None`.
    pub(crate) fn or<T>(
        &mut self,
        key: &str,
        default: T,
        errors: &mut Vec<TopoError>,
        conv: impl FnOnce(&Node) -> Result<T, String>,
    ) -> Option<T> {
        match self.take(key) {
            None => Some(default),
            Some(_) => self.opt(key, errors, conv).map(|(v, _)| v),
        }
    }

    /// Records an error for every key not read, naming the known ones.
    pub(crate) fn finish(self, known: &[&str], errors: &mut Vec<TopoError>) {
        for ((key, _), used) in self.entries.iter().zip(&self.used) {
            if !used {
                let at = self.lines.loc(key.span().start);
                let expected = if known.is_empty() {
                    "it takes none".to_owned()
                } else {
                    format!("expected one of: {}", known.join(", "))
                };
                errors.push(at.err(format!(
                    "{}: unknown field `{}` ({expected})",
                    self.what,
                    key.get_ref()
                )));
            }
        }
    }
}

/// A string.
pub(crate) fn string(node: &Node) -> Result<String, String> {
    match &node.value {
        Value::Str(s) => Ok(s.clone()),
        other => Err(format!("must be a string, found {}", other.describe())),
    }
}

/// A boolean.
pub(crate) fn boolean(node: &Node) -> Result<bool, String> {
    match &node.value {
        Value::Bool(b) => Ok(*b),
        other => Err(format!("must be true or false, found {}", other.describe())),
    }
}

/// An integer in `lo..=hi`.
pub(crate) fn int_in(lo: u64, hi: u64) -> impl Fn(&Node) -> Result<u64, String> {
    move |node| match &node.value {
        Value::Int(i) if *i >= 0 && (lo..=hi).contains(&(*i as u64)) => Ok(*i as u64),
        Value::Int(i) => Err(format!("must be in {lo}..={hi}, found {i}")),
        other => Err(format!("must be an integer, found {}", other.describe())),
    }
}

/// A power of two in `lo..=hi`.
pub(crate) fn pow2_in(lo: u64, hi: u64) -> impl Fn(&Node) -> Result<u64, String> {
    move |node| {
        let v = int_in(lo, hi)(node)?;
        if v.is_power_of_two() {
            Ok(v)
        } else {
            Err(format!("must be a power of two in {lo}..={hi}, found {v}"))
        }
    }
}

/// One of `choices`, given as strings.
pub(crate) fn one_of<'c, T: Copy>(
    choices: &'c [(&'c str, T)],
) -> impl Fn(&Node) -> Result<T, String> + 'c {
    move |node| {
        let names = || {
            choices
                .iter()
                .map(|(n, _)| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &node.value {
            Value::Str(s) => choices
                .iter()
                .find(|(n, _)| n == s)
                .map(|(_, v)| *v)
                .ok_or_else(|| format!("must be one of {}, found {s:?}", names())),
            other => Err(format!(
                "must be one of {}, found {}",
                names(),
                other.describe()
            )),
        }
    }
}

/// An array whose items `item` converts; each item keeps its place.
pub(crate) fn array_of<'l, T>(
    item: impl Fn(&Node) -> Result<T, String> + 'l,
    lines: &'l Lines,
) -> impl Fn(&Node) -> Result<Vec<At<T>>, String> + 'l {
    move |node| match &node.value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| {
                item(n)
                    .map(|v| (v, lines.loc(n.span.start)))
                    .map_err(|why| format!("item {i} {why}"))
            })
            .collect(),
        other => Err(format!("must be an array, found {}", other.describe())),
    }
}
