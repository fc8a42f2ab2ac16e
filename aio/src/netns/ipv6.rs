//! IPv6 addresses on a veth end, past duplicate address detection.

use std::net::Ipv6Addr;

use super::{ip, NetnsError, VethSide};

impl VethSide {
    /// Adds IPv6 address `addr`/`prefix` to the veth end (without
    /// duplicate address detection), then waits, up to 10 s, until none
    /// of its addresses is tentative: neighbour discovery speaks from the
    /// link-local address, which the kernel checks first.
    ///
    /// # Errors
    /// The `ip` command's ([`NetnsError::Command`] and the others), or
    /// [`NetnsError::Tentative`] if the wait ran out.
    pub fn add_ipv6(&self, addr: Ipv6Addr, prefix: u8) -> Result<(), NetnsError> {
        let cidr = format!("{addr}/{prefix}");
        ip(&[
            "-n",
            &self.netns,
            "-6",
            "addr",
            "add",
            &cidr,
            "dev",
            &self.ifname,
            "nodad",
        ])?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let args = [
                "-n",
                &self.netns,
                "-6",
                "addr",
                "show",
                "dev",
                &self.ifname,
                "tentative",
            ];
            let output = ip(&args)?;
            if output.trim().is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(NetnsError::Tentative {
                    netns: self.netns.clone(),
                    ifname: self.ifname.clone(),
                    output,
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
