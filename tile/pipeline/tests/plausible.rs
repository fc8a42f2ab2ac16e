//! Shared words no healthy pipeline writes, as the runner sees them: a
//! frag pointing outside its dcache ends the run, naming the reader, the
//! link, the chunk seen and the chunks the dcache holds.

mod runner_support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use runner_support::{registry, ws_name};
use tilewire_pipeline::tile::link::fseq::{DIAG_BAD_CNT, DIAG_OVRNP_FRAGS};
use tilewire_pipeline::{Pipeline, RunOptions, TileFailure};

/// Byte offset of line `i`'s chunk word in an mcache (128-byte header,
/// 32-byte lines: seq, sig, then chunk).
fn chunk_word(i: usize) -> usize {
    128 + i * 32 + 16
}

#[test]
fn a_frag_pointing_outside_its_dcache_ends_the_run_naming_reader_link_and_chunk() {
    let text = format!(
        "[workspace]\nname = \"{}\"\n\n[[link]]\nname = \"a\"\ndepth = 64\n\n\
         [[tile]]\nname = \"gen\"\nkind = \"gen\"\noutputs = [\"a\"]\nparams = {{ rate = 20000 }}\n\n\
         [[tile]]\nname = \"sink\"\nkind = \"sink\"\ninputs = [\"a\"]\n",
        ws_name("badchunk")
    );
    let pipeline = Pipeline::create(registry().parse(&text).unwrap()).unwrap();
    let mut running = pipeline.start(&RunOptions::new()).unwrap();
    let ws = pipeline.workspace();
    let a = ws.lookup("a.mc").unwrap();
    let mem = ws.region(a.gaddr, a.size as usize).unwrap();
    let link = tilewire_pipeline::tile::link::Link::join(ws, "a").unwrap();
    const STRAY: u32 = 0x7fff_0000;
    // A stray writer puts a chunk no dcache holds on every line, again and
    // again: some frag is read between its publish and the next rewrite.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut ended = false;
    while Instant::now() < deadline && !ended {
        for _ in 0..1000 {
            for i in 0..64 {
                // The chunk is the low half of the word it shares with
                // the size and ctl, which stay as they are.
                let w = mem.atomic_u64(chunk_word(i)).unwrap();
                let v = w.load(Ordering::Relaxed);
                w.store(v & !0xffff_ffff | STRAY as u64, Ordering::Relaxed);
            }
        }
        ended = running.poll();
    }
    assert!(
        ended,
        "the run ends by itself once the reader refused a frag"
    );
    let refused = link.fseqs()[0].diag(DIAG_BAD_CNT);
    assert!(refused > 0);
    let err = running.stop().unwrap_err();
    let found = err.failures().iter().find_map(|f| match f {
        TileFailure::BadChunks {
            tile,
            link,
            frags,
            chunk,
            chunks,
            ..
        } => Some((tile.clone(), link.clone(), *frags, *chunk, *chunks)),
        _ => None,
    });
    let (tile, link_name, frags, chunk, (lo, hi)) = found.unwrap_or_else(|| panic!("{err}"));
    assert_eq!((tile.as_str(), link_name.as_str()), ("sink", "a"));
    assert!(frags > 0 && frags <= refused);
    assert_eq!(chunk, STRAY, "the value seen is named");
    assert!(
        lo < hi && hi < STRAY,
        "with the range expected: [{lo}, {hi})"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("last: chunk {STRAY}")) && text.contains("the dcache holds chunks"),
        "{text}"
    );
    assert_eq!(
        link.fseqs()[0].diag(DIAG_OVRNP_FRAGS),
        0,
        "nothing counted lost"
    );
}
