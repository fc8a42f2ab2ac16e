//! The topology file: what a [`Pipeline`](crate::Pipeline) (and `tilewire
//! run topo.toml`) builds, and the rules it must follow.
//!
//! A topology names one workspace, the links in it and the tiles that
//! produce and consume them. This module is its data and what needs no
//! kind: [`TopologySpec::parse`] reads the text and checks every field and
//! name. A [`Registry`](crate::Registry) binds it to the kinds it names
//! and checks the whole ([`Registry::bind`](crate::Registry::bind)): the
//! parameters, the graph, the cpus, each kind's own checks and whether
//! everything fits in the workspace; [`Registry::parse`](crate::Registry::parse)
//! and [`Registry::load`](crate::Registry::load) do both, for a text or a
//! file, giving the [`Topology`](crate::Topology) a pipeline runs. Every
//! problem found is reported at once, each with its line, not just the
//! first.
//!
//! # An example
//!
//! ```toml
//! [workspace]
//! name = "tw-pipe"
//! size = "64MiB"
//!
//! [[link]]
//! name = "rx"
//! depth = 4096
//! reliable = false      # net must never wait for dedup
//!
//! [[link]]
//! name = "uniq"
//! depth = 1024
//!
//! [[link]]
//! name = "tx"
//! depth = 1024
//!
//! [[tile]]
//! name = "net"
//! kind = "net-xdp"
//! cpu = 0
//! inputs = ["tx"]
//! outputs = ["rx"]
//! [tile.params]
//! ifname = "veth0"
//! ports = [9000]
//!
//! [[tile]]
//! name = "dedup"
//! kind = "dedup"
//! inputs = ["rx"]
//! outputs = ["uniq"]
//!
//! [[tile]]
//! name = "echo"
//! kind = "echo"
//! inputs = ["uniq"]
//! outputs = ["tx"]
//! ```
//!
//! # `[workspace]`
//!
//! | key     | value | default |
//! |---------|-------|---------|
//! | `name`  | the workspace's name: 1 to 40 bytes of letters, digits, `.`, `_`, `-`, not starting with `.` or `-` | required |
//! | `size`  | bytes: an integer, or a string with a unit `B`, `KiB`, `MiB`, `GiB` (`"256MiB"`, `"1 GiB"`) | just enough: [`Topology::footprint`](crate::Topology::footprint) rounded up to a page |
//! | `pages` | `"normal"` (4 KiB, /dev/shm), `"huge"` (2 MiB) or `"gigantic"` (1 GiB, hugetlbfs) | `"normal"` |
//! | `mode`  | `"threads"` (every tile a pinned thread of one process) or `"processes"` (a process per tile) | `"threads"` |
//!
//! The size is rounded up to a whole page, as the workspace is made. It
//! must hold everything the topology puts in it: see [Sizes](#sizes).
//!
//! # `[[link]]`, one per link
//!
//! | key        | value | default |
//! |------------|-------|---------|
//! | `name`     | unique among links; a workspace name of at most [`LINK_NAME_MAX`](tilewire_tile::link::LINK_NAME_MAX) (35) bytes | required |
//! | `depth`    | frags in the ring, a power of two in 2..=2^28 | required |
//! | `mtu`      | largest payload in bytes, 1..=65535 | 2048 |
//! | `reliable` | `true`: every consumer gives credits, the producer waits for the slowest (back-pressure, nothing lost); `false`: the producer never waits and a consumer that falls a ring behind is overrun (the frags it lost are counted) | `true` |
//!
//! Every link has exactly one producer (a tile listing it in `outputs`)
//! and 1 to 64 consumers (tiles listing it in `inputs`).
//!
//! # `[[tile]]`, one per tile
//!
//! | key       | value | default |
//! |-----------|-------|---------|
//! | `name`    | unique among tiles; a workspace name of at most [`TILE_NAME_MAX`](tilewire_tile::stem::TILE_NAME_MAX) (34) bytes | required |
//! | `kind`    | a kind of the [registry](crate::Registry) the topology is read against: the built-ins below, and any a pipeline binary registers | required |
//! | `cpu`     | pin the tile to this cpu; it must be one this machine lets the runner use. Tiles naming one cpu run on one thread, taking turns | not pinned |
//! | `group`   | a name (at most 32 bytes): the tiles naming one group run on one thread (one process in processes mode), taking turns; see [`TopologySpec::layout`](crate::topo::TopologySpec::layout). Tiles naming the same `cpu` share a thread too | a thread of its own |
//! | `restart` | `"never"` or `"on-failure"`: in processes mode, start the tile's process again when it fails (after 100 ms, doubling to 5 s; at most 5 times a minute), by a thread of the runner, logged, counted in its metrics (`boots`) and listed in the run's `RunReport`; a group restarts if one of its tiles says so. The restarted tile replays what its predecessor passed on after it last published its progress, so a tile feeding a kind that must see each frag once (`TileKind::replays`) without a dedup between is refused here | `"never"` |
//! | `count`   | 1 to 64: makes that many tiles of this one, named `NAME.0`, `NAME.1`, ..., each taking its share of every input's frags (the others it skips, counted as filtered) and publishing on an output link of its own (`LINK.0`, ...), which every consumer of the output reads in turn; with `cpu = C` they are pinned to C, C+1, ... | 1 |
//! | `share`   | with `count`: `"round-robin"` (frag `seq % count`) or `"sig"` (a hash of the frag's signature, which the net tiles and gen set to the UDP destination port: the frags of one port go to one tile) | `"round-robin"` |
//! | `idle`    | `"spin"` (keep polling: for a tile with a core of its own) or `"backoff"` (spin, yield, then sleep until woken: for tiles that share cores) | `"spin"` for a tile pinned to a cpu no other tile names, `"backoff"` otherwise |
//! | `inputs`  | links the tile consumes, in input order | `[]` |
//! | `outputs` | links the tile produces, in output order | `[]` |
//! | `params`  | a table of the kind's parameters, as `[tile.params]` after the tile or inline `params = { ... }` | every parameter's default |
//!
//! A tile listing a link in `inputs` becomes that link's next consumer:
//! consumer indices count up from 0 in the order the tiles appear in the
//! file (see [`TopologySpec::consumers`](crate::topo::TopologySpec::consumers)). A tile lists a link at most once.
//!
//! # Kinds and their parameters
//!
//! A tile's `params` are its kind's [`Params`](crate::TileKind::Params)
//! type, read with serde: a missing field, a wrong type, a value out of
//! range or (for the built-ins, which all deny them) an unknown key is
//! reported at its line; each params table reports its first problem.
//! Unknown keys are refused everywhere outside `params`. `netns` is a
//! parameter of the two kinds with a socket. The built-in kinds:
//!
//! - `net-xdp`: an AF_XDP socket on one queue of an interface. Inputs
//!   0..=1 (frames to transmit), outputs exactly 1 (received frames; its
//!   mtu must be 2048, one UMEM frame: the link's data region *is* the
//!   socket's UMEM). Params: `ifname` (required), `queue` = 0, `ports`
//!   (required: 1 to 16 UDP destination ports steered to the socket, no
//!   repeats), `dst_addr` (an IPv4 address; default any), `bind` =
//!   `"auto"` | `"copy"` | `"zerocopy"` (default auto), `attach` =
//!   `"skb"` | `"drv"` (default skb), `netns` (a network namespace name;
//!   default the runner's), `budget` = 64 (packets per poll, 1..=65536),
//!   `rx_size`, `fill_size`, `tx_size` = 2048 each (ring entries, powers of
//!   two up to 65536), `busy_poll` = false, `tx_in_place` = false (true:
//!   send the frags of a reliable input this tile reads whole from where
//!   they lie in its dcache, no copy; see the kind's docs for when it
//!   pays). The runner attaches one XDP
//!   program per interface for all its net-xdp tiles (their ports
//!   together; `attach` and `dst_addr` must agree), each tile's socket on
//!   its own queue (two on one queue are refused); `count = N` makes one
//!   tile per queue, `queue` to `queue + N - 1`, sharing the sending.
//! - `net-udp`: a UDP socket (io_uring, or sendmmsg/recvmmsg). Inputs
//!   0..=1 (frames, sent to the address in their headers), outputs 0..=1
//!   (received datagrams as Ethernet/IPv4/UDP frames, or IPv6 from an IPv6
//!   peer), at least one of the two. Params: `bind` (required, `"ip:port"`
//!   or `"[ipv6]:port"`), `engine` =
//!   `"auto"` | `"uring"` | `"mmsg"` (default auto), `netns`. Several
//!   net-udp tiles binding one address (a port other than 0, in one
//!   namespace) share it with `SO_REUSEPORT`, the kernel spreading flows
//!   over their sockets; each of them must have an output.
//! - `dedup`: 1 to 16 inputs and exactly 1 output; drops frames seen
//!   recently, across all its inputs.
//!   Params: `depth` = 65536 (tags remembered, a power of two up to 2^26).
//! - `echo`: exactly 1 input and 1 output; swaps each frame's endpoints.
//!   No params.
//! - `verify`: exactly 1 input and 1 output; hashes every payload (xxh3-64
//!   over all its bytes) and passes the packet on. Params: `dst`
//!   (`"ip:port"`: readdress every UDP frame to it; default unchanged).
//! - `forward`: 1 to 16 inputs, exactly 1 output. No params.
//! - `sink`: 1 to 16 inputs, no outputs. No params.
//! - `pcap`: exactly 1 input, no outputs. Params: `path` (required; a
//!   relative path is relative to the runner's working directory),
//!   `snaplen` = 65535 (1..=65535), `on_error` = `"drop"` (after a write
//!   error, such as a full disk, drop and count every packet; `"stop"`:
//!   fail the tile and so the run; either way the file is cut back to
//!   its last whole record).
//! - `gen`: no inputs, exactly 1 output. Params: `fixture` (a path to a
//!   raw `.bin` fixture file, which must exist (a relative path is
//!   relative to the runner's working directory), or `"builtin:mix"`;
//!   default synthetic frames), `size` = 64 (UDP payload bytes of the
//!   synthetic frames; not allowed with `fixture`; the frame, 42 bytes
//!   more, must fit the output link's mtu), `rate` = 0 (packets per
//!   second, 0 = as fast as credits allow), `count` = 0 (packets to send,
//!   0 = no limit), `src`, `dst` (`"ip:port"`: rewrite every frame's
//!   endpoints; default unchanged), `burst` = 1 (packets at once under the
//!   rate limit, 1..=2^20).
//!
//! # Cycles
//!
//! Tiles and links form a graph: tile -> output link -> each tile
//! consuming it. A cycle in which every link is reliable can deadlock:
//! each tile waits for credits from the next, around the ring, forever.
//! Such a cycle is refused, naming its tiles. A cycle with at least one
//! unreliable link is fine: the tile before that link never waits (the
//! echo demo, net -> dedup -> echo -> net, makes net -> dedup unreliable).
//!
//! # Sizes
//!
//! [`Topology::footprint`](crate::Topology::footprint) is what the workspace must hold: the
//! workspace's header and allocation table; per link its mcache, its
//! dcache (of `depth + 1` mtus, or what its producer's kind asks for: for
//! a net-xdp output `depth + fill_size + tx_size` frames, the whole UMEM)
//! and an fseq per consumer; per tile its metrics, a latency histogram per
//! input and the workspace objects its kind declares
//! ([`TileKind::objects`](crate::TileKind::objects): a dedup tile's tag
//! cache); [`TOPOLOGY_TEXT_MAX`] for the copy of the topology the
//! runner keeps; and for every allocation room for its alignment. A
//! workspace smaller than that is refused at its `size` line, saying how
//! much is needed.
//!
//! # Errors
//!
//! Each problem is a [`TopoError`] with the line and column it concerns
//! (a table's header line when a field is missing); [`TopoErrors`]
//! prints one per line, after the file name when there is one.

mod check;
mod count;
mod de;
mod error;
mod layout;
mod machine;
mod parse;
mod scc;
pub(crate) mod spec;
mod value;

pub(crate) use check::count_words;
pub(crate) use count::expand;
pub(crate) use de::{from_params, ParamsAt};
pub use error::{TopoError, TopoErrors};
pub use layout::{TileGroup, GROUP_NAME_MAX};
pub use machine::Machine;
pub(crate) use scc::strongly_connected;
pub use spec::{
    LinkSpec, ShareSpec, TileSpec, TopologySpec, WorkspaceSpec, RESTART_LIMIT, RESTART_WINDOW,
    TOPOLOGY_TEXT_MAX,
};
pub(crate) use spec::{Mode, Restart};
pub(crate) use value::{Lines, Loc, Value};
