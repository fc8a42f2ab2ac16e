//! Page-aligned heap memory for objects that live in one process: tests,
//! benchmarks, and pipelines that never share a link with another process.

use tilewire_shmem::Region;

/// A zeroed, 4096-aligned buffer of at least `len` bytes on the heap.
#[derive(Debug)]
pub struct HeapMem {
    words: Vec<u64>,
    skew: usize,
    len: usize,
}

impl HeapMem {
    /// A new zeroed buffer.
    pub fn new(len: usize) -> HeapMem {
        let words = vec![0u64; (len + 4096).div_ceil(8)];
        let addr = words.as_ptr() as usize;
        HeapMem {
            skew: (4096 - addr % 4096) % 4096,
            words,
            len,
        }
    }

    /// The aligned bytes as a writable region.
    pub fn region(&mut self) -> Region<'_> {
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut self.words);
        Region::from_mut(&mut bytes[self.skew..self.skew + self.len])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligned_and_sized() {
        for len in [0, 1, 4096, 10_000] {
            let mut m = super::HeapMem::new(len);
            let r = m.region();
            assert!(r.is_aligned(4096));
            assert_eq!(r.len(), len);
        }
    }
}
