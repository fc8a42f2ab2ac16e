//! Helpers for a kind's parameters: checked numbers, choices, addresses.
//!
//! A kind's [`Params`](crate::TileKind::Params) are a serde type, so most
//! fields need nothing: `u16`, `bool`, `String`, `Vec<u16>`, nested
//! structs. What serde cannot say is "a power of two up to 2^26" or "one
//! of these words for a type that is not mine"; these functions say it, for
//! `#[serde(deserialize_with = "...")]`, with messages in the topology's
//! own wording (they are reported at the value's line):
//!
//! ```
//! use serde::{Deserialize, Deserializer};
//!
//! #[derive(Debug, Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Params {
//!     #[serde(default = "default_depth", deserialize_with = "depth")]
//!     depth: u64,
//! }
//! fn default_depth() -> u64 {
//!     1024
//! }
//! fn depth<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
//!     tilewire_pipeline::params::pow2_in(d, 1, 1 << 20)
//! }
//! ```

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use serde::de::{Deserialize, Deserializer, Error};

/// An integer in `lo..=hi`, converted to `T`.
///
/// # Errors
/// Not an integer, or out of range: "must be in {lo}..={hi}, found {v}";
/// for a negative value where `lo` is 0 and `hi` beyond 32 bits, "must not
/// be negative, found {v}" (the range would say nothing more).
pub fn int_in<'de, D, T>(d: D, lo: u64, hi: u64) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let v = i64::deserialize(d)?;
    match u64::try_from(v) {
        Ok(u) if (lo..=hi).contains(&u) => T::try_from(u)
            .map_err(|_| D::Error::custom(format!("must be in {lo}..={hi}, found {v}"))),
        _ if v < 0 && lo == 0 && hi > u64::from(u32::MAX) => {
            Err(D::Error::custom(format!("must not be negative, found {v}")))
        }
        _ => Err(D::Error::custom(format!(
            "must be in {lo}..={hi}, found {v}"
        ))),
    }
}

/// A power of two in `lo..=hi`, converted to `T`.
///
/// # Errors
/// As [`int_in`], and "must be a power of two in {lo}..={hi}, found {v}".
pub fn pow2_in<'de, D, T>(d: D, lo: u64, hi: u64) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let v: u64 = int_in(d, lo, hi)?;
    if !v.is_power_of_two() {
        return Err(D::Error::custom(format!(
            "must be a power of two in {lo}..={hi}, found {v}"
        )));
    }
    T::try_from(v).map_err(|_| D::Error::custom(format!("{v} is too large")))
}

/// One of `choices`, written as its name.
///
/// # Errors
/// Not a string, or not one of the names: `must be one of "a", "b", found "c"`.
pub fn choice<'de, D, T: Copy>(d: D, choices: &[(&str, T)]) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let s = String::deserialize(d)?;
    choices
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
            D::Error::custom(format!("must be one of {}, found {s:?}", names.join(", ")))
        })
}

/// A string that `parse` accepts; `what` says what it must be (`"an IPv4
/// address such as \"198.18.0.1\""`).
fn parsed<'de, D, T>(d: D, what: &str, parse: impl FnOnce(&str) -> Option<T>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let s = String::deserialize(d)?;
    parse(&s).ok_or_else(|| D::Error::custom(format!("must be {what}, found {s:?}")))
}

/// An IPv4 address and port, `"198.18.0.1:9000"`.
///
/// # Errors
/// Anything else.
pub fn endpoint<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddrV4, D::Error> {
    parsed(
        d,
        "an IPv4 address and port such as \"198.18.0.1:9000\"",
        |s| s.parse().ok(),
    )
}

/// An IPv4 or IPv6 address and port, `"198.18.0.1:9000"` or
/// `"[2001:2::1]:9000"` (an IPv6 address in brackets).
///
/// # Errors
/// Anything else.
pub fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    parsed(
        d,
        "an address and port such as \"198.18.0.1:9000\" or \"[::1]:9000\"",
        |s| s.parse().ok(),
    )
}

/// [`endpoint`], optional.
///
/// # Errors
/// As [`endpoint`].
pub fn opt_endpoint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddrV4>, D::Error> {
    endpoint(d).map(Some)
}

/// An Ethernet MAC address, six hex bytes separated by colons,
/// `"02:00:c6:12:00:01"`, optional.
///
/// # Errors
/// Anything else.
pub fn opt_mac<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 6]>, D::Error> {
    parsed(d, "a MAC address such as \"02:00:c6:12:00:01\"", parse_mac).map(Some)
}

/// `"02:00:c6:12:00:01"` as six bytes.
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// An IPv4 address, `"198.18.0.1"`, optional.
///
/// # Errors
/// Anything else.
pub fn opt_ipv4<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ipv4Addr>, D::Error> {
    parsed(d, "an IPv4 address such as \"198.18.0.1\"", |s| {
        s.parse().ok()
    })
    .map(Some)
}

/// A network namespace name (it is a path component under
/// /var/run/netns), optional.
///
/// # Errors
/// Not a usable name.
pub fn opt_netns<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    tilewire_shmem::check_name(&s)
        .map_err(|e| D::Error::custom(format!("must be a usable namespace name: {e}")))?;
    Ok(Some(s))
}

/// A string that must not be empty.
///
/// # Errors
/// Not a string, or empty.
pub fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        return Err(D::Error::custom("must not be empty"));
    }
    Ok(s)
}
