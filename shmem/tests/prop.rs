//! Property tests: the allocator's invariants under any alloc/free sequence,
//! and joins over random or damaged bytes.

mod common;

use common::{uniq, Dir};
use proptest::prelude::*;
use tilewire_shmem::object::{self, JoinError};
use tilewire_shmem::{Access, AllocError, CreateOptions, PageKind, Region, Workspace};

#[derive(Debug, Clone)]
enum Op {
    Alloc {
        align_log2: u32,
        size: usize,
        named: bool,
    },
    Free {
        pick: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u32..=12, 1usize..40_000, any::<bool>())
            .prop_map(|(align_log2, size, named)| Op::Alloc { align_log2, size, named }),
        2 => any::<usize>().prop_map(|pick| Op::Free { pick }),
    ]
}

/// Checks every invariant against the model of what is live.
fn check(ws: &Workspace, model: &[(u64, usize, usize, Option<String>)]) {
    let live = ws.allocations();
    assert_eq!(live.len(), model.len());
    let mut prev_end = ws.data_off();
    for a in &live {
        let m = model
            .iter()
            .find(|m| m.0 == a.gaddr)
            .expect("every live allocation is one we made");
        assert_eq!(a.size, m.1 as u64);
        assert_eq!(a.gaddr % m.2.max(64) as u64, 0, "alignment");
        assert_eq!(a.name, m.3);
        assert!(a.gaddr >= prev_end, "overlap or below the data region");
        prev_end = a.gaddr + a.size;
    }
    assert!(prev_end <= ws.size() as u64, "in bounds");
    let u = ws.usage();
    assert_eq!(u.allocations, model.len());
    assert_eq!(u.used_bytes, model.iter().map(|m| m.1 as u64).sum::<u64>());
    assert_eq!(u.used_bytes + u.free_bytes, u.data_bytes);
    for m in model {
        if let Some(n) = &m.3 {
            assert_eq!(ws.lookup(n).map(|a| a.gaddr), Some(m.0));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn allocator_invariants_hold_for_any_sequence(ops in prop::collection::vec(op(), 1..120)) {
        let dir = Dir::new("pa");
        let opts = CreateOptions { table_cap: 48, ..dir.opts() };
        let ws = Workspace::create_with(&uniq("pa"), 512 << 10, PageKind::Normal, &opts).unwrap();
        let mut model: Vec<(u64, usize, usize, Option<String>)> = Vec::new();
        let mut n = 0u32;
        for op in ops {
            match op {
                Op::Alloc { align_log2, size, named } => {
                    let align = 1usize << align_log2;
                    let name = named.then(|| { n += 1; format!("obj{n}") });
                    let r = match &name {
                        Some(nm) => ws.alloc_named(nm, align, size, 9),
                        None => ws.alloc(align, size, 9),
                    };
                    match r {
                        Ok(g) => {
                            // Write the whole allocation: a bad bound would
                            // fault or corrupt a neighbour's pattern.
                            let reg = ws.region(g, size).unwrap();
                            // SAFETY: a live allocation of `size` bytes, ours.
                            unsafe { core::ptr::write_bytes(reg.as_ptr(), (g >> 6) as u8, size) };
                            model.push((g, size, align, name));
                        }
                        Err(AllocError::OutOfSpace { largest_free, .. }) => {
                            // Honest: no aligned gap fits.
                            prop_assert!(largest_free < (size + align.max(64)) as u64);
                        }
                        Err(AllocError::TableFull { cap }) => prop_assert_eq!(model.len(), cap),
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    }
                }
                Op::Free { pick } if !model.is_empty() => {
                    let m = model.swap_remove(pick % model.len());
                    // Neighbours' bytes were not touched by anyone else.
                    let reg = ws.region(m.0, m.1).unwrap();
                    // SAFETY: still live until the free below.
                    let bytes = unsafe { core::slice::from_raw_parts(reg.as_ptr(), m.1) };
                    prop_assert!(bytes.iter().all(|&b| b == (m.0 >> 6) as u8));
                    match &m.3 {
                        Some(nm) if pick % 2 == 0 => ws.free_named(nm).unwrap(),
                        _ => ws.free(m.0).unwrap(),
                    }
                    prop_assert!(ws.free(m.0).is_err(), "double free refused");
                }
                Op::Free { .. } => {}
            }
            check(&ws, &model);
        }
        // Fragmentation recovers: once everything is freed, the whole data
        // region is one gap again.
        for m in model.drain(..) {
            ws.free(m.0).unwrap();
        }
        let u = ws.usage();
        prop_assert_eq!(u.largest_free, u.data_bytes);
        let g = ws.alloc(64, u.data_bytes as usize, 0).unwrap();
        prop_assert_eq!(g, ws.data_off());
    }

    #[test]
    fn object_join_over_random_bytes_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        skew in 0usize..16,
        with_magic in any::<bool>(),
    ) {
        const M: u64 = object::magic(b"tw.test", 1);
        let mut backing = vec![0u64; 64];
        let raw: &mut [u8] = bytemuck::cast_slice_mut(&mut backing);
        let end = (skew + bytes.len()).min(raw.len());
        raw[skew..end].copy_from_slice(&bytes[..end - skew]);
        if with_magic && skew % 8 == 0 && end - skew >= 8 {
            raw[skew..skew + 8].copy_from_slice(&M.to_ne_bytes());
        }
        let mem = Region::from_mut(&mut raw[skew..end]);
        match object::check_join(&mem, "test", M, 8, 64) {
            Ok(()) => prop_assert!(mem.len() >= 64 && skew % 8 == 0),
            Err(JoinError::Misaligned { .. }) => prop_assert!(skew % 8 != 0),
            Err(JoinError::TooSmall { .. }) => prop_assert!(mem.len() < 64),
            Err(_) => {}
        }
    }

    #[test]
    fn workspace_join_over_random_or_damaged_files_never_panics(
        mode in 0u8..3,
        len in 0usize..(3 * 4096 + 100),
        seed in any::<u64>(),
        edits in prop::collection::vec((0usize..256, any::<u8>()), 0..8),
    ) {
        let dir = Dir::new("pj");
        let name = uniq("pj");
        let path = dir.config.shm_dir.join(format!("tilewire.{name}"));
        let bytes = match mode {
            // Pure garbage.
            0 => {
                let mut x = seed;
                (0..len).map(|_| { x = x.wrapping_mul(6364136223846793005).wrapping_add(1); (x >> 56) as u8 }).collect()
            }
            // A real workspace with bytes of its header changed.
            _ => {
                let ws = Workspace::create_with(&name, 64 << 10, PageKind::Normal,
                    &CreateOptions { table_cap: 16, ..dir.opts() }).unwrap();
                ws.alloc_named("x", 64, 100, 1).unwrap();
                let mut b = std::fs::read(ws.path()).unwrap();
                drop(ws);
                for (off, v) in &edits { b[*off] = *v; }
                if mode == 2 { b.truncate(len.max(1)); }
                b
            }
        };
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(ws) = Workspace::join_with(&name, Access::ReadOnly, &dir.config) {
            // Whatever joined must be usable without faulting.
            prop_assert_eq!(ws.size(), bytes.len());
            let u = ws.usage();
            prop_assert!(u.used_bytes <= u.data_bytes);
            for a in ws.allocations() {
                let _ = ws.region(a.gaddr, a.size as usize);
            }
        }
    }
}
