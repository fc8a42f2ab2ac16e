//! Names of workspaces and of allocations inside them.
//!
//! A name is 1 to [`NAME_MAX`] bytes of ASCII letters, digits, `.`, `_` and
//! `-`, and does not start with `.` or `-`. That keeps it a safe single path
//! component (no `/`, no `..`, no hidden files), a safe shell word, and short
//! enough to be stored inline in shared headers.

/// Longest name, in bytes.
pub const NAME_MAX: usize = 40;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("name is empty")]
    Empty,
    /// The name is longer than [`NAME_MAX`] bytes.
    #[error("name is {len} bytes long; the limit is {max}")]
    TooLong {
        /// Length given.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The name holds a character outside `[A-Za-z0-9._-]` (such as `/`).
    #[error("name has {ch:?} at byte {pos}; only letters, digits, '.', '_' and '-' are allowed")]
    BadChar {
        /// The offending character.
        ch: char,
        /// Its byte offset.
        pos: usize,
    },
    /// The name starts with `.` or `-`.
    #[error("name starts with {0:?}; it must start with a letter, digit or '_'")]
    BadStart(char),
}

/// Checks a name against the rules above.
///
/// # Errors
/// The first rule the name breaks.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > NAME_MAX {
        return Err(NameError::TooLong {
            len: name.len(),
            max: NAME_MAX,
        });
    }
    for (pos, ch) in name.char_indices() {
        if !(ch.is_ascii_alphanumeric() || ch == '.' || ch == '_' || ch == '-') {
            return Err(NameError::BadChar { ch, pos });
        }
    }
    let first = name.as_bytes()[0] as char;
    if first == '.' || first == '-' {
        return Err(NameError::BadStart(first));
    }
    Ok(())
}

/// A checked name packed NUL-padded into `NAME_MAX` bytes.
pub(crate) fn pack_name(name: &str) -> [u8; NAME_MAX] {
    let mut out = [0u8; NAME_MAX];
    out[..name.len()].copy_from_slice(name.as_bytes());
    out
}

/// The name stored in a NUL-padded field, if it is a valid name.
pub(crate) fn unpack_name(raw: &[u8]) -> Option<String> {
    let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let s = core::str::from_utf8(&raw[..len]).ok()?;
    check_name(s).ok()?;
    Some(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in [
            "net",
            "net.rx.mcache",
            "a",
            "tile_0-rx",
            "0abc",
            &"x".repeat(40),
        ] {
            assert_eq!(check_name(n), Ok(()), "{n}");
            assert_eq!(unpack_name(&pack_name(n)).as_deref(), Some(n));
        }
    }

    #[test]
    fn refuses_each_bad_shape() {
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert_eq!(
            check_name(&"x".repeat(41)),
            Err(NameError::TooLong { len: 41, max: 40 })
        );
        assert_eq!(
            check_name("a/b"),
            Err(NameError::BadChar { ch: '/', pos: 1 })
        );
        assert_eq!(
            check_name("a b"),
            Err(NameError::BadChar { ch: ' ', pos: 1 })
        );
        assert!(matches!(check_name("é"), Err(NameError::BadChar { .. })));
        assert_eq!(check_name(".."), Err(NameError::BadStart('.')));
        assert_eq!(check_name("-rf"), Err(NameError::BadStart('-')));
        assert_eq!(unpack_name(b"bad/name\0\0"), None);
        assert_eq!(unpack_name(&[0xff, 0]), None);
    }
}
