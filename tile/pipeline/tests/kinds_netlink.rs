//! The netlink tile in a pipeline (as root, in namespaces this test
//! makes; otherwise `skipped: needs CAP_NET_ADMIN`): a tile that asks for
//! a neighbour over a link gets it resolved by the kernel and published
//! in the next-hop table; a route added meanwhile is followed within a
//! second; the run's report counts what the tile did.

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use tilewire_aio::netns::VethPair;
use tilewire_pipeline::kinds::netlink::{next_hops_name, solicit_request};
use tilewire_pipeline::tile::stem::{Outputs, Tile};
use tilewire_pipeline::{
    BuildCtx, BuildError, IoCounts, LinkDef, PipelineBuilder, Registry, RunOptions, TileDef,
    TileKind,
};
use tilewire_route::{Miss, NextHops};
use tilewire_shmem::Workspace;

/// Asks once for the resolution of an address given in its params.
struct AskKind;

#[derive(Debug, serde::Deserialize)]
struct AskParams {
    ifindex: u32,
    ip: IpAddr,
}

struct Ask {
    request: Option<[u8; 21]>,
}

impl Tile for Ask {
    fn kind(&self) -> &str {
        "ask"
    }
    fn after_credit(&mut self, out: &mut Outputs<'_, '_>) {
        if let Some(r) = self.request.take() {
            out.publish(0, &r, 0, 0, 0).expect("one request fits");
        }
    }
}

impl TileKind for AskKind {
    type Params = AskParams;
    fn name(&self) -> &str {
        "ask"
    }
    fn io(&self) -> IoCounts {
        IoCounts::new(0..=0, 1..=1)
    }
    fn build<'w>(
        &self,
        p: &AskParams,
        _: &mut BuildCtx<'w, '_>,
    ) -> Result<Box<dyn Tile + 'w>, BuildError> {
        Ok(Box::new(Ask {
            request: Some(solicit_request(p.ifindex, p.ip)),
        }))
    }
}

fn ip(ns: &str, args: &[&str]) {
    let ok = Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .status()
        .expect("running ip")
        .success();
    assert!(ok, "ip -n {ns} {}", args.join(" "));
}

/// Waits up to `within` for the table of `ws` to resolve `dst` as `done`
/// says; the last answer.
fn until(
    ws: &Workspace,
    dst: IpAddr,
    within: Duration,
    done: impl Fn(&Result<tilewire_route::Hop, Miss>) -> bool,
) -> Result<tilewire_route::Hop, Miss> {
    let a = ws.lookup(&next_hops_name("nl")).expect("the table exists");
    let table = NextHops::join(ws.region(a.gaddr, a.size as usize).unwrap()).unwrap();
    let start = Instant::now();
    loop {
        let r = table.resolve(dst);
        if done(&r) || start.elapsed() > within {
            return r;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_request_over_a_link_is_resolved_and_changes_are_followed() {
    let Some(pair) = VethPair::new_or_skip("nl-kind") else {
        return;
    };
    let (a, b) = (pair.a(), pair.b());
    let peer = IpAddr::V4(b.addr());
    // The pair comes with a permanent entry for the peer: without it,
    // nothing resolved the peer yet.
    ip(
        a.netns(),
        &["neigh", "del", &peer.to_string(), "dev", a.ifname()],
    );
    let registry = Registry::with_builtins().with(AskKind).unwrap();
    let name = format!("nlk{}", std::process::id());
    let pipeline = PipelineBuilder::new(&name)
        .link(LinkDef::new("asks", 64))
        .tile(
            TileDef::new("ask", "ask")
                .output("asks")
                .param("ifindex", a.ifindex())
                .param("ip", peer.to_string()),
        )
        .tile(
            TileDef::new("nl", "netlink")
                .input("asks")
                .param("netns", a.netns()),
        )
        .build(&registry)
        .unwrap();
    let running = pipeline.start(&RunOptions::new()).unwrap();
    let ws = pipeline.workspace();
    let hop = until(ws, peer, Duration::from_secs(3), |r| r.is_ok())
        .expect("the peer resolved on request");
    assert_eq!((hop.ifindex, hop.mac), (a.ifindex(), b.mac()));
    ip(
        a.netns(),
        &["route", "add", "198.19.210.0/24", "via", &peer.to_string()],
    );
    let far: IpAddr = "198.19.210.9".parse().unwrap();
    let hop = until(ws, far, Duration::from_secs(1), |r| r.is_ok())
        .expect("a new route followed within a second");
    assert_eq!((hop.next_hop, hop.mac), (peer, b.mac()));
    let report = running.stop().unwrap();
    let c = |n: &str| report.counter("nl", n).unwrap();
    assert_eq!((c("dumps"), c("solicits"), c("bad_requests")), (1, 1, 0));
    assert!(
        c("events") >= 2 && c("publishes") >= 2,
        "{:?}",
        report.tile("nl")
    );
    assert!(c("routes") >= 3, "local, link and the new route");
}
