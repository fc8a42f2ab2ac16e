//! Helpers shared by the shmem integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use tilewire_shmem::{Config, CreateOptions, PageKind, Workspace};

/// A per-run unique workspace name.
pub(crate) fn uniq(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("t{}-{}-{}", std::process::id(), n, tag)
}

/// A private directory under /dev/shm (tmpfs) removed on drop, so tests that
/// list or plant files see only their own.
#[derive(Debug)]
pub(crate) struct Dir {
    pub config: Config,
}

impl Dir {
    pub(crate) fn new(tag: &str) -> Dir {
        let d = std::path::Path::new("/dev/shm").join(format!("tilewire-test-{}", uniq(tag)));
        std::fs::create_dir_all(&d).unwrap();
        Dir {
            config: Config {
                shm_dir: d.clone(),
                huge_dir: d.join("no-huge"),
                gigantic_dir: d.join("no-gigantic"),
            },
        }
    }

    pub(crate) fn opts(&self) -> CreateOptions {
        CreateOptions {
            config: self.config.clone(),
            table_cap: 64,
        }
    }

    pub(crate) fn create(&self, name: &str, size: usize) -> Workspace {
        Workspace::create_with(name, size, PageKind::Normal, &self.opts()).unwrap()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.config.shm_dir);
    }
}
