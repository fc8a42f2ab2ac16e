//! One table of every shared object's alignment, footprint and magic across
//! the crates. Changing a row changes what other processes (or C code) read:
//! bump the object's magic version with it.

use tilewire_aio::{PktInfoC, RawAio};
use tilewire_shmem::object::{magic_kind, magic_version};
use tilewire_shmem::workspace::WKSP_MAGIC;
use tilewire_shmem::{HeaderStatic, ShmObject};

#[test]
fn every_shared_object_is_pinned() {
    // (object, align, footprint, magic)
    let rows: [(&str, usize, usize, u64); 1] =
        [("aio", RawAio::ALIGN, RawAio::footprint(), RawAio::MAGIC)];
    assert_eq!(
        rows,
        [("aio", 64, 64, u64::from_be_bytes(*b"tw.aio\0\x01"))]
    );
    assert_eq!(<RawAio as ShmObject>::footprint(&()), Some(64));
    assert_eq!(<RawAio as ShmObject>::ALIGN, 64);

    assert_eq!(core::mem::size_of::<HeaderStatic>(), 128);
    assert_eq!(magic_version(WKSP_MAGIC), 1);
    assert_eq!(
        magic_kind(WKSP_MAGIC),
        magic_kind(u64::from_be_bytes(*b"tw.wksp\x01"))
    );

    assert_eq!(core::mem::size_of::<PktInfoC>(), 16);
    assert_eq!(core::mem::align_of::<PktInfoC>(), 16);
    assert_eq!(tilewire_aio::BUF_MAX, 4096);
    assert_eq!(
        (
            tilewire_aio::SUCCESS,
            tilewire_aio::ERR_INVAL,
            tilewire_aio::ERR_AGAIN
        ),
        (0, -1, -2)
    );
}
