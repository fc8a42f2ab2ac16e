//! [`generate`]: the XDP program as bytecode, from a [`FilterSpec`].
//!
//! The program is one straight line of checks, each jumping to `pass` when
//! it fails, ending in a chain of port compares that jump to `redirect`.
//! Jumps are written against labels and resolved once the program is
//! complete, so the check sequence reads top to bottom like the rules in the
//! [module documentation](super).
//!
//! Registers, for the whole program:
//!
//! | reg | holds                                                  |
//! |-----|--------------------------------------------------------|
//! | R6  | the context (`struct xdp_md *`), kept across the call  |
//! | R2  | `data`, the frame's first byte (packet pointer)         |
//! | R3  | `data_end`, one past its last byte                      |
//! | R5  | the IP header length in bytes, 20 to 60                 |
//! | R8  | the IP total length, host order                         |
//! | R7  | the UDP header (packet pointer)                         |
//! | R0, R4 | scratch                                              |

use super::insn::{AluOp, Insn, JmpOp, Reg, Size};
use super::limits::PROG_INSNS_MAX;
use super::spec::FilterSpec;

use AluOp::{Add, And, Lsh, Rsh};
use JmpOp::{Jeq, Jgt, Jlt, Jne, Jset};
use Reg::{R0, R1, R2, R3, R4, R5, R6, R7, R8};

/// Kernel helper `bpf_redirect_map` (`BPF_FUNC_redirect_map`).
const HELPER_REDIRECT_MAP: i32 = 51;
/// Offsets in `struct xdp_md`.
const MD_DATA: i16 = 0;
const MD_DATA_END: i16 = 4;
const MD_RX_QUEUE_INDEX: i16 = 16;
/// Ethernet header length, and the ethertype's offset in it.
const ETH_HLEN: i32 = 14;
const ETH_TYPE: i16 = 12;
/// Offsets of IPv4 header fields from the start of the frame.
const IP_VER_IHL: i16 = 14;
const IP_TOT_LEN: i16 = 14 + 2;
const IP_FRAG: i16 = 14 + 6;
const IP_PROTO: i16 = 14 + 9;
const IP_DST: i16 = 14 + 16;
/// A minimal IPv4 header.
const IP_HLEN_MIN: i32 = 20;
/// UDP header length, and its fields' offsets within it.
const UDP_HLEN: i32 = 8;
const UDP_DST: i16 = 2;
const UDP_LEN: i16 = 4;
const UDP_SUM: i16 = 6;
/// The fixed IPv6 header, and its fields' offsets from the frame's start.
const IP6_HLEN: i32 = 40;
const IP6_PLEN: i16 = 14 + 4;
const IP6_NEXT: i16 = 14 + 6;
const IPPROTO_UDP: i32 = 17;
/// The value `XDP_PASS`.
const XDP_PASS: i32 = 2;

/// A 16-bit field as a native load of its two network-order bytes reads
/// it: compare packet bytes against this, with no byte swap per packet.
const fn net16(bytes: [u8; 2]) -> i32 {
    u16::from_ne_bytes(bytes) as i32
}

/// Where a jump goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    /// Return `XDP_PASS`.
    Pass,
    /// Redirect to the queue's socket.
    Redirect,
    /// The IPv4 checks.
    V4,
    /// The port compares (R7 holds the UDP header).
    Ports,
}

/// A program under construction: instructions plus jumps to resolve.
#[derive(Debug, Default)]
struct Asm {
    insns: Vec<Insn>,
    /// (index of a jump, its target) for every jump not yet resolved.
    fixups: Vec<(usize, Label)>,
    pass: Option<usize>,
    redirect: Option<usize>,
    v4: Option<usize>,
    ports: Option<usize>,
}

impl Asm {
    fn emit(&mut self, insn: Insn) {
        self.insns.push(insn);
    }

    /// Emits `insn`, a jump whose offset is filled in by [`Asm::finish`].
    fn jump(&mut self, insn: Insn, to: Label) {
        debug_assert!(insn.is_jump());
        self.fixups.push((self.insns.len(), to));
        self.insns.push(insn);
    }

    /// Marks the next instruction as `label`.
    fn bind(&mut self, label: Label) {
        let here = Some(self.insns.len());
        match label {
            Label::Pass => self.pass = here,
            Label::Redirect => self.redirect = here,
            Label::V4 => self.v4 = here,
            Label::Ports => self.ports = here,
        }
    }

    /// Resolves every jump; jumps only go forward, to a bound label.
    fn finish(mut self) -> Vec<Insn> {
        for &(at, label) in &self.fixups {
            let target = match label {
                Label::Pass => self.pass,
                Label::Redirect => self.redirect,
                Label::V4 => self.v4,
                Label::Ports => self.ports,
            }
            .expect("every label is bound before finish");
            let off = i16::try_from(target - (at + 1)).expect("programs are short");
            self.insns[at].off = off;
        }
        self.insns
    }
}

/// The XDP program for `spec`, as the kernel loads it, with the XSKMAP's
/// file descriptor still a placeholder (`-1`) in its one `ld_imm64`;
/// [`patch_map_fd`] fills it in. The same spec always gives the same
/// instructions. See the [module documentation](super) for what the
/// program does.
///
/// # Panics
/// If `spec` breaks the rules of [`FilterSpec::validate`] (no ports, more
/// than [`PORTS_MAX`](super::PORTS_MAX), or a redirect miss action):
/// [`XdpProgram::load`](super::XdpProgram::load) validates first and
/// returns those as errors.
pub fn generate(spec: &FilterSpec) -> Vec<Insn> {
    if let Err(e) = spec.validate() {
        panic!("generate: invalid FilterSpec: {e}");
    }
    let mut a = Asm::default();

    // Frame bounds, and room for Ethernet + a minimal IPv4 header.
    a.emit(Insn::mov64_reg(R6, R1));
    a.emit(Insn::ldx(Size::W, R2, R1, MD_DATA));
    a.emit(Insn::ldx(Size::W, R3, R1, MD_DATA_END));
    a.emit(Insn::mov64_reg(R0, R2));
    a.emit(Insn::alu64_imm(Add, R0, ETH_HLEN + IP_HLEN_MIN));
    a.jump(Insn::jmp_reg(Jgt, R0, R3, 0), Label::Pass);

    // Ethertype IPv4 or IPv6, untagged.
    a.emit(Insn::ldx(Size::H, R4, R2, ETH_TYPE));
    a.jump(Insn::jmp_imm(Jeq, R4, net16([0x08, 0x00]), 0), Label::V4);
    a.jump(Insn::jmp_imm(Jne, R4, net16([0x86, 0xdd]), 0), Label::Pass);
    ipv6(&mut a, spec);

    a.bind(Label::V4);

    // Version 4; IHL >= 5, kept in R5 as bytes: masked to four bits and
    // shifted, so the verifier knows 20 <= R5 <= 60.
    a.emit(Insn::ldx(Size::B, R5, R2, IP_VER_IHL));
    a.emit(Insn::mov64_reg(R4, R5));
    a.emit(Insn::alu64_imm(Rsh, R4, 4));
    a.jump(Insn::jmp_imm(Jne, R4, 4, 0), Label::Pass);
    a.emit(Insn::alu64_imm(And, R5, 0x0f));
    a.jump(Insn::jmp_imm(Jlt, R5, 5, 0), Label::Pass);
    a.emit(Insn::alu64_imm(Lsh, R5, 2));

    // UDP, and not a fragment: MF (0x2000) and the 13-bit offset all clear.
    a.emit(Insn::ldx(Size::B, R4, R2, IP_PROTO));
    a.jump(Insn::jmp_imm(Jne, R4, IPPROTO_UDP, 0), Label::Pass);
    a.emit(Insn::ldx(Size::H, R4, R2, IP_FRAG));
    a.jump(Insn::jmp_imm(Jset, R4, net16([0x3f, 0xff]), 0), Label::Pass);

    // IP total length, host order in R8 (masked: a byte swap's result is
    // not bounded for every verifier). It must cover the IP header plus a
    // UDP header, and the packet it describes must end within the frame.
    a.emit(Insn::ldx(Size::H, R8, R2, IP_TOT_LEN));
    a.emit(Insn::be(R8, 16));
    a.emit(Insn::alu64_imm(And, R8, 0xffff));
    a.emit(Insn::mov64_reg(R4, R5));
    a.emit(Insn::alu64_imm(Add, R4, UDP_HLEN));
    a.jump(Insn::jmp_reg(Jgt, R4, R8, 0), Label::Pass);
    a.emit(Insn::mov64_reg(R0, R2));
    a.emit(Insn::alu64_imm(Add, R0, ETH_HLEN));
    a.emit(Insn::alu64_reg(Add, R0, R8));
    a.jump(Insn::jmp_reg(Jgt, R0, R3, 0), Label::Pass);

    // The UDP header, after the IP options, wholly within the frame.
    a.emit(Insn::mov64_reg(R7, R2));
    a.emit(Insn::alu64_imm(Add, R7, ETH_HLEN));
    a.emit(Insn::alu64_reg(Add, R7, R5));
    a.emit(Insn::mov64_reg(R0, R7));
    a.emit(Insn::alu64_imm(Add, R0, UDP_HLEN));
    a.jump(Insn::jmp_reg(Jgt, R0, R3, 0), Label::Pass);

    // 8 <= UDP length <= IP payload (tot_len - IHL * 4).
    a.emit(Insn::ldx(Size::H, R4, R7, UDP_LEN));
    a.emit(Insn::be(R4, 16));
    a.emit(Insn::alu64_imm(And, R4, 0xffff));
    a.jump(Insn::jmp_imm(Jlt, R4, UDP_HLEN, 0), Label::Pass);
    a.emit(Insn::alu64_reg(Add, R4, R5));
    a.jump(Insn::jmp_reg(Jgt, R4, R8, 0), Label::Pass);

    // Destination address, compared as 32 bits in network order.
    if let Some(addr) = spec.dst_addr {
        let want = i32::from_ne_bytes(addr.octets());
        a.emit(Insn::ldx(Size::W, R4, R2, IP_DST));
        a.jump(Insn::jmp32_imm(Jne, R4, want, 0), Label::Pass);
    }

    // Destination port: one compare per configured port.
    a.bind(Label::Ports);
    a.emit(Insn::ldx(Size::H, R4, R7, UDP_DST));
    for &port in &spec.ports {
        a.jump(
            Insn::jmp_imm(Jeq, R4, net16(port.to_be_bytes()), 0),
            Label::Redirect,
        );
    }
    a.jump(Insn::ja(0), Label::Pass);

    // return bpf_redirect_map(&xskmap, ctx->rx_queue_index, miss_action);
    a.bind(Label::Redirect);
    a.emit(Insn::ldx(Size::W, R2, R6, MD_RX_QUEUE_INDEX));
    for insn in Insn::ld_map_fd(R1, -1) {
        a.emit(insn);
    }
    a.emit(Insn::mov64_imm(R3, spec.miss_action.as_u32() as i32));
    a.emit(Insn::call(HELPER_REDIRECT_MAP));
    a.emit(Insn::exit());

    a.bind(Label::Pass);
    a.emit(Insn::mov64_imm(R0, XDP_PASS));
    a.emit(Insn::exit());

    let insns = a.finish();
    debug_assert!(insns.len() <= PROG_INSNS_MAX);
    insns
}

/// The IPv6 checks: a fixed header whose next header is UDP (extension
/// headers, jumbograms included, go to the stack), a payload length that
/// covers a UDP header and ends within the frame, a UDP length within it,
/// a UDP checksum that is not zero (IPv6 forbids it), and no IPv4
/// address filter; then on to the ports with R7 at the UDP header.
fn ipv6(a: &mut Asm, spec: &FilterSpec) {
    a.emit(Insn::mov64_reg(R0, R2));
    a.emit(Insn::alu64_imm(Add, R0, ETH_HLEN + IP6_HLEN + UDP_HLEN));
    a.jump(Insn::jmp_reg(Jgt, R0, R3, 0), Label::Pass);
    a.emit(Insn::ldx(Size::B, R4, R2, IP_VER_IHL));
    a.emit(Insn::alu64_imm(Rsh, R4, 4));
    a.jump(Insn::jmp_imm(Jne, R4, 6, 0), Label::Pass);
    a.emit(Insn::ldx(Size::B, R4, R2, IP6_NEXT));
    a.jump(Insn::jmp_imm(Jne, R4, IPPROTO_UDP, 0), Label::Pass);
    // Payload length, host order in R8 (masked, as for IPv4).
    a.emit(Insn::ldx(Size::H, R8, R2, IP6_PLEN));
    a.emit(Insn::be(R8, 16));
    a.emit(Insn::alu64_imm(And, R8, 0xffff));
    a.jump(Insn::jmp_imm(Jlt, R8, UDP_HLEN, 0), Label::Pass);
    a.emit(Insn::mov64_reg(R0, R2));
    a.emit(Insn::alu64_imm(Add, R0, ETH_HLEN + IP6_HLEN));
    a.emit(Insn::alu64_reg(Add, R0, R8));
    a.jump(Insn::jmp_reg(Jgt, R0, R3, 0), Label::Pass);
    a.emit(Insn::mov64_reg(R7, R2));
    a.emit(Insn::alu64_imm(Add, R7, ETH_HLEN + IP6_HLEN));
    a.emit(Insn::ldx(Size::H, R4, R7, UDP_LEN));
    a.emit(Insn::be(R4, 16));
    a.emit(Insn::alu64_imm(And, R4, 0xffff));
    a.jump(Insn::jmp_imm(Jlt, R4, UDP_HLEN, 0), Label::Pass);
    a.jump(Insn::jmp_reg(Jgt, R4, R8, 0), Label::Pass);
    a.emit(Insn::ldx(Size::H, R4, R7, UDP_SUM));
    a.jump(Insn::jmp_imm(Jeq, R4, 0, 0), Label::Pass);
    if spec.dst_addr.is_some() {
        a.jump(Insn::ja(0), Label::Pass);
    } else {
        a.jump(Insn::ja(0), Label::Ports);
    }
}

/// Writes `map_fd` into every `ld_imm64` of a map fd in `insns` and returns
/// how many it patched (one, for a program from [`generate`]).
pub fn patch_map_fd(insns: &mut [Insn], map_fd: i32) -> usize {
    let mut patched = 0;
    for insn in insns.iter_mut().filter(|i| i.is_ld_map_fd()) {
        insn.imm = map_fd;
        patched += 1;
    }
    patched
}

#[cfg(test)]
mod tests {
    use super::super::{XdpAction, PORTS_MAX};
    use super::*;
    use std::net::Ipv4Addr;

    fn full_spec() -> FilterSpec {
        FilterSpec::new((1..=PORTS_MAX as u16).map(|p| p * 4000))
            .unwrap()
            .with_dst_addr(Ipv4Addr::new(255, 1, 2, 3))
    }

    #[test]
    fn deterministic() {
        let spec = full_spec();
        assert_eq!(generate(&spec), generate(&spec.clone()));
        let one = FilterSpec::new([8001]).unwrap();
        assert_ne!(generate(&one), generate(&spec));
    }

    #[test]
    fn length_bounded() {
        let base = generate(&FilterSpec::new([1]).unwrap()).len();
        let full = generate(&full_spec()).len();
        assert_eq!(
            full,
            base + (PORTS_MAX - 1) + 2,
            "a compare per port, 2 for the address (IPv4's compare and jump; \
             IPv6's jump to the ports becomes one to pass)"
        );
        assert!(full <= PROG_INSNS_MAX, "{full} instructions");
    }

    #[test]
    fn jumps_stay_inside_and_go_forward() {
        let insns = generate(&full_spec());
        for (i, insn) in insns.iter().enumerate() {
            if insn.is_jump() {
                let target = i as i64 + 1 + i64::from(insn.off);
                assert!(insn.off >= 0, "backward jump at {i}");
                assert!(target < insns.len() as i64, "jump out at {i}");
            }
        }
        assert_eq!(insns.last(), Some(&Insn::exit()));
    }

    #[test]
    fn one_map_fd_to_patch() {
        let mut insns = generate(&full_spec());
        assert_eq!(patch_map_fd(&mut insns, 42), 1);
        let ld = insns.iter().find(|i| i.is_ld_map_fd()).unwrap();
        assert_eq!(ld.imm, 42);
    }

    #[test]
    fn miss_action_is_the_redirect_flags() {
        let spec = FilterSpec::new([9]).unwrap();
        let flags = |spec: &FilterSpec| {
            let insns = generate(spec);
            let call = insns.iter().position(|i| *i == Insn::call(51)).unwrap();
            insns[call - 1]
        };
        assert_eq!(flags(&spec), Insn::mov64_imm(R3, 2));
        let drop = spec.with_miss_action(XdpAction::Drop);
        assert_eq!(flags(&drop), Insn::mov64_imm(R3, 1));
    }

    #[test]
    #[should_panic(expected = "invalid FilterSpec")]
    fn invalid_spec_panics() {
        let spec = FilterSpec {
            ports: vec![],
            dst_addr: None,
            miss_action: XdpAction::Pass,
        };
        generate(&spec);
    }
}
