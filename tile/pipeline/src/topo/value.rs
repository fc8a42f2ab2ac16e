//! The topology file as a tree of values that remember where they were
//! written, and a reader that turns tables of it into typed fields while
//! collecting every problem it meets.
//!
//! Deserializing straight into typed structs would stop at the first bad
//! field; a person fixing a topology wants every mistake at once, each with
//! its line. So the TOML text is first read (by the `toml_edit` crate, with
//! the places its document keeps for every value and key) into [`Node`]s, which only
//! fails on a syntax error, and [`Fields`] then takes the tables apart one
//! key at a time, recording a [`TopoError`] for each missing, unknown or
//! mistyped field and carrying on.

use core::ops::Range;

use super::error::TopoError;

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
    /// A table made by a dotted key or a deeper header, whose `span` is
    /// that of the first thing in it.
    pub(crate) implicit: bool,
}

impl Node {
    /// `value`, placed at `span`.
    pub(crate) fn new(span: Range<usize>, value: Value) -> Node {
        Node {
            span,
            value,
            implicit: false,
        }
    }
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

/// Gives a node, and the keys and items inside it, that came without a
/// place the place of the first thing in it that has one: an implicit
/// table (made by a dotted key or a `[a.b.c]` header) is "where its first
/// key is written", an unplaced key where its value is. (What has nothing
/// placed inside stays nowhere, and `Lines` reports it at the end of the
/// text.)
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

/// A node made of what the document holds; the place of a date or time,
/// which a topology cannot hold, is the error.
type Made = Result<Node, Range<usize>>;

/// The node of a value of the document.
fn of_value(value: &toml_edit::Value) -> Made {
    use toml_edit::Value as V;
    let span = value.span().unwrap_or(NOWHERE);
    let value = match value {
        V::String(s) => Value::Str(s.value().clone()),
        V::Integer(i) => Value::Int(*i.value()),
        V::Float(f) => Value::Float(*f.value()),
        V::Boolean(b) => Value::Bool(*b.value()),
        V::Datetime(_) => return Err(span),
        V::Array(a) => Value::Array(a.iter().map(of_value).collect::<Result<_, _>>()?),
        V::InlineTable(t) => {
            let mut entries = Vec::with_capacity(t.len());
            for (name, _) in t.iter() {
                let (key, v) = t.get_key_value(name).expect("a key the table holds");
                entries.push((of_key(key), of_item(v)?));
            }
            Value::Table(entries)
        }
    };
    Ok(place_implicit(Node::new(span, value)))
}

/// The node of a table of the document (`[header]` or implicit).
fn of_table(table: &toml_edit::Table) -> Made {
    let mut entries = Vec::with_capacity(table.len());
    for (name, _) in table.iter() {
        let (key, item) = table.get_key_value(name).expect("a key the table holds");
        entries.push((of_key(key), of_item(item)?));
    }
    Ok(place_implicit(Node {
        span: table.span().unwrap_or(NOWHERE),
        value: Value::Table(entries),
        implicit: table.span().is_none(),
    }))
}

/// The node of an item of the document.
fn of_item(item: &toml_edit::Item) -> Made {
    match item {
        toml_edit::Item::None => Ok(Node::new(NOWHERE, Value::Table(Vec::new()))),
        toml_edit::Item::Value(v) => of_value(v),
        toml_edit::Item::Table(t) => of_table(t),
        toml_edit::Item::ArrayOfTables(a) => Ok(place_implicit(Node::new(
            a.span().unwrap_or(NOWHERE),
            Value::Array(a.iter().map(of_table).collect::<Result<_, _>>()?),
        ))),
    }
}

/// The key of the document, and its place when it has one.
fn of_key(key: &toml_edit::Key) -> Key {
    Key::new(key.span().unwrap_or(NOWHERE), key.get().to_owned())
}

/// Reads `text` into its top-level table.
///
/// # Errors
/// The TOML syntax error, with its line; a date or time, at its place.
pub(crate) fn read(text: &str, lines: &Lines) -> Result<Vec<(Key, Node)>, TopoError> {
    let doc = toml_edit::ImDocument::parse(text).map_err(|e| {
        let loc = lines.loc(e.span().map_or(0, |s| s.start));
        // The crate's own message repeats the line and quotes the source;
        // keep only what it says is wrong.
        let msg = e.message().trim().replace('\n', "; ");
        loc.err(format!("TOML syntax: {msg}"))
    })?;
    match of_table(doc.as_table()) {
        Ok(Node {
            value: Value::Table(entries),
            ..
        }) => Ok(entries),
        Ok(_) => Ok(Vec::new()),
        Err(span) => Err(lines
            .loc(span.start)
            .err("dates and times have no meaning in a topology file")),
    }
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
