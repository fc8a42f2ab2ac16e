//! [`AttachMode`]: how the program runs on a device, generic or native.

/// How the program is attached to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachMode {
    /// Generic XDP (`XDP_FLAGS_SKB_MODE`): runs after the socket buffer is
    /// made, works on every device, copy mode only for AF_XDP.
    Skb,
    /// Native XDP (`XDP_FLAGS_DRV_MODE`): runs in the driver, before any
    /// allocation; needs driver support, allows zero copy.
    Drv,
}

impl AttachMode {
    /// The `XDP_FLAGS_*` bit of this mode.
    pub const fn flags(self) -> u32 {
        match self {
            AttachMode::Skb => libbpf_sys::XDP_FLAGS_SKB_MODE,
            AttachMode::Drv => libbpf_sys::XDP_FLAGS_DRV_MODE,
        }
    }
}
