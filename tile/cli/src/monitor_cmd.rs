//! `tilewire monitor`: live per-tile and per-link rates of a workspace.
//!
//! ```text
//! tilewire monitor <workspace> [--once] [--json] [--interval-ms N] [--prometheus 127.0.0.1:PORT]
//! ```
//!
//! The workspace is joined read-only: the monitor maps it `PROT_READ` and
//! cannot disturb the pipeline, and Ctrl-C (or SIGTERM) leaves nothing
//! behind. Every interval (default 1000 ms) it takes a
//! [`Snapshot`], computes [`Rates`] against the previous one and shows the
//! [`Report`]: as a table, redrawn in place when stdout is a terminal and
//! printed one after another otherwise, or with `--json` as one JSON object
//! per line (fields in the `tilewire_monitor` docs).
//!
//! `--once` shows one report with rates over a short interval (200 ms, or
//! `--interval-ms`) and exits. `--prometheus ADDR` also serves the latest
//! report in the Prometheus text format at `http://ADDR/metrics`, from a
//! loopback address only (port 0 picks a free port; the address is printed
//! on stderr).

use std::io::{IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tilewire_monitor::{pid_alive, render, Rates, Report, Snapshot, HEARTBEAT_TIMEOUT};
use tilewire_pipeline::StopFlag;
use tilewire_shmem::{Access, Workspace};

const USAGE: &str = "usage: tilewire monitor <workspace> [--once] [--json] \
                     [--interval-ms N] [--prometheus 127.0.0.1:PORT]";

/// The interval of `--once` unless `--interval-ms` says otherwise.
const ONCE_INTERVAL: Duration = Duration::from_millis(200);

/// What the command line asked for.
#[derive(Debug)]
struct Opts {
    workspace: String,
    once: bool,
    json: bool,
    interval: Option<Duration>,
    prometheus: Option<SocketAddr>,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut opts = Opts {
        workspace: String::new(),
        once: false,
        json: false,
        interval: None,
        prometheus: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--once" => opts.once = true,
            "--json" => opts.json = true,
            "--interval-ms" => {
                let v = it.next().ok_or("--interval-ms needs a value")?;
                let ms: u64 = v
                    .parse()
                    .ok()
                    .filter(|&ms| (1..=3_600_000).contains(&ms))
                    .ok_or_else(|| format!("--interval-ms {v:?}: expected 1..=3600000"))?;
                opts.interval = Some(Duration::from_millis(ms));
            }
            "--prometheus" => {
                let v = it.next().ok_or("--prometheus needs an address")?;
                let addr: SocketAddr = v
                    .parse()
                    .map_err(|_| format!("--prometheus {v:?}: expected IP:PORT"))?;
                if !addr.ip().is_loopback() {
                    return Err(format!(
                        "--prometheus {addr}: only a loopback address is served \
                         (127.0.0.1 or [::1])"
                    ));
                }
                opts.prometheus = Some(addr);
            }
            flag if flag.starts_with("--") => {
                return Err(format!("unknown option {flag}\n{USAGE}"))
            }
            name if opts.workspace.is_empty() => opts.workspace = name.to_owned(),
            extra => return Err(format!("unexpected argument {extra:?}\n{USAGE}")),
        }
    }
    if opts.workspace.is_empty() {
        return Err(USAGE.into());
    }
    if opts.once && opts.prometheus.is_some() {
        return Err("--prometheus serves until Ctrl-C; it does not go with --once".into());
    }
    Ok(opts)
}

fn report(cur: &Snapshot, rates: Option<&Rates>) -> Report {
    Report::new(cur, rates, HEARTBEAT_TIMEOUT, pid_alive)
}

/// Runs the command with the arguments after its name.
pub fn run(args: &[String]) -> Result<(), String> {
    let opts = parse(args)?;
    let ws = Workspace::join(&opts.workspace, Access::ReadOnly).map_err(|e| e.to_string())?;
    // Nothing to undo on exit (the monitor only reads): Ctrl-C only ends
    // the loop, so the last line printed is whole.
    let stop = StopFlag::on_signals().map_err(|e| e.to_string())?;

    if opts.once {
        let first = Snapshot::take(&ws);
        sleep_unless_stopped(opts.interval.unwrap_or(ONCE_INTERVAL), &stop);
        let cur = Snapshot::take(&ws);
        let r = report(&cur, Some(&Rates::between(&first, &cur)));
        print_report(&r, opts.json, false);
        return Ok(());
    }

    let exposition = Arc::new(Mutex::new(String::new()));
    if let Some(addr) = opts.prometheus {
        serve_prometheus(addr, exposition.clone())?;
    }
    let interval = opts.interval.unwrap_or(Duration::from_secs(1));
    let redraw = std::io::stdout().is_terminal() && !opts.json;
    let mut prev: Option<Snapshot> = None;
    while !stop.is_stopped() {
        let cur = Snapshot::take(&ws);
        let rates = prev.as_ref().map(|p| Rates::between(p, &cur));
        let r = report(&cur, rates.as_ref());
        if opts.prometheus.is_some() {
            let text = render::prometheus(&r);
            *exposition.lock().unwrap_or_else(|p| p.into_inner()) = text;
        }
        print_report(&r, opts.json, redraw);
        prev = Some(cur);
        sleep_unless_stopped(interval, &stop);
    }
    Ok(())
}

fn print_report(r: &Report, json: bool, redraw: bool) {
    let mut out = std::io::stdout().lock();
    let text = if json {
        r.to_json() + "\n"
    } else if redraw {
        // Home, clear the screen, draw.
        format!("\x1b[H\x1b[2J{}", render::table(r))
    } else {
        render::table(r) + "\n"
    };
    // A closed stdout (a pipe to `head`) is not an error worth a message.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn sleep_unless_stopped(d: Duration, stop: &StopFlag) {
    let end = Instant::now() + d;
    while !stop.is_stopped() {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}

/// Serves `exposition` at `http://addr/metrics` on a thread of its own.
fn serve_prometheus(addr: SocketAddr, exposition: Arc<Mutex<String>>) -> Result<(), String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("--prometheus {addr}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("--prometheus {addr}: {e}"))?;
    eprintln!("serving Prometheus metrics at http://{bound}/metrics");
    std::thread::Builder::new()
        .name("prometheus".into())
        .spawn(move || {
            // A failed accept (the peer gave up) is skipped.
            for mut s in listener.incoming().flatten() {
                answer(&mut s, &exposition);
            }
        })
        .map_err(|e| format!("starting the Prometheus thread: {e}"))?;
    Ok(())
}

/// Reads one HTTP request head (bounded in size and time) and answers it.
fn answer(s: &mut TcpStream, exposition: &Mutex<String>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while head.len() < 8192 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, body) = match (method, path) {
        ("GET", "/metrics" | "/") => (
            "200 OK",
            exposition.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        ),
        ("GET", _) => ("404 Not Found", "not found: try /metrics\n".into()),
        _ => ("405 Method Not Allowed", "only GET\n".into()),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(resp.as_bytes());
}
