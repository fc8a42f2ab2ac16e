//! The net tile's AF_XDP receive side: packets land in a link with no copy.
//!
//! # The link is the UMEM
//!
//! A link that receives from AF_XDP is made with a dcache large enough to
//! be the socket's whole UMEM ([`Link::create_with_data`] with
//! [`data_mtus`]); its data region is registered with the kernel
//! ([`umem`]). The NIC then writes each packet straight into the shared
//! memory the link's consumers read, in any process.
//!
//! # Frames follow the lines
//!
//! Every mcache line owns one UMEM frame ([`XdpRxLink`] starts with the
//! `depth` frames [`tilewire_xdp::Xsk::bind`] kept back for them). When a
//! packet arrives in frame `f`, the sink publishes a frag pointing at `f`
//! on the next line and gives the frame that line held before back to the
//! fill ring. That old frame belonged to frag `seq - depth`, which is
//! exactly the frag the mcache just invalidated: a consumer still reading
//! it sees the overrun when it re-checks the line, never a packet the NIC
//! is writing over. The frame count never changes (see
//! `tilewire_xdp::umem` for the whole ledger).
//!
//! A reliable consumer that falls a ring behind stops the producer: the
//! sink refuses, the packet stays on the rx ring, and the kernel drops (and
//! counts) only what no longer fits there.
//!
//! # What a frag says
//!
//! - `chunk`: the 64-byte chunk holding the packet's first byte;
//! - the `ctl` origin field: the packet's byte offset inside that chunk
//!   (0 in practice: the kernel's 256-byte headroom keeps packets
//!   chunk-aligned), and `sz` counts from the chunk's start, so the packet
//!   is `payload[origin..sz]` and a reader that ignores the origin still
//!   gets every byte;
//! - `sig`: the UDP destination port, for consumers that filter on it;
//! - `tsorig` = `tspub`: when the poll that took the packet began.
//!
//! # The net tile
//!
//! [`NetXdp`] is the [`Tile`] around one socket: each loop turn it moves
//! received packets into its output link; each frag of its input link is
//! a whole Ethernet frame it sends (flushed at the end of each burst, and
//! by [`Xsk::service`] at housekeeping). A frag waits on its link while
//! the socket has no free transmit frame, so nothing is dropped for lack
//! of room. Its counters, in the workspace for any monitor: packets and
//! bytes each way, fill-ring-empty polls, transmit-full waits, wakeups
//! each way, bad descriptors, and the kernel's `XDP_STATISTICS` drops.
//!
//! # A tile per queue
//!
//! Every net-xdp tile of an interface puts its socket in one XDP program,
//! at its queue ([`NetXdpKind`]'s setup attaches it once for all of them).
//! One `[[tile]]` makes a tile per queue with `count = N` or with the
//! parameter `queues`: `queues = N` makes tiles `NAME.0` .. on queues
//! `queue` .. `queue + N - 1`; `queues = "all"` reads the interface's
//! receive queues (`ip -d link`, in the tile's `netns`) when the topology
//! is parsed and makes one for each from `queue` up. The workspace's copy
//! of the topology has that number in place of `"all"`, so tile processes
//! and monitors reading it make the same tiles.

use std::net::Ipv4Addr;

use serde::de::{Deserialize, Deserializer, Error as _};
use tilewire_aio::frame::UdpFrame;
use tilewire_shmem::clock::mono_ts;
use tilewire_xdp::{RxPacket, RxRefused, RxSink, Umem, UmemError, Xsk, XskConfig, FRAME_SIZE};

use core::sync::atomic::AtomicU8;

use tilewire_aio::{Aio, PktInfo, SendErrorKind};
use tilewire_shmem::{clock::mono_ns, load_bytes};
use tilewire_xdp::bpf::{AttachMode, FilterSpec, XdpLink, XdpProgram, XskMap};
use tilewire_xdp::socket::RING_MAX;
use tilewire_xdp::{if_index, BindMode, BusyPoll, KernelStats};

use tilewire_tile::link::frag::{ctl, FragMeta, CHUNK_SZ};
use tilewire_tile::link::producer::Producer;
use tilewire_tile::link::{Link, LinkParams, Reliability};
use tilewire_tile::stem::{Filter, Outputs, Tile};

use crate::kind::{BuildCtx, BuildError, CheckCtx, IoCounts, ParamCount, TileKind};
use crate::topo::{LinkSpec, TileSpec};
use std::any::Any;

/// The mtu of a link that receives from AF_XDP: one frame.
pub const XDP_MTU: usize = FRAME_SIZE as usize;

/// Parameters of a link of `depth` lines receiving from AF_XDP.
pub fn link_params(depth: u64, consumers: Vec<Reliability>) -> LinkParams {
    LinkParams {
        depth,
        mtu: XDP_MTU,
        consumers,
        seq0: 0,
    }
}

/// The data region, in mtus, that a socket made with `cfg` needs as its
/// UMEM: a frame for each line, the fill ring's and the transmit side's.
pub fn data_mtus(cfg: &XskConfig) -> u64 {
    cfg.frames_needed()
}

/// The link's data region as a UMEM.
///
/// # Errors
/// As [`Umem::new`] (a read-only join, for one).
pub fn umem<'w>(link: &Link<'w>) -> Result<Umem<'w>, UmemError> {
    Umem::new(link.dcache().data())
}

/// The receive side of a link fed by AF_XDP: which frame each line owns.
/// [`XdpRxLink::poll`] moves packets from the socket into the link; see
/// the [module docs](self).
#[derive(Debug)]
pub struct XdpRxLink {
    /// The frame each line owns, by `seq & mask`.
    lines: Vec<u64>,
    mask: u64,
    /// Chunk of the UMEM's first byte.
    chunk0: u32,
    /// Timestamp for the frags of the current poll.
    ts: u32,
}

impl XdpRxLink {
    /// The receive state of `link`, whose lines own `lines` (one frame
    /// per line, as `Xsk::bind` returned them for `cfg.lines = depth`).
    ///
    /// # Panics
    /// If `lines` does not hold exactly one frame per line.
    pub fn new(link: &Link<'_>, lines: Vec<u64>) -> XdpRxLink {
        assert_eq!(lines.len() as u64, link.depth(), "one frame per line");
        XdpRxLink {
            lines,
            mask: link.depth() - 1,
            chunk0: link.dcache().chunk0(),
            ts: mono_ts(),
        }
    }

    /// Takes up to `budget` packets off `xsk`'s rx ring and publishes them
    /// through `producer` (the link's), stamping them with the time of this
    /// call. Returns the descriptors consumed; stops early when a reliable
    /// consumer is a ring behind (the rest wait on the rx ring).
    pub fn poll(&mut self, xsk: &mut Xsk<'_>, producer: &mut Producer<'_>, budget: u32) -> u32 {
        self.ts = mono_ts();
        xsk.poll_rx(&mut LineSink { rx: self, producer }, budget)
    }

    /// The frames the lines own now.
    pub fn line_frames(&self) -> &[u64] {
        &self.lines
    }
}

/// The sink of one poll: the lines and the producer, borrowed.
struct LineSink<'a, 'p, 'w> {
    rx: &'a mut XdpRxLink,
    producer: &'p mut Producer<'w>,
}

impl RxSink for LineSink<'_, '_, '_> {
    #[inline]
    fn take(&mut self, pkt: RxPacket<'_>) -> Result<u64, RxRefused> {
        let chunk_sz = CHUNK_SZ as u64;
        let chunk = self.rx.chunk0 + (pkt.addr / chunk_sz) as u32;
        let off = (pkt.addr % chunk_sz) as u16;
        let sz = usize::from(off) + pkt.data.len();
        let sig = u64::from(UdpFrame::new_unchecked(pkt.data).dst_port());
        let ts = self.rx.ts;
        let seq = self
            .producer
            .publish_chunk(chunk, sz, sig, ctl(true, true, false, off), ts, ts)
            .map_err(|_| RxRefused)?;
        let line = (seq & self.rx.mask) as usize;
        Ok(std::mem::replace(&mut self.rx.lines[line], pkt.frame))
    }
}

/// The net tile over one AF_XDP socket: output 0 is the receive link (made
/// as the [module docs](self) say), input 0, if any, carries frames to
/// send.
#[derive(Debug)]
pub struct NetXdp<'w> {
    xsk: Xsk<'w>,
    rx: XdpRxLink,
    budget: u32,
    /// The frag read by `during_frag`.
    frame: Vec<u8>,
    frame_len: usize,
    kernel: KernelStats,
    tx_waits: u64,
    tx_refused: u64,
}

/// Counter names of [`NetXdp`], in [`Tile::metrics_write`] order.
pub const NET_XDP_COUNTERS: [&str; 15] = [
    "rx_pkts",
    "rx_bytes",
    "tx_pkts",
    "tx_bytes",
    "fill_empty",
    "tx_full",
    "tx_refused",
    "rx_wakeups",
    "tx_wakeups",
    "rx_bad_desc",
    "k_rx_dropped",
    "k_rx_ring_full",
    "k_fill_ring_empty",
    "k_rx_invalid",
    "k_tx_invalid",
];

impl<'w> NetXdp<'w> {
    /// The tile over `xsk`, receiving into the link `rx` describes, up to
    /// `budget` packets per loop turn.
    pub fn new(xsk: Xsk<'w>, rx: XdpRxLink, budget: u32) -> NetXdp<'w> {
        NetXdp {
            xsk,
            rx,
            budget: budget.max(1),
            frame: vec![0; XDP_MTU],
            frame_len: 0,
            kernel: KernelStats::default(),
            tx_waits: 0,
            tx_refused: 0,
        }
    }

    /// The socket (for its counters).
    pub fn xsk(&self) -> &Xsk<'w> {
        &self.xsk
    }

    /// The receive state (the frames the lines own).
    pub fn rx(&self) -> &XdpRxLink {
        &self.rx
    }
}

impl Tile for NetXdp<'_> {
    fn external_input(&self) -> bool {
        true
    }

    fn kind(&self) -> &str {
        "net-xdp"
    }

    fn burst(&self) -> u64 {
        u64::from(self.budget)
    }

    fn counters(&self) -> &'static [&'static str] {
        &NET_XDP_COUNTERS
    }

    fn after_credit(&mut self, out: &mut Outputs<'_, '_>) {
        if !out.is_empty() {
            self.rx.poll(&mut self.xsk, out.producer(0), self.budget);
        }
    }

    fn before_frag(&mut self, _input: usize, _seq: u64, _sig: u64) -> Filter {
        if self.xsk.tx_ready() {
            Filter::Process
        } else {
            self.tx_waits += 1;
            Filter::Retry
        }
    }

    fn during_frag(&mut self, _input: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        let n = (meta.sz as usize).min(payload.len()).min(self.frame.len());
        load_bytes(&mut self.frame[..n], &payload[..n]);
        self.frame_len = n;
    }

    fn after_frag(&mut self, _input: usize, meta: &FragMeta, _out: &mut Outputs<'_, '_>) {
        let pkt = meta.packet(&self.frame[..self.frame_len]);
        // An error here is `Inval`, a frame this socket cannot send (a
        // runt, or longer than the interface takes): counted, as the socket
        // counts it too. (`Again` cannot happen: before_frag saw room, and
        // nothing else sends on this socket.)
        if let Err(e) = self.xsk.send(&[PktInfo::new(pkt)], false) {
            debug_assert_eq!(e.kind, SendErrorKind::Inval);
            self.tx_refused += 1;
        }
    }

    fn end_of_burst(&mut self, _input: usize, _out: &mut Outputs<'_, '_>) {
        let _ = self.xsk.send(&[], true);
    }

    fn housekeeping(&mut self, _out: &mut Outputs<'_, '_>) {
        self.xsk.service(mono_ns());
        if let Ok(k) = self.xsk.kernel_stats() {
            self.kernel = k;
        }
    }

    fn metrics_write(&mut self, c: &mut [u64]) {
        let s = self.xsk.stats();
        let k = self.kernel;
        let values = [
            s.rx_packets,
            s.rx_bytes,
            s.tx_packets,
            s.tx_bytes,
            s.fill_empty,
            s.tx_full + self.tx_waits,
            self.tx_refused,
            s.rx_wakeups,
            s.tx_wakeups,
            s.rx_bad_desc,
            k.rx_dropped,
            k.rx_ring_full,
            k.rx_fill_ring_empty_descs,
            k.rx_invalid_descs,
            k.tx_invalid_descs,
        ];
        for (dst, v) in c.iter_mut().zip(values) {
            *dst = v;
        }
    }
}

/// The `net-xdp` kind: an AF_XDP socket on one queue of an interface.
/// Inputs 0..=1 (frames to transmit), outputs exactly 1 (received frames;
/// its mtu must be [`XDP_MTU`], one UMEM frame: the link's data region
/// *is* the socket's UMEM, sized by [`data_mtus`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct NetXdpKind;

/// Parameters of a `net-xdp` tile.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetXdpParams {
    /// The interface (required).
    #[serde(deserialize_with = "ifname")]
    pub ifname: String,
    /// Its receive queue (default 0); with `queues` (or `count`), the
    /// first of its tiles' queues.
    #[serde(default)]
    pub queue: u32,
    /// A tile per queue: `"all"` (every receive queue of the interface
    /// from `queue` up) or a number, 1 to 64 (default: one tile). See
    /// [A tile per queue](self#a-tile-per-queue).
    #[serde(default, deserialize_with = "queues")]
    pub queues: Option<Queues>,
    /// UDP destination ports steered to the socket (required, 1 to 16, no
    /// repeats).
    #[serde(deserialize_with = "ports")]
    pub ports: Vec<u16>,
    /// Steer only packets to this IPv4 address (default: any).
    #[serde(default, deserialize_with = "crate::params::opt_ipv4")]
    pub dst_addr: Option<Ipv4Addr>,
    /// `"auto"`, `"copy"` or `"zerocopy"` (default auto).
    #[serde(default = "default_bind", deserialize_with = "bind_mode")]
    pub bind: BindMode,
    /// How the XDP program is attached: `"skb"` or `"drv"` (default skb).
    #[serde(default = "default_attach", deserialize_with = "attach_mode")]
    pub attach: AttachMode,
    /// Network namespace of the interface (default: the runner's).
    #[serde(default, deserialize_with = "crate::params::opt_netns")]
    pub netns: Option<String>,
    /// Packets moved per poll, 1..=65536 (default 64).
    #[serde(default = "default_budget", deserialize_with = "budget")]
    pub budget: u32,
    /// rx ring entries (default 2048, a power of two up to 65536).
    #[serde(default = "default_ring", deserialize_with = "ring")]
    pub rx_size: u32,
    /// fill ring entries (default 2048, a power of two up to 65536).
    #[serde(default = "default_ring", deserialize_with = "ring")]
    pub fill_size: u32,
    /// tx ring entries (default 2048, a power of two up to 65536).
    #[serde(default = "default_ring", deserialize_with = "ring")]
    pub tx_size: u32,
    /// Busy polling (default false).
    #[serde(default)]
    pub busy_poll: bool,
}

fn ifname<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let ok = !s.is_empty()
        && s.len() < 16
        && s != "."
        && s != ".."
        && !s.contains(|c: char| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(s)
    } else {
        Err(D::Error::custom(format!(
            "must be an interface name of 1 to 15 bytes without '/', ':' or spaces, found {s:?}"
        )))
    }
}

fn ports<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
    let raw = Vec::<i64>::deserialize(d)?;
    let mut ports = Vec::with_capacity(raw.len());
    for (i, p) in raw.iter().enumerate() {
        match u16::try_from(*p) {
            Ok(p) if p != 0 => ports.push(p),
            _ => {
                return Err(D::Error::custom(format!(
                    "must hold ports in 1..=65535, found {p} (item {i})"
                )))
            }
        }
    }
    if ports.is_empty() || ports.len() > 16 {
        return Err(D::Error::custom(format!(
            "must list 1 to 16 ports, found {}",
            ports.len()
        )));
    }
    let mut sorted = ports.clone();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(D::Error::custom(format!(
            "must list each port once; {} is there twice",
            w[0]
        )));
    }
    Ok(ports)
}

/// The `queues` parameter of a net-xdp tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queues {
    /// Every receive queue of the interface from `queue` up, as many as it
    /// has when the topology is parsed.
    All,
    /// This many queues from `queue` up, 1 to 64.
    Count(u32),
}

/// Tiles one `[[tile]]` makes at most (as `count`).
const QUEUES_MAX: u32 = 64;

fn queues<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Queues>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Queues;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "\"all\" or a number of queues, 1 to {QUEUES_MAX}")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Queues, E> {
            match u32::try_from(v) {
                Ok(n) if (1..=QUEUES_MAX).contains(&n) => Ok(Queues::Count(n)),
                _ => Err(E::custom(format!(
                    "must be \"all\" or a number of queues, 1 to {QUEUES_MAX}, found {v}"
                ))),
            }
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Queues, E> {
            self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Queues, E> {
            match v {
                "all" => Ok(Queues::All),
                _ => match v.parse::<i64>() {
                    Ok(n) => self.visit_i64(n),
                    Err(_) => Err(E::custom(format!(
                        "must be \"all\" or a number of queues, 1 to {QUEUES_MAX}, found {v:?}"
                    ))),
                },
            }
        }
    }
    d.deserialize_any(V).map(Some)
}

fn default_bind() -> BindMode {
    BindMode::Auto
}

fn bind_mode<'de, D: Deserializer<'de>>(d: D) -> Result<BindMode, D::Error> {
    crate::params::choice(
        d,
        &[
            ("auto", BindMode::Auto),
            ("copy", BindMode::Copy),
            ("zerocopy", BindMode::ZeroCopy),
        ],
    )
}

fn default_attach() -> AttachMode {
    AttachMode::Skb
}

fn attach_mode<'de, D: Deserializer<'de>>(d: D) -> Result<AttachMode, D::Error> {
    crate::params::choice(d, &[("skb", AttachMode::Skb), ("drv", AttachMode::Drv)])
}

fn default_budget() -> u32 {
    64
}

fn budget<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    crate::params::int_in(d, 1, RING_MAX.into())
}

fn default_ring() -> u32 {
    2048
}

fn ring<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    crate::params::pow2_in(d, 1, RING_MAX.into())
}

impl NetXdpParams {
    /// The socket configuration for a receive link of `depth` lines.
    pub fn xsk_config(&self, depth: u64) -> XskConfig {
        XskConfig {
            ifname: self.ifname.clone(),
            queue: self.queue,
            bind: self.bind,
            rx_size: self.rx_size,
            fill_size: self.fill_size,
            tx_size: self.tx_size,
            lines: u32::try_from(depth).unwrap_or(u32::MAX),
            busy_poll: self.busy_poll.then_some(BusyPoll {
                usecs: 20,
                budget: self.budget,
            }),
            ..XskConfig::default()
        }
    }
}

impl TileKind for NetXdpKind {
    type Params = NetXdpParams;

    fn name(&self) -> &str {
        "net-xdp"
    }

    fn io(&self) -> IoCounts {
        IoCounts::new(0..=1, 1..=1)
    }

    fn count(&self, p: &NetXdpParams) -> Result<Option<ParamCount>, String> {
        let tiles = match p.queues {
            None => return Ok(None),
            Some(Queues::Count(n)) => n,
            Some(Queues::All) => all_queues(p)?,
        };
        Ok(Some(ParamCount {
            tiles,
            param: "queues",
        }))
    }

    fn check(&self, p: &NetXdpParams, ctx: &mut CheckCtx<'_>) {
        let (topo, tile) = (ctx.topology(), ctx.tile());
        // One AF_XDP socket per queue: an earlier tile on the same queue
        // of the same interface takes it.
        let queue = queue_of(tile, p);
        let same_queue = topo
            .tiles
            .iter()
            .take_while(|t| t.name != tile.name)
            .find(|t| {
                ctx.params_of::<NetXdpParams>(t).is_some_and(|o| {
                    o.ifname == p.ifname && queue_of(t, o) == queue && o.netns == p.netns
                })
            });
        if let Some(first) = same_queue {
            ctx.field_error(
                "queue",
                format!(
                    "{queue} of {} is taken by tile {:?} (line {}): one AF_XDP socket per \
                     queue; give each net-xdp tile a queue of its own",
                    p.ifname, first.name, first.line
                ),
            );
        }
        for link in tile.outputs.iter().filter_map(|l| topo.link(l)) {
            if link.mtu != XDP_MTU {
                ctx.link_error(
                    &link.name,
                    "mtu",
                    format!(
                        "link {:?} has mtu {}, but its producer {:?} is a net-xdp tile: its \
                         output's mtu must be {XDP_MTU} (one UMEM frame)",
                        link.name, link.mtu, tile.name
                    ),
                );
            }
        }
    }

    fn output_data_mtus(&self, p: &NetXdpParams, _output: usize, link: &LinkSpec) -> Option<u64> {
        Some(data_mtus(&p.xsk_config(link.depth)))
    }

    fn netns<'p>(&self, p: &'p NetXdpParams) -> Option<&'p str> {
        p.netns.as_deref()
    }

    fn build<'w>(
        &self,
        p: &NetXdpParams,
        ctx: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        // A tile a `count` made takes the queue after its predecessor's.
        let p = &NetXdpParams {
            queue: queue_of(ctx.tile(), p),
            ..p.clone()
        };
        let link = ctx.output(0)?;
        let cfg = p.xsk_config(link.depth());
        let ifindex = if_index(&p.ifname).ok_or_else(|| {
            BuildError::new(format!(
                "no interface {:?} in this network namespace{} (see `ip link`)",
                p.ifname,
                p.netns
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ))
        })?;
        // The pipeline's runner attached one program for every net-xdp
        // tile of this interface (see `setup`); a tile run without one
        // attaches its own.
        let shared = XskMap::of_attached(ifindex).map_err(|e| BuildError::new(e.to_string()))?;
        let own = match shared {
            Some(_) => None,
            None => Some(attach(&[p], ifindex)?),
        };
        let umem = umem(&link).map_err(|e| BuildError::new(format!("UMEM: {e}")))?;
        let (xsk, lines): (Xsk<'w>, Vec<u64>) =
            Xsk::bind(umem, &cfg).map_err(|e| BuildError::new(format!("AF_XDP socket: {e}")))?;
        let fd = xsk
            .raw_fd()
            .ok_or_else(|| BuildError::new("a socket without a descriptor"))?;
        let registered = |e: tilewire_xdp::bpf::BpfError| {
            BuildError::new(format!(
                "registering the socket of queue {} of {}: {e}",
                p.queue, p.ifname
            ))
        };
        match (shared, own) {
            (Some(map), _) => {
                map.register_socket(p.queue, fd).map_err(registered)?;
                // Its queue goes back to the kernel when the tile ends.
                ctx.keep(Registered {
                    map,
                    queue: p.queue,
                });
            }
            (None, Some((prog, attached))) => {
                prog.register_socket(p.queue, fd).map_err(registered)?;
                // Dropping the attachment detaches the program; both live
                // until the tile's loop returns.
                ctx.keep(attached);
                ctx.keep(prog);
            }
            (None, None) => unreachable!("a tile without a shared program attaches its own"),
        }
        let rx = XdpRxLink::new(&link, lines);
        Ok(Box::new(NetXdp::new(xsk, rx, p.budget)))
    }

    fn setup(
        &self,
        tiles: &[(&TileSpec, &NetXdpParams)],
    ) -> Result<Option<Box<dyn Any + Send>>, BuildError> {
        // One program per interface (in its namespace), for all its tiles.
        let tiles: Vec<NetXdpParams> = tiles
            .iter()
            .map(|(t, p)| NetXdpParams {
                queue: queue_of(t, p),
                ..(*p).clone()
            })
            .collect();
        let mut interfaces: Vec<Vec<&NetXdpParams>> = Vec::new();
        for p in &tiles {
            match interfaces
                .iter_mut()
                .find(|g| g[0].ifname == p.ifname && g[0].netns == p.netns)
            {
                Some(g) => g.push(p),
                None => interfaces.push(vec![p]),
            }
        }
        let mut held = Vec::new();
        for group in interfaces {
            let first = group[0];
            let attach_here = || -> Result<(XdpProgram, XdpLink), BuildError> {
                if let Some(ns) = &first.netns {
                    tilewire_aio::netns::enter_thread(ns)
                        .map_err(|e| BuildError::new(e.to_string()))?;
                }
                let ifindex = if_index(&first.ifname).ok_or_else(|| {
                    BuildError::new(format!(
                        "no interface {:?} in {}",
                        first.ifname,
                        first
                            .netns
                            .as_deref()
                            .unwrap_or("the runner's network namespace")
                    ))
                })?;
                attach(&group, ifindex)
            };
            // On a thread of its own: entering a namespace is for that
            // thread only.
            let made = std::thread::scope(|s| s.spawn(attach_here).join())
                .map_err(|_| BuildError::new("attaching the XDP program panicked"))??;
            held.push(made);
        }
        Ok((!held.is_empty()).then(|| Box::new(held) as Box<dyn Any + Send>))
    }
}

/// The receive queue of net-xdp tile `tile`: its `queue`, plus its index
/// among the tiles a `count` made of it (one tile per queue).
fn queue_of(tile: &TileSpec, p: &NetXdpParams) -> u32 {
    p.queue + tile.share.map_or(0, |s| s.index)
}

/// Loads the XDP program for the net-xdp tiles `tiles` of one interface
/// (`ifindex`): their ports together, a queue slot for each, and attaches
/// it as they ask.
fn attach(tiles: &[&NetXdpParams], ifindex: u32) -> Result<(XdpProgram, XdpLink), BuildError> {
    let first = tiles[0];
    let mut ports: Vec<u16> = tiles.iter().flat_map(|p| p.ports.iter().copied()).collect();
    ports.sort_unstable();
    ports.dedup();
    let differ = |what: &str| {
        BuildError::new(format!(
            "the net-xdp tiles of {} ask for different {what}: one XDP program serves them all",
            first.ifname
        ))
    };
    if tiles.iter().any(|p| p.attach != first.attach) {
        return Err(differ("`attach` modes"));
    }
    if tiles.iter().any(|p| p.dst_addr != first.dst_addr) {
        return Err(differ("`dst_addr`s"));
    }
    let mut filter = FilterSpec::new(ports)
        .map_err(|e| BuildError::new(format!("the XDP program of {}: {e}", first.ifname)))?;
    if let Some(a) = first.dst_addr {
        filter = filter.with_dst_addr(a);
    }
    let queues = tiles.iter().map(|p| p.queue).max().unwrap_or(0) + 1;
    if let Some(has) = rx_queues(&first.ifname, first.netns.as_deref()) {
        if queues > has {
            return Err(BuildError::new(format!(
                "{} has {has} receive queue{}, and a net-xdp tile asks for queue {}: \
                 ask for queues below {has}, or give the interface more (`ethtool -L {} \
                 combined {queues}`; `ethtool -l {}` shows what it can have)",
                first.ifname,
                if has == 1 { "" } else { "s" },
                queues - 1,
                first.ifname,
                first.ifname
            )));
        }
    }
    let prog = XdpProgram::load(&filter, queues)
        .map_err(|e| BuildError::new(format!("loading the XDP program: {e}")))?;
    let attached = prog.attach(ifindex, first.attach).map_err(|e| {
        BuildError::new(format!(
            "attaching the XDP program to {}: {e}",
            first.ifname
        ))
    })?;
    Ok((prog, attached))
}

/// A socket in the shared XSKMAP at `queue`, taken out when the tile ends:
/// that queue's traffic goes to the kernel again.
#[derive(Debug)]
struct Registered {
    map: XskMap,
    queue: u32,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let _ = self.map.unregister_socket(self.queue);
    }
}

/// The tiles `queues = "all"` makes: the receive queues of the tile's
/// interface from its `queue` up.
fn all_queues(p: &NetXdpParams) -> Result<u32, String> {
    let ns = p.netns.as_deref();
    let has = rx_queues(&p.ifname, ns).ok_or_else(|| {
        format!(
            "`queues = \"all\"` needs the receive queues of {}, and `ip{} -d link show dev {}` \
             did not tell them: is there an interface {0:?}{}, and is `ip` (iproute2) installed? \
             Or give the number: `queues = N`",
            p.ifname,
            ns.map_or(String::new(), |n| format!(" -n {n}")),
            p.ifname,
            ns.map_or(String::new(), |n| format!(" in network namespace {n:?}")),
        )
    })?;
    if p.queue >= has {
        return Err(format!(
            "{} has {has} receive queue{}, so `queue = {}` leaves none for `queues = \"all\"`: \
             ask for a queue below {has}, or give the interface more (`ethtool -L {} combined \
             {}`; `ethtool -l {}` shows what it can have)",
            p.ifname,
            if has == 1 { "" } else { "s" },
            p.queue,
            p.ifname,
            p.queue + 1,
            p.ifname
        ));
    }
    let n = has - p.queue;
    if n > QUEUES_MAX {
        return Err(format!(
            "{} has {has} receive queues, {n} from queue {}: one [[tile]] makes at most \
             {QUEUES_MAX} tiles; split them over [[tile]]s with `queue` and `queues = N`",
            p.ifname, p.queue
        ));
    }
    Ok(n)
}

/// The receive queues of interface `ifname` (in namespace `netns`), as
/// `ip -d link` reports them; `None` if that cannot be told.
fn rx_queues(ifname: &str, netns: Option<&str>) -> Option<u32> {
    let mut cmd = std::process::Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    let out = cmd
        .args(["-d", "link", "show", "dev", ifname])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    words.find(|w| *w == "numrxqueues")?;
    words.next()?.parse().ok()
}
