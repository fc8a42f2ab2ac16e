//! Tests of [`from_node`]: each kind of type, where each kind of error
//! points and what it says, and (proptest) that no input panics.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::{from_node, from_node_borrowed};
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
    from_node(&node, &lines, WHAT, at)
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

// ---- 1. types -------------------------------------------------------------

/// Nested parameters as `[params.limits]` headers and dotted keys: tables
/// the toml crate makes implicitly, without a place of their own.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Nested {
    limits: DeepLimits,
    name: String,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct DeepLimits {
    max: u8,
    inner: Inner,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Inner {
    deep: u8,
}

#[test]
fn implicit_tables_from_dotted_keys_and_deep_headers_are_read_and_placed() {
    let want = Nested {
        limits: DeepLimits {
            max: 3,
            inner: Inner { deep: 4 },
        },
        name: "x".into(),
    };
    // Dotted keys three deep.
    let dotted = "[params]\nname = \"x\"\nlimits.max = 3\nlimits.inner.deep = 4\n";
    assert_eq!(de::<Nested>(dotted).unwrap(), want);
    // A header whose parent tables were never declared.
    let deep =
        "[params.limits.inner]\ndeep = 4\n\n[params.limits]\nmax = 3\n\n[params]\nname = \"x\"\n";
    assert_eq!(de::<Nested>(deep).unwrap(), want);
    // Errors inside them still point at their lines.
    let (line, _, why) = fail::<Nested>(&dotted.replace("deep = 4", "deep = 400"));
    assert_eq!(line, 4, "{why}");
    assert!(why.contains("`limits.inner.deep` must be"), "{why}");
    let (line, _, why) = fail::<Nested>(&deep.replace("max = 3", "max = 3\ncolour = 1"));
    assert_eq!(line, 6, "{why}");
    assert!(why.contains("unknown field `limits.colour`"), "{why}");
    // A missing field of an implicit table points at its first key.
    let (line, _, why) = fail::<Nested>("[params]\nname = \"x\"\nlimits.inner.deep = 4\n");
    assert_eq!(line, 3, "{why}");
    assert!(why.contains("missing required field `limits.max`"), "{why}");
}

#[test]
fn booleans() {
    assert!(one::<bool>("true").unwrap());
    assert!(!one::<bool>("false").unwrap());
    assert_eq!(
        one_fail::<bool>("1").2,
        format!("{WHAT}: `v` must be true or false, found the integer 1")
    );
}

#[test]
fn integers_of_every_width() {
    assert_eq!(one::<u8>("255").unwrap(), 255);
    assert_eq!(one::<u16>("65535").unwrap(), 65535);
    assert_eq!(one::<u32>("4294967295").unwrap(), u32::MAX);
    assert_eq!(one::<u64>("9223372036854775807").unwrap(), i64::MAX as u64);
    assert_eq!(one::<u128>("7").unwrap(), 7);
    assert_eq!(one::<usize>("7").unwrap(), 7);
    assert_eq!(one::<i8>("-128").unwrap(), -128);
    assert_eq!(one::<i16>("-32768").unwrap(), i16::MIN);
    assert_eq!(one::<i32>("-2147483648").unwrap(), i32::MIN);
    assert_eq!(one::<i64>("-9223372036854775808").unwrap(), i64::MIN);
    assert_eq!(one::<i128>("-5").unwrap(), -5);
    assert_eq!(one::<isize>("-5").unwrap(), -5);
    assert_eq!(one::<u16>("0x1f").unwrap(), 31);
}

#[test]
fn integers_are_range_checked() {
    let cases: [(Failing, &str, &str); 8] = [
        (one_fail::<u8>, "300", "must be in 0..=255, found 300"),
        (one_fail::<u8>, "-1", "must be in 0..=255, found -1"),
        (
            one_fail::<u16>,
            "70000",
            "must be in 0..=65535, found 70000",
        ),
        (one_fail::<u32>, "-3", "must be in 0..=4294967295, found -3"),
        (
            one_fail::<u64>,
            "-1",
            "must be in 0..=18446744073709551615, found -1",
        ),
        (one_fail::<i8>, "-129", "must be in -128..=127, found -129"),
        (
            one_fail::<i16>,
            "40000",
            "must be in -32768..=32767, found 40000",
        ),
        (
            one_fail::<i32>,
            "3000000000",
            "must be in -2147483648..=2147483647, found 3000000000",
        ),
    ];
    for (f, value, want) in cases {
        assert_eq!(f(value), (2, 5, format!("{WHAT}: `v` {want}")), "{value}");
    }
    assert_eq!(
        one_fail::<u32>("\"x\"").2,
        format!("{WHAT}: `v` must be an integer, found the string \"x\"")
    );
    assert_eq!(
        one_fail::<u32>("1.5").2,
        format!("{WHAT}: `v` must be an integer, found the float 1.5")
    );
}

#[test]
fn floats_take_integers_too() {
    assert_eq!(one::<f64>("1.5").unwrap(), 1.5);
    assert_eq!(one::<f64>("3").unwrap(), 3.0);
    assert_eq!(one::<f32>("-2").unwrap(), -2.0);
    assert_eq!(one::<f32>("0.25").unwrap(), 0.25);
    assert!(one::<f64>("inf").unwrap().is_infinite());
    assert!(one::<f32>("nan").unwrap().is_nan());
    assert_eq!(
        one_fail::<f32>("1e39").2,
        format!("{WHAT}: `v` must be a number within ±3.4028235e38, found the float 1000000000000000000000000000000000000000")
    );
    assert_eq!(
        one_fail::<f64>("true").2,
        format!("{WHAT}: `v` must be a number, found true")
    );
}

#[test]
fn strings_and_chars() {
    assert_eq!(one::<String>("\"héllo\"").unwrap(), "héllo");
    assert_eq!(one::<char>("\"é\"").unwrap(), 'é');
    assert_eq!(
        one_fail::<char>("\"ab\"").2,
        format!("{WHAT}: `v` must be a single character, found the string \"ab\"")
    );
    assert_eq!(
        one_fail::<char>("1").2,
        format!("{WHAT}: `v` must be a single character, found the integer 1")
    );
    assert_eq!(
        one_fail::<String>("[1]").2,
        format!("{WHAT}: `v` must be a string, found an array")
    );
}

#[test]
fn borrowed_strings() {
    /// Borrows from the node.
    #[derive(Deserialize)]
    struct Borrows<'a> {
        s: &'a str,
        #[serde(borrow)]
        c: Cow<'a, str>,
    }
    let (node, lines, at) = params_node("[params]\ns = \"one\"\nc = \"two\"\n");
    let b: Borrows<'_> = from_node_borrowed(&node, &lines, WHAT, at).unwrap();
    assert_eq!((b.s, &*b.c), ("one", "two"));
    assert!(matches!(b.c, Cow::Borrowed(_)));
}

#[test]
fn options_present_are_some() {
    /// An optional field.
    #[derive(Debug, Deserialize)]
    struct Opt {
        a: Option<u8>,
        b: Option<u8>,
    }
    let o: Opt = de("[params]\na = 4\n").unwrap();
    assert_eq!((o.a, o.b), (Some(4), None));
    assert_eq!(
        fail::<Opt>("[params]\na = 400\n"),
        (2, 5, format!("{WHAT}: `a` must be in 0..=255, found 400"))
    );
}

#[test]
fn arrays_and_tuples() {
    assert_eq!(one::<Vec<u16>>("[1, 2, 3]").unwrap(), vec![1, 2, 3]);
    assert_eq!(one::<Vec<u16>>("[]").unwrap(), Vec::<u16>::new());
    assert_eq!(one::<[u8; 3]>("[1, 2, 3]").unwrap(), [1, 2, 3]);
    assert_eq!(one::<(u8, String)>("[1, \"a\"]").unwrap(), (1, "a".into()));
    assert_eq!(
        one::<Vec<Vec<bool>>>("[[true], []]").unwrap(),
        vec![vec![true], vec![]]
    );
    assert_eq!(
        one_fail::<(u8, u8)>("[1, 2, 3]").2,
        format!("{WHAT}: `v` must be an array of 2 items, found an array of 3 items")
    );
    assert_eq!(
        one_fail::<[u8; 2]>("[1]").2,
        format!("{WHAT}: `v` must be an array of 2 items, found an array of 1 item")
    );
    assert_eq!(
        one_fail::<Vec<u8>>("3").2,
        format!("{WHAT}: `v` must be an array, found the integer 3")
    );
}

#[test]
fn nested_structs_and_maps() {
    /// Inner table.
    #[derive(Debug, Deserialize, PartialEq)]
    struct Limits {
        max: u8,
        min: u8,
    }
    /// Outer table.
    #[derive(Debug, Deserialize)]
    struct Outer {
        limits: Limits,
        inline: Limits,
        by_name: HashMap<String, u32>,
        sorted: BTreeMap<String, Limits>,
        by_port: BTreeMap<u16, String>,
    }
    let text = "[params]\ninline = { max = 1, min = 0 }\nby_port = { 80 = \"http\" }\n\
                [params.limits]\nmax = 9\nmin = 2\n\
                [params.by_name]\na = 1\nb = 2\n\
                [params.sorted]\nx = { max = 5, min = 4 }\n";
    let o: Outer = de(text).unwrap();
    assert_eq!(o.limits, Limits { max: 9, min: 2 });
    assert_eq!(o.inline, Limits { max: 1, min: 0 });
    assert_eq!(o.by_name, HashMap::from([("a".into(), 1), ("b".into(), 2)]));
    assert_eq!(o.sorted["x"], Limits { max: 5, min: 4 });
    assert_eq!(o.by_port, BTreeMap::from([(80, "http".into())]));

    assert_eq!(
        one_fail::<HashMap<String, u8>>("{ a = 1, b = \"x\" }"),
        (
            2,
            18,
            format!("{WHAT}: `v.b` must be an integer, found the string \"x\"")
        )
    );
    assert_eq!(
        one_fail::<BTreeMap<u16, u8>>("{ 80 = 1, http = 2 }"),
        (
            2,
            15,
            format!(
                "{WHAT}: `v` has a key that must be an integer in 0..=65535, \
                 found the string \"http\""
            )
        )
    );
    assert_eq!(
        one_fail::<Limits>("3").2,
        format!("{WHAT}: `v` must be a table, found the integer 3")
    );
}

#[test]
fn units_and_newtypes() {
    /// A unit struct.
    #[derive(Debug, Deserialize, PartialEq)]
    struct Nothing;
    /// A newtype.
    #[derive(Debug, Deserialize, PartialEq)]
    struct Port(u16);
    /// A tuple struct.
    #[derive(Debug, Deserialize, PartialEq)]
    struct Pair(u8, bool);
    one::<()>("{}").unwrap();
    assert_eq!(one::<Nothing>("{}").unwrap(), Nothing);
    assert_eq!(one::<Port>("8080").unwrap(), Port(8080));
    assert_eq!(one::<Pair>("[1, true]").unwrap(), Pair(1, true));
    assert_eq!(
        one_fail::<Port>("-1").2,
        format!("{WHAT}: `v` must be in 0..=65535, found -1")
    );
    assert_eq!(
        one_fail::<()>("1").2,
        format!("{WHAT}: `v` must be an empty table {{}}, found the integer 1")
    );
}

/// A mode with unit variants, kebab-cased.
#[derive(Debug, Deserialize, PartialEq, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    Fast,
    VerySlow,
}

/// An enum with every kind of variant.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum Rate {
    Unlimited,
    Fixed(u32),
    Range(u32, u32),
    Burst { size: u16, every_ms: u32 },
}

#[test]
fn enums_unit_variants_as_strings() {
    assert_eq!(one::<Mode>("\"fast\"").unwrap(), Mode::Fast);
    assert_eq!(one::<Mode>("\"very-slow\"").unwrap(), Mode::VerySlow);
    assert_eq!(
        one_fail::<Mode>("\"slow\""),
        (
            2,
            5,
            format!("{WHAT}: `v` must be one of \"fast\", \"very-slow\", found \"slow\"")
        )
    );
    assert_eq!(
        one_fail::<Mode>("3").2,
        format!("{WHAT}: `v` must be one of \"fast\", \"very-slow\", found the integer 3")
    );
    assert_eq!(
        one::<Vec<Mode>>("[\"fast\", \"fast\"]").unwrap(),
        [Mode::Fast; 2]
    );
}

#[test]
fn enums_table_variants() {
    assert_eq!(one::<Rate>("\"unlimited\"").unwrap(), Rate::Unlimited);
    assert_eq!(one::<Rate>("{ fixed = 3 }").unwrap(), Rate::Fixed(3));
    assert_eq!(
        one::<Rate>("{ range = [1, 9] }").unwrap(),
        Rate::Range(1, 9)
    );
    assert_eq!(
        one::<Rate>("{ burst = { size = 4, every_ms = 10 } }").unwrap(),
        Rate::Burst {
            size: 4,
            every_ms: 10
        }
    );
    // The variant's value is placed and named.
    assert_eq!(
        one_fail::<Rate>("{ fixed = \"x\" }"),
        (
            2,
            15,
            format!("{WHAT}: `v.fixed` must be an integer, found the string \"x\"")
        )
    );
    assert_eq!(
        one_fail::<Rate>("{ burst = { size = 70000, every_ms = 1 } }"),
        (
            2,
            24,
            format!("{WHAT}: `v.burst.size` must be in 0..=65535, found 70000")
        )
    );
    // An unknown variant in a table points at its key.
    assert_eq!(
        one_fail::<Rate>("{ fxed = 3 }"),
        (
            2,
            7,
            format!(
                "{WHAT}: `v` must be one of \"unlimited\", \"fixed\", \"range\", \"burst\", \
                 found \"fxed\""
            )
        )
    );
    assert_eq!(
        one_fail::<Rate>("\"fixed\"").2,
        format!(
            "{WHAT}: `v` must be written {{ fixed = ... }} (the variant takes a value), \
             found the string \"fixed\""
        )
    );
    assert_eq!(
        one_fail::<Rate>("{ unlimited = 1 }").2,
        format!(
            "{WHAT}: `v` must be the string \"unlimited\" (the variant takes no value), \
             found a table"
        )
    );
    assert!(one_fail::<Rate>("{ fixed = 1, range = [1, 2] }")
        .2
        .ends_with("found a table of 2 keys"));
}

#[test]
fn serde_attributes_default_deny_rename() {
    /// The default of `b`.
    fn seven() -> u8 {
        7
    }
    /// With attributes.
    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Attrs {
        #[serde(default)]
        a: u8,
        #[serde(default = "seven")]
        b: u8,
        #[serde(rename = "type")]
        kind: String,
    }
    assert_eq!(
        de::<Attrs>("[params]\ntype = \"x\"\n").unwrap(),
        Attrs {
            a: 0,
            b: 7,
            kind: "x".into()
        }
    );
    assert_eq!(
        fail::<Attrs>("[params]\ntype = \"x\"\nkind = 3\n"),
        (
            3,
            1,
            format!("{WHAT}: unknown field `kind` (expected one of: a, b, type)")
        )
    );
    /// A table holding a field of its own name.
    #[derive(Debug, Deserialize)]
    struct Top {
        #[allow(dead_code)]
        top: Attrs,
    }
    assert_eq!(
        fail::<Top>("[params]\ntop = { type = \"x\", top = 1 }\n"),
        (
            2,
            21,
            format!("{WHAT}: unknown field `top.top` (expected one of: a, b, type)")
        )
    );
    /// Takes no fields.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Empty {}
    assert_eq!(
        fail::<Empty>("[params]\nx = 1\n").2,
        format!("{WHAT}: unknown field `x` (it takes none)")
    );
    /// Without deny_unknown_fields, others are ignored.
    #[derive(Debug, Deserialize)]
    struct Lax {
        a: u8,
    }
    assert_eq!(
        de::<Lax>("[params]\na = 1\nz = [1, { q = 2 }]\n")
            .unwrap()
            .a,
        1
    );
}

#[test]
fn flatten() {
    /// Flattened into [`Outer`].
    #[derive(Debug, Deserialize, PartialEq)]
    struct Common {
        name: String,
        #[serde(default)]
        burst: u16,
    }
    /// Holds a flattened struct and the rest.
    #[derive(Debug, Deserialize)]
    struct Outer {
        size: u8,
        #[serde(flatten)]
        common: Common,
        #[serde(flatten)]
        rest: HashMap<String, toml::Value>,
    }
    let o: Outer = de("[params]\nsize = 3\nname = \"n\"\nburst = 4\nextra = [1]\n").unwrap();
    assert_eq!(o.size, 3);
    assert_eq!(
        o.common,
        Common {
            name: "n".into(),
            burst: 4
        }
    );
    assert_eq!(
        o.rest["extra"],
        toml::Value::Array(vec![toml::Value::Integer(1)])
    );
    // Errors in flattened fields point at the table (serde buffers them).
    let (line, col, reason) = fail::<Outer>("\n[params]\nsize = 3\nname = 5\n");
    assert_eq!((line, col), (2, 1));
    assert_eq!(
        reason,
        format!("{WHAT} must be a string, found the integer 5")
    );
    // Errors in the struct's own fields are still placed.
    assert_eq!(
        fail::<Outer>("[params]\nsize = 300\nname = \"n\"\n"),
        (
            2,
            8,
            format!("{WHAT}: `size` must be in 0..=255, found 300")
        )
    );
}

#[test]
fn deserialize_any_untagged_and_tagged() {
    let v: toml::Value = de("[params]\na = 1\nb = [\"x\", 2.5, true]\nc = { d = {} }\n").unwrap();
    assert_eq!(v["a"].as_integer(), Some(1));
    assert_eq!(v["b"][0].as_str(), Some("x"));
    assert_eq!(v["b"][1].as_float(), Some(2.5));
    assert!(v["c"]["d"].as_table().unwrap().is_empty());

    /// A number or a name.
    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Named(String),
        Split { lo: u8, hi: u8 },
    }
    assert_eq!(one::<Size>("4096").unwrap(), Size::Bytes(4096));
    assert_eq!(one::<Size>("\"page\"").unwrap(), Size::Named("page".into()));
    assert_eq!(
        one::<Size>("{ lo = 1, hi = 2 }").unwrap(),
        Size::Split { lo: 1, hi: 2 }
    );
    assert_eq!(
        one_fail::<Size>("true"),
        (
            2,
            5,
            format!("{WHAT}: `v`: data did not match any variant of untagged enum Size")
        )
    );

    /// Internally tagged.
    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(tag = "type", rename_all = "lowercase")]
    enum Source {
        File { path: PathBuf },
        Gen { rate: u32 },
    }
    assert_eq!(
        one::<Source>("{ type = \"gen\", rate = 5 }").unwrap(),
        Source::Gen { rate: 5 }
    );
    assert_eq!(
        one::<Source>("{ type = \"file\", path = \"/a\" }").unwrap(),
        Source::File { path: "/a".into() }
    );
}

#[test]
fn types_parsed_from_strings() {
    /// std types that deserialize from strings.
    #[derive(Debug, Deserialize)]
    struct Net {
        addr: SocketAddrV4,
        ip: Ipv4Addr,
        path: PathBuf,
    }
    let n: Net =
        de("[params]\naddr = \"10.0.0.1:4000\"\nip = \"192.168.1.2\"\npath = \"/tmp/x.pcap\"\n")
            .unwrap();
    assert_eq!(n.addr, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 4000));
    assert_eq!(n.ip, Ipv4Addr::new(192, 168, 1, 2));
    assert_eq!(n.path, PathBuf::from("/tmp/x.pcap"));
    assert_eq!(
        fail::<Net>("[params]\naddr = \"10.0.0.1:4000\"\nip = \"192.168.1\"\npath = \"/\"\n"),
        (3, 6, format!("{WHAT}: `ip`: invalid IPv4 address syntax"))
    );
    assert_eq!(
        fail::<Net>("[params]\naddr = 7\nip = \"1.1.1.1\"\npath = \"/\"\n").2,
        format!("{WHAT}: `addr` must be a string, found the integer 7")
    );
}

/// A `deserialize_with` that wants an even number.
fn even<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if v % 2 == 0 {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format!("must be even, found {v}")))
    }
}

/// A type whose Deserialize goes through a String and `FromStr`.
#[derive(Debug, PartialEq)]
struct Hex(u32);

impl core::str::FromStr for Hex {
    type Err = String;
    fn from_str(s: &str) -> Result<Hex, String> {
        let digits = s.strip_prefix("0x").ok_or("a hex number starts with 0x")?;
        u32::from_str_radix(digits, 16)
            .map(Hex)
            .map_err(|e| format!("bad hex number: {e}"))
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Hex, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[test]
fn custom_errors_are_placed_at_the_value() {
    /// With a checked field and a parsed one.
    #[derive(Debug, Deserialize)]
    struct Custom {
        #[serde(deserialize_with = "even")]
        n: u32,
        mask: Hex,
        #[serde(default)]
        masks: Vec<Hex>,
    }
    let c: Custom = de("[params]\nn = 4\nmask = \"0xff\"\nmasks = [\"0x1\"]\n").unwrap();
    assert_eq!((c.n, c.mask, c.masks), (4, Hex(255), vec![Hex(1)]));
    assert_eq!(
        fail::<Custom>("[params]\nn = 3\nmask = \"0x1\"\n"),
        (2, 5, format!("{WHAT}: `n` must be even, found 3"))
    );
    assert_eq!(
        fail::<Custom>("[params]\nn = 2\nmask = \"ff\"\n"),
        (3, 8, format!("{WHAT}: `mask`: a hex number starts with 0x"))
    );
    assert_eq!(
        fail::<Custom>("[params]\nn = 2\nmask = \"0x1\"\nmasks = [\"0x1\", \"0xzz\"]\n"),
        (
            4,
            17,
            format!("{WHAT}: `masks` item 1: bad hex number: invalid digit found in string")
        )
    );
}

// ---- 2. locations and 3. messages ----------------------------------------

/// Parameters as a tile kind might declare them.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
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
struct Limits {
    max: u8,
    #[serde(default)]
    min: u8,
}

/// An item of an array of tables.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
struct Link {
    name: String,
    #[serde(default)]
    peer: Option<Peer>,
}

/// Nested in an item.
#[derive(Debug, Deserialize)]
struct Peer {
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

/// The tile's params as a `T`, the way tilewire would call [`from_node`].
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
    let empty = Node {
        span: 0..0,
        value: Value::Table(Vec::new()),
    };
    let (node, at) = match entries.iter().find(|(k, _)| k.get_ref() == "params") {
        Some((_, n)) => (n, lines.loc(n.span.start)),
        None => (&empty, lines.loc(tiles[0].span.start)),
    };
    from_node(node, &lines, WHAT, at)
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

#[test]
fn error_display_has_no_table_name() {
    let e = <super::Error as serde::de::Error>::missing_field("x");
    assert_eq!(e.to_string(), "value: missing required field `x`");
}

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
        let node = (inner, 0usize..400).prop_map(|(value, at)| Node {
            span: at..at + 1,
            value,
        });
        prop_oneof![
            prop::collection::vec(node.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), node), 0..6).prop_map(Value::Table),
        ]
    });
    (value, 0usize..400).prop_map(|(value, at)| Node {
        span: at..at + 1,
        value,
    })
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
    (prop::collection::vec((key(), node()), 0..10), 0usize..400).prop_map(|(entries, at)| Node {
        span: at..at + 1,
        value: Value::Table(entries),
    })
}

/// Deserializes a node into some type, giving the error if any.
type Check = fn(&Node, &Lines, Loc) -> Option<TopoError>;

/// `node` into each of the test types: only `Ok` or `Err`, and errors
/// name the table and have a line.
fn try_all(node: &Node, lines: &Lines) {
    let at = Loc { line: 1, col: 1 };
    let checks: [Check; 4] = [
        |n, l, a| from_node::<Mixed>(n, l, WHAT, a).err(),
        |n, l, a| from_node::<Flat>(n, l, WHAT, a).err(),
        |n, l, a| from_node::<Params>(n, l, WHAT, a).err(),
        |n, l, a| from_node::<toml::Value>(n, l, WHAT, a).err(),
    ];
    for check in checks {
        if let Some(e) = check(node, lines, at) {
            assert!(e.line >= 1 && e.col >= 1, "{e:?}");
            assert!(e.reason.starts_with(WHAT), "{e:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_nodes_never_panic(node in prop_oneof![table(), node()]) {
        let lines = Lines::new(&"abc\n".repeat(50));
        try_all(&node, &lines);
    }

    #[test]
    fn random_toml_text_never_panics(node in table()) {
        // Back to text (dropping what TOML cannot write) and read again, for
        // real spans.
        let mut root = toml::Table::new();
        root.insert("params".into(), to_toml(&node));
        let text = toml::to_string(&root).unwrap_or_default();
        let lines = Lines::new(&text);
        if let Ok(root) = read(&text, &lines) {
            for (_, n) in &root {
                try_all(n, &lines);
            }
        }
    }

    #[test]
    fn random_text_never_panics(text in "(\\[params\\]\n)?([a-z]{1,3} = (-?[0-9]{1,6}|\"[a-z.:0-9]{0,6}\"|\\[[0-9, ]{0,6}\\]|\\{ ?[a-z]{0,2} ?=? ?[0-9]{0,2} ?\\}|true)\n){0,6}") {
        let lines = Lines::new(&text);
        if let Ok(root) = read(&text, &lines) {
            let node = Node { span: 0..0, value: Value::Table(root) };
            try_all(&node, &lines);
        }
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
