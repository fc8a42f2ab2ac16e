//! [`Workspace::check_intact`]: is the file still as long as the mapping?

use crate::workspace::{TruncatedError, Workspace};

impl Workspace {
    /// Checks that the workspace's file is still as long as this process's
    /// mapping and that no load of a lost page was answered by the SIGBUS
    /// handler (read-only joins, see [`crate::sigbus`]). A monitor calls it
    /// around each reading: what it read is only worth showing if this
    /// passes after it.
    ///
    /// A workspace made by [`Workspace::create`] or joined by
    /// [`Workspace::join`] keeps its file open for this; one whose
    /// descriptor could not be kept is only checked for faults.
    ///
    /// # Errors
    /// [`TruncatedError`], naming the workspace, its file, the size
    /// mapped and the file's size now.
    pub fn check_intact(&self) -> Result<(), TruncatedError> {
        let faults = self.guard.as_ref().map_or(0, |g| g.faults());
        let file_size = match &self.file {
            Some(f) => f.metadata().ok().map(|m| m.len()),
            None => Some(self.size() as u64),
        };
        let mapped = self.size() as u64;
        if faults == 0 && file_size.is_some_and(|s| s >= mapped) {
            return Ok(());
        }
        Err(TruncatedError {
            name: self.name().to_owned(),
            path: self.path().to_path_buf(),
            mapped,
            file_size,
            faults,
        })
    }
}
