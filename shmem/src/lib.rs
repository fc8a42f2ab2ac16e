//! tilewire-shmem: named shared-memory workspaces and the shared-object
//! lifecycle.
//!
//! (module essay is written with the workspace module)

pub mod object;
pub mod region;

pub use object::{DeleteError, JoinError, NewError, ShmObject};
pub use region::{Access, Region};
