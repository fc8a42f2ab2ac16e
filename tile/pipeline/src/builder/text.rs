//! The topology text a [`PipelineBuilder`](super::PipelineBuilder) makes,
//! and what each of its lines says, so an error found in the text is told
//! by the tile (or link) and key it concerns rather than by a line the
//! builder's user never wrote.

use toml::Value;

use crate::topo::{TopoError, TopoErrors};

/// A table of the text: its header, its owner's name, its keys in order.
#[derive(Debug, Clone)]
pub(super) struct Table {
    /// `[workspace]`, `[[link]]`, `[[tile]]`.
    pub(super) header: &'static str,
    /// `workspace`, `link`, `tile`: how an error names the table.
    pub(super) what: &'static str,
    pub(super) keys: Vec<(String, Value)>,
    /// A tile's `[tile.params]`, after its keys.
    pub(super) params: Vec<(String, Value)>,
}

impl Table {
    pub(super) fn new(header: &'static str, what: &'static str, name: &str) -> Table {
        Table {
            header,
            what,
            keys: vec![("name".into(), Value::String(name.into()))],
            params: Vec::new(),
        }
    }

    /// Sets `key` (again: the last value given counts).
    pub(super) fn set(&mut self, key: &str, value: Value) {
        set(&mut self.keys, key, value);
    }

    /// Sets parameter `key`.
    pub(super) fn set_param(&mut self, key: &str, value: Value) {
        set(&mut self.params, key, value);
    }

    /// Its name, as given to its `new`.
    fn name(&self) -> &str {
        self.keys[0].1.as_str().unwrap_or_default()
    }
}

fn set(keys: &mut Vec<(String, Value)>, key: &str, value: Value) {
    match keys.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => keys.push((key.into(), value)),
    }
}

/// What one line of the text says: the table it belongs to and its key.
#[derive(Debug, Clone)]
struct Place {
    /// `tile "filter"`.
    table: String,
    /// `` `cpu` ``, `` param `min_len` ``; `None` for a header.
    key: Option<String>,
}

/// The text of `tables`, and the place of each of its lines.
#[derive(Debug, Clone)]
pub(super) struct Text {
    pub(super) text: String,
    places: Vec<Place>,
}

impl Text {
    pub(super) fn new<'t>(tables: impl IntoIterator<Item = &'t Table>) -> Text {
        let mut out = Text {
            text: String::new(),
            places: Vec::new(),
        };
        for (i, t) in tables.into_iter().enumerate() {
            let table = format!("{} {:?}", t.what, t.name());
            if i > 0 {
                out.line(String::new(), &table, None);
            }
            out.line(t.header.into(), &table, None);
            for (k, v) in &t.keys {
                out.line(format!("{} = {v}", key(k)), &table, Some(format!("`{k}`")));
            }
            if !t.params.is_empty() {
                out.line("[tile.params]".into(), &table, Some("`params`".into()));
                for (k, v) in &t.params {
                    let at = Some(format!("param `{k}`"));
                    out.line(format!("{} = {v}", key(k)), &table, at);
                }
            }
        }
        out
    }

    fn line(&mut self, line: String, table: &str, key: Option<String>) {
        self.text.push_str(&line);
        self.text.push('\n');
        self.places.push(Place {
            table: table.into(),
            key,
        });
    }

    /// `errors`, found in this text, told by the table and key each
    /// concerns instead of by its line: the reason alone where it names
    /// the table already (`tile "filter" params: ...`), else after the
    /// place (`` workspace "w", `size`: ... ``).
    pub(super) fn name_places(&self, errors: TopoErrors) -> TopoErrors {
        errors.told_by(|e: &TopoError| {
            let Some(place) = e.line.checked_sub(1).and_then(|l| self.places.get(l)) else {
                return e.reason.clone();
            };
            let name = place.table.split_once(' ').map_or("", |(_, n)| n);
            if e.reason.contains(name) {
                return e.reason.clone();
            }
            match &place.key {
                Some(k) => format!("{}, {k}: {}", place.table, e.reason),
                None => format!("{}: {}", place.table, e.reason),
            }
        })
    }
}

/// `k` as a TOML key: bare where it can be, else quoted.
fn key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        k.to_owned()
    } else {
        Value::String(k.into()).to_string()
    }
}
