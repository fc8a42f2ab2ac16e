//! One eBPF instruction: the 8-byte `struct bpf_insn` and its encoders.
//!
//! The layout is documented on [`Insn`], where rustdoc shows it.

/// Instruction classes (the low three bits of `code`).
mod class {
    pub(super) const LD: u8 = 0x00;
    pub(super) const LDX: u8 = 0x01;
    pub(super) const ALU: u8 = 0x04;
    pub(super) const JMP: u8 = 0x05;
    pub(super) const JMP32: u8 = 0x06;
    pub(super) const ALU64: u8 = 0x07;
}

/// Source bit: the operand is the immediate.
const SRC_K: u8 = 0x00;
/// Source bit: the operand is `src_reg`.
const SRC_X: u8 = 0x08;
/// Load mode: a 64-bit immediate (with size DW).
const MODE_IMM: u8 = 0x00;
/// Load mode: memory at `src_reg + off`.
const MODE_MEM: u8 = 0x60;
/// `BPF_END` (byte swap) in the ALU class.
const OP_END: u8 = 0xd0;
/// `BPF_TO_BE`: the source bit of `BPF_END`, "convert to big endian".
const TO_BE: u8 = 0x08;
/// `BPF_JA`, `BPF_CALL`, `BPF_EXIT` in the JMP class.
const OP_JA: u8 = 0x00;
const OP_CALL: u8 = 0x80;
const OP_EXIT: u8 = 0x90;

/// `src_reg` of an `ld_imm64` whose immediate is a map file descriptor.
pub const PSEUDO_MAP_FD: u8 = 1;

/// The eleven eBPF registers. `R0` holds return values, `R1`-`R5`
/// arguments (clobbered by calls), `R6`-`R9` survive calls, `R10` is the
/// read-only frame pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Reg {
    R0 = 0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    R10,
}

/// Arithmetic operations (the high four bits of `code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AluOp {
    /// `dst += src`
    Add = 0x00,
    /// `dst -= src`
    Sub = 0x10,
    /// `dst |= src`
    Or = 0x40,
    /// `dst &= src`
    And = 0x50,
    /// `dst <<= src`
    Lsh = 0x60,
    /// `dst >>= src` (logical)
    Rsh = 0x70,
    /// `dst = src`
    Mov = 0xb0,
}

/// Conditional jumps (the high four bits of `code`); all compare unsigned
/// except where named otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum JmpOp {
    /// `dst == src`
    Jeq = 0x10,
    /// `dst > src`
    Jgt = 0x20,
    /// `dst >= src`
    Jge = 0x30,
    /// `dst & src != 0`
    Jset = 0x40,
    /// `dst != src`
    Jne = 0x50,
    /// `dst < src`
    Jlt = 0xa0,
    /// `dst <= src`
    Jle = 0xb0,
}

/// Width of a memory load (bits 3-4 of `code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Size {
    /// 32 bits
    W = 0x00,
    /// 16 bits
    H = 0x08,
    /// 8 bits
    B = 0x10,
    /// 64 bits
    Dw = 0x18,
}

/// One eBPF instruction, laid out exactly as the kernel's `struct bpf_insn`,
/// so a `&[Insn]` can be handed to `BPF_PROG_LOAD` as it is.
///
/// # Layout
///
/// The kernel's `struct bpf_insn` (`include/uapi/linux/bpf.h`, described in
/// `Documentation/bpf/standardization/instruction-set.rst`) is eight bytes:
///
/// | byte | field                                       |
/// |------|---------------------------------------------|
/// | 0    | `code`: operation, source bit, class        |
/// | 1    | `dst_reg:4, src_reg:4` (a C bitfield)       |
/// | 2-3  | `off`: signed 16-bit offset, host order      |
/// | 4-7  | `imm`: signed 32-bit immediate, host order   |
///
/// The register byte is a bitfield, so its nibble order follows the host:
/// on a little-endian host `dst` is the low nibble, on a big-endian host the
/// high one. [`Insn`] stores the byte as the kernel reads it, and
/// [`Insn::to_bytes`] gives exactly what the kernel is handed.
///
/// A 64-bit immediate load (`ld_imm64`) takes two slots: the first carries
/// the low 32 bits, the second (all other fields zero) the high 32 bits.
/// With `src_reg = BPF_PSEUDO_MAP_FD` the immediate is a map file
/// descriptor that the verifier swaps for the map's address.
///
/// # Code byte
///
/// For arithmetic and jumps: `op (4 bits) | source (1 bit) | class (3 bits)`,
/// the source bit set when the operand is a register (`X`), clear for the
/// immediate (`K`). For loads: `mode (3 bits) | size (2 bits) | class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Insn {
    /// Operation, source bit and class.
    pub code: u8,
    /// `dst_reg` and `src_reg`, nibbles in host bitfield order.
    pub regs: u8,
    /// Signed offset: a memory displacement or a jump distance in slots.
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

const _: () = assert!(std::mem::size_of::<Insn>() == 8);
const _: () = assert!(std::mem::align_of::<Insn>() == 4);

/// Packs two register numbers into the bitfield byte, in host order.
const fn pack_regs(dst: u8, src: u8) -> u8 {
    if cfg!(target_endian = "little") {
        (src << 4) | (dst & 0x0f)
    } else {
        (dst << 4) | (src & 0x0f)
    }
}

impl Insn {
    /// An instruction from its fields.
    pub const fn new(code: u8, dst: Reg, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: pack_regs(dst as u8, src),
            off,
            imm,
        }
    }

    /// The destination register number (0-15).
    pub const fn dst(&self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs & 0x0f
        } else {
            self.regs >> 4
        }
    }

    /// The source register number (0-15); for `ld_imm64` the pseudo kind.
    pub const fn src(&self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs >> 4
        } else {
            self.regs & 0x0f
        }
    }

    /// The eight bytes the kernel reads, in host byte order.
    pub fn to_bytes(&self) -> [u8; 8] {
        let mut out = [0u8; 8];
        out[0] = self.code;
        out[1] = self.regs;
        out[2..4].copy_from_slice(&self.off.to_ne_bytes());
        out[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        out
    }

    /// `dst = src` (64-bit).
    pub const fn mov64_reg(dst: Reg, src: Reg) -> Insn {
        Insn::alu64_reg(AluOp::Mov, dst, src)
    }

    /// `dst = imm` (64-bit, `imm` sign-extended).
    pub const fn mov64_imm(dst: Reg, imm: i32) -> Insn {
        Insn::alu64_imm(AluOp::Mov, dst, imm)
    }

    /// `dst op= imm` (64-bit, `imm` sign-extended).
    pub const fn alu64_imm(op: AluOp, dst: Reg, imm: i32) -> Insn {
        Insn::new(class::ALU64 | SRC_K | op as u8, dst, 0, 0, imm)
    }

    /// `dst op= src` (64-bit).
    pub const fn alu64_reg(op: AluOp, dst: Reg, src: Reg) -> Insn {
        Insn::new(class::ALU64 | SRC_X | op as u8, dst, src as u8, 0, 0)
    }

    /// `dst = to_be(dst)` on the low `bits` (16, 32 or 64) bits, upper bits
    /// cleared: a byte swap on a little-endian host, a truncation on a
    /// big-endian one. Converting from network order is the same operation.
    pub const fn be(dst: Reg, bits: i32) -> Insn {
        Insn::new(class::ALU | TO_BE | OP_END, dst, 0, 0, bits)
    }

    /// `dst = *(size *)(src + off)`, zero-extended.
    pub const fn ldx(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(class::LDX | MODE_MEM | size as u8, dst, src as u8, off, 0)
    }

    /// `dst = map` as two slots: an `ld_imm64` whose immediate is the map's
    /// file descriptor (`src_reg = BPF_PSEUDO_MAP_FD`).
    pub const fn ld_map_fd(dst: Reg, map_fd: i32) -> [Insn; 2] {
        [
            Insn::new(
                class::LD | MODE_IMM | Size::Dw as u8,
                dst,
                PSEUDO_MAP_FD,
                0,
                map_fd,
            ),
            Insn {
                code: 0,
                regs: 0,
                off: 0,
                imm: 0,
            },
        ]
    }

    /// Whether this is the first slot of an `ld_imm64` of a map fd.
    pub const fn is_ld_map_fd(&self) -> bool {
        self.code == class::LD | MODE_IMM | Size::Dw as u8 && self.src() == PSEUDO_MAP_FD
    }

    /// `if dst op imm goto +off` (64-bit compare, `imm` sign-extended).
    pub const fn jmp_imm(op: JmpOp, dst: Reg, imm: i32, off: i16) -> Insn {
        Insn::new(class::JMP | SRC_K | op as u8, dst, 0, off, imm)
    }

    /// `if dst op src goto +off` (64-bit compare).
    pub const fn jmp_reg(op: JmpOp, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(class::JMP | SRC_X | op as u8, dst, src as u8, off, 0)
    }

    /// `if (u32)dst op (u32)imm goto +off`: compares the low 32 bits only,
    /// so a `u32` constant with its top bit set needs no sign games.
    pub const fn jmp32_imm(op: JmpOp, dst: Reg, imm: i32, off: i16) -> Insn {
        Insn::new(class::JMP32 | SRC_K | op as u8, dst, 0, off, imm)
    }

    /// `goto +off`.
    pub const fn ja(off: i16) -> Insn {
        Insn::new(class::JMP | OP_JA, Reg::R0, 0, off, 0)
    }

    /// Calls kernel helper number `helper`; arguments in `R1`-`R5`, the
    /// result in `R0`.
    pub const fn call(helper: i32) -> Insn {
        Insn::new(class::JMP | OP_CALL, Reg::R0, 0, 0, helper)
    }

    /// Returns `R0`.
    pub const fn exit() -> Insn {
        Insn::new(class::JMP | OP_EXIT, Reg::R0, 0, 0, 0)
    }

    /// Whether this is a jump with a target (`ja` or a conditional jump;
    /// not `call` or `exit`), in either jump class.
    pub const fn is_jump(&self) -> bool {
        let cls = self.code & 0x07;
        let op = self.code & 0xf0;
        (cls == class::JMP || cls == class::JMP32) && op != OP_CALL && op != OP_EXIT
    }
}

/// The bytes of a whole program, as `BPF_PROG_LOAD` reads them.
pub fn to_bytes(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(Insn::to_bytes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Encodings as the kernel's instruction-set document lays them out (and
    // as `llvm-objdump -d` prints them for a little-endian target).
    #[cfg(target_endian = "little")]
    #[test]
    fn known_encodings() {
        let cases: [(Insn, [u8; 8]); 10] = [
            (Insn::mov64_imm(Reg::R0, 2), [0xb7, 0, 0, 0, 2, 0, 0, 0]),
            (Insn::exit(), [0x95, 0, 0, 0, 0, 0, 0, 0]),
            (
                Insn::ldx(Size::W, Reg::R2, Reg::R1, 0),
                [0x61, 0x12, 0, 0, 0, 0, 0, 0],
            ),
            (
                Insn::ldx(Size::H, Reg::R4, Reg::R7, 2),
                [0x69, 0x74, 2, 0, 0, 0, 0, 0],
            ),
            (
                Insn::ldx(Size::B, Reg::R5, Reg::R2, 14),
                [0x71, 0x25, 14, 0, 0, 0, 0, 0],
            ),
            (Insn::call(51), [0x85, 0, 0, 0, 51, 0, 0, 0]),
            (
                Insn::mov64_reg(Reg::R6, Reg::R1),
                [0xbf, 0x16, 0, 0, 0, 0, 0, 0],
            ),
            (
                Insn::jmp_reg(JmpOp::Jgt, Reg::R4, Reg::R3, -3),
                [0x2d, 0x34, 0xfd, 0xff, 0, 0, 0, 0],
            ),
            (
                Insn::jmp32_imm(JmpOp::Jne, Reg::R4, -1, 7),
                [0x56, 0x04, 7, 0, 0xff, 0xff, 0xff, 0xff],
            ),
            (Insn::be(Reg::R4, 16), [0xdc, 0x04, 0, 0, 16, 0, 0, 0]),
        ];
        for (insn, bytes) in cases {
            assert_eq!(insn.to_bytes(), bytes, "{insn:?}");
        }
        let [lo, hi] = Insn::ld_map_fd(Reg::R1, 0x0102_0304);
        assert_eq!(lo.to_bytes(), [0x18, 0x11, 0, 0, 4, 3, 2, 1]);
        assert_eq!(hi.to_bytes(), [0; 8]);
    }

    #[test]
    fn fields_round_trip() {
        let insn = Insn::jmp_reg(JmpOp::Jle, Reg::R9, Reg::R10, 1234);
        assert_eq!((insn.dst(), insn.src(), insn.off), (9, 10, 1234));
        assert!(insn.is_jump());
        assert!(!Insn::exit().is_jump());
        assert!(!Insn::call(1).is_jump());
        assert!(Insn::ja(-1).is_jump());
        let [lo, _] = Insn::ld_map_fd(Reg::R1, 7);
        assert!(lo.is_ld_map_fd());
        assert!(!Insn::mov64_imm(Reg::R1, 7).is_ld_map_fd());
    }

    #[test]
    fn program_bytes_are_the_concatenation() {
        let prog = [Insn::mov64_imm(Reg::R0, 2), Insn::exit()];
        let bytes = to_bytes(&prog);
        assert_eq!(bytes.len(), 16);
        assert_eq!(bytes[..8], prog[0].to_bytes());
        assert_eq!(bytes[8..], prog[1].to_bytes());
    }
}
