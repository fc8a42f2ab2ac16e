//! [`XdpAction`]: the verdicts of an XDP program, as the kernel numbers them.

/// The verdict of an XDP program (`enum xdp_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum XdpAction {
    /// `XDP_ABORTED` (0): dropped, with a tracepoint; a program error.
    Aborted = 0,
    /// `XDP_DROP` (1): dropped.
    Drop = 1,
    /// `XDP_PASS` (2): on to the kernel stack.
    Pass = 2,
    /// `XDP_TX` (3): sent back out of the device it came in on.
    Tx = 3,
    /// `XDP_REDIRECT` (4): to another device, CPU or AF_XDP socket.
    Redirect = 4,
}

impl XdpAction {
    /// The action with kernel value `value`; `None` for anything else.
    pub const fn from_u32(value: u32) -> Option<XdpAction> {
        match value {
            0 => Some(XdpAction::Aborted),
            1 => Some(XdpAction::Drop),
            2 => Some(XdpAction::Pass),
            3 => Some(XdpAction::Tx),
            4 => Some(XdpAction::Redirect),
            _ => None,
        }
    }

    /// The kernel value.
    pub const fn as_u32(self) -> u32 {
        self as u32
    }
}

impl TryFrom<u32> for XdpAction {
    /// The value that is no action.
    type Error = u32;

    fn try_from(value: u32) -> Result<XdpAction, u32> {
        XdpAction::from_u32(value).ok_or(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip() {
        for v in 0..5 {
            assert_eq!(XdpAction::from_u32(v).unwrap().as_u32(), v);
        }
        assert_eq!(XdpAction::try_from(5), Err(5));
        assert_eq!(XdpAction::Pass.as_u32(), libbpf_sys::XDP_PASS);
    }
}
