//! The tile kinds a topology can name and the parameters of each, read
//! from a tile's `params` table (see the [format reference](super)).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use tilewire_aio::udp::Engine;
use tilewire_xdp::bpf::AttachMode;
use tilewire_xdp::socket::RING_MAX;
use tilewire_xdp::BindMode;

use super::value::{array_of, boolean, int_in, one_of, pow2_in, string, Fields, Lines};
use super::TopoError;

/// What a tile does, with the parameters of that kind.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// `net-xdp`: an AF_XDP socket; received frames to its output, frames
    /// of its input (if any) transmitted.
    NetXdp(NetXdpParams),
    /// `net-udp`: a UDP socket (io_uring or sendmmsg/recvmmsg); received
    /// datagrams to its output as Ethernet/IPv4/UDP frames, frames of its
    /// input sent to the addresses in their headers.
    NetUdp(NetUdpParams),
    /// `dedup`: drops frames whose payload it has seen recently.
    Dedup(DedupParams),
    /// `echo`: sends each frame back with its endpoints swapped.
    Echo,
    /// `forward`: merges its inputs into its output.
    Forward,
    /// `sink`: consumes and counts.
    Sink,
    /// `pcap`: writes what it consumes to a pcap file.
    Pcap(PcapParams),
    /// `gen`: publishes synthetic or fixture frames.
    Gen(GenParams),
}

/// Every kind name, in the order the reference lists them.
pub const KIND_NAMES: [&str; 8] = [
    "net-xdp", "net-udp", "dedup", "echo", "forward", "sink", "pcap", "gen",
];

impl Kind {
    /// The kind's name as written in a topology (`"net-xdp"`, ...), which
    /// is also what the tile reports as its kind.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::NetXdp(_) => "net-xdp",
            Kind::NetUdp(_) => "net-udp",
            Kind::Dedup(_) => "dedup",
            Kind::Echo => "echo",
            Kind::Forward => "forward",
            Kind::Sink => "sink",
            Kind::Pcap(_) => "pcap",
            Kind::Gen(_) => "gen",
        }
    }

    /// How many inputs and outputs a tile of this kind takes.
    pub fn io_counts(&self) -> IoCounts {
        let io = |inputs, outputs| IoCounts { inputs, outputs };
        match self {
            Kind::NetXdp(_) => io(0..=1, 1..=1),
            Kind::NetUdp(_) => io(0..=1, 0..=1),
            Kind::Dedup(_) | Kind::Echo => io(1..=1, 1..=1),
            Kind::Forward => io(1..=16, 1..=1),
            Kind::Sink => io(1..=16, 0..=0),
            Kind::Pcap(_) => io(1..=1, 0..=0),
            Kind::Gen(_) => io(0..=0, 1..=1),
        }
    }

    /// The network namespace the tile's socket lives in, for the kinds
    /// that have one.
    pub fn netns(&self) -> Option<&str> {
        match self {
            Kind::NetXdp(p) => p.netns.as_deref(),
            Kind::NetUdp(p) => p.netns.as_deref(),
            _ => None,
        }
    }
}

/// The input and output counts a kind allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoCounts {
    /// Inputs allowed.
    pub inputs: core::ops::RangeInclusive<usize>,
    /// Outputs allowed.
    pub outputs: core::ops::RangeInclusive<usize>,
}

/// Parameters of a `net-xdp` tile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetXdpParams {
    /// The interface (required).
    pub ifname: String,
    /// Its receive queue (default 0).
    pub queue: u32,
    /// UDP destination ports steered to the socket (required, 1 to 16).
    pub ports: Vec<u16>,
    /// Steer only packets to this IPv4 address (default: any).
    pub dst_addr: Option<Ipv4Addr>,
    /// Copy or zero-copy (default auto).
    pub bind: BindMode,
    /// How the XDP program is attached (default skb).
    pub attach: AttachMode,
    /// Network namespace of the interface (default: the runner's).
    pub netns: Option<String>,
    /// Packets moved per poll (default 64).
    pub budget: u32,
    /// rx ring entries (default 2048, a power of two).
    pub rx_size: u32,
    /// fill ring entries (default 2048, a power of two).
    pub fill_size: u32,
    /// tx ring entries (default 2048, a power of two).
    pub tx_size: u32,
    /// Busy polling (default false).
    pub busy_poll: bool,
}

/// Parameters of a `net-udp` tile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetUdpParams {
    /// The local address to bind (required).
    pub bind: SocketAddrV4,
    /// io_uring or sendmmsg/recvmmsg (default auto).
    pub engine: Engine,
    /// Network namespace of the socket (default: the runner's).
    pub netns: Option<String>,
}

/// Parameters of a `dedup` tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupParams {
    /// Tags remembered (default 65536, a power of two).
    pub depth: usize,
}

/// Parameters of a `pcap` tile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapParams {
    /// The file written (required; relative to the runner's directory).
    pub path: PathBuf,
    /// Bytes kept of each frame (default 65535).
    pub snaplen: u32,
}

/// Parameters of a `gen` tile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenParams {
    /// Where the frames come from (default: synthetic frames of `size`).
    pub fixture: Option<GenFixture>,
    /// UDP payload bytes of synthetic frames (default 64).
    pub size: usize,
    /// Packets per second, 0 = as fast as credits allow (default 0).
    pub rate: u64,
    /// Packets to send, 0 = no limit (default 0).
    pub count: u64,
    /// Rewrite every frame's source endpoint.
    pub src: Option<SocketAddrV4>,
    /// Rewrite every frame's destination endpoint.
    pub dst: Option<SocketAddrV4>,
    /// Packets allowed at once by the rate limit (default 1).
    pub burst: u64,
}

/// Where a `gen` tile's frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenFixture {
    /// A raw `.bin` fixture file.
    File(PathBuf),
    /// The built-in traffic mix (`"builtin:mix"`).
    BuiltinMix,
}

/// Headers before a UDP payload in the frames tiles carry: Ethernet 14,
/// IPv4 20, UDP 8.
pub const FRAME_HEADERS: usize = 14 + 20 + 8;

/// Bytes of a frame carrying `payload` bytes of UDP payload.
pub const fn frame_len(payload: usize) -> usize {
    FRAME_HEADERS + payload
}

/// A name that is safe as a single path component (network namespaces
/// live under /var/run/netns).
fn netns_name(node: &super::value::Node) -> Result<String, String> {
    let s = string(node)?;
    tilewire_shmem::check_name(&s).map_err(|e| format!("is not a usable namespace name: {e}"))?;
    Ok(s)
}

fn ifname(node: &super::value::Node) -> Result<String, String> {
    let s = string(node)?;
    let ok = !s.is_empty()
        && s.len() < 16
        && s != "."
        && s != ".."
        && !s.contains(|c: char| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(s)
    } else {
        Err(format!(
            "must be an interface name of 1 to 15 bytes without '/', ':' or spaces, found {s:?}"
        ))
    }
}

fn ipv4(node: &super::value::Node) -> Result<Ipv4Addr, String> {
    let s = string(node)?;
    s.parse()
        .map_err(|_| format!("must be an IPv4 address such as \"198.18.0.1\", found {s:?}"))
}

fn endpoint(node: &super::value::Node) -> Result<SocketAddrV4, String> {
    let s = string(node)?;
    s.parse().map_err(|_| {
        format!("must be an IPv4 address and port such as \"198.18.0.1:9000\", found {s:?}")
    })
}

fn path(node: &super::value::Node) -> Result<PathBuf, String> {
    let s = string(node)?;
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(PathBuf::from(s))
}

/// The keys each kind's params take, for "unknown field" messages.
fn known_params(kind: &str) -> &'static [&'static str] {
    match kind {
        "net-xdp" => &[
            "ifname",
            "queue",
            "ports",
            "dst_addr",
            "bind",
            "attach",
            "netns",
            "budget",
            "rx_size",
            "fill_size",
            "tx_size",
            "busy_poll",
        ],
        "net-udp" => &["bind", "engine", "netns"],
        "dedup" => &["depth"],
        "pcap" => &["path", "snaplen"],
        "gen" => &["fixture", "size", "rate", "count", "src", "dst", "burst"],
        _ => &[],
    }
}

/// Reads the params of a tile of kind `kind` (a known kind name). `None`
/// if any was bad; every problem is in `errors`.
pub(crate) fn parse(
    kind: &str,
    mut f: Fields<'_>,
    lines: &Lines,
    errors: &mut Vec<TopoError>,
) -> Option<Kind> {
    let before = errors.len();
    if kind != "net-xdp" && kind != "net-udp" {
        if let Some(at) = f.key_loc("netns") {
            f.take("netns");
            errors.push(at.err(format!(
                "{}: `netns` is only for net-xdp and net-udp tiles; a {kind} tile has no socket",
                f.what
            )));
        }
    }
    let parsed = match kind {
        "net-xdp" => net_xdp(&mut f, lines, errors).map(Kind::NetXdp),
        "net-udp" => net_udp(&mut f, errors).map(Kind::NetUdp),
        "dedup" => f
            .or("depth", 65536, errors, pow2_in(1, 1 << 26))
            .map(|depth| {
                Kind::Dedup(DedupParams {
                    depth: depth as usize,
                })
            }),
        "echo" => Some(Kind::Echo),
        "forward" => Some(Kind::Forward),
        "sink" => Some(Kind::Sink),
        "pcap" => pcap(&mut f, errors).map(Kind::Pcap),
        "gen" => gen(&mut f, errors).map(Kind::Gen),
        _ => None,
    };
    f.finish(known_params(kind), errors);
    parsed.filter(|_| errors.len() == before)
}

fn net_xdp(f: &mut Fields<'_>, lines: &Lines, errors: &mut Vec<TopoError>) -> Option<NetXdpParams> {
    let ifname = f.req("ifname", errors, ifname);
    let queue = f.or("queue", 0, errors, int_in(0, u32::MAX.into()));
    let ports = f.req("ports", errors, array_of(int_in(1, 65535), lines));
    let ports = ports.and_then(|(ports, at)| {
        let ports: Vec<u16> = ports.iter().map(|(p, _)| *p as u16).collect();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        let why = if ports.is_empty() || ports.len() > 16 {
            Some(format!("has {} ports; give 1 to 16", ports.len()))
        } else if sorted.len() != ports.len() {
            Some("lists a port twice".to_owned())
        } else {
            None
        };
        match why {
            Some(why) => {
                errors.push(at.err(format!("{}: `ports` {why}", f.what)));
                None
            }
            None => Some(ports),
        }
    });
    let dst_addr = f.opt("dst_addr", errors, ipv4).map(|(a, _)| a);
    let bind = f.or(
        "bind",
        BindMode::Auto,
        errors,
        one_of(&[
            ("auto", BindMode::Auto),
            ("copy", BindMode::Copy),
            ("zerocopy", BindMode::ZeroCopy),
        ]),
    );
    let attach = f.or(
        "attach",
        AttachMode::Skb,
        errors,
        one_of(&[("skb", AttachMode::Skb), ("drv", AttachMode::Drv)]),
    );
    let netns = f.opt("netns", errors, netns_name).map(|(n, _)| n);
    let budget = f.or("budget", 64, errors, int_in(1, RING_MAX.into()));
    let ring = |f: &mut Fields<'_>, errors: &mut Vec<TopoError>, key| {
        f.or(key, 2048, errors, pow2_in(1, RING_MAX.into()))
    };
    let rx_size = ring(f, errors, "rx_size");
    let fill_size = ring(f, errors, "fill_size");
    let tx_size = ring(f, errors, "tx_size");
    let busy_poll = f.or("busy_poll", false, errors, boolean);
    Some(NetXdpParams {
        ifname: ifname?.0,
        queue: queue? as u32,
        ports: ports?,
        dst_addr,
        bind: bind?,
        attach: attach?,
        netns,
        budget: budget? as u32,
        rx_size: rx_size? as u32,
        fill_size: fill_size? as u32,
        tx_size: tx_size? as u32,
        busy_poll: busy_poll?,
    })
}

fn net_udp(f: &mut Fields<'_>, errors: &mut Vec<TopoError>) -> Option<NetUdpParams> {
    let bind = f.req("bind", errors, endpoint);
    let engine = f.or(
        "engine",
        Engine::Auto,
        errors,
        one_of(&[
            ("auto", Engine::Auto),
            ("uring", Engine::Uring),
            ("mmsg", Engine::Mmsg),
        ]),
    );
    let netns = f.opt("netns", errors, netns_name).map(|(n, _)| n);
    Some(NetUdpParams {
        bind: bind?.0,
        engine: engine?,
        netns,
    })
}

fn pcap(f: &mut Fields<'_>, errors: &mut Vec<TopoError>) -> Option<PcapParams> {
    let path = f.req("path", errors, path);
    let snaplen = f.or("snaplen", 65535, errors, int_in(1, 65535));
    Some(PcapParams {
        path: path?.0,
        snaplen: snaplen? as u32,
    })
}

fn gen(f: &mut Fields<'_>, errors: &mut Vec<TopoError>) -> Option<GenParams> {
    let fixture = f
        .opt("fixture", errors, |node| {
            let s = string(node)?;
            match s.strip_prefix("builtin:") {
                Some("mix") => Ok(GenFixture::BuiltinMix),
                Some(other) => Err(format!(
                    "names the unknown built-in fixture {other:?} (known: \"builtin:mix\")"
                )),
                None if s.is_empty() => Err("must not be empty".into()),
                None => Ok(GenFixture::File(PathBuf::from(s))),
            }
        })
        .map(|(x, _)| x);
    if fixture.is_some() {
        if let Some(at) = f.key_loc("size") {
            errors.push(at.err(format!(
                "{}: `size` sets the payload of synthetic frames; it has no effect with a `fixture`",
                f.what
            )));
        }
    }
    let max_payload = (tilewire_tile::link::dcache::MTU_MAX - FRAME_HEADERS) as u64;
    let size = f.or("size", 64, errors, int_in(0, max_payload));
    let rate = f.or("rate", 0, errors, int_in(0, i64::MAX as u64));
    let count = f.or("count", 0, errors, int_in(0, i64::MAX as u64));
    let src = f.opt("src", errors, endpoint).map(|(a, _)| a);
    let dst = f.opt("dst", errors, endpoint).map(|(a, _)| a);
    let burst = f.or("burst", 1, errors, int_in(1, 1 << 20));
    Some(GenParams {
        fixture,
        size: size? as usize,
        rate: rate?,
        count: count?,
        src,
        dst,
        burst: burst?,
    })
}
