//! Each kind of type: what reads and what each mistake says.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::*;

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
    assert_eq!(one::<usize>("7").unwrap(), 7);
    assert_eq!(one::<i8>("-128").unwrap(), -128);
    assert_eq!(one::<i16>("-32768").unwrap(), i16::MIN);
    assert_eq!(one::<i32>("-2147483648").unwrap(), i32::MIN);
    assert_eq!(one::<i64>("-9223372036854775808").unwrap(), i64::MIN);
    assert_eq!(one::<isize>("-5").unwrap(), -5);
    assert_eq!(one::<u16>("0x1f").unwrap(), 31);
    // TOML integers are 64-bit: the 128-bit types are refused by name.
    assert_eq!(
        one_fail::<u128>("7").2,
        format!("{WHAT}: `v`: u128 is not supported")
    );
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
        (one_fail::<u64>, "-1", "must not be negative, found -1"),
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
    // An f32 is the nearest to the number written, infinite beyond its range.
    assert!(one::<f32>("1e39").unwrap().is_infinite());
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
        one_fail::<(u8, u8, u8)>("[1, 2]").2,
        format!("{WHAT}: `v` must be an array of 3 items, found an array of 2 items")
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
        by_port: BTreeMap<String, String>,
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
    assert_eq!(o.by_port, BTreeMap::from([("80".into(), "http".into())]));

    assert_eq!(
        one_fail::<HashMap<String, u8>>("{ a = 1, b = \"x\" }"),
        (
            2,
            18,
            format!("{WHAT}: `v.b` must be an integer, found the string \"x\"")
        )
    );
    assert_eq!(
        // A key is a string: a map keyed by integers cannot be read.
        one_fail::<BTreeMap<u16, u8>>("{ 80 = 1, http = 2 }"),
        (
            2,
            7,
            format!("{WHAT}: `v` has a key that must be an integer, found the string \"80\"")
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
    // A unit is no TOML value: refused whatever is written.
    assert_eq!(
        one_fail::<Nothing>("{}").2,
        format!("{WHAT}: `v` must be an empty table {{}}, found a table")
    );
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
pub(super) enum Mode {
    Fast,
    VerySlow,
}

/// An enum with every kind of variant.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Rate {
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
        format!(
            "{WHAT}: `v` must be a string (a variant's name) or a table of one key (a variant \
             and its value), found the integer 3"
        )
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
pub(super) fn even<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if v % 2 == 0 {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format!("must be even, found {v}")))
    }
}

/// A type whose Deserialize goes through a String and `FromStr`.
#[derive(Debug, PartialEq)]
pub(super) struct Hex(u32);

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
            9,
            // A custom error raised after the item was read (by `FromStr`)
            // is placed at the array: the deserializer places an error at
            // the value it was reading.
            format!("{WHAT}: `masks`: bad hex number: invalid digit found in string")
        )
    );
}
