//! Error codes of the send contract and the typed error a failed send returns.
//!
//! Two worlds meet here. Rust callers see [`SendError`]: a kind and the index
//! of the first packet that was not sent. The C-shaped edge (see
//! [`crate::raw`]) speaks fd_aio's integer codes: [`SUCCESS`], [`ERR_INVAL`]
//! and [`ERR_AGAIN`], with [`strerror`] turning any integer into a
//! description that is always valid. [`SendError::code`] and
//! [`SendErrorKind::from_code`] translate between the two.
//!
//! There are only two ways a send can fail, and they ask the caller for
//! different reactions:
//!
//! - [`SendErrorKind::Inval`]: the packet at `batch_idx` is bad (too long for
//!   the backend, for example). Retrying it will fail again; the caller drops
//!   or fixes that packet and may continue with `batch_idx + 1`.
//! - [`SendErrorKind::Again`]: the backend is out of room right now (rings
//!   full, pool full). The packet at `batch_idx` is fine; the caller retries
//!   from `batch_idx` later, typically after the backend has drained.

#![forbid(unsafe_code)]

use core::fmt;

/// The operation succeeded (fd_aio's `FD_AIO_SUCCESS`).
pub const SUCCESS: i32 = 0;
/// Bad input arguments (fd_aio's `FD_AIO_ERR_INVAL`).
pub const ERR_INVAL: i32 = -1;
/// Try again later (fd_aio's `FD_AIO_ERR_AGAIN`).
pub const ERR_AGAIN: i32 = -2;

/// Describes an aio status code in a few words.
///
/// Never fails: any integer, known or not, gives a static string
/// ("unknown" for codes this crate does not define).
pub const fn strerror(code: i32) -> &'static str {
    match code {
        SUCCESS => "success",
        ERR_INVAL => "bad input arguments",
        ERR_AGAIN => "try again later",
        _ => "unknown",
    }
}

/// Why a send stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SendErrorKind {
    /// Bad input: the packet at `batch_idx` cannot be sent by this backend
    /// (too long, or otherwise malformed for it). Retrying it fails again.
    Inval,
    /// No room right now: the packet at `batch_idx` is valid but the backend
    /// is full. Retry from `batch_idx` once the backend has drained.
    Again,
}

impl SendErrorKind {
    /// The fd_aio error code of this kind ([`ERR_INVAL`] or [`ERR_AGAIN`]).
    pub const fn code(self) -> i32 {
        match self {
            SendErrorKind::Inval => ERR_INVAL,
            SendErrorKind::Again => ERR_AGAIN,
        }
    }

    /// The kind of a nonzero fd_aio code.
    ///
    /// Returns `None` for [`SUCCESS`]. [`ERR_AGAIN`] maps to
    /// [`SendErrorKind::Again`]; every other nonzero code, including codes
    /// this crate does not know, maps to [`SendErrorKind::Inval`]: a caller
    /// must not blindly retry a failure it cannot interpret.
    pub const fn from_code(code: i32) -> Option<SendErrorKind> {
        match code {
            SUCCESS => None,
            ERR_AGAIN => Some(SendErrorKind::Again),
            _ => Some(SendErrorKind::Inval),
        }
    }
}

impl fmt::Display for SendErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(strerror(self.code()))
    }
}

/// A send that stopped at `batch_idx`.
///
/// Packets `[0, batch_idx)` of the batch were sent (handed to the backend,
/// which owns their bytes now); packets `[batch_idx, n)` were not and the
/// backend holds nothing of them. For [`SendErrorKind::Inval`] the packet at
/// `batch_idx` is the culprit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{kind} (stopped at batch index {batch_idx})")]
pub struct SendError {
    /// Why the send stopped.
    pub kind: SendErrorKind,
    /// Index of the first packet of the batch that was not sent.
    pub batch_idx: usize,
}

impl SendError {
    /// Bad input at `batch_idx` (the culprit).
    pub const fn inval(batch_idx: usize) -> SendError {
        SendError {
            kind: SendErrorKind::Inval,
            batch_idx,
        }
    }

    /// Out of room at `batch_idx` (the first packet that did not fit).
    pub const fn again(batch_idx: usize) -> SendError {
        SendError {
            kind: SendErrorKind::Again,
            batch_idx,
        }
    }

    /// The fd_aio error code of this error ([`ERR_INVAL`] or [`ERR_AGAIN`]).
    pub const fn code(&self) -> i32 {
        self.kind.code()
    }

    /// The same error with `batch_idx` moved by `offset`: used by wrappers
    /// that split a batch into chunks and report indices of the whole batch.
    #[must_use]
    pub const fn offset(self, offset: usize) -> SendError {
        SendError {
            kind: self.kind,
            batch_idx: self.batch_idx + offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strerror_covers_every_code_and_never_fails() {
        assert_eq!(strerror(SUCCESS), "success");
        assert_eq!(strerror(ERR_INVAL), "bad input arguments");
        assert_eq!(strerror(ERR_AGAIN), "try again later");
        for code in [1, -3, i32::MIN, i32::MAX, 42] {
            assert_eq!(strerror(code), "unknown");
        }
    }

    #[test]
    fn codes_round_trip_through_kinds() {
        for kind in [SendErrorKind::Inval, SendErrorKind::Again] {
            assert_eq!(SendErrorKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(SendErrorKind::from_code(SUCCESS), None);
        assert_eq!(SendErrorKind::from_code(-77), Some(SendErrorKind::Inval));
        assert_eq!(SendError::inval(3).code(), ERR_INVAL);
        assert_eq!(SendError::again(0).code(), ERR_AGAIN);
    }

    #[test]
    fn display_names_the_kind_and_index() {
        assert_eq!(
            SendError::again(7).to_string(),
            "try again later (stopped at batch index 7)"
        );
        assert_eq!(
            SendError::inval(0).to_string(),
            "bad input arguments (stopped at batch index 0)"
        );
        assert_eq!(SendError::again(2).offset(64), SendError::again(66));
    }
}
