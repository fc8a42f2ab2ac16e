//! A consumer in a second process for the link tests: joins a workspace and
//! a link by name, takes one of the link's consumers, and checks every frag
//! it reads against [`tilewire_tests::link_payload`] (size and every byte)
//! and its sig against its seq. Workspace directories come from the
//! environment (TILEWIRE_SHM_DIR), like any tilewire process.
//!
//! ```text
//! link-peer WS LINK INDEX [--max N] [--slow-ns N]
//!
//!   --max N       exit after N good frags
//!   --slow-ns N   sleep N ns after each frag (a slow consumer)
//! ```
//!
//! It also exits, once the link is drained, when its stdin is closed: the
//! producer closes it after its last frag. Whatever happens it gives up
//! after [`DEADLINE`], so a test that lost track of it cannot leave it
//! spinning.
//!
//! Lines on stdout, each flushed at once:
//!
//! ```text
//! ready seq=S                     joined; S is the first seq it will read
//! progress seq=S frags=N lost=L   at most every 2 ms, when something changed
//! overrun lost=N seq=S            lapped by the producer, resynced to S
//! done seq=S frags=N lost=L       finished; exit 0
//! bad seq=S ...                   a frag did not match; exit 1
//! error: ...                      bad arguments or join failed (exit 2),
//!                                 deadline passed (exit 3)
//! ```
//!
//! `seq` is the next seq the consumer will read, `frags` the good frags read,
//! `lost` the frags skipped by overruns, all since this process joined.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tilewire_shmem::{Access, Workspace};
use tilewire_tests::{fail, link_payload, say};
use tilewire_tile::link::frag::FragMeta;
use tilewire_tile::link::{Consumer, Link, Poll};

/// The longest a peer lives.
const DEADLINE: Duration = Duration::from_secs(30);
/// Shortest time between two progress lines.
const PROGRESS_EVERY: Duration = Duration::from_millis(2);
/// Empty polls that only yield the CPU before the peer starts sleeping.
const SPIN_EMPTY: u32 = 64;

struct Args {
    ws: String,
    link: String,
    index: usize,
    max: Option<u64>,
    slow: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let (mut max, mut slow) = (None, Duration::ZERO);
    while let Some(a) = args.next() {
        let mut number = |flag: &str| {
            let v = args.next().ok_or(format!("{flag} needs a value"))?;
            v.parse::<u64>().map_err(|e| format!("{flag} {v:?}: {e}"))
        };
        match a.as_str() {
            "--max" => max = Some(number("--max")?),
            "--slow-ns" => slow = Duration::from_nanos(number("--slow-ns")?),
            _ if a.starts_with("--") => return Err(format!("unknown flag {a:?}")),
            _ => positional.push(a),
        }
    }
    let [ws, link, index] = <[String; 3]>::try_from(positional)
        .map_err(|_| "usage: link-peer WS LINK INDEX [--max N] [--slow-ns N]".to_string())?;
    let index = index
        .parse()
        .map_err(|e| format!("consumer index {index:?}: {e}"))?;
    Ok(Args {
        ws,
        link,
        index,
        max,
        slow,
    })
}

/// Checks frag `m`, read at `seq`, whose payload copy is `got`. Returns
/// what is wrong, if anything.
fn check(m: &FragMeta, seq: u64, got: &[u8], mtu: usize, want: &mut Vec<u8>) -> Option<String> {
    if m.seq != seq || m.sig != seq {
        return Some(format!("meta_seq={} sig={}", m.seq, m.sig));
    }
    link_payload(seq, mtu, want);
    if m.sz as usize != want.len() {
        return Some(format!("sz={} want_sz={}", m.sz, want.len()));
    }
    let got = &got[..want.len()];
    let first = got.iter().zip(want.iter()).position(|(g, w)| g != w)?;
    Some(format!(
        "byte={first} got={:#04x} want={:#04x}",
        got[first], want[first]
    ))
}

/// Publishes progress (the next joiner starts there) and says so.
fn done(consumer: &mut Consumer<'_>, frags: u64, lost: u64) -> ! {
    consumer.housekeeping();
    say(format_args!(
        "done seq={} frags={frags} lost={lost}",
        consumer.seq()
    ));
    std::process::exit(0)
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| fail(2, format_args!("error: {e}")));
    let deadline = Instant::now() + DEADLINE;
    let ws = Workspace::join(&args.ws, Access::ReadWrite)
        .unwrap_or_else(|e| fail(2, format_args!("error: joining workspace: {e}")));
    let link = Link::join(&ws, &args.link)
        .unwrap_or_else(|e| fail(2, format_args!("error: joining link: {e}")));
    let mut consumer = link
        .consumer(args.index)
        .unwrap_or_else(|e| fail(2, format_args!("error: {e}")));

    // The parent closes our stdin after its last frag.
    let stdin_closed = Arc::new(AtomicBool::new(false));
    {
        let closed = Arc::clone(&stdin_closed);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            closed.store(true, Ordering::Release);
        });
    }

    say(format_args!("ready seq={}", consumer.seq()));
    let mtu = link.mtu();
    let (mut got, mut want) = (vec![0u8; mtu], Vec::with_capacity(mtu));
    let (mut frags, mut lost, mut idle) = (0u64, 0u64, 0u32);
    let mut printed = (consumer.seq(), frags, lost);
    let mut printed_at = Instant::now();
    loop {
        // Read before polling: an empty poll after the close was seen
        // means the parent's last frag was read too.
        let closing = stdin_closed.load(Ordering::Acquire);
        let seq = consumer.seq();
        match consumer.poll_copy(&mut got) {
            Poll::Frag(m, ()) => {
                idle = 0;
                if let Some(why) = check(&m, seq, &got, mtu, &mut want) {
                    fail(1, format_args!("bad seq={seq} {why}"));
                }
                frags += 1;
                if args.max == Some(frags) {
                    done(&mut consumer, frags, lost);
                }
                if !args.slow.is_zero() {
                    std::thread::sleep(args.slow);
                }
            }
            Poll::Overrun { lost: n } => {
                lost += n;
                say(format_args!("overrun lost={n} seq={}", consumer.seq()));
            }
            Poll::Empty if closing => done(&mut consumer, frags, lost),
            Poll::Empty => {
                idle = idle.saturating_add(1);
                if idle < SPIN_EMPTY {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
            Poll::Dropped(m) => fail(1, format_args!("bad seq={seq} dropped {m:?}")),
        }
        let now = Instant::now();
        if now >= deadline {
            fail(
                3,
                format_args!(
                    "error: deadline of {DEADLINE:?} passed at seq={} frags={frags} lost={lost}",
                    consumer.seq()
                ),
            );
        }
        let state = (consumer.seq(), frags, lost);
        if state != printed && now - printed_at >= PROGRESS_EVERY {
            say(format_args!(
                "progress seq={} frags={frags} lost={lost}",
                state.0
            ));
            (printed, printed_at) = (state, now);
        }
    }
}
