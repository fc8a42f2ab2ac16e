//! A second process for the shmem tests: joins a workspace by name and does
//! one thing with it. Workspace directories come from the environment
//! (TILEWIRE_SHM_DIR), like any tilewire process.
//!
//! ```text
//! shmem-peer read WS NAME      join read-only, print the named allocation
//! shmem-peer alloc-loop WS     allocate and free forever (to be killed)
//! shmem-peer stall WS [half]   hold the allocator lock forever (to be killed)
//! ```

use std::io::Write;
use tilewire_shmem::{Access, Workspace};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let access = if arg(0) == "read" {
        Access::ReadOnly
    } else {
        Access::ReadWrite
    };
    let ws = match Workspace::join(arg(1), access) {
        Ok(ws) => ws,
        Err(e) => {
            println!("error: {e}");
            std::process::exit(2);
        }
    };
    let mut out = std::io::stdout();
    match arg(0) {
        "read" => {
            let Some(a) = ws.lookup(arg(2)) else {
                println!("missing {}", arg(2));
                std::process::exit(3);
            };
            let reg = ws.region(a.gaddr, a.size as usize).expect("in bounds");
            // SAFETY: the allocation is live and in bounds; the writer has
            // finished before starting us.
            let bytes = unsafe { std::slice::from_raw_parts(reg.as_ptr(), reg.len()) };
            let sum: u64 = bytes.iter().map(|&b| b as u64).sum();
            println!(
                "found gaddr={} size={} tag={} sum={}",
                a.gaddr, a.size, a.tag, sum
            );
            match ws.alloc(64, 64, 0) {
                Ok(_) => println!("alloc: unexpectedly allowed"),
                Err(e) => println!("alloc: {e}"),
            }
        }
        "alloc-loop" => {
            let mut i = 0u64;
            loop {
                let g = ws.alloc(64, 64 + (i % 4096) as usize, i).expect("alloc");
                if i == 0 {
                    println!("ready");
                    out.flush().unwrap();
                }
                ws.free(g).expect("free");
                i += 1;
            }
        }
        "stall" => ws.debug_stall_holding_lock(arg(2) == "half", || {
            println!("held");
            out.flush().unwrap();
        }),
        other => {
            eprintln!("unknown command {other:?}");
            std::process::exit(1);
        }
    }
}
