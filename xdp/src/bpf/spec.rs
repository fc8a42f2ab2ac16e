//! [`FilterSpec`]: what the program steers, and the rules it must keep.

use std::borrow::Borrow;
use std::net::Ipv4Addr;

use super::action::XdpAction;
use super::error::BpfError;
use super::limits::PORTS_MAX;

/// What the program steers to the AF_XDP sockets; see the
/// [module documentation](super) for the exact rules.
///
/// The fields are public for reading and adjusting; [`FilterSpec::new`]
/// and [`FilterSpec::validate`] enforce the rules, and
/// [`XdpProgram::load`](super::XdpProgram::load) validates again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterSpec {
    /// UDP destination ports (host byte order), 1 to [`PORTS_MAX`] of
    /// them, distinct, none 0.
    pub ports: Vec<u16>,
    /// If set, only datagrams to this IPv4 destination are steered.
    pub dst_addr: Option<Ipv4Addr>,
    /// What a matching frame gets when its queue's XSKMAP slot is empty
    /// (the flags of `bpf_redirect_map`): [`XdpAction::Pass`] by default,
    /// so it reaches the kernel stack. Any action but
    /// [`XdpAction::Redirect`]; tests use [`XdpAction::Drop`] to tell the
    /// redirect path from the pass path without a socket.
    pub miss_action: XdpAction,
}

impl FilterSpec {
    /// A filter for `ports` (any iterable of `u16` or `&u16`, in the order
    /// the program compares them), any destination address, missing sockets
    /// falling back to [`XdpAction::Pass`].
    ///
    /// Port 0 is refused: nothing sends to UDP port 0, and a 0 in a port
    /// list is nearly always a configuration value left unset.
    ///
    /// # Errors
    /// [`BpfError::NoPorts`], [`BpfError::TooManyPorts`] (more than
    /// [`PORTS_MAX`]), [`BpfError::DuplicatePort`], [`BpfError::PortZero`].
    pub fn new<I>(ports: I) -> Result<FilterSpec, BpfError>
    where
        I: IntoIterator,
        I::Item: Borrow<u16>,
    {
        let spec = FilterSpec {
            ports: ports.into_iter().map(|p| *p.borrow()).collect(),
            dst_addr: None,
            miss_action: XdpAction::Pass,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// The same filter, limited to datagrams addressed to `addr`.
    pub fn with_dst_addr(mut self, addr: Ipv4Addr) -> FilterSpec {
        self.dst_addr = Some(addr);
        self
    }

    /// The same filter with another [`miss_action`](Self::miss_action).
    pub fn with_miss_action(mut self, action: XdpAction) -> FilterSpec {
        self.miss_action = action;
        self
    }

    /// Checks the rules of [`FilterSpec::new`] and that the miss action is
    /// not [`XdpAction::Redirect`].
    ///
    /// # Errors
    /// Those of [`FilterSpec::new`], and [`BpfError::BadMissAction`].
    pub fn validate(&self) -> Result<(), BpfError> {
        if self.ports.is_empty() {
            return Err(BpfError::NoPorts);
        }
        if self.ports.len() > PORTS_MAX {
            return Err(BpfError::TooManyPorts {
                count: self.ports.len(),
            });
        }
        for (i, &port) in self.ports.iter().enumerate() {
            if port == 0 {
                return Err(BpfError::PortZero);
            }
            if self.ports[..i].contains(&port) {
                return Err(BpfError::DuplicatePort { port });
            }
        }
        if self.miss_action == XdpAction::Redirect {
            return Err(BpfError::BadMissAction {
                action: self.miss_action,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_validation() {
        assert!(FilterSpec::new([8001]).is_ok());
        assert!(FilterSpec::new(1..=16).is_ok());
        let from_config: &[u16] = &[7, 9];
        assert_eq!(FilterSpec::new(from_config).unwrap().ports, [7, 9]);
        assert!(matches!(
            FilterSpec::new(Vec::<u16>::new()),
            Err(BpfError::NoPorts)
        ));
        assert!(matches!(
            FilterSpec::new(1..=17),
            Err(BpfError::TooManyPorts { count: 17 })
        ));
        assert!(matches!(
            FilterSpec::new([5, 6, 5]),
            Err(BpfError::DuplicatePort { port: 5 })
        ));
        assert!(matches!(FilterSpec::new([1, 0]), Err(BpfError::PortZero)));
        let spec = FilterSpec::new([65535]).unwrap();
        assert_eq!(spec.miss_action, XdpAction::Pass);
        assert_eq!(spec.dst_addr, None);
        assert!(matches!(
            spec.with_miss_action(XdpAction::Redirect).validate(),
            Err(BpfError::BadMissAction { .. })
        ));
    }
}
