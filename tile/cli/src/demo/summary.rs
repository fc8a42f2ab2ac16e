//! The demo's live line and its final account of every packet.

use std::fmt;
use std::sync::atomic::Ordering;

use tilewire_pipeline::tile_metrics;
use tilewire_shmem::clock::mono_ns;
use tilewire_shmem::Workspace;
use tilewire_tile::link::Link;

use super::peer::{PeerCounts, PeerLive};

/// The counters of the demo's three tiles, each tile's metrics read once.
struct Counters {
    tiles: Vec<(&'static str, Vec<(String, u64)>)>,
}

impl Counters {
    fn read(ws: &Workspace) -> Counters {
        let tiles = ["net", "dedup", "echo"]
            .into_iter()
            .map(|t| {
                let c = tile_metrics(ws, t).map_or_else(Vec::new, |m| m.snapshot().counters);
                (t, c)
            })
            .collect();
        Counters { tiles }
    }

    /// Counter `name` of tile `tile` (0 if either is missing).
    fn get(&self, tile: &str, name: &str) -> u64 {
        self.tiles
            .iter()
            .find(|(t, _)| *t == tile)
            .and_then(|(_, c)| c.iter().find(|(n, _)| n == name))
            .map_or(0, |(_, v)| *v)
    }
}

/// Frags consumer `index` of `link` lost to overruns (while polling and
/// while reading); 0 for a link or consumer the workspace does not hold.
pub(crate) fn link_lost(ws: &Workspace, link: &str, index: usize) -> u64 {
    Link::join(ws, link)
        .ok()
        .and_then(|l| l.fseqs().get(index).map(|f| f.lost()))
        .unwrap_or(0)
}

/// One reading of the counters the live line shows.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    at_ns: u64,
    peer_sent: u64,
    net_rx: u64,
    dedup_in: u64,
    dups: u64,
    echoed: u64,
    net_tx: u64,
    peer_received: u64,
}

/// The counters now.
pub(super) fn sample(ws: &Workspace, live: &PeerLive) -> Sample {
    let c = Counters::read(ws);
    Sample {
        at_ns: mono_ns(),
        peer_sent: live.sent.load(Ordering::Relaxed),
        net_rx: c.get("net", "rx_pkts"),
        dedup_in: c.get("dedup", "unique") + c.get("dedup", "dups") + c.get("dedup", "bad_frags"),
        dups: c.get("dedup", "dups"),
        echoed: c.get("echo", "echoed"),
        net_tx: c.get("net", "tx_pkts"),
        peer_received: live.received.load(Ordering::Relaxed),
    }
}

fn per_sec(n: u64, ns: u64) -> String {
    let r = n as f64 * 1e9 / ns.max(1) as f64;
    if r >= 1e6 {
        format!("{:.2}M/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k/s", r / 1e3)
    } else {
        format!("{r:.0}/s")
    }
}

/// The rates between two samples, one line.
pub(super) fn rate_line(a: &Sample, b: &Sample) -> String {
    let ns = b.at_ns.saturating_sub(a.at_ns);
    let r = |f: fn(&Sample) -> u64| per_sec(f(b).saturating_sub(f(a)), ns);
    format!(
        "peer tx {:>9} | net rx {:>9} | dedup {:>9} (dups {:>8}) | echo {:>9} | net tx {:>9} | peer rx {:>9}",
        r(|s| s.peer_sent),
        r(|s| s.net_rx),
        r(|s| s.dedup_in),
        r(|s| s.dups),
        r(|s| s.echoed),
        r(|s| s.net_tx),
        r(|s| s.peer_received),
    )
}

/// Every packet, accounted for.
#[derive(Debug, Clone)]
pub(super) struct Summary {
    peer: PeerCounts,
    net_kind: String,
    net_rx: u64,
    kernel_drops: u64,
    rx_link_lost: u64,
    dedup_unique: u64,
    dedup_dups: u64,
    dedup_bad: u64,
    mid_link_lost: u64,
    echoed: u64,
    echo_not_udp: u64,
    tx_link_lost: u64,
    net_tx: u64,
    net_tx_refused: u64,
    /// (stage, packets missing there that no counter explains).
    gaps: Vec<(&'static str, i64)>,
}

impl Summary {
    /// Reads the tiles' final counters and sets them against the peer's.
    pub(super) fn gather(ws: &Workspace, peer: &PeerCounts) -> Summary {
        let counters = Counters::read(ws);
        let mut kind = tile_metrics(ws, "net")
            .map(|m| m.layout().kind)
            .unwrap_or_default();
        if kind == "net-udp" {
            kind += if counters.get("net", "engine_uring") == 1 {
                "; io_uring"
            } else {
                "; sendmmsg/recvmmsg, io_uring unavailable"
            };
        }
        if peer.ipv6 {
            kind += "; IPv6";
        }
        let c = |t: &str, n: &str| counters.get(t, n);
        let kernel_drops = c("net", "k_rx_dropped")
            + c("net", "k_rx_ring_full")
            + c("net", "rx_too_big")
            + c("net", "rx_no_addr")
            + peer.net_socket_drops;
        let net_tx_refused =
            c("net", "tx_refused") + c("net", "tx_not_udp") + c("net", "tx_errors");
        let mut s = Summary {
            peer: peer.clone(),
            net_kind: kind,
            net_rx: c("net", "rx_pkts"),
            kernel_drops,
            rx_link_lost: link_lost(ws, "net_rx", 0),
            dedup_unique: c("dedup", "unique"),
            dedup_dups: c("dedup", "dups"),
            dedup_bad: c("dedup", "bad_frags"),
            mid_link_lost: link_lost(ws, "dedup_echo", 0),
            echoed: c("echo", "echoed"),
            echo_not_udp: c("echo", "not_udp"),
            tx_link_lost: link_lost(ws, "echo_tx", 0),
            net_tx: c("net", "tx_pkts"),
            net_tx_refused,
            gaps: Vec::new(),
        };
        let d = |a: u64, b: u64| a as i64 - b as i64;
        s.gaps = vec![
            (
                "peer -> net",
                d(s.peer.well_formed, s.net_rx + s.kernel_drops),
            ),
            (
                "net -> dedup",
                d(
                    s.net_rx,
                    s.rx_link_lost + s.dedup_unique + s.dedup_dups + s.dedup_bad,
                ),
            ),
            (
                "dedup -> echo",
                d(s.dedup_unique, s.mid_link_lost + s.echoed + s.echo_not_udp),
            ),
            (
                "echo -> net",
                d(s.echoed, s.tx_link_lost + s.net_tx + s.net_tx_refused),
            ),
            (
                "net -> peer",
                d(s.net_tx, s.peer.received + s.peer.rcvbuf_drops),
            ),
        ];
        s
    }

    /// Packets missing (or extra) that no counter explains.
    pub(super) fn unexplained(&self) -> u64 {
        self.gaps.iter().map(|(_, g)| g.unsigned_abs()).sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.peer;
        writeln!(f, "\nsummary")?;
        let classes = p
            .by_class
            .iter()
            .map(|(n, k)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(f, "  peer sent         {:>10}   ({classes})", p.sent)?;
        writeln!(
            f,
            "    well-formed     {:>10}   UDP to the pipeline's ports",
            p.well_formed
        )?;
        writeln!(
            f,
            "    of them repeats {:>10}   (payloads sent before: dedup's work)",
            p.dups
        )?;
        if p.malformed > 0 {
            writeln!(
                f,
                "    malformed       {:>10}   not for the pipeline: the XDP program passed them to the kernel",
                p.malformed
            )?;
        }
        if p.unsendable > 0 {
            writeln!(
                f,
                "    not sendable    {:>10}   (frames this path cannot put on the wire)",
                p.unsendable
            )?;
        }
        writeln!(
            f,
            "  net received      {:>10}   ({})",
            self.net_rx, self.net_kind
        )?;
        writeln!(f, "  dedup passed      {:>10}", self.dedup_unique)?;
        writeln!(
            f,
            "  dedup dropped     {:>10}   duplicates",
            self.dedup_dups
        )?;
        writeln!(f, "  echo echoed       {:>10}", self.echoed)?;
        writeln!(f, "  net sent          {:>10}", self.net_tx)?;
        writeln!(f, "  peer received     {:>10}", p.received)?;
        let payloads = if p.received_sum == p.expected_sum && p.received == p.well_formed - p.dups {
            "every unique payload came back, unaltered (checksums agree)"
        } else {
            "checksums differ: not every unique payload came back (see the drops)"
        };
        writeln!(f, "  payloads          {payloads}")?;
        let drops = [
            (
                "kernel, at the net socket (buffer or rx ring full / no fill frame / too big)",
                self.kernel_drops,
            ),
            (
                "link net_rx, dedup overrun (unreliable link)",
                self.rx_link_lost,
            ),
            ("dedup, bad frags", self.dedup_bad),
            ("link dedup_echo, overrun", self.mid_link_lost),
            ("echo, not UDP", self.echo_not_udp),
            ("link echo_tx, overrun", self.tx_link_lost),
            ("net, refused to send", self.net_tx_refused),
            ("peer's socket receive buffer", p.rcvbuf_drops),
        ];
        let total: u64 = drops.iter().map(|(_, n)| n).sum();
        writeln!(f, "  dropped           {total:>10}")?;
        for (place, n) in drops.iter().filter(|(_, n)| *n > 0) {
            writeln!(f, "    {n:>10}  {place}")?;
        }
        if p.dups != self.dedup_dups {
            writeln!(
                f,
                "  note: the peer sent {} repeats and dedup dropped {} (a repeat whose first copy was lost is new to dedup)",
                p.dups, self.dedup_dups
            )?;
        }
        let gaps: Vec<String> = self
            .gaps
            .iter()
            .filter(|(_, g)| *g != 0)
            .map(|(stage, g)| format!("{stage}: {g:+}"))
            .collect();
        if gaps.is_empty() {
            writeln!(
                f,
                "  unexplained       {:>10}   every packet is accounted for",
                0
            )
        } else {
            writeln!(
                f,
                "  unexplained       {:>10}   ({})",
                self.unexplained(),
                gaps.join(", ")
            )
        }
    }
}
