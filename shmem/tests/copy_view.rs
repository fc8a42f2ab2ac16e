//! copy_bytes and view_bytes: shared bytes copied into shared bytes, and
//! read in place.

use core::sync::atomic::{AtomicU8, Ordering};

use tilewire_shmem::{copy_bytes, view_bytes};

fn shared(bytes: impl IntoIterator<Item = u8>) -> Vec<AtomicU8> {
    bytes.into_iter().map(AtomicU8::new).collect()
}

fn plain(bytes: &[AtomicU8]) -> Vec<u8> {
    bytes.iter().map(|b| b.load(Ordering::Relaxed)).collect()
}

#[test]
fn copy_bytes_copies_every_length_and_leaves_the_rest() {
    for n in 0..200usize {
        let src = shared((0..n).map(|i| i as u8 ^ 0x5a));
        let dst = shared(core::iter::repeat_n(0xee, n + 7));
        copy_bytes(&dst, &src);
        let got = plain(&dst);
        assert_eq!(&got[..n], &plain(&src)[..], "n = {n}");
        assert!(got[n..].iter().all(|&b| b == 0xee), "n = {n}: past the end");
    }
}

#[test]
fn overlapping_ranges_are_copied_front_to_back() {
    let buf = shared(0..32u8);
    copy_bytes(&buf[4..20], &buf[0..16]);
    let got = plain(&buf);
    // Front to back, byte by byte: each byte copied from 4 back, which an
    // earlier step may already have overwritten.
    let mut want: Vec<u8> = (0..32).collect();
    for i in 0..16 {
        want[i + 4] = want[i];
    }
    assert_eq!(got, want);
}

#[test]
#[should_panic(expected = "copy_bytes: 8 bytes into 4")]
fn a_short_destination_panics_before_anything_is_written() {
    let src = shared(0..8u8);
    let dst = shared([0u8; 4]);
    copy_bytes(&dst, &src);
}

#[test]
fn a_view_is_the_bytes_as_they_are() {
    let src = shared((0..100u8).rev());
    // SAFETY: nothing stores to `src` while the view lives.
    let view = unsafe { view_bytes(&src) };
    assert_eq!(view, &plain(&src)[..]);
    assert_eq!(view.len(), 100);
}
