//! A serde [`Deserializer`] over a [`Node`], so that a tile kind's
//! parameters can be any [`serde::de::DeserializeOwned`] type and still be
//! reported the way the rest of the topology is: with the line and column
//! of the mistake.
//!
//! Why not `toml::from_str` into the type, or `Node` back into a
//! `toml::Value`? Both lose the places. The topology is already read into
//! [`Node`]s that remember their spans, so this module walks that tree
//! directly: serde's derived code asks for a `u16` or a struct, and the
//! walker answers from the node it stands on. When something is wrong the
//! error knows *what* (serde tells it) but not *where*; the error therefore
//! carries an optional [`Loc`] and a path, and each layer it passes through
//! on the way out adds what it knows and the error still lacks:
//!
//! - a table's [`MapAccess`] names the key, and points at the key itself
//!   when the key is the problem (an unknown field) or at its value when
//!   the value is (wrong type, out of range, a `FromStr` failure);
//! - an array's [`SeqAccess`] points at the item and adds `item N`;
//! - [`from_node`] falls back to the place it was given, which is where a
//!   missing field is reported: the table's header.
//!
//! Messages use the wording of [`Fields`](super::value::Fields):
//! `` tile "verify" params: `limits.max` must be in 0..=255, found 300 ``.
//!
//! TOML has no null, so an `Option` that is present is `Some`; a unit is an
//! empty table or array. Enums are a string for a unit variant (`"fast"`)
//! or a table of one key for the others (`{ fixed = 3 }`).
//!
//! A field of a `#[serde(flatten)]` struct works, but serde buffers those
//! fields before typing them, so an error in one points at the enclosing
//! table and cannot name the key.

use core::fmt::{self, Display, Write as _};

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, Expected, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};

use super::value::{Key, Lines, Loc, Node, Value};
use super::TopoError;

/// Deserializes `node` (a table: a tile's `params`) into `T`. `what` names
/// the table in messages, e.g. `tile "verify" params`. `at` is where to point
/// when the error concerns the whole table (a missing field): the table's
/// header, or the `[[tile]]` header when the params table is absent (then
/// node is an empty table).
///
/// # Errors
/// The first problem met, at its line and column.
pub(crate) fn from_node<T: de::DeserializeOwned>(
    node: &Node,
    lines: &Lines,
    what: &str,
    at: Loc,
) -> Result<T, TopoError> {
    from_node_borrowed(node, lines, what, at)
}

/// As [`from_node`], for a type that may borrow strings (`&str`) from the
/// node.
///
/// # Errors
/// The first problem met, at its line and column.
pub(crate) fn from_node_borrowed<'a, T: de::Deserialize<'a>>(
    node: &'a Node,
    lines: &'a Lines,
    what: &str,
    at: Loc,
) -> Result<T, TopoError> {
    T::deserialize(NodeDe { node, lines }).map_err(|e| e.into_topo(what, at))
}

/// A deserialization error on its way out: what is wrong, and as much of
/// where as the layers it has passed through knew.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Error {
    /// Where to point, once known.
    loc: Option<Loc>,
    /// Keys and items from the problem outwards (innermost first).
    path: Vec<Seg>,
    /// What is wrong.
    reason: Reason,
}

/// One step of the path to a value.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    /// A table's key.
    Key(String),
    /// An array's item, from 0.
    Item(usize),
}

/// What is wrong, kept apart from the path until the message is written.
#[derive(Debug, Clone, PartialEq)]
enum Reason {
    /// What the value must be and what it is: `must be a string, found 3`.
    Pred(String),
    /// Any other message (from `de::Error::custom`).
    Custom(String),
    /// A field that must be given is not.
    Missing(String),
    /// A key the table does not take, and (`expected one of: a, b`) those
    /// it does.
    Unknown { field: String, expected: String },
}

impl Error {
    /// An error saying what the value must be.
    fn pred(text: impl Into<String>) -> Error {
        Error::of(Reason::Pred(text.into()))
    }

    /// An error of `reason`, nowhere yet.
    fn of(reason: Reason) -> Error {
        Error {
            loc: None,
            path: Vec::new(),
            reason,
        }
    }

    /// Points at `loc` unless a deeper layer already pointed somewhere.
    fn at(mut self, loc: Loc) -> Error {
        self.loc.get_or_insert(loc);
        self
    }

    /// Adds the step by which the value was reached.
    fn within(mut self, seg: Seg) -> Error {
        self.path.push(seg);
        self
    }

    /// An error met while reading the key `key` (written at `loc`) rather
    /// than its value: says so, as the path does not name the key.
    fn in_key(mut self, key: &str, loc: Loc) -> Error {
        self.reason = match self.reason {
            Reason::Pred(p) => Reason::Pred(format!("has a key that {p}")),
            Reason::Custom(m) => Reason::Custom(format!("key {key:?}: {m}")),
            other => other,
        };
        self.at(loc)
    }

    /// The message, naming the table `what`.
    fn message(&self, what: &str) -> String {
        let path: Vec<Seg> = self.path.iter().rev().cloned().collect();
        let with = |field: &str| {
            // The key's layer adds no step for errors in the key itself.
            let mut p = path.clone();
            p.push(Seg::Key(field.to_owned()));
            render(&p)
        };
        match &self.reason {
            Reason::Pred(p) => predicate(what, &path, p),
            Reason::Custom(m) if m.starts_with("must ") => predicate(what, &path, m),
            Reason::Custom(m) if path.is_empty() => format!("{what}: {m}"),
            Reason::Custom(m) => format!("{what}: {}: {m}", render(&path)),
            Reason::Missing(f) => format!("{what}: missing required field {}", with(f)),
            Reason::Unknown { field, expected } => {
                format!("{what}: unknown field {} ({expected})", with(field))
            }
        }
    }

    /// The topology error, at `at` when no layer knew better.
    fn into_topo(self, what: &str, at: Loc) -> TopoError {
        self.loc.unwrap_or(at).err(self.message(what))
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

impl Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message("value"))
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: Display>(msg: T) -> Error {
        Error::of(Reason::Custom(msg.to_string()))
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Error {
        Error::pred(format!("must be {}, found {}", expected(exp), found(unexp)))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Error {
        Error::invalid_type(unexp, exp)
    }

    fn invalid_length(len: usize, exp: &dyn Expected) -> Error {
        Error::pred(format!("must be {}, found {}", expected(exp), items(len)))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Error {
        Error::pred(format!(
            "must be one of {}, found {variant:?}",
            quoted(expected)
        ))
    }

    fn unknown_field(field: &str, known: &'static [&'static str]) -> Error {
        let expected = if known.is_empty() {
            "it takes none".to_owned()
        } else {
            format!("expected one of: {}", known.join(", "))
        };
        Error::of(Reason::Unknown {
            field: field.to_owned(),
            expected,
        })
    }

    fn missing_field(field: &'static str) -> Error {
        Error::of(Reason::Missing(field.to_owned()))
    }

    fn duplicate_field(field: &'static str) -> Error {
        Error::custom(format_args!("field `{field}` is given twice"))
    }
}

/// serde's name for what a visitor wanted, in the words of a topology:
/// `u8` is "an integer in 0..=255", "a sequence" is "an array".
fn expected(exp: &dyn Expected) -> String {
    /// The range of the integer type named `name`, if it is one.
    fn range(name: &str) -> Option<String> {
        Some(match name {
            "u8" => format!("0..={}", u8::MAX),
            "u16" => format!("0..={}", u16::MAX),
            "u32" => format!("0..={}", u32::MAX),
            "u64" | "usize" => format!("0..={}", u64::MAX),
            "u128" => format!("0..={}", u128::MAX),
            "i8" => format!("{}..={}", i8::MIN, i8::MAX),
            "i16" => format!("{}..={}", i16::MIN, i16::MAX),
            "i32" => format!("{}..={}", i32::MIN, i32::MAX),
            "i64" | "isize" => format!("{}..={}", i64::MIN, i64::MAX),
            "i128" => format!("{}..={}", i128::MIN, i128::MAX),
            _ => return None,
        })
    }
    let text = exp.to_string();
    if let Some(r) = range(&text) {
        return format!("an integer in {r}");
    }
    match text.as_str() {
        "a boolean" => "true or false".into(),
        "a sequence" => "an array".into(),
        "a map" => "a table".into(),
        "f32" | "f64" => "a number".into(),
        "a character" | "a char" => "a single character".into(),
        "a borrowed string" => "a string".into(),
        "unit" => "an empty table".into(),
        t if t.starts_with("struct ") => "a table".into(),
        _ => text,
    }
}

/// What serde found, in the words of [`Value::describe`].
fn found(unexp: Unexpected<'_>) -> String {
    match unexp {
        Unexpected::Bool(b) => format!("{b}"),
        Unexpected::Unsigned(u) => format!("the integer {u}"),
        Unexpected::Signed(i) => format!("the integer {i}"),
        Unexpected::Float(f) => format!("the float {f}"),
        Unexpected::Char(c) => format!("the string {:?}", c.to_string()),
        Unexpected::Str(s) => format!("the string {s:?}"),
        Unexpected::Bytes(_) => "bytes".into(),
        Unexpected::Unit => "an empty value".into(),
        Unexpected::Seq => "an array".into(),
        Unexpected::Map => "a table".into(),
        Unexpected::UnitVariant => "a variant name".into(),
        Unexpected::NewtypeVariant | Unexpected::TupleVariant | Unexpected::StructVariant => {
            "a variant with a value".into()
        }
        other => other.to_string(),
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

/// Deserializes from one node of the tree.
#[derive(Debug, Clone, Copy)]
struct NodeDe<'a> {
    node: &'a Node,
    lines: &'a Lines,
}

impl<'a> NodeDe<'a> {
    /// A type error: the node is not `what`.
    fn wrong(&self, what: &str) -> Error {
        Error::pred(format!(
            "must be {what}, found {}",
            self.node.value.describe()
        ))
    }

    /// The node as an integer.
    fn int(&self) -> Result<i64, Error> {
        match self.node.value {
            Value::Int(i) => Ok(i),
            _ => Err(self.wrong("an integer")),
        }
    }

    /// The node as a number; integers are taken as floats.
    fn float(&self) -> Result<f64, Error> {
        match self.node.value {
            Value::Float(f) => Ok(f),
            // Exact up to 2^53, the nearest float beyond.
            Value::Int(i) => Ok(i as f64),
            _ => Err(self.wrong("a number")),
        }
    }
}

/// `deserialize_u8` and the like: the node as an integer in the type's
/// range, else a message with that range.
macro_rules! ints {
    ($($method:ident $ty:ty => $visit:ident),* $(,)?) => {$(
        fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
            let i = self.int()?;
            match <$ty>::try_from(i) {
                Ok(v) => visitor.$visit(v),
                Err(_) => Err(Error::pred(format!(
                    "must be in {}..={}, found {i}",
                    <$ty>::MIN,
                    <$ty>::MAX
                ))),
            }
        }
    )*};
}

impl<'a> Deserializer<'a> for NodeDe<'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Str(s) => visitor.visit_borrowed_str(s),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Array(_) => self.deserialize_seq(visitor),
            Value::Table(_) => self.deserialize_map(visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node.value {
            Value::Bool(b) => visitor.visit_bool(b),
            _ => Err(self.wrong("true or false")),
        }
    }

    ints! {
        deserialize_i8 i8 => visit_i8,
        deserialize_i16 i16 => visit_i16,
        deserialize_i32 i32 => visit_i32,
        deserialize_i64 i64 => visit_i64,
        deserialize_i128 i128 => visit_i128,
        deserialize_u8 u8 => visit_u8,
        deserialize_u16 u16 => visit_u16,
        deserialize_u32 u32 => visit_u32,
        deserialize_u64 u64 => visit_u64,
        deserialize_u128 u128 => visit_u128,
    }

    fn deserialize_f32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        let f = self.float()?;
        // Rounds to the nearest f32; only a finite value too large for
        // one is refused (inf and nan stay what they are).
        let g = f as f32;
        if f.is_finite() && g.is_infinite() {
            return Err(Error::pred(format!(
                "must be a number within ±{:e}, found {}",
                f32::MAX,
                self.node.value.describe()
            )));
        }
        visitor.visit_f32(g)
    }

    fn deserialize_f64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f64(self.float()?)
    }

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Str(s) => StrDe(s).deserialize_char(visitor),
            _ => Err(self.wrong("a single character")),
        }
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Str(s) => visitor.visit_borrowed_str(s),
            _ => Err(self.wrong("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Str(s) => visitor.visit_borrowed_bytes(s.as_bytes()),
            Value::Array(_) => self.deserialize_seq(visitor),
            _ => Err(self.wrong("a string or an array of bytes")),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        // TOML has no null: a value that is there is `Some`.
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Table(t) if t.is_empty() => visitor.visit_unit(),
            Value::Array(a) if a.is_empty() => visitor.visit_unit(),
            _ => Err(self.wrong("an empty table {}")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        let Value::Array(list) = &self.node.value else {
            return Err(self.wrong("an array"));
        };
        let mut seq = SeqAcc {
            items: list.iter().enumerate(),
            lines: self.lines,
        };
        let value = visitor.visit_seq(&mut seq)?;
        let left = seq.items.len();
        if left > 0 {
            return Err(Error::pred(format!(
                "must have at most {}, found {}",
                items(list.len() - left),
                items(list.len())
            )));
        }
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'a>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Array(a) if a.len() != len => Err(Error::pred(format!(
                "must be an array of {}, found an array of {}",
                items(len),
                items(a.len())
            ))),
            _ => self.deserialize_seq(visitor),
        }
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        let Value::Table(entries) = &self.node.value else {
            return Err(self.wrong("a table"));
        };
        visitor.visit_map(MapAcc {
            entries: entries.iter(),
            value: None,
            lines: self.lines,
        })
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Str(s) => visitor.visit_enum(NameEnum(s)),
            Value::Table(t) if t.len() == 1 => visitor.visit_enum(TableEnum {
                key: &t[0].0,
                value: &t[0].1,
                lines: self.lines,
            }),
            Value::Table(t) => Err(Error::pred(format!(
                "must be one of {} (a table of one key for a variant with a value), \
                 found a table of {} keys",
                quoted(variants),
                t.len()
            ))),
            _ => Err(self.wrong(&format!("one of {}", quoted(variants)))),
        }
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

/// The entries of a table, one key and value at a time.
#[derive(Debug)]
struct MapAcc<'a> {
    entries: core::slice::Iter<'a, (Key, Node)>,
    /// The entry whose key was read and whose value is next.
    value: Option<&'a (Key, Node)>,
    lines: &'a Lines,
}

impl<'a> MapAccess<'a> for MapAcc<'a> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(entry);
        let key: &'a str = entry.0.get_ref();
        let at = self.lines.loc(entry.0.span().start);
        seed.deserialize(StrDe(key))
            .map(Some)
            .map_err(|e| e.in_key(key, at))
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some((key, node)) = self.value.take() else {
            return Err(de::Error::custom("a value was asked for before its key"));
        };
        seed.deserialize(NodeDe {
            node,
            lines: self.lines,
        })
        .map_err(|e| {
            e.at(self.lines.loc(node.span.start))
                .within(Seg::Key(key.get_ref().clone()))
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// The items of an array, each with its index.
#[derive(Debug)]
struct SeqAcc<'a> {
    items: core::iter::Enumerate<core::slice::Iter<'a, Node>>,
    lines: &'a Lines,
}

impl<'a> SeqAccess<'a> for SeqAcc<'a> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some((i, node)) = self.items.next() else {
            return Ok(None);
        };
        seed.deserialize(NodeDe {
            node,
            lines: self.lines,
        })
        .map(Some)
        .map_err(|e| e.at(self.lines.loc(node.span.start)).within(Seg::Item(i)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// Deserializes from a string that is not a value of its own: a table's
/// key or a variant's name. Numbers and booleans are parsed from it, so a
/// `HashMap<u16, _>` can have `80 = ...` keys.
#[derive(Debug, Clone, Copy)]
struct StrDe<'a>(&'a str);

impl StrDe<'_> {
    /// The string parsed as `T`, or "must be `what`".
    fn parse<T: core::str::FromStr>(self, what: fmt::Arguments<'_>) -> Result<T, Error> {
        self.0
            .parse()
            .map_err(|_| Error::pred(format!("must be {what}, found the string {:?}", self.0)))
    }
}

/// `deserialize_u8` and the like for [`StrDe`]: parses the string.
macro_rules! parsed {
    ($($method:ident $ty:ty => $visit:ident),* $(,)?) => {$(
        fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.$visit(self.parse::<$ty>(format_args!(
                "an integer in {}..={}",
                <$ty>::MIN,
                <$ty>::MAX
            ))?)
        }
    )*};
}

impl<'a> Deserializer<'a> for StrDe<'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_bool(self.parse(format_args!("true or false"))?)
    }

    parsed! {
        deserialize_i8 i8 => visit_i8,
        deserialize_i16 i16 => visit_i16,
        deserialize_i32 i32 => visit_i32,
        deserialize_i64 i64 => visit_i64,
        deserialize_i128 i128 => visit_i128,
        deserialize_u8 u8 => visit_u8,
        deserialize_u16 u16 => visit_u16,
        deserialize_u32 u32 => visit_u32,
        deserialize_u64 u64 => visit_u64,
        deserialize_u128 u128 => visit_u128,
    }

    fn deserialize_f32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f32(self.parse(format_args!("a number"))?)
    }

    fn deserialize_f64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f64(self.parse(format_args!("a number"))?)
    }

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_char(self.parse(format_args!("a single character"))?)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(NameEnum(self.0))
    }

    serde::forward_to_deserialize_any! {
        <V: Visitor<'a>>
        str string bytes byte_buf unit unit_struct seq tuple tuple_struct map
        struct identifier ignored_any
    }
}

/// An enum given as a bare name: a unit variant.
#[derive(Debug, Clone, Copy)]
struct NameEnum<'a>(&'a str);

impl NameEnum<'_> {
    /// The error for a variant that needs a value but was given by name.
    fn needs_value(self) -> Error {
        Error::pred(format!(
            "must be written {{ {} = ... }} (the variant takes a value), found the string {:?}",
            self.0, self.0
        ))
    }
}

impl<'a> EnumAccess<'a> for NameEnum<'a> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'a>>(self, seed: S) -> Result<(S::Value, Self), Error> {
        Ok((seed.deserialize(StrDe(self.0))?, self))
    }
}

impl<'a> VariantAccess<'a> for NameEnum<'a> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'a>>(self, _seed: T) -> Result<T::Value, Error> {
        Err(self.needs_value())
    }

    fn tuple_variant<V: Visitor<'a>>(self, _len: usize, _visitor: V) -> Result<V::Value, Error> {
        Err(self.needs_value())
    }

    fn struct_variant<V: Visitor<'a>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Error> {
        Err(self.needs_value())
    }
}

/// An enum given as a table of one key, the variant, whose value is the
/// variant's: `{ fixed = 3 }`.
#[derive(Debug, Clone, Copy)]
struct TableEnum<'a> {
    key: &'a Key,
    value: &'a Node,
    lines: &'a Lines,
}

impl<'a> TableEnum<'a> {
    /// The deserializer of the variant's value.
    fn value(self) -> NodeDe<'a> {
        NodeDe {
            node: self.value,
            lines: self.lines,
        }
    }

    /// Places an error met in the variant's value.
    fn place(self, e: Error) -> Error {
        e.at(self.lines.loc(self.value.span.start))
            .within(Seg::Key(self.key.get_ref().clone()))
    }
}

impl<'a> EnumAccess<'a> for TableEnum<'a> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'a>>(self, seed: S) -> Result<(S::Value, Self), Error> {
        match seed.deserialize(StrDe(self.key.get_ref())) {
            Ok(v) => Ok((v, self)),
            Err(e) => Err(e.at(self.lines.loc(self.key.span().start))),
        }
    }
}

impl<'a> VariantAccess<'a> for TableEnum<'a> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match &self.value.value {
            Value::Table(t) if t.is_empty() => Ok(()),
            _ => Err(Error::pred(format!(
                "must be the string {:?} (the variant takes no value), found a table",
                self.key.get_ref()
            ))),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'a>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self.value()).map_err(|e| self.place(e))
    }

    fn tuple_variant<V: Visitor<'a>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.value()
            .deserialize_tuple(len, visitor)
            .map_err(|e| self.place(e))
    }

    fn struct_variant<V: Visitor<'a>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.value()
            .deserialize_struct("", fields, visitor)
            .map_err(|e| self.place(e))
    }
}

#[cfg(test)]
#[path = "de_tests.rs"]
mod tests;
