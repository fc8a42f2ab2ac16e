//! Small tiles the run-loop tests share.

use core::sync::atomic::AtomicU8;

use tilewire_shmem::clock::mono_ts;
use tilewire_shmem::load_bytes;
use tilewire_tile::link::frag::{FragMeta, CTL_PKT};
use tilewire_tile::stem::{Outputs, Tile};

use super::payload;

/// Publishes frag after frag on output 0, as fast as credits allow, until
/// it is stopped: frag `seq` carries `payload(seq, mtu)` with signature
/// `seq`.
#[derive(Debug)]
pub(crate) struct Gen {
    next: u64,
    mtu: usize,
    buf: Vec<u8>,
}

impl Gen {
    pub(crate) fn new(mtu: usize) -> Gen {
        Gen {
            next: 0,
            mtu,
            buf: Vec::new(),
        }
    }
}

impl Tile for Gen {
    fn kind(&self) -> &str {
        "gen"
    }
    fn after_credit(&mut self, out: &mut Outputs<'_, '_>) {
        payload(self.next, self.mtu, &mut self.buf);
        out.publish(0, &self.buf, self.next, CTL_PKT, mono_ts())
            .expect("after_credit runs with a burst of credits");
        self.next += 1;
    }
}

/// Copies each frag to output 0, with the same signature and origin time;
/// panics at the frag whose signature is `panic_at`.
#[derive(Debug, Default)]
pub(crate) struct Forward {
    panic_at: Option<u64>,
    buf: Vec<u8>,
}

impl Forward {
    /// A forward that panics at frag `sig`.
    pub(crate) fn panicking_at(sig: u64) -> Forward {
        Forward {
            panic_at: Some(sig),
            buf: Vec::new(),
        }
    }
}

impl Tile for Forward {
    fn kind(&self) -> &str {
        "forward"
    }
    fn during_frag(&mut self, _: usize, meta: &FragMeta, payload: &[AtomicU8]) {
        self.buf.resize(meta.sz as usize, 0);
        load_bytes(&mut self.buf, payload);
    }
    fn after_frag(&mut self, _: usize, meta: &FragMeta, out: &mut Outputs<'_, '_>) {
        if self.panic_at == Some(meta.sig) {
            panic!("forward meets frag {}", meta.sig);
        }
        out.publish(0, &self.buf, meta.sig, CTL_PKT, meta.tsorig)
            .expect("the loop only reads input with a burst of credits");
    }
}
