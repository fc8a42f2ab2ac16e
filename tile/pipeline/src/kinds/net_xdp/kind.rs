//! The net-xdp kind: its checks, its tile per queue, the XDP program its
//! tiles share.

use tilewire_xdp::Xsk;

use tilewire_xdp::bpf::{FilterSpec, XdpLink, XdpProgram, XskMap};
use tilewire_xdp::if_index;

use tilewire_tile::stem::Tile;

use super::params::{NetXdpParams, Queues, QUEUES_MAX};
use super::tile::{data_mtus, umem, umem_spanning, NetXdp, XdpRxLink, XDP_MTU};
use crate::kind::{BuildCtx, BuildError, CheckCtx, IoCounts, ParamCount, TileKind};
use crate::topo::{LinkSpec, TileSpec};
use std::any::Any;

/// The `net-xdp` kind: an AF_XDP socket on one queue of an interface.
/// Inputs 0..=1 (frames to transmit), outputs exactly 1 (received frames;
/// its mtu must be [`XDP_MTU`], one UMEM frame: the link's data region
/// *is* the socket's UMEM, sized by [`data_mtus`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct NetXdpKind;

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
        // In place only from an input this tile reads whole: a tile that
        // shares its input (`count`, `queues`) skips the others' frags,
        // and its holds could not tell where its input's progress stands.
        let in_place = p.tx_in_place && !ctx.tile().inputs.is_empty() && ctx.tile().share.is_none();
        let umem = if in_place {
            umem_spanning(ctx.workspace(), &link, &[&ctx.input(0)?])
        } else {
            umem(&link)
        }
        .map_err(|e| BuildError::new(format!("UMEM: {e}")))?;
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
