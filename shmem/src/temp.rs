//! [`TempWorkspace`]: a workspace of its own for a test, an example or a
//! tool, removed when dropped.

use core::ops::Deref;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{CreateError, CreateOptions, PageKind, Workspace};

/// A workspace with a name no other process and no other `TempWorkspace`
/// of this process uses (`t<pid>-<n>-<tag>`), unlinked when dropped, also
/// while a test unwinds from a failure. It dereferences to the
/// [`Workspace`].
#[derive(Debug)]
pub struct TempWorkspace {
    ws: Workspace,
    opts: CreateOptions,
}

impl TempWorkspace {
    /// A fresh workspace of `size` bytes on normal pages, its name made
    /// from `tag` (a few letters saying what it is for).
    ///
    /// # Errors
    /// As [`Workspace::create`] (a `tag` that makes the name invalid or
    /// too long among them).
    pub fn new(tag: &str, size: usize) -> Result<TempWorkspace, CreateError> {
        TempWorkspace::with(tag, size, PageKind::Normal, CreateOptions::default())
    }

    /// As [`TempWorkspace::new`], on `pages`, with `opts`.
    ///
    /// # Errors
    /// As [`Workspace::create_with`].
    pub fn with(
        tag: &str,
        size: usize,
        pages: PageKind,
        opts: CreateOptions,
    ) -> Result<TempWorkspace, CreateError> {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let ws = Workspace::create_with(&name, size, pages, &opts)?;
        Ok(TempWorkspace { ws, opts })
    }

    /// The workspace.
    pub fn workspace(&self) -> &Workspace {
        &self.ws
    }
}

impl Deref for TempWorkspace {
    type Target = Workspace;

    fn deref(&self) -> &Workspace {
        &self.ws
    }
}

impl Drop for TempWorkspace {
    fn drop(&mut self) {
        let _ = Workspace::unlink_with(self.ws.name(), &self.opts.config);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Access;

    #[test]
    fn it_is_there_while_held_and_gone_after() {
        let a = TempWorkspace::new("temp", 1 << 20).unwrap();
        let b = TempWorkspace::new("temp", 1 << 20).unwrap();
        assert_ne!(a.name(), b.name(), "names never repeat");
        let name = a.name().to_owned();
        assert!(Workspace::join(&name, Access::ReadOnly).is_ok());
        drop(a);
        assert!(Workspace::join(&name, Access::ReadOnly).is_err());
    }
}
