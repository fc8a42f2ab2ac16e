//! The parameters of a net-xdp tile and how each is read.

use std::net::Ipv4Addr;

use serde::de::{Deserialize, Deserializer, Error as _};
use tilewire_xdp::XskConfig;

use tilewire_xdp::bpf::AttachMode;
use tilewire_xdp::socket::RING_MAX;
use tilewire_xdp::{BindMode, BusyPoll};

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
    /// [A tile per queue](super#a-tile-per-queue).
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
    /// Send frags of a reliable, unshared input from where they lie in
    /// its dcache, no copy (default false; see the [kind's docs](super)).
    #[serde(default)]
    pub tx_in_place: bool,
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
pub(super) const QUEUES_MAX: u32 = 64;

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
