//! One tile of a topology, built from its kind and parameters.

use std::any::Any;
use std::net::{Ipv4Addr, SocketAddrV4};

use tilewire_aio::fixture::{rewrite_endpoints, Fixture, MIX_BIN};
use tilewire_aio::frame::UdpFrame;
use tilewire_aio::udp::{UdpAio, UdpConfig};
use tilewire_shmem::Workspace;
use tilewire_xdp::bpf::{FilterSpec, XdpProgram};
use tilewire_xdp::{if_index, BusyPoll, Xsk, XskConfig};

use crate::kinds::dedup::{tcache_name, Dedup};
use crate::kinds::echo::Echo;
use crate::kinds::forward::Forward;
use crate::kinds::gen::{self, Gen, GenConfig};
use crate::kinds::net_udp::NetUdp;
use crate::kinds::net_xdp::{self, NetXdp, XdpRxLink};
use crate::kinds::pcap::Pcap;
use crate::kinds::sink::Sink;
use crate::topo::{GenFixture, GenParams, Kind, NetUdpParams, NetXdpParams, TileSpec, Topology};
use tilewire_tile::link::Link;
use tilewire_tile::stem::Tile;
use tilewire_tile::tcache::Tcache;

use super::PipelineError;

/// A tile ready for its loop, and what must live as long as it runs (an
/// attached XDP program: dropping it detaches the program).
pub struct Built<'w> {
    /// The tile.
    pub tile: Box<dyn Tile + 'w>,
    /// Held until the tile's loop returns.
    pub keep: Vec<Box<dyn Any>>,
}

impl std::fmt::Debug for Built<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Built")
            .field("kind", &self.tile.kind())
            .field("keep", &self.keep.len())
            .finish()
    }
}

/// Builds tile `spec` of `topo` over the links and objects [`super::create`]
/// made in `ws`, on the calling thread (which is in the tile's network
/// namespace, if it has one).
///
/// # Errors
/// [`PipelineError::Setup`] naming what could not be made: a socket, the
/// XDP program, a file, the tcache.
pub fn build_tile<'w>(
    ws: &'w Workspace,
    topo: &Topology,
    spec: &TileSpec,
) -> Result<Built<'w>, PipelineError> {
    let setup = |why: String| PipelineError::Setup {
        tile: spec.name.clone(),
        why,
    };
    let plain = |tile: Box<dyn Tile + 'w>| Built {
        tile,
        keep: Vec::new(),
    };
    Ok(match &spec.kind {
        Kind::NetXdp(p) => net_xdp(ws, topo, spec, p)?,
        Kind::NetUdp(p) => plain(Box::new(net_udp(ws, spec, p).map_err(setup)?)),
        Kind::Dedup(_) => {
            let part = tcache_name(&spec.name);
            let a = ws
                .lookup(&part)
                .ok_or_else(|| setup(format!("its tcache {part:?} is missing")))?;
            let mem = ws
                .region(a.gaddr, a.size as usize)
                .map_err(|e| setup(format!("its tcache: {e}")))?;
            let tc = Tcache::join(mem).map_err(|e| setup(format!("its tcache: {e}")))?;
            plain(Box::new(Dedup::new(tc)))
        }
        Kind::Echo => plain(Box::<Echo>::default()),
        Kind::Forward => plain(Box::<Forward>::default()),
        Kind::Sink => plain(Box::<Sink>::default()),
        Kind::Pcap(p) => {
            plain(Box::new(Pcap::create(&p.path, p.snaplen).map_err(|e| {
                setup(format!("creating {}: {e}", p.path.display()))
            })?))
        }
        Kind::Gen(p) => plain(Box::new(gen_tile(p).map_err(setup)?)),
    })
}

fn net_xdp<'w>(
    ws: &'w Workspace,
    topo: &Topology,
    spec: &TileSpec,
    p: &NetXdpParams,
) -> Result<Built<'w>, PipelineError> {
    let setup = |why: String| PipelineError::Setup {
        tile: spec.name.clone(),
        why,
    };
    let out = &spec.outputs[0];
    let link = Link::join(ws, out).map_err(|source| PipelineError::Link {
        link: out.clone(),
        source,
    })?;
    let depth = topo.link(out).map(|l| l.depth).unwrap_or(link.depth());
    let cfg = XskConfig {
        ifname: p.ifname.clone(),
        queue: p.queue,
        bind: p.bind,
        rx_size: p.rx_size,
        fill_size: p.fill_size,
        tx_size: p.tx_size,
        lines: u32::try_from(depth).map_err(|_| setup("link too deep".into()))?,
        busy_poll: p.busy_poll.then_some(BusyPoll {
            usecs: 20,
            budget: p.budget,
        }),
        ..XskConfig::default()
    };
    let ifindex = if_index(&p.ifname).ok_or_else(|| {
        setup(format!(
            "no interface {:?} in this network namespace{} (see `ip link`)",
            p.ifname,
            p.netns
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        ))
    })?;
    let mut filter =
        FilterSpec::new(p.ports.iter().copied()).map_err(|e| setup(format!("XDP program: {e}")))?;
    if let Some(a) = p.dst_addr {
        filter = filter.with_dst_addr(a);
    }
    let prog = XdpProgram::load(&filter, p.queue + 1)
        .map_err(|e| setup(format!("loading the XDP program: {e}")))?;
    let attached = prog
        .attach(ifindex, p.attach)
        .map_err(|e| setup(format!("attaching the XDP program to {}: {e}", p.ifname)))?;
    let umem = net_xdp::umem(&link).map_err(|e| setup(format!("UMEM: {e}")))?;
    let (xsk, lines): (Xsk<'w>, Vec<u64>) =
        Xsk::bind(umem, &cfg).map_err(|e| setup(format!("AF_XDP socket: {e}")))?;
    let fd = xsk
        .raw_fd()
        .ok_or_else(|| setup("a socket without a descriptor".into()))?;
    prog.register_socket(p.queue, fd)
        .map_err(|e| setup(format!("registering the socket: {e}")))?;
    let rx = XdpRxLink::new(&link, lines);
    Ok(Built {
        tile: Box::new(NetXdp::new(xsk, rx, p.budget)),
        // The link first: the program must outlive nothing else, and
        // dropping the link detaches it.
        keep: vec![Box::new(attached), Box::new(prog)],
    })
}

fn net_udp(ws: &Workspace, spec: &TileSpec, p: &NetUdpParams) -> Result<NetUdp, String> {
    let config = UdpConfig {
        engine: p.engine,
        // Room for bursts while the loop is busy elsewhere.
        recv_buf: Some(4 << 20),
        send_buf: Some(4 << 20),
        ..UdpConfig::new(p.bind.into())
    };
    let udp = UdpAio::bind(&config).map_err(|e| format!("binding {}: {e}", p.bind))?;
    let rx_mtu = match spec.outputs.first() {
        Some(l) => Some(
            Link::join(ws, l)
                .map_err(|e| format!("link {l:?}: {e}"))?
                .mtu(),
        ),
        None => None,
    };
    Ok(NetUdp::new(udp, rx_mtu))
}

fn gen_tile(p: &GenParams) -> Result<Gen, String> {
    let any = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 7000);
    let (src, dst) = (
        p.src.unwrap_or(any),
        p.dst
            .unwrap_or(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 9000)),
    );
    let frames_of = |bytes: &[u8], what: &str| {
        Fixture::parse(bytes)
            .map(|fx| fx.iter().map(|fr| fr.bytes.to_vec()).collect::<Vec<_>>())
            .map_err(|e| format!("fixture {what}: {e}"))
    };
    let mut frames = match &p.fixture {
        None => gen::synthetic(p.size, src, dst),
        Some(GenFixture::BuiltinMix) => frames_of(MIX_BIN, "builtin:mix")?,
        Some(GenFixture::File(path)) => {
            let bytes =
                std::fs::read(path).map_err(|e| format!("fixture {}: {e}", path.display()))?;
            frames_of(&bytes, &path.display().to_string())?
        }
    };
    if p.src.is_some() || p.dst.is_some() {
        // Frames that are not well-formed UDP keep their bytes.
        for f in &mut frames {
            if let Ok(view) = UdpFrame::new_checked(&f[..]) {
                let mut ends = view.endpoints();
                ends.src = p.src.unwrap_or(ends.src);
                ends.dst = p.dst.unwrap_or(ends.dst);
                let _ = rewrite_endpoints(f, &ends);
            }
        }
    }
    Ok(Gen::new(
        frames,
        GenConfig {
            rate: p.rate,
            count: p.count,
            burst: p.burst,
        },
    ))
}
