use super::*;
use crate::{MemAio, PktMeta, ERR_AGAIN, ERR_INVAL, SUCCESS};
use core::ptr;

/// Object memory: 64-aligned, with room to spare for misaligned views.
#[repr(C, align(64))]
struct Mem([u8; 256]);

fn mem() -> Box<Mem> {
    Box::new(Mem([0; 256]))
}

/// Accepts everything, keeps the bytes, counts flushes: no length bound,
/// so the u16 limit of the C edge is what shows.
#[derive(Default)]
struct Recorder {
    got: Vec<Vec<u8>>,
    metas: Vec<PktMeta>,
    calls: usize,
    flushes: usize,
}

impl Aio for Recorder {
    fn send(&mut self, batch: &[PktInfo<'_>], flush: bool) -> Result<(), SendError> {
        self.calls += 1;
        self.flushes += usize::from(flush);
        for p in batch {
            self.got.push(p.buf.to_vec());
            self.metas.push(p.meta);
        }
        Ok(())
    }
}

fn pkts(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| vec![i as u8; i % 7]).collect()
}

#[test]
fn layout_is_pinned() {
    assert_eq!(RawAio::footprint(), 64);
    assert_eq!(RawAio::ALIGN, 64);
    assert_eq!(<RawAio as ShmObject>::footprint(&()), Some(64));
    assert_eq!(<RawAio as ShmObject>::ALIGN, 64);
    assert_eq!(<RawAio as ShmObject>::MAGIC, RawAio::MAGIC);
    assert_eq!(RawAio::MAGIC.to_be_bytes(), *b"tw.aio\0\x01");
    assert_eq!(core::mem::offset_of!(Header, ctx), 8);
    assert_eq!(core::mem::offset_of!(Header, send_fn), 16);
}

#[test]
fn join_refuses_each_kind_of_bad_memory() {
    let mut m = mem();
    let region = Region::from_mut(&mut m.0);
    assert_eq!(RawAio::join(region).unwrap_err(), JoinError::NotInitialized);
    assert!(matches!(
        RawAio::join(region.sub(0, 32).unwrap()),
        Err(JoinError::TooSmall { len: 32, need: 64 })
    ));
    assert!(matches!(
        RawAio::join(region.sub(8, 64).unwrap()),
        Err(JoinError::Misaligned { align: 64, .. })
    ));

    m.0.fill(0xa5);
    let region = Region::from_mut(&mut m.0);
    assert!(matches!(
        RawAio::join(region),
        Err(JoinError::BadMagic { .. })
    ));

    let next_version = magic(b"tw.aio\0", 2);
    m.0[..8].copy_from_slice(&next_version.to_ne_bytes());
    let region = Region::from_mut(&mut m.0);
    assert!(matches!(
        RawAio::join(region),
        Err(JoinError::BadVersion {
            found: 2,
            expected: 1,
            ..
        })
    ));

    // The right magic over a null function.
    m.0.fill(0);
    m.0[..8].copy_from_slice(&RawAio::MAGIC.to_ne_bytes());
    let region = Region::from_mut(&mut m.0);
    match RawAio::join(region) {
        Err(JoinError::BadParams { what, .. }) => assert!(what.contains("null")),
        other => panic!("expected BadParams, got {other:?}"),
    }
}

#[test]
fn join_refuses_objects_not_made_by_this_process() {
    let target = Box::into_raw(Box::new(Recorder::default()));
    let mut a = mem();
    let mut forged = mem();
    // SAFETY: `target` lives until the end of the test, after the delete,
    // and is only used through the handles of this thread.
    unsafe { RawAio::new_for(Region::from_mut(&mut a.0), target) }.unwrap();
    // The exact bytes of a live object, at another address: a forgery (or
    // an object another process made in a shared workspace).
    forged.0[..64].copy_from_slice(&a.0[..64]);
    match RawAio::join(Region::from_mut(&mut forged.0)) {
        Err(JoinError::BadParams { what, .. }) => assert!(what.contains("this process")),
        other => panic!("expected BadParams, got {other:?}"),
    }
    // Deleted, then the magic rewritten in place: still refused.
    let saved = a.0;
    RawAio::delete(Region::from_mut(&mut a.0)).unwrap();
    a.0 = saved;
    assert!(matches!(
        RawAio::join(Region::from_mut(&mut a.0)),
        Err(JoinError::BadParams { .. })
    ));
    // SAFETY: no handle to the object exists any more.
    drop(unsafe { Box::from_raw(target) });
}

#[test]
fn new_refuses_bad_memory_and_writes_nothing() {
    let mut m = mem();
    let region = Region::from_mut(&mut m.0);
    let target: *mut Recorder = ptr::null_mut();
    // SAFETY: read-only memory: new fails before anything could call the
    // trampoline with the null target.
    let e = unsafe { RawAio::new_for(region.read_only(), target) };
    assert_eq!(e, Err(NewError::ReadOnly));
    // SAFETY: too small: fails as above.
    let e = unsafe { RawAio::new_for(region.sub(0, 63).unwrap(), target) };
    assert_eq!(e, Err(NewError::TooSmall { len: 63, need: 64 }));
    // SAFETY: misaligned: fails as above.
    let e = unsafe { RawAio::new_for(region.sub(16, 64).unwrap(), target) };
    assert!(matches!(e, Err(NewError::Misaligned { align: 64, .. })));
    assert!(m.0.iter().all(|&b| b == 0));
}

#[test]
fn delete_then_join_fails() {
    let target = Box::into_raw(Box::new(MemAio::with_capacity(4)));
    let mut m = mem();
    let region = Region::from_mut(&mut m.0);
    // SAFETY: `target` outlives every handle and the delete below.
    unsafe { RawAio::new_for(region, target) }.unwrap();
    let h = RawAio::join(region).unwrap();
    assert_eq!(h.ctx(), target.cast());
    assert_eq!(RawAio::leave(h).as_ptr(), region.as_ptr());
    assert_eq!(
        RawAio::delete(region.read_only()),
        Err(DeleteError::ReadOnly)
    );
    RawAio::delete(region).unwrap();
    assert_eq!(RawAio::join(region).unwrap_err(), JoinError::NotInitialized);
    assert_eq!(
        RawAio::delete(region),
        Err(DeleteError::Join(JoinError::NotInitialized))
    );
    // SAFETY: the object is deleted and its handle left.
    drop(unsafe { Box::from_raw(target) });
}

#[test]
fn trampoline_keeps_indices_right_across_chunks() {
    let target = Box::into_raw(Box::new(MemAio::with_capacity(150)));
    let mut m = mem();
    let region = Region::from_mut(&mut m.0);
    // SAFETY: `target` outlives the handle and the delete; it is only read
    // (through the raw pointer) between sends.
    unsafe { RawAio::new_for(region, target) }.unwrap();
    let mut h = RawAio::join(region).unwrap();
    let data = pkts(200);
    let batch: Vec<PktInfo<'_>> = data.iter().map(|d| PktInfo::new(d)).collect();

    assert_eq!(h.send(&batch, true), Err(SendError::again(150)));
    {
        // SAFETY: no send is running.
        let sink = unsafe { &mut *target };
        let got: Vec<Vec<u8>> = sink.drain().map(|p| p.buf.to_vec()).collect();
        assert_eq!(got, data[..150]);
        // 200 packets = chunks of 64, 64, 22; the third was refused at 22.
        assert_eq!(sink.stats().send_calls, 3);
    }
    assert_eq!(h.send(&batch[150..], true), Ok(()));

    let big = vec![0u8; crate::BUF_MAX + 1];
    let mut with_bad = batch[..100].to_vec();
    with_bad.push(PktInfo::new(&big));
    // SAFETY: no send is running.
    unsafe { &mut *target }.clear();
    assert_eq!(h.send(&with_bad, false), Err(SendError::inval(100)));
    // SAFETY: no send is running.
    assert_eq!(unsafe { &*target }.len(), 100);

    // SAFETY: no send is running.
    let flushes_before = unsafe { &*target }.stats().flushes;
    assert_eq!(h.send(&[], true), Ok(()));
    // SAFETY: no send is running.
    assert_eq!(unsafe { &*target }.stats().flushes, flushes_before + 1);

    RawAio::leave(h);
    RawAio::delete(region).unwrap();
    // SAFETY: the object is deleted and its handle left.
    drop(unsafe { Box::from_raw(target) });
}

#[test]
fn packets_over_u16_are_inval_after_the_prefix_and_meta_does_not_cross() {
    let target = Box::into_raw(Box::new(Recorder::default()));
    let mut m = mem();
    let region = Region::from_mut(&mut m.0);
    // SAFETY: as in the tests above.
    unsafe { RawAio::new_for(region, target) }.unwrap();
    let mut h = RawAio::join(region).unwrap();
    let huge = vec![1u8; 70_000];
    let addr = "127.0.0.1:1".parse().unwrap();
    let data = pkts(130);
    let mut batch: Vec<PktInfo<'_>> = data.iter().map(|d| PktInfo::with_addr(d, addr)).collect();
    assert_eq!(h.send(&batch, true), Ok(()));
    batch.insert(3, PktInfo::new(&huge));
    assert_eq!(h.send(&batch, true), Err(SendError::inval(3)));
    // SAFETY: no send is running.
    let rec = unsafe { &*target };
    assert_eq!(rec.got.len(), 133);
    assert_eq!(rec.got[..130], data[..]);
    assert_eq!(rec.got[130..], data[..3]);
    assert!(rec.metas.iter().all(|m| *m == PktMeta::default()));
    // First send: chunks 64 + 64 + 2, flush with the last only; second
    // send: one chunk of 3, flushed because the batch stops there.
    assert_eq!((rec.calls, rec.flushes), (4, 2));
    RawAio::leave(h);
    RawAio::delete(region).unwrap();
    // SAFETY: the object is deleted and its handle left.
    drop(unsafe { Box::from_raw(target) });
}

#[test]
fn trampoline_checks_raw_pointers() {
    let target = Box::into_raw(Box::new(Recorder::default()));
    let mut m = mem();
    let region = Region::from_mut(&mut m.0);
    // SAFETY: as in the tests above.
    unsafe { RawAio::new_for(region, target) }.unwrap();
    let h = RawAio::join(region).unwrap();
    let descs = [
        PktInfoC::new(b"ab".as_ptr(), 2),
        PktInfoC::new(ptr::null(), 0),
        PktInfoC::new(ptr::null(), 5),
        PktInfoC::new(b"c".as_ptr(), 1),
    ];
    // SAFETY: the non-null descriptors name static bytes; the null one with
    // a size is what the trampoline must refuse without reading.
    assert_eq!(unsafe { h.send_raw(&descs, false) }, (ERR_INVAL, 2));
    // SAFETY: a null batch with a count, and a null out-pointer: the
    // trampoline must refuse before reading anything.
    let code = unsafe { (h.send_fn())(h.ctx(), ptr::null(), 3, ptr::null_mut(), 1) };
    assert_eq!(code, ERR_INVAL);
    // SAFETY: a null batch of zero packets is a valid (flushing) send.
    let code = unsafe { (h.send_fn())(h.ctx(), ptr::null(), 0, ptr::null_mut(), 1) };
    assert_eq!(code, SUCCESS);
    // SAFETY: no send is running.
    let rec = unsafe { &*target };
    assert_eq!(rec.got, [b"ab".to_vec(), Vec::new()]);
    assert_eq!(rec.flushes, 1);
    RawAio::leave(h);
    RawAio::delete(region).unwrap();
    // SAFETY: the object is deleted and its handle left.
    drop(unsafe { Box::from_raw(target) });
}

/// A C-style backend: `ctx` points to the code to return and the index to
/// report (`usize::MAX` = report none).
unsafe extern "C" fn scripted(
    ctx: *mut c_void,
    _batch: *const PktInfoC,
    _batch_cnt: usize,
    opt_batch_idx: *mut usize,
    _flush: i32,
) -> i32 {
    // SAFETY: every test below passes a live (i32, usize) as ctx.
    let (code, idx) = unsafe { *ctx.cast::<(i32, usize)>() };
    if idx != usize::MAX && !opt_batch_idx.is_null() {
        // SAFETY: the SendFn contract: non-null means writable.
        unsafe { opt_batch_idx.write(idx) };
    }
    code
}

#[test]
fn send_raw_sanitises_what_a_c_backend_reports() {
    let mut script = (SUCCESS, 0usize);
    let ctx: *mut (i32, usize) = &mut script;
    let mut m = mem();
    let region = Region::from_mut(&mut m.0);
    // SAFETY: `script` outlives the handle and the delete below; it is only
    // written between sends, through `ctx`.
    unsafe { RawAio::new(region, ctx.cast(), scripted) }.unwrap();
    let mut h = RawAio::join(region).unwrap();
    let d = [PktInfoC::new(b"x".as_ptr(), 1); 3];
    let run = |h: &RawAioHandle<'_>, code, idx| {
        // SAFETY: no send is running; `ctx` is live.
        unsafe { ctx.write((code, idx)) };
        // SAFETY: the descriptors name static bytes.
        unsafe { h.send_raw(&d, true) }
    };
    assert_eq!(run(&h, SUCCESS, 99), (SUCCESS, 3));
    assert_eq!(run(&h, ERR_AGAIN, 2), (ERR_AGAIN, 2));
    assert_eq!(run(&h, ERR_AGAIN, usize::MAX), (ERR_AGAIN, 0));
    assert_eq!(run(&h, ERR_INVAL, 1000), (ERR_INVAL, 3));

    // Through the Aio impl, an unknown code is Inval and indices are offset
    // by the chunk the error came from (here the first).
    // SAFETY: no send is running; `ctx` is live.
    unsafe { ctx.write((-99, 1)) };
    let batch = [PktInfo::new(b"p"); 5];
    assert_eq!(h.send(&batch, false), Err(SendError::inval(1)));
    RawAio::leave(h);
    RawAio::delete(region).unwrap();
}

#[test]
fn another_thread_of_this_process_can_join() {
    let target = Box::into_raw(Box::new(MemAio::with_capacity(8)));
    let mut m = mem();
    let region = Region::from_mut(&mut m.0);
    // SAFETY: MemAio is Send; only the spawned thread sends, and `target`
    // outlives it and the delete.
    unsafe { RawAio::new_for(region, target) }.unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut h = RawAio::join(region).unwrap();
            h.send(&[PktInfo::new(b"from a thread")], true).unwrap();
        });
    });
    // SAFETY: the thread has finished sending.
    assert_eq!(unsafe { &*target }.front().unwrap().buf, b"from a thread");
    RawAio::delete(region).unwrap();
    // SAFETY: the object is deleted and no handle remains.
    drop(unsafe { Box::from_raw(target) });
}
