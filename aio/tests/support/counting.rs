//! A counting global allocator for no-allocation tests, shared by the test
//! binaries of more than one crate (each includes this file with
//! `#[path]` and installs it with `#[global_allocator]`).
//!
//! It counts allocations (and reallocations) made by the current thread
//! while that thread is armed, and passes everything on to the system
//! allocator, so a test measures exactly the code it arms around.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

/// The allocator: `#[global_allocator] static A: Counting = Counting;`.
pub(crate) struct Counting;

fn note() {
    // try_with: the thread-locals may be gone while a thread shuts down.
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            ALLOCS.with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every method forwards to `System` with the same arguments, so the
// GlobalAlloc contract is System's; the counting touches only const-
// initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded unchanged; the caller upholds alloc's contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Starts counting this thread's allocations, from zero.
pub(crate) fn arm() {
    ALLOCS.with(|n| n.set(0));
    ARMED.with(|a| a.set(true));
}

/// Stops counting; returns the allocations counted since [`arm`].
pub(crate) fn disarm() -> u64 {
    ARMED.with(|a| a.set(false));
    ALLOCS.with(Cell::get)
}

/// True while this thread is armed.
pub(crate) fn armed() -> bool {
    ARMED.with(Cell::get)
}

/// Heap allocations made by this thread while running `f`.
pub(crate) fn allocations_in(f: impl FnOnce()) -> u64 {
    arm();
    f();
    disarm()
}
