//! Safe teardown: whether the socket and program are dropped or the
//! process holding them is killed with SIGKILL, no XDP program stays
//! attached, and a new program and socket on the same queue work at once
//! (bind retries the kernel's EBUSY while the old socket is released).
//! The namespaces are the test's own and removed on drop. Privileged: as a
//! user each test prints the line CI counts.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tilewire_aio::netns::VethPair;
use tilewire_aio::MemAio;
use tilewire_shmem::{PageKind, Workspace};
use tilewire_xdp::bpf::{attached_program, AttachMode, FilterSpec, XdpLink, XdpProgram};
use tilewire_xdp::{BindMode, Umem, Xsk, XskConfig};

const PORT: u16 = 9400;
/// Set in the environment of the child that holds a program and a socket
/// until it is killed: the interface to use.
const HOLDER: &str = "TILEWIRE_TEST_XDP_HOLDER";

fn pair(tag: &str) -> Option<VethPair> {
    VethPair::new_or_skip(tag)
}

/// A workspace whose name is removed at once (the mapping stays while the
/// value lives).
fn workspace() -> Workspace {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "tw-xdpdown-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let ws = Workspace::create(&name, 8 << 20, PageKind::Normal).expect("workspace");
    let _ = Workspace::unlink(&name);
    ws
}

fn umem(ws: &Workspace) -> Umem<'_> {
    Umem::alloc_named(ws, "umem", 512).unwrap()
}

/// Attaches the program on `ifname` (by index, in the calling thread's
/// namespace) and binds a socket on queue 0.
fn open<'w>(ifname: &str, ifindex: u32, umem: Umem<'w>) -> (XdpProgram, XdpLink, Xsk<'w>) {
    let prog = XdpProgram::load(&FilterSpec::new([PORT]).unwrap(), 1).expect("load");
    let link = prog.attach(ifindex, AttachMode::Drv).expect("attach");
    let cfg = XskConfig {
        ifname: ifname.to_string(),
        bind: BindMode::Copy,
        rx_size: 256,
        fill_size: 256,
        tx_size: 256,
        ..XskConfig::default()
    };
    let (xsk, _) = Xsk::bind(umem, &cfg).expect("bind");
    prog.register_socket(0, xsk.raw_fd().unwrap())
        .expect("register");
    (prog, link, xsk)
}

/// Polls (bounded) until no program is attached to a's interface.
fn wait_detached(pair: &VethPair) -> bool {
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        let now = pair
            .a()
            .run(|| attached_program(pair.a().ifindex()))
            .unwrap();
        if now.expect("query").is_none() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A datagram from b to the port arrives through a fresh program and
/// socket opened right away.
fn reopen_and_receive(pair: &VethPair) {
    let ws = workspace();
    let (_prog, _link, mut xsk) = pair
        .a()
        .run(|| open(pair.a().ifname(), pair.a().ifindex(), umem(&ws)))
        .unwrap();
    let peer = pair
        .b()
        .run(|| UdpSocket::bind(SocketAddr::from((pair.b().addr(), 0))))
        .unwrap()
        .unwrap();
    let to = SocketAddr::from((pair.a().addr(), PORT));
    let mut rx = MemAio::with_capacity(64);
    let end = Instant::now() + Duration::from_secs(3);
    while rx.is_empty() && Instant::now() < end {
        peer.send_to(b"after teardown", to).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        xsk.poll_into(&mut rx, 64);
    }
    let got = rx
        .front()
        .expect("a datagram through the new socket")
        .buf
        .to_vec();
    assert!(got.ends_with(b"after teardown"));
}

#[test]
fn dropping_detaches_and_the_queue_binds_again_at_once() {
    let Some(pair) = pair("xdrop") else { return };
    for _ in 0..3 {
        let ws = workspace();
        let held = pair
            .a()
            .run(|| open(pair.a().ifname(), pair.a().ifindex(), umem(&ws)))
            .unwrap();
        let attached = pair
            .a()
            .run(|| attached_program(pair.a().ifindex()))
            .unwrap();
        assert!(attached.unwrap().is_some(), "attached while held");
        drop(held);
        assert!(wait_detached(&pair), "a dropped program stays attached");
    }
    reopen_and_receive(&pair);
}

#[test]
fn a_killed_process_leaves_no_program_attached() {
    let Some(pair) = pair("xkill") else { return };
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", pair.a().netns()])
        .arg(&exe)
        .args([
            "--exact",
            "hold_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            HOLDER,
            format!("{} {}", pair.a().ifname(), pair.a().ifindex()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the holder");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            // The harness prints "test ... " before the test's own output.
            if line.contains("holding ") {
                let _ = tx.send(());
            }
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(10));
    if ready.is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the holder never said it holds the queue");
    }
    let attached = pair
        .a()
        .run(|| attached_program(pair.a().ifindex()))
        .unwrap();
    assert!(
        attached.unwrap().is_some(),
        "the holder's program is attached"
    );
    child.kill().expect("SIGKILL the holder");
    child.wait().unwrap();
    assert!(
        wait_detached(&pair),
        "a killed process's program stays attached"
    );
    reopen_and_receive(&pair);
}

/// Not a test on its own: the child of
/// [`a_killed_process_leaves_no_program_attached`], which holds a program
/// and a socket until it is killed (30 s at most). Returns at once unless
/// the parent set [`HOLDER`].
#[test]
fn hold_until_killed() {
    let Ok(spec) = std::env::var(HOLDER) else {
        return;
    };
    let (ifname, ifindex) = spec.split_once(' ').unwrap();
    let ws = workspace();
    let _held = open(ifname, ifindex.parse().unwrap(), umem(&ws));
    println!("holding {ifname}");
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(30));
}
