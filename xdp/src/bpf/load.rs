//! [`XdpProgram`]: the program and its XSKMAP in the kernel, and every
//! libbpf call of [`bpf`](super): the only module that talks to the
//! kernel, so the only one with `unsafe`.
//!
//! # Return conventions
//!
//! libbpf 1.x returns `-errno` from its low-level `bpf_*` calls *and* sets
//! `errno`; older libbpf returned `-1` with `errno` set. [`sys`] clears
//! `errno` before each call and prefers it after a failure, falling back to
//! the negated return value, so both conventions read the same (note that
//! `-1` alone is ambiguous: it is also `-EPERM`).
#![allow(unsafe_code)] // talks to the kernel or to raw memory; each use says why it is sound

use std::ffi::{c_char, c_int, CStr};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use libbpf_sys as sys_bpf;

use super::action::XdpAction;
use super::error::BpfError;
use super::insn::Insn;
use super::limits::{TEST_RUN_FRAME_MAX, TEST_RUN_FRAME_MIN};
use super::link::{AttachedProgram, XdpLink};
use super::mode::AttachMode;
use super::prog::{generate, patch_map_fd};
use super::spec::FilterSpec;

/// How many times [`XdpProgram::attach`] tries while the device is busy.
const ATTACH_ATTEMPTS: u32 = 20;
/// The pause between those tries: 20 of them wait 200 ms in all.
const ATTACH_RETRY_PAUSE: Duration = Duration::from_millis(10);
/// Verifier log buffer; grown once if the kernel says it needs more.
const LOG_SIZE: usize = 256 * 1024;
/// The program's name in `bpftool prog` and `ip link` (15 bytes at most).
const PROG_NAME: &CStr = c"tilewire_xdp";
/// The XSKMAP's name.
const MAP_NAME: &CStr = c"tilewire_xsks";

// `Insn` is handed to the kernel as `struct bpf_insn`.
const _: () = assert!(size_of::<Insn>() == size_of::<sys_bpf::bpf_insn>());
const _: () = assert!(std::mem::align_of::<Insn>() == std::mem::align_of::<sys_bpf::bpf_insn>());

/// Runs one libbpf call and turns a negative return into the `io::Error`
/// of its errno, under either return convention (see the module docs).
fn sys(call: impl FnOnce() -> c_int) -> io::Result<c_int> {
    // SAFETY: __errno_location returns the calling thread's errno slot,
    // valid for the thread's life; writing an int to it is what it is for.
    unsafe { *libc::__errno_location() = 0 };
    let ret = call();
    if ret >= 0 {
        return Ok(ret);
    }
    let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    Err(io::Error::from_raw_os_error(if errno != 0 {
        errno
    } else {
        -ret
    }))
}

/// Takes ownership of a descriptor a successful libbpf call returned.
fn own(fd: c_int) -> OwnedFd {
    debug_assert!(fd >= 0);
    // SAFETY: `fd` was just returned by the kernel for this process and
    // nothing else holds it: this OwnedFd is its only owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// The XDP program of a [`FilterSpec`], loaded, with its XSKMAP. Both
/// close when this is dropped; a program still attached through an
/// [`XdpLink`] stays until the link is dropped too.
#[derive(Debug)]
pub struct XdpProgram {
    prog: OwnedFd,
    map: OwnedFd,
    queues: u32,
    spec: FilterSpec,
}

impl XdpProgram {
    /// Makes an XSKMAP with `queues` entries (one per receive queue; every
    /// slot empty) and loads the program [`generate`] writes for `spec`.
    ///
    /// # Errors
    /// - the errors of [`FilterSpec::validate`], and [`BpfError::NoQueues`];
    /// - [`BpfError::NotPermitted`] without `CAP_BPF` (run as root);
    /// - [`BpfError::MapCreate`] if the kernel cannot make the map;
    /// - [`BpfError::Verifier`] with the verifier's whole log if it rejects
    ///   the program, or [`BpfError::ProgLoad`] if it failed with no log.
    pub fn load(spec: &FilterSpec, queues: u32) -> Result<XdpProgram, BpfError> {
        spec.validate()?;
        if queues == 0 {
            return Err(BpfError::NoQueues);
        }
        let map_opts = sys_bpf::bpf_map_create_opts {
            sz: size_of::<sys_bpf::bpf_map_create_opts>() as _,
            ..Default::default()
        };
        let map = sys(|| {
            // SAFETY: the name is a NUL-terminated constant and the options
            // a valid struct with its size set; libbpf reads both during
            // the call only.
            unsafe {
                sys_bpf::bpf_map_create(
                    sys_bpf::BPF_MAP_TYPE_XSKMAP,
                    MAP_NAME.as_ptr(),
                    4,
                    4,
                    queues,
                    &map_opts,
                )
            }
        })
        .map_err(|source| match source.raw_os_error() {
            Some(libc::EPERM) => BpfError::NotPermitted {
                op: "making the XSKMAP",
            },
            _ => BpfError::MapCreate { queues, source },
        })?;
        let map = own(map);

        let mut insns = generate(spec);
        patch_map_fd(&mut insns, map.as_raw_fd());
        let prog = load_insns(&insns)?;
        Ok(XdpProgram {
            prog,
            map,
            queues,
            spec: spec.clone(),
        })
    }

    /// Attaches the program to device `ifindex` (in the calling thread's
    /// network namespace) in `mode`, through a BPF link.
    ///
    /// While the device is busy (`EBUSY`: a link just dropped may still be
    /// in a forked child that has not yet exec'd), it tries again for up
    /// to 200 ms.
    ///
    /// # Errors
    /// - [`BpfError::NotPermitted`] without `CAP_NET_ADMIN`;
    /// - [`BpfError::NoSuchDevice`] for an unknown `ifindex`;
    /// - [`BpfError::DrvModeUnsupported`] for [`AttachMode::Drv`] on a
    ///   driver without native XDP;
    /// - [`BpfError::AlreadyAttached`] naming the program already there;
    /// - [`BpfError::Attach`] for anything else.
    pub fn attach(&self, ifindex: u32, mode: AttachMode) -> Result<XdpLink, BpfError> {
        let Ok(target) = c_int::try_from(ifindex) else {
            return Err(BpfError::NoSuchDevice { ifindex });
        };
        let opts = sys_bpf::bpf_link_create_opts {
            sz: size_of::<sys_bpf::bpf_link_create_opts>() as _,
            flags: mode.flags(),
            ..Default::default()
        };
        let mut attempt = 1;
        loop {
            let ret = sys(|| {
                // SAFETY: both descriptors are plain integers to libbpf; the
                // options are a valid struct with its size set, read during
                // the call only.
                unsafe {
                    sys_bpf::bpf_link_create(self.prog.as_raw_fd(), target, sys_bpf::BPF_XDP, &opts)
                }
            });
            match ret {
                Ok(fd) => return Ok(XdpLink::new(own(fd), ifindex, mode)),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < ATTACH_ATTEMPTS => {
                    attempt += 1;
                    std::thread::sleep(ATTACH_RETRY_PAUSE);
                }
                Err(e) => return Err(attach_error(ifindex, mode, e)),
            }
        }
    }

    /// Puts AF_XDP socket `xsk_fd` into the XSKMAP at `queue`, so frames
    /// steered on that receive queue go to it. The map takes its own
    /// reference to the socket: closing `xsk_fd` later does not empty the
    /// slot (only [`unregister_socket`](Self::unregister_socket) or
    /// dropping the program does).
    ///
    /// # Errors
    /// - [`BpfError::QueueOutOfRange`] if `queue` is beyond the map;
    /// - [`BpfError::NotAnXskSocket`] if `xsk_fd` is not an AF_XDP socket
    ///   already bound to a device queue;
    /// - [`BpfError::NotPermitted`], [`BpfError::MapUpdate`].
    pub fn register_socket(&self, queue: u32, xsk_fd: RawFd) -> Result<(), BpfError> {
        self.check_queue(queue)?;
        map_register(self.map.as_raw_fd(), queue, xsk_fd)
    }

    /// Empties the XSKMAP slot of `queue`: frames steered on it get the
    /// [`FilterSpec::miss_action`] again. Emptying an empty slot is fine.
    ///
    /// # Errors
    /// [`BpfError::QueueOutOfRange`], [`BpfError::NotPermitted`],
    /// [`BpfError::MapUpdate`].
    pub fn unregister_socket(&self, queue: u32) -> Result<(), BpfError> {
        self.check_queue(queue)?;
        map_unregister(self.map.as_raw_fd(), queue)
    }

    /// Runs the program once over `frame` with `BPF_PROG_TEST_RUN`, as if
    /// it arrived on receive queue `rx_queue`, and returns its verdict. The
    /// frame is copied; nothing is sent or redirected for real.
    ///
    /// The kernel accepts a nonzero queue only with the ifindex of a device
    /// that has that queue, so here `rx_queue` must be 0; use
    /// [`test_run_on`](Self::test_run_on) for the others.
    ///
    /// # Errors
    /// [`BpfError::TestRunQueue`] for `rx_queue != 0`, and those of
    /// [`test_run_on`](Self::test_run_on).
    pub fn test_run(&self, frame: &[u8], rx_queue: u32) -> Result<XdpAction, BpfError> {
        if rx_queue != 0 {
            return Err(BpfError::TestRunQueue { rx_queue });
        }
        self.test_run_on(frame, 0, 0)
    }

    /// [`test_run`](Self::test_run) as if `frame` arrived on queue
    /// `rx_queue` of device `ingress_ifindex` (in the calling thread's
    /// network namespace; 0 for none, which only queue 0 allows).
    ///
    /// # Errors
    /// - [`BpfError::FrameSize`] outside [`TEST_RUN_FRAME_MIN`] to
    ///   [`TEST_RUN_FRAME_MAX`] bytes;
    /// - [`BpfError::NotPermitted`];
    /// - [`BpfError::TestRun`] if the kernel refuses the run: `ENODEV` for
    ///   an unknown device, `EINVAL` for a queue the device lacks;
    /// - [`BpfError::UnknownAction`] if the program returns no action.
    pub fn test_run_on(
        &self,
        frame: &[u8],
        ingress_ifindex: u32,
        rx_queue: u32,
    ) -> Result<XdpAction, BpfError> {
        if !(TEST_RUN_FRAME_MIN..=TEST_RUN_FRAME_MAX).contains(&frame.len()) {
            return Err(BpfError::FrameSize {
                len: frame.len(),
                min: TEST_RUN_FRAME_MIN,
                max: TEST_RUN_FRAME_MAX,
            });
        }
        // The kernel's rules for the context: no metadata (data = 0),
        // data_end = the frame's length, egress_ifindex = 0.
        let ctx = sys_bpf::xdp_md {
            data: 0,
            data_end: frame.len() as u32,
            data_meta: 0,
            ingress_ifindex,
            rx_queue_index: rx_queue,
            egress_ifindex: 0,
        };
        let mut opts = sys_bpf::bpf_test_run_opts {
            sz: size_of::<sys_bpf::bpf_test_run_opts>() as _,
            data_in: frame.as_ptr().cast(),
            data_size_in: frame.len() as u32,
            ctx_in: (&ctx as *const sys_bpf::xdp_md).cast(),
            ctx_size_in: size_of::<sys_bpf::xdp_md>() as u32,
            repeat: 1,
            ..Default::default()
        };
        sys(|| {
            // SAFETY: `opts` points to the frame and the context, both live
            // for the call and only read by the kernel (no output buffers
            // are given); the kernel copies them before running.
            unsafe { sys_bpf::bpf_prog_test_run_opts(self.prog.as_raw_fd(), &mut opts) }
        })
        .map_err(|source| match source.raw_os_error() {
            Some(libc::EPERM) => BpfError::NotPermitted {
                op: "BPF_PROG_TEST_RUN",
            },
            _ => BpfError::TestRun { source },
        })?;
        XdpAction::from_u32(opts.retval).ok_or(BpfError::UnknownAction {
            retval: opts.retval,
        })
    }

    /// The program's file descriptor, owned by `self`.
    pub fn prog_fd(&self) -> RawFd {
        self.prog.as_raw_fd()
    }

    /// The XSKMAP's file descriptor, owned by `self`.
    pub fn map_fd(&self) -> RawFd {
        self.map.as_raw_fd()
    }

    /// The XSKMAP's entries: the receive queues it can steer to.
    pub fn queues(&self) -> u32 {
        self.queues
    }

    /// The filter the program was generated from.
    pub fn spec(&self) -> &FilterSpec {
        &self.spec
    }

    /// The program's kernel id, as `bpftool prog` and
    /// [`attached_program`] show it.
    ///
    /// # Errors
    /// [`BpfError::ProgLoad`] if the kernel will not describe the program.
    pub fn prog_id(&self) -> Result<u32, BpfError> {
        prog_info(self.prog.as_raw_fd())
            .map(|info| info.id)
            .map_err(|source| BpfError::ProgLoad { source })
    }

    fn check_queue(&self, queue: u32) -> Result<(), BpfError> {
        if queue >= self.queues {
            return Err(BpfError::QueueOutOfRange {
                queue,
                queues: self.queues,
            });
        }
        Ok(())
    }
}

/// Loads `insns` as an XDP program; on failure, fetches the verifier log.
fn load_insns(insns: &[Insn]) -> Result<OwnedFd, BpfError> {
    let mut log_size = LOG_SIZE;
    // First with log level 0 (libbpf itself retries with level 1 when a
    // buffer is given); then ourselves with level 1 if the log is still
    // empty, and with a bigger buffer if the kernel says it needs one.
    for log_level in [0u32, 1, 1] {
        let mut log = vec![0u8; log_size];
        let mut opts = sys_bpf::bpf_prog_load_opts {
            sz: size_of::<sys_bpf::bpf_prog_load_opts>() as _,
            expected_attach_type: sys_bpf::BPF_XDP,
            log_level,
            log_size: log.len() as u32,
            log_buf: log.as_mut_ptr().cast::<c_char>(),
            ..Default::default()
        };
        let ret = sys(|| {
            // SAFETY: name and license are NUL-terminated constants; `insns`
            // is a live slice of `Insn`, which has the layout of `bpf_insn`
            // (8 bytes, align 4, same fields), read during the call; the log
            // buffer is live, writable and `log_size` bytes long.
            unsafe {
                sys_bpf::bpf_prog_load(
                    sys_bpf::BPF_PROG_TYPE_XDP,
                    PROG_NAME.as_ptr(),
                    c"Dual BSD/GPL".as_ptr(),
                    insns.as_ptr().cast::<sys_bpf::bpf_insn>(),
                    insns.len() as _,
                    &mut opts,
                )
            }
        });
        let source = match ret {
            Ok(fd) => return Ok(own(fd)),
            Err(e) => e,
        };
        let errno = source.raw_os_error().unwrap_or(0);
        if errno == libc::EPERM {
            return Err(BpfError::NotPermitted {
                op: "loading the XDP program",
            });
        }
        let text = CStr::from_bytes_until_nul(&log)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|_| String::from_utf8_lossy(&log).into_owned());
        let needed = opts.log_true_size as usize;
        if errno == libc::ENOSPC && needed > log_size && log_size == LOG_SIZE {
            log_size = needed + 1;
            continue;
        }
        if !text.trim().is_empty() {
            return Err(BpfError::Verifier { errno, log: text });
        }
        if log_level == 1 {
            return Err(BpfError::ProgLoad { source });
        }
    }
    unreachable!("the last attempt always returns")
}

/// The kernel's description of program `fd`.
fn prog_info(fd: RawFd) -> io::Result<sys_bpf::bpf_prog_info> {
    let mut info = sys_bpf::bpf_prog_info::default();
    let mut len = size_of::<sys_bpf::bpf_prog_info>() as u32;
    sys(|| {
        // SAFETY: `info` is a writable bpf_prog_info and `len` its size;
        // the kernel writes at most `len` bytes of it. Its pointer fields
        // are zero, so the kernel copies nothing else out.
        unsafe { sys_bpf::bpf_prog_get_info_by_fd(fd, &mut info, &mut len) }
    })?;
    Ok(info)
}

/// Turns a failed `bpf_link_create` into the error that names its fix.
fn attach_error(ifindex: u32, mode: AttachMode, source: io::Error) -> BpfError {
    match source.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => BpfError::NotPermitted {
            op: "attaching the XDP program",
        },
        Some(libc::ENODEV) => BpfError::NoSuchDevice { ifindex },
        // The kernel answers EINVAL, not ENODEV, for an unknown ifindex.
        Some(libc::EINVAL) if !device_exists(ifindex) => BpfError::NoSuchDevice { ifindex },
        Some(libc::EOPNOTSUPP) if mode == AttachMode::Drv => {
            BpfError::DrvModeUnsupported { ifindex }
        }
        Some(libc::EBUSY | libc::EEXIST) => {
            let (prog_id, prog_name) = match attached_program(ifindex) {
                Ok(Some(p)) => (p.id, p.name),
                _ => (0, String::new()),
            };
            BpfError::AlreadyAttached {
                ifindex,
                prog_id,
                prog_name,
            }
        }
        _ => BpfError::Attach {
            ifindex,
            mode,
            source,
        },
    }
}

/// Whether device `ifindex` exists in the calling thread's namespace.
fn device_exists(ifindex: u32) -> bool {
    let mut name = [0 as c_char; libc::IF_NAMESIZE];
    // SAFETY: `name` is IF_NAMESIZE bytes, as if_indextoname requires.
    !unsafe { libc::if_indextoname(ifindex, name.as_mut_ptr()) }.is_null()
}

/// The XDP program device `ifindex` runs (in the calling thread's network
/// namespace), if any.
///
/// # Errors
/// [`BpfError::NoSuchDevice`] for an unknown device;
/// [`BpfError::NotPermitted`] without `CAP_NET_ADMIN`; [`BpfError::Attach`]
/// (with mode [`AttachMode::Skb`]) if the query fails otherwise.
pub fn attached_program(ifindex: u32) -> Result<Option<AttachedProgram>, BpfError> {
    if !device_exists(ifindex) {
        return Err(BpfError::NoSuchDevice { ifindex });
    }
    let mut opts = sys_bpf::bpf_xdp_query_opts {
        sz: size_of::<sys_bpf::bpf_xdp_query_opts>() as _,
        ..Default::default()
    };
    sys(|| {
        // SAFETY: `opts` is a writable query struct with its size set;
        // libbpf fills it during the call.
        unsafe { sys_bpf::bpf_xdp_query(ifindex as c_int, 0, &mut opts) }
    })
    .map_err(|source| match source.raw_os_error() {
        Some(libc::EPERM) => BpfError::NotPermitted {
            op: "querying a device's XDP program",
        },
        _ => BpfError::Attach {
            ifindex,
            mode: AttachMode::Skb,
            source,
        },
    })?;
    let mode = match u32::from(opts.attach_mode) {
        sys_bpf::XDP_ATTACHED_NONE => return Ok(None),
        sys_bpf::XDP_ATTACHED_DRV => Some(AttachMode::Drv),
        sys_bpf::XDP_ATTACHED_SKB => Some(AttachMode::Skb),
        _ => None,
    };
    let id = [
        opts.prog_id,
        opts.drv_prog_id,
        opts.skb_prog_id,
        opts.hw_prog_id,
    ]
    .into_iter()
    .find(|&id| id != 0)
    .unwrap_or(0);
    Ok(Some(AttachedProgram {
        id,
        name: prog_name(id).unwrap_or_default(),
        mode,
    }))
}

/// The name of program `id`, if it can be opened and described.
fn prog_name(id: u32) -> Option<String> {
    if id == 0 {
        return None;
    }
    // SAFETY: takes a plain id; returns a new descriptor or an error.
    let fd = sys(|| unsafe { sys_bpf::bpf_prog_get_fd_by_id(id) }).ok()?;
    let fd = own(fd);
    let info = prog_info(fd.as_raw_fd()).ok()?;
    let bytes: Vec<u8> = info
        .name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Puts socket `xsk_fd` into XSKMAP `map` at `queue`.
fn map_register(map: RawFd, queue: u32, xsk_fd: RawFd) -> Result<(), BpfError> {
    let value: u32 = xsk_fd as u32;
    sys(|| {
        // SAFETY: key and value point to live u32s, the sizes the map
        // was made with; libbpf copies them during the call.
        unsafe {
            sys_bpf::bpf_map_update_elem(
                map,
                (&queue as *const u32).cast(),
                (&value as *const u32).cast(),
                u64::from(sys_bpf::BPF_ANY),
            )
        }
    })
    .map(drop)
    .map_err(|source| match source.raw_os_error() {
        Some(libc::EPERM) => BpfError::NotPermitted {
            op: "updating the XSKMAP",
        },
        Some(libc::EOPNOTSUPP | libc::ENOTSOCK | libc::EBADF) => BpfError::NotAnXskSocket {
            queue,
            fd: xsk_fd,
            source,
        },
        _ => BpfError::MapUpdate { queue, source },
    })
}

/// Empties the slot of `queue` in XSKMAP `map` (an empty one is fine).
fn map_unregister(map: RawFd, queue: u32) -> Result<(), BpfError> {
    let ret = sys(|| {
        // SAFETY: the key points to a live u32, the map's key size.
        unsafe { sys_bpf::bpf_map_delete_elem(map, (&queue as *const u32).cast()) }
    });
    match ret {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Err(BpfError::NotPermitted {
            op: "updating the XSKMAP",
        }),
        Err(source) => Err(BpfError::MapUpdate { queue, source }),
    }
}

/// The XSKMAP of the tilewire XDP program attached to a device, opened by
/// the program's id from any thread or process (in the device's network
/// namespace): what a net tile needs to put its socket on its queue when
/// one program, loaded and attached by the pipeline, serves every net tile
/// of an interface. Dropping it closes only this descriptor of the map.
#[derive(Debug)]
pub struct XskMap {
    map: OwnedFd,
    queues: u32,
    prog_id: u32,
}

impl XskMap {
    /// The XSKMAP of the program attached to device `ifindex`, if that
    /// program is tilewire's; `None` if no program is attached.
    ///
    /// # Errors
    /// Those of [`attached_program`]; [`BpfError::Join`] if the attached
    /// program is another's, or it or its map cannot be opened.
    pub fn of_attached(ifindex: u32) -> Result<Option<XskMap>, BpfError> {
        let Some(prog) = attached_program(ifindex)? else {
            return Ok(None);
        };
        let join = |why: String| BpfError::Join { ifindex, why };
        if prog.name != PROG_NAME.to_string_lossy() {
            return Err(join(format!(
                "the attached program is {:?} (id {}), not tilewire's",
                prog.name, prog.id
            )));
        }
        // SAFETY: takes a plain id; returns a new descriptor or an error.
        let fd = sys(|| unsafe { sys_bpf::bpf_prog_get_fd_by_id(prog.id) })
            .map_err(|e| join(format!("opening program {}: {e}", prog.id)))?;
        let fd = own(fd);
        let mut map_id = 0u32;
        let mut info = sys_bpf::bpf_prog_info {
            nr_map_ids: 1,
            map_ids: (&mut map_id as *mut u32) as u64,
            ..Default::default()
        };
        let mut len = size_of::<sys_bpf::bpf_prog_info>() as u32;
        sys(|| {
            // SAFETY: `info` is a writable bpf_prog_info of `len` bytes whose
            // one pointer field points to a live u32 with room for the one
            // map id it says.
            unsafe { sys_bpf::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) }
        })
        .map_err(|e| join(format!("describing program {}: {e}", prog.id)))?;
        if map_id == 0 {
            return Err(join(format!("program {} has no map", prog.id)));
        }
        // SAFETY: takes a plain id; returns a new descriptor or an error.
        let map = sys(|| unsafe { sys_bpf::bpf_map_get_fd_by_id(map_id) })
            .map_err(|e| join(format!("opening map {map_id}: {e}")))?;
        let map = own(map);
        let mut minfo = sys_bpf::bpf_map_info::default();
        let mut mlen = size_of::<sys_bpf::bpf_map_info>() as u32;
        sys(|| {
            // SAFETY: `minfo` is a writable bpf_map_info of `mlen` bytes with
            // no pointer fields set.
            unsafe { sys_bpf::bpf_map_get_info_by_fd(map.as_raw_fd(), &mut minfo, &mut mlen) }
        })
        .map_err(|e| join(format!("describing map {map_id}: {e}")))?;
        if minfo.type_ != sys_bpf::BPF_MAP_TYPE_XSKMAP {
            return Err(join(format!("map {map_id} is not an XSKMAP")));
        }
        Ok(Some(XskMap {
            map,
            queues: minfo.max_entries,
            prog_id: prog.id,
        }))
    }

    /// Entries of the map: one per receive queue the program serves.
    pub fn queues(&self) -> u32 {
        self.queues
    }

    /// Kernel id of the program the map belongs to.
    pub fn prog_id(&self) -> u32 {
        self.prog_id
    }

    /// As [`XdpProgram::register_socket`].
    ///
    /// # Errors
    /// As [`XdpProgram::register_socket`].
    pub fn register_socket(&self, queue: u32, xsk_fd: RawFd) -> Result<(), BpfError> {
        self.check_queue(queue)?;
        map_register(self.map.as_raw_fd(), queue, xsk_fd)
    }

    /// As [`XdpProgram::unregister_socket`].
    ///
    /// # Errors
    /// As [`XdpProgram::unregister_socket`].
    pub fn unregister_socket(&self, queue: u32) -> Result<(), BpfError> {
        self.check_queue(queue)?;
        map_unregister(self.map.as_raw_fd(), queue)
    }

    fn check_queue(&self, queue: u32) -> Result<(), BpfError> {
        if queue >= self.queues {
            return Err(BpfError::QueueOutOfRange {
                queue,
                queues: self.queues,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Reg, Size};
    use super::*;

    fn root() -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            return true;
        }
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "\nskipped: needs CAP_NET_ADMIN");
        false
    }

    #[test]
    fn rejection_carries_the_whole_log() {
        if !root() {
            return;
        }
        // Reads a packet byte with no bounds check.
        let unchecked = [
            Insn::ldx(Size::W, Reg::R2, Reg::R1, 0),
            Insn::ldx(Size::B, Reg::R0, Reg::R2, 0),
            Insn::exit(),
        ];
        match load_insns(&unchecked) {
            Err(BpfError::Verifier { errno, log }) => {
                assert_eq!(errno, libc::EACCES);
                assert!(log.contains("invalid access to packet"), "{log}");
                assert!(log.contains("processed"), "the log is whole: {log}");
            }
            other => panic!("want a verifier rejection, got {other:?}"),
        }
        // And a program the kernel takes loads.
        let pass = [Insn::mov64_imm(Reg::R0, 2), Insn::exit()];
        assert!(load_insns(&pass).is_ok());
    }

    #[test]
    fn errno_under_both_conventions() {
        let neg = sys(|| -libc::ENODEV).unwrap_err();
        assert_eq!(neg.raw_os_error(), Some(libc::ENODEV));
        let set = sys(|| {
            // SAFETY: writes the calling thread's errno, as a C call would.
            unsafe { *libc::__errno_location() = libc::EBUSY };
            -1
        })
        .unwrap_err();
        assert_eq!(set.raw_os_error(), Some(libc::EBUSY));
        assert_eq!(sys(|| 5).unwrap(), 5);
    }
}
