//! `tilewire monitor`: live per-tile and per-link rates of a workspace.
//!
//! (The flags: see `--help`, made from the same definitions as the
//! parser.)
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

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tilewire_monitor::{pid_alive, render, Rates, Report, Snapshot, HEARTBEAT_TIMEOUT};
use tilewire_pipeline::StopFlag;
use tilewire_shmem::{Access, Workspace};

/// The interval of `--once` unless `--interval-ms` says otherwise.
const ONCE_INTERVAL: Duration = Duration::from_millis(200);

/// What the command line asked for.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The workspace (joined read-only)
    workspace: String,
    /// One report, with rates over a short interval, then exit
    #[arg(long)]
    once: bool,
    /// One JSON object per line instead of the table
    #[arg(long)]
    json: bool,
    /// Milliseconds between reports (default 1000; 200 with --once)
    #[arg(long = "interval-ms", value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    interval_ms: Option<u64>,
    /// Also serve the latest report at http://ADDR/metrics (a loopback
    /// address; port 0 picks a free one)
    #[arg(long, value_name = "ADDR", value_parser = loopback, conflicts_with = "once")]
    prometheus: Option<SocketAddr>,
}

fn loopback(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s
        .parse()
        .map_err(|_| format!("{s:?} is not an address such as 127.0.0.1:9100"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr}: only a loopback address is served (127.0.0.1 or [::1])"
        ));
    }
    Ok(addr)
}

fn report(cur: &Snapshot, rates: Option<&Rates>) -> Report {
    Report::new(cur, rates, HEARTBEAT_TIMEOUT, pid_alive)
}

/// Runs the command with the arguments after its name.
pub(crate) fn run(opts: Args) -> Result<(), String> {
    let interval = opts.interval_ms.map(Duration::from_millis);
    let ws = Workspace::join(&opts.workspace, Access::ReadOnly).map_err(|e| e.to_string())?;
    // Nothing to undo on exit (the monitor only reads): Ctrl-C only ends
    // the loop, so the last line printed is whole.
    let stop = StopFlag::on_signals().map_err(|e| e.to_string())?;

    // A workspace truncated under the monitor ends it with an error that
    // names it (never a SIGBUS: see tilewire_shmem::sigbus).
    let take = |ws: &Workspace| Snapshot::try_take(ws).map_err(|e| e.to_string());
    if opts.once {
        let first = take(&ws)?;
        sleep_unless_stopped(interval.unwrap_or(ONCE_INTERVAL), &stop);
        let cur = take(&ws)?;
        let r = report(&cur, Some(&Rates::between(&first, &cur)));
        print_report(&r, opts.json, false);
        return Ok(());
    }

    let exposition = Arc::new(Mutex::new(String::new()));
    if let Some(addr) = opts.prometheus {
        serve_prometheus(addr, exposition.clone())?;
    }
    let interval = interval.unwrap_or(Duration::from_secs(1));
    let redraw = std::io::stdout().is_terminal() && !opts.json;
    let mut prev: Option<Snapshot> = None;
    while !stop.is_stopped() {
        let cur = take(&ws)?;
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
/// The server reads each connection's request on a thread of its own, so
/// a client that connects and says nothing (or says it slowly) holds up
/// no other scrape.
fn serve_prometheus(addr: SocketAddr, exposition: Arc<Mutex<String>>) -> Result<(), String> {
    let server = tiny_http::Server::http(addr).map_err(|e| format!("--prometheus {addr}: {e}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| format!("--prometheus {addr}: not an IP listener"))?;
    eprintln!("serving Prometheus metrics at http://{bound}/metrics");
    std::thread::Builder::new()
        .name("prometheus".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                answer(request, &exposition);
            }
        })
        .map_err(|e| format!("starting the Prometheus thread: {e}"))?;
    Ok(())
}

/// Answers one request: the exposition at `/metrics` (and `/`).
fn answer(request: tiny_http::Request, exposition: &Mutex<String>) {
    let (code, body) = match (request.method(), request.url()) {
        (tiny_http::Method::Get, "/metrics" | "/") => (
            200,
            exposition.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        ),
        (tiny_http::Method::Get, _) => (404, "not found: try /metrics\n".to_owned()),
        _ => (405, "only GET\n".to_owned()),
    };
    let content_type = tiny_http::Header::from_bytes(
        &b"Content-Type"[..],
        &b"text/plain; version=0.0.4; charset=utf-8"[..],
    )
    .expect("a valid header");
    // A client gone before the answer is its own loss.
    let _ = request.respond(
        tiny_http::Response::from_string(body)
            .with_status_code(code)
            .with_header(content_type),
    );
}
