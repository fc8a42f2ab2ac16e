//! The numbers that bound the program: the ports it steers, its length,
//! and the frames a test run takes.

/// Most destination ports one program steers.
pub const PORTS_MAX: usize = 16;

/// Upper bound on the length of any generated program, in instructions
/// (the real one is about 60 plus one per port).
pub const PROG_INSNS_MAX: usize = 128;

/// Shortest frame `BPF_PROG_TEST_RUN` accepts for XDP: an Ethernet header
/// (the kernel answers `EINVAL` below it).
pub const TEST_RUN_FRAME_MIN: usize = 14;
/// Longest frame accepted for a test run: a 4 KiB page less the XDP
/// headroom (256) and the shared-info tail (320 on 64-bit hosts).
pub const TEST_RUN_FRAME_MAX: usize = 4096 - 256 - 320;
