//! The net tile's AF_XDP receive side: packets land in a link with no copy.
//!
//! # The link is the UMEM
//!
//! A link that receives from AF_XDP is made with a dcache large enough to
//! be the socket's whole UMEM ([`Link::create_with_data`](tilewire_tile::link::Link::create_with_data) with
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
//! [`NetXdp`] is the [`Tile`](tilewire_tile::stem::Tile) around one socket: each loop turn it moves
//! received packets into its output link; each frag of its input link is
//! a whole Ethernet frame it sends (flushed at the end of each burst, and
//! by [`Xsk::service`](tilewire_xdp::Xsk::service) at housekeeping). It
//! reads its input settled. A frag waits on its link while the socket has
//! no room to send it, so nothing is dropped for lack of room. Its
//! counters, in the workspace for any monitor: packets and bytes each
//! way, fill-ring-empty polls, transmit-full waits, wakeups each way, bad
//! descriptors, the kernel's `XDP_STATISTICS` drops, and `tx_in_place`.
//!
//! # Sending in place
//!
//! When the tile reads its whole input (no `count`/`queues` sharing it)
//! and `tx_in_place = true` is set, its socket's UMEM spans
//! ([`umem_spanning`], [`Umem::spanning`](tilewire_xdp::Umem::spanning))
//! from the receive link's data region, whose frames alone are the
//! socket's, to the input link's dcache, all in one workspace mapping.
//! A frag read in place on a reliable input, whose packet lies in that
//! span outside the frames, is then sent from where it lies
//! ([`Xsk::send_in_place`](tilewire_xdp::Xsk::send_in_place)): no
//! user-space copy, and counted in `tx_in_place`. Until the kernel
//! completes that send the tile holds the frag ([`Tile::held`](tilewire_tile::stem::Tile::held)
//! counts from the oldest frag still in flight to the newest taken in),
//! so the input's published progress stops before it and the producer,
//! which reuses no byte a reliable consumer has not passed, cannot
//! rewrite what the kernel reads. Completions come back at the next
//! send, flush or housekeeping, which publishes the released progress;
//! a stopping tile waits for them ([`Tile::pending`](tilewire_tile::stem::Tile::pending)).
//! Every other frame is copied once, from where it lies into a transmit
//! frame of the socket's own, as before: a frag from an unreliable input
//! (the run loop's copy), one whose bytes lie outside the span or in the
//! receive frames (a frame the tile itself received), and every frag of
//! a tile that shares its input: such a tile skips the frags of the
//! others, so its holds could not tell where its input's progress
//! stands. `tx_pkts - tx_in_place` frames took the copy. Only the first
//! input is sent in place (the span is made for its dcache, and the holds
//! are its): a frag of any other input is copied.
//!
//! It is off unless asked for. In copy mode (veth; a driver without
//! AF_XDP zero-copy) the kernel copies every frame into an skb anyway,
//! and `tilewire-bench fanout` measured no gain: the user-space copy
//! leaves the net tile, and the kernel's copy, now reading bytes last
//! written on the producer's core, takes longer by about as much (the
//! bench README has the runs). On a NIC in zero-copy mode the NIC reads
//! the frame where it lies, and there the copy is simply gone. The costs:
//! the UMEM is registered in unaligned-chunk mode, which some drivers do
//! not offer in zero-copy mode (the bind then fails, naming the error);
//! the whole range between the receive link's data and the input's
//! dcache is pinned; and a frag stays held, its producer waiting for the
//! credit, until the kernel completed its send.
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

mod kind;
mod params;
mod tile;

pub use kind::NetXdpKind;
pub use params::{NetXdpParams, Queues};
pub use tile::{
    data_mtus, link_params, umem, umem_spanning, NetXdp, XdpRxLink, NET_XDP_COUNTERS, XDP_MTU,
};
