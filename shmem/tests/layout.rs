//! Pins every shared layout of the shmem crate: a change here changes what
//! other processes (built from other versions) read, so it must bump a magic.

use core::mem::{align_of, offset_of, size_of};

use tilewire_shmem::alloc::{ENTRY_SZ, MIN_ALIGN};
use tilewire_shmem::object::{magic, magic_kind, magic_version};
use tilewire_shmem::workspace::{DEFAULT_TABLE_CAP, HEADER_SZ, MAX_TABLE_CAP, WKSP_MAGIC};
use tilewire_shmem::{HeaderStatic, PageKind, NAME_MAX};

#[test]
fn workspace_header_layout() {
    assert_eq!(size_of::<HeaderStatic>(), 128);
    assert_eq!(align_of::<HeaderStatic>(), 8);
    let table: [(&str, usize, usize); 11] = [
        ("magic", offset_of!(HeaderStatic, magic), 0),
        ("size", offset_of!(HeaderStatic, size), 8),
        ("page_sz", offset_of!(HeaderStatic, page_sz), 16),
        ("table_off", offset_of!(HeaderStatic, table_off), 24),
        ("table_cap", offset_of!(HeaderStatic, table_cap), 32),
        ("data_off", offset_of!(HeaderStatic, data_off), 40),
        ("created_ns", offset_of!(HeaderStatic, created_ns), 48),
        ("creator_pid", offset_of!(HeaderStatic, creator_pid), 56),
        ("page_kind", offset_of!(HeaderStatic, page_kind), 60),
        ("name", offset_of!(HeaderStatic, name), 64),
        ("reserved", offset_of!(HeaderStatic, reserved), 104),
    ];
    for (field, got, want) in table {
        assert_eq!(got, want, "offset of {field}");
    }
    assert_eq!(NAME_MAX, 40);
    assert_eq!(HEADER_SZ, 4096);
}

#[test]
fn allocator_layout() {
    assert_eq!(ENTRY_SZ, 80);
    assert_eq!(MIN_ALIGN, 64);
    assert_eq!(DEFAULT_TABLE_CAP, 1024);
    assert_eq!(MAX_TABLE_CAP, 1 << 20);
    // Footprint of the metadata for the default table: header + table,
    // rounded to a page: the data region starts at gaddr 86016.
    assert_eq!(HEADER_SZ + DEFAULT_TABLE_CAP * ENTRY_SZ, 86_016);
}

#[test]
fn magics_and_page_kinds() {
    assert_eq!(WKSP_MAGIC, 0x7477_2e77_6b73_7001);
    assert_eq!(magic_kind(WKSP_MAGIC), u64::from_be_bytes(*b"\0tw.wksp"));
    assert_eq!(magic_version(WKSP_MAGIC), 1);
    assert_eq!(magic(b"tw.wksp", 1), WKSP_MAGIC);
    assert_eq!(
        PageKind::ALL.map(|p| (p as u32, p.size())),
        [(1, 4096), (2, 2 << 20), (3, 1 << 30)]
    );
}
