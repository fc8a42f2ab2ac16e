#![deny(unsafe_code)]
#![doc = include_str!("../README.md")]
//!
//! tilewire-shmem: named shared-memory workspaces, an allocator inside them,
//! and the lifecycle every shared object follows.
//!
//! A tile pipeline is a set of single-threaded loops, possibly in different
//! processes, that hand packets to each other through rings in shared memory.
//! This crate is the ground they stand on:
//!
//! - [`Workspace`]: a named file in `/dev/shm` (or on hugetlbfs, for 2 MiB and
//!   1 GiB pages) that every process of a pipeline maps. `create` makes it,
//!   `join` maps it (read-write, or read-only for monitors), dropping the
//!   handle leaves, `unlink` removes the name.
//! - gaddrs: a shared record never holds a pointer, because each process maps
//!   the workspace at its own address. It holds a *gaddr*, the byte offset
//!   from the workspace's start, and each process converts it with a bounds
//!   check ([`Workspace::laddr`], [`Workspace::region`]).
//! - the allocator ([`Workspace::alloc`], [`Workspace::alloc_named`],
//!   [`Workspace::lookup`]): so a tile in another process finds
//!   "net.rx.mcache" by name. A process killed while allocating does not
//!   wedge the others (see [`alloc`]).
//! - the object lifecycle ([`object`]): `ALIGN`, `footprint`, `new` (magic
//!   last, Release), `join` (checks, Acquire, a typed handle), `leave`,
//!   `delete` (magic zeroed), with versioned magics.
//! - [`Region`]: how shared bytes are borrowed without claiming, as `&[u8]`
//!   would, that nobody else changes them.
//! - [`hist`]: a latency histogram that lives in shared memory (and its heap
//!   twin), so a monitor reads what a tile or a socket backend records.
//!
//! Every failure is a typed error that names what was wrong; nothing here
//! panics on bad input or reads outside a mapping.

pub mod alloc;
pub mod audit;
pub mod clock;
mod header;
pub mod hist;
mod intact;
pub mod name;
pub mod object;
pub mod page;
mod pid;
pub mod region;
pub mod sigbus;
mod sys;
mod table;
mod temp;
pub mod tick;
pub mod wait;
pub mod workspace;
mod workspace_error;

pub use alloc::{AllocError, AllocInfo, FreeError, Usage};
pub use audit::{AllocFault, AllocProblem};
pub use name::{check_name, NameError, NAME_MAX};
pub use object::{DeleteError, JoinError, NewError, ShmObject};
pub use page::{Config, PageKind};
pub use region::{atomic_words, copy_bytes, load_bytes, store_bytes, view_bytes, Access, Region};
pub use temp::TempWorkspace;
pub use workspace::{
    pid_alive, AddrError, CreateError, CreateOptions, HeaderStatic, OpenError, TruncatedError,
    UnlinkError, Workspace, WorkspaceInfo,
};
